"""Notebook 01's app without a browser: confirmations carry exactly what they name, every action
replaces what it supersedes, batches are idempotent, unknown outcomes are looked up. The truth is
what the sandbox received and holds."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from reconkit import AmbiguousVoidError
from reconkit.sandbox import FaultPlan
from reconkit.widgets import IssueCreditApp


@pytest.fixture
def app(sandbox, tmp_path):
    return IssueCreditApp(sandbox.client(ledger=str(tmp_path / "ledger.sqlite3")))


def upload(name: str, data: bytes) -> tuple[dict, ...]:
    return ({"name": name, "type": "text/csv", "size": len(data), "content": memoryview(data),
             "last_modified": datetime(2026, 11, 2, tzinfo=UTC)},)


class _Table(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table(html_text: str) -> list[dict[str, str]]:
    """The rows of the first HTML table as dicts keyed by the header."""
    parser = _Table()
    parser.feed(html_text)
    header, *rows = parser.rows
    return [dict(zip(header, row, strict=True)) for row in rows]


def issue(app, amount="10.00", currency="USD", card="4111111111111111") -> None:
    app.source.value, app.amount.value, app.currency.value = card, amount, currency
    app.issue_button.click()
    app.confirm_button.click()


# --- amounts ----------------------------------------------------------------------------
@pytest.mark.parametrize("typed", ["1e3", "1E3", "1_000", "+5", "1,000.00", "\u0661\u0660", "10 .00", "0x10",
                                   "Infinity", "NaN", "-1"])
def test_only_plain_decimal_notation_is_an_amount(app, sandbox, typed):
    app.amount.value = typed
    assert app.issue_button.disabled and app.messages["amount"].value
    app.on_issue()
    app.on_confirm()
    assert sandbox.count("POST", "create") == 0


@pytest.mark.parametrize(("typed", "currency", "normalized"), [("10", "USD", "10.00"), ("0010.5", "EUR", "10.50"),
                                                               (".5", "USD", "0.50"), ("1000", "JPY", "1000"),
                                                               ("1.5", "KWD", "1.500")])
def test_the_confirmation_shows_the_normalized_amount_that_is_sent(app, sandbox, typed, currency, normalized):
    app.amount.value, app.currency.value = typed, currency
    app.issue_button.click()
    assert f"<b>{normalized} {currency}</b>" in app.confirm_text.value
    assert app.confirm_button.description == f"Issue {normalized} {currency}"
    app.confirm_button.click()
    assert [(c["amount"], c["currency"]) for c in sandbox.credits()] == [(normalized, currency)]


def test_the_same_amount_to_the_same_card_needs_a_second_confirmation(app, sandbox):
    issue(app, "25.00")
    first = sandbox.credits()[0]["id"]
    app.amount.value = "25"  # the same amount, typed differently
    app.issue_button.click()
    assert "Possible repeat" in app.confirm_text.value and first in app.confirm_text.value
    app.confirm_button.click()
    assert sandbox.count("POST", "create") == 1  # the first click only acknowledges
    assert "second" in app.confirm_text.value and first in app.confirm_text.value
    app.confirm_button.click()
    assert sandbox.count("POST", "create") == 2
    issue(app, "25.00", card="5555555555554444")  # another card: no question
    issue(app, "26.00")  # another amount: no question
    assert sandbox.count("POST", "create") == 4
    sandbox.advance(minutes=11)
    issue(app, "25.00")  # ten minutes later: no question
    assert sandbox.count("POST", "create") == 5


def test_cancelling_a_repeat_sends_nothing(app, sandbox):
    issue(app, "25.00")
    app.issue_button.click()
    app.confirm_button.click()
    app.cancel_button.click()
    app.confirm_button.click()
    assert sandbox.count("POST", "create") == 1 and app.confirm_box.layout.display == "none"


# --- every action replaces what it supersedes --------------------------------------------
def test_a_new_error_clears_the_previous_credit(app, sandbox):
    issue(app, "10.00")
    credit_id = sandbox.credits()[0]["id"]
    assert credit_id in app.raw.value and credit_id in app.result.value
    issue(app, "3000.00")  # INVALID_AMOUNT
    assert "INVALID_AMOUNT" in app.error.value
    assert credit_id not in app.raw.value and credit_id not in app.result.value and app.raw.value == ""
    assert app.last_credit is None


def test_the_next_confirmation_does_not_stand_over_the_previous_credit(app, sandbox):
    issue(app, "25.00")
    assert "PENDING" in app.result.value and "25.00" in app.result.value
    app.amount.value = "30.00"
    app.issue_button.click()  # the confirmation of the next credit
    assert "30.00" in app.confirm_text.value
    assert app.result.value == "" and app.raw.value == ""  # not "PENDING 25.00 USD" under it


def test_a_void_error_is_cleared_by_the_next_success(app, sandbox):
    issue(app, "10.00")
    old = sandbox.credits()[0]["id"]
    sandbox.advance(hours=25)  # batched: no longer voidable
    issue(app, "11.00")
    new = sandbox.credits()[1]["id"]
    app.credit_picker.value = old
    app.void_button.click()
    app.void_confirm.click()
    assert "NOT_VOIDABLE" in app.error.value
    app.credit_picker.value = new
    app.void_button.click()
    app.void_confirm.click()
    assert app.error.value == "" and "VOIDED" in app.result.value and new in app.result.value


def test_a_failed_batch_message_is_cleared_by_the_next_batch(app, sandbox):
    app.batch_upload.value = upload("bad.csv", b"amount,currency,instrument\nabc,USD,4111111111111111\n")
    app.batch_button.click()
    assert "bad.csv line 2" in app.error.value
    app.batch_upload.value = upload("good.csv", b"amount,currency,instrument\n1.00,USD,4111111111111111\n")
    app.batch_button.click()
    app.batch_confirm.click()
    assert app.error.value == "" and "issued now" in app.batch_result.value


def test_the_ledger_table_shows_amount_and_currency_of_every_credit(app, sandbox):
    for amount, currency in [("10.00", "USD"), ("2005.00", "USD"), ("7.5", "EUR"), ("1000", "JPY")]:
        issue(app, amount, currency)
    rows = {row["Credit id"]: row for row in table(app.issued.value)}
    truth = sandbox.credits()
    assert len(rows) == len(truth) == 4
    for credit in truth:
        row = rows[credit["id"]]
        assert (row["Amount"], row["Currency"], row["Status"]) == (credit["amount"], credit["currency"],
                                                                   credit["status"])


# --- void ----------------------------------------------------------------------------------
def test_the_void_confirmation_carries_exactly_the_credit_it_names(app, sandbox):
    issue(app, "12.00", "USD")
    issue(app, "34.00", "EUR")
    a, b = (c["id"] for c in sandbox.credits())
    app.credit_picker.value = a
    app.void_button.click()
    assert a in app.void_confirm.description and "12.00 USD" in app.void_confirm.description
    app.credit_picker.value = b  # changing the selection cancels the confirmation
    assert app.void_confirm.layout.display == "none"
    app.void_confirm.click()
    assert sandbox.count("POST", "void") == 0
    app.void_button.click()
    assert b in app.void_confirm.description and "34.00 EUR" in app.void_confirm.description
    app.void_confirm.click()
    app.void_confirm.click()  # used once
    statuses = {c["id"]: c["status"] for c in sandbox.credits()}
    assert statuses == {a: "PENDING", b: "VOIDED"} and sandbox.count("POST", "void") == 1


# --- batch ---------------------------------------------------------------------------------
BATCH = (b"amount,currency,instrument\n1.00,USD,4111111111111111\n2.00,EUR,7010000000016241111\n"
         b"2005.00,USD,5555555555554444\n")


def test_batch_is_confirmed_issued_once_and_idempotent(app, sandbox):
    app.batch_upload.value = upload("batch.csv", BATCH)
    app.batch_button.click()
    assert sandbox.count("POST", "create") == 0  # nothing before confirmation
    assert "<b>3</b> credit(s)" in app.batch_confirm_text.value and "1.00 EUR" not in app.batch_confirm_text.value
    assert "2.00 EUR" in app.batch_confirm_text.value and "2006.00 USD" in app.batch_confirm_text.value
    clicks = []

    def click_again(change):  # the analyst clicks again while the batch runs
        clicks.append(change["new"])
        app.batch_button.click()
        app.batch_confirm.click()

    app.batch_progress.observe(click_again, names="value")
    app.batch_confirm.click()
    app.batch_progress.unobserve(click_again, names="value")
    assert clicks == [1, 2, 3] and sandbox.count("POST", "create") == 3
    digest = hashlib.sha256(BATCH).hexdigest()[:20]
    references = {c["reference_code"] for c in sandbox.credits()}
    assert references == {f"batch-{digest}-{line}" for line in (2, 3, 4)}
    rows = table(app.batch_result.value)
    assert [r["This run"] for r in rows] == ["issued now", "issued now", "declined: PROCESSOR_DECLINED"]
    assert [r["Credit id"] for r in rows] == [c["id"] for c in sandbox.credits()]

    app.batch_upload.value = upload("batch-again.csv", BATCH)  # the same file, run again
    app.batch_button.click()
    assert "nothing to send" in app.batch_result.value and sandbox.count("POST", "create") == 3
    assert [r["This run"] for r in table(app.batch_result.value.split("</div>", 1)[1])] == [
        "issued before: not sent again"] * 3

    grown = BATCH + b"3.00,USD,4111111111111111\n"
    app.batch_upload.value = upload("grown.csv", grown)  # another file: its own references, repeats named
    app.batch_button.click()
    assert "Possible repeats:</b> lines 2, 3 " in app.batch_confirm_text.value  # line 4 was declined: no money
    app.batch_confirm.click()
    assert sandbox.count("POST", "create") == 7


def test_a_bad_batch_file_sends_nothing(app, sandbox):
    app.batch_upload.value = upload("bad.csv", b"amount,currency,instrument\n1.00,USD,4111111111111111\n"
                                               b"1e3,USD,4111111111111111\n")
    app.batch_button.click()
    app.batch_confirm.click()
    assert sandbox.count("POST", "create") == 0 and "bad.csv line 3" in app.error.value


def test_a_new_upload_cancels_the_batch_confirmation(app, sandbox):
    app.batch_upload.value = upload("a.csv", BATCH)
    app.batch_button.click()
    app.batch_upload.value = upload("b.csv", b"amount,currency,instrument\n9.00,USD,4111111111111111\n")
    app.batch_confirm.click()
    assert sandbox.count("POST", "create") == 0 and app.batch_confirm_box.layout.display == "none"


# --- unknown outcomes ----------------------------------------------------------------------
def test_a_proxy_502_in_the_app_is_unknown_and_the_lookup_finds_the_credit(app, sandbox):
    sandbox.faults = FaultPlan(rates={"create": {"html_502": 1.0}})
    reference = app.reference.value
    issue(app, "10.00")
    assert "Outcome unknown" in app.result.value and app.error.value == ""
    assert app.lookup_button.layout.display == "flex"
    sandbox.faults = FaultPlan()
    app.lookup_button.click()
    truth = sandbox.credits()[0]
    rows = table(app.lookup_result.value)
    assert [(r["Reference"], r["Now"], r["Credit id"]) for r in rows] == [(reference, "created", truth["id"])]
    assert truth["id"] in app.result.value and app.lookup_button.layout.display == "none"
    ledger = {r["Reference"]: r for r in table(app.issued.value)}
    assert (ledger[reference]["Outcome"], ledger[reference]["Credit id"]) == ("created", truth["id"])


def test_batch_rows_with_unknown_outcomes_are_looked_up(app, sandbox):
    sandbox.faults = FaultPlan(rates={"create": {"bare_500": 0.5}}, seed=4)
    app.batch_upload.value = upload("batch.csv", BATCH)
    app.batch_button.click()
    app.batch_confirm.click()
    rows = table(app.batch_result.value)
    unknown = [r for r in rows if r["Outcome"] == "unknown_outcome"]
    assert unknown and all("Look it up" in r["This run"] for r in unknown)
    sandbox.faults = FaultPlan()
    app.lookup_button.click()
    assert {r["Now"] for r in table(app.lookup_result.value)} == {"unknown_outcome"}  # too early to tell
    sandbox.advance(app.client.tss_delay)
    app.lookup_button.click()
    assert {r["Now"] for r in table(app.lookup_result.value)} == {"not_created"}
    outcomes = {r["Line"]: r["Outcome"] for r in table(app.batch_result.value)}
    created = {c["reference_code"].rsplit("-", 1)[1] for c in sandbox.credits()}
    assert {line for line, outcome in outcomes.items() if outcome == "not_created"} == (
        {"2", "3", "4"} - created)


def _pick_and_void(app, credit_id: str) -> None:
    app.credit_picker.value = credit_id
    app.void_button.click()
    app.void_confirm.click()


@pytest.mark.parametrize("kind", ["html_502", "html_503"])
def test_a_void_without_an_answer_shows_void_outcome_unknown_and_the_lookup_settles_it(app, sandbox, kind):
    issue(app, "12.00", "USD")
    issue(app, "34.00", "EUR")
    kept, target = (c["id"] for c in sandbox.credits())
    sandbox.faults = FaultPlan(rates={"void": {kind: 1.0}})
    _pick_and_void(app, target)
    assert "Void outcome unknown" in app.result.value and target in app.result.value
    assert "34.00 EUR" in app.result.value and app.error.value == "" and app.raw.value == ""
    statuses = {r["Credit id"]: r["Status"] for r in table(app.issued.value)}
    assert statuses == {kept: "PENDING", target: "void outcome unknown"}
    assert app.lookup_button.layout.display == "flex"
    sandbox.faults = FaultPlan()

    app.credit_picker.value = target  # voiding again is refused until it is looked up: nothing sent
    app.void_button.click()
    assert app.void_confirm.layout.display == "none" and target in app.error.value
    assert "unknown outcome" in app.error.value and sandbox.count("POST", "void") == 1

    truth = {c["id"]: c["status"] for c in sandbox.credits()}
    assert truth[target] == ("VOIDED" if kind == "html_502" else "PENDING")  # html_502: done, answer lost
    app.lookup_button.click()
    [row] = table(app.lookup_result.value)
    if kind == "html_503":  # still PENDING: too soon to say the void was not done
        assert (row["Looked up"], row["Now"], row["Credit id"], row["Status"]) == (
            "void", "unknown_outcome", target, "PENDING")
        assert app.lookup_button.layout.display == "flex"
        sandbox.advance(app.client.tss_delay)
        app.lookup_button.click()
        [row] = table(app.lookup_result.value)
    done = truth[target] == "VOIDED"
    assert (row["Looked up"], row["Now"], row["Credit id"], row["Status"]) == (
        "void", "voided" if done else "not_voided", target, truth[target])
    assert f"void of credit {target} {'done' if done else 'not done'}" in row["Note"]
    assert target in app.result.value and app.lookup_button.layout.display == "none"
    statuses = {r["Credit id"]: r["Status"] for r in table(app.issued.value)}
    assert statuses == {kept: "PENDING", target: truth[target]}
    if not done:  # not done: it may be voided again, and now it is
        _pick_and_void(app, target)
        assert "VOIDED" in app.result.value and {c["id"]: c["status"] for c in sandbox.credits()}[target] == "VOIDED"
    assert sandbox.count("POST", "void") == (1 if done else 2)


def test_a_lookup_that_settles_several_voids_clears_the_void_outcome_unknown_it_supersedes(app, sandbox):
    issue(app, "12.00", "USD")
    issue(app, "34.00", "EUR")
    ids = [c["id"] for c in sandbox.credits()]
    sandbox.faults = FaultPlan(rates={"void": {"html_502": 1.0}})  # carried out, answer lost
    for credit_id in ids:
        _pick_and_void(app, credit_id)
    assert "Void outcome unknown" in app.result.value and ids[-1] in app.result.value
    sandbox.faults = FaultPlan()
    app.lookup_button.click()
    assert {r["Credit id"]: r["Now"] for r in table(app.lookup_result.value)} == dict.fromkeys(ids, "voided")
    assert app.result.value == "" and app.raw.value == "" and app.error.value == ""
    assert {r["Credit id"]: r["Status"] for r in table(app.issued.value)} == dict.fromkeys(ids, "VOIDED")


def test_the_lookup_names_a_voided_id_that_cannot_be_read_back_as_not_found(app, sandbox):
    nobody = "9" * 22  # voided through the API with the app's client: no credit has this id
    sandbox.faults = FaultPlan(rates={"void": {"html_502": 1.0}})
    with pytest.raises(AmbiguousVoidError):
        app.client.void_credit(nobody)
    sandbox.faults = FaultPlan()
    app.lookup_button.click()
    [row] = table(app.lookup_result.value)
    assert (row["Looked up"], row["Now"], row["Credit id"], row["Status"]) == (
        "void", "unknown_outcome", nobody, "not found")
    sandbox.advance(app.client.tss_delay)
    app.lookup_button.click()
    [row] = table(app.lookup_result.value)
    assert (row["Now"], row["Credit id"], row["Status"]) == ("not_voided", nobody, "not found")
    assert row["Note"] == f"void of credit {nobody} not done: it is still not found"
    assert app.lookup_button.layout.display == "none"


# --- an app opened on a ledger whose credits have no status --------------------------------
# What the Status column shows for each of the sandbox's amount triggers, from its documented behaviour
# (reconkit.sandbox.state.TRIGGERS): a credit created and answered, declined, refused with a 400, refused
# with CyberSource's own 502 (no credit), and created with its answer lost (the ambiguous trigger).
NO_STATUS_ROWS = [("10.00", "created", "PENDING"), ("2005.00", "declined", "DECLINED"),
                  ("3000.00", "rejected", "rejected"), ("5020.00", "rejected", "rejected"),
                  ("5040.00", "unknown_outcome", "Outcome unknown")]


@pytest.mark.parametrize(("amount", "outcome", "status"), NO_STATUS_ROWS, ids=[r[0] for r in NO_STATUS_ROWS])
def test_an_app_opened_on_the_ledger_shows_every_credit_whatever_its_status(sandbox, tmp_path, amount, outcome,
                                                                             status):
    ledger = str(tmp_path / "ledger.sqlite3")
    first = IssueCreditApp(sandbox.client(ledger=ledger))
    reference = first.reference.value
    issue(first, amount)
    assert "TypeError" not in first.error.value and first.issued.value.startswith("<style")
    again = IssueCreditApp(sandbox.client(ledger=ledger))  # a new kernel's app on the same ledger
    assert again.error.value == ""
    held = {c["reference_code"]: c for c in sandbox.credits()}
    [row] = table(again.issued.value)
    assert (row["Reference"], row["Outcome"], row["Status"]) == (reference, outcome, status)
    assert row["Credit id"] == (held[reference]["id"] if reference in held else "")
    assert (again.lookup_button.layout.display == "flex") == (outcome == "unknown_outcome")
    labels = [label for label, _value in again.credit_picker.options]
    assert labels == ([f"{held[reference]['id']} · {amount} USD · {status}"] if reference in held else [])


def test_an_unknown_outcome_is_shown_in_a_new_app_and_looked_up_against_the_sandbox(sandbox, tmp_path):
    ledger = str(tmp_path / "ledger.sqlite3")
    first = IssueCreditApp(sandbox.client(ledger=ledger))
    issue(first, "12.00")
    reference = first.reference.value
    issue(first, "5040.00")  # the sandbox creates the credit and answers 502 with its id: unknown
    assert "Outcome unknown" in first.result.value and first.error.value == ""

    app = IssueCreditApp(sandbox.client(ledger=ledger))
    truth = {c["reference_code"]: c for c in sandbox.credits()}
    rows = {r["Reference"]: r for r in table(app.issued.value)}
    assert {r["Credit id"] for r in rows.values()} == {c["id"] for c in truth.values()}
    assert (rows[reference]["Status"], rows[reference]["Outcome"]) == ("Outcome unknown", "unknown_outcome")
    assert app.lookup_button.layout.display == "flex" and app.lookup_button.description == "Look it up"
    assert app.error.value == ""

    app.lookup_button.click()
    [found] = table(app.lookup_result.value)
    assert (found["Reference"], found["Now"], found["Credit id"], found["Status"]) == (
        reference, "created", truth[reference]["id"], truth[reference]["status"])
    assert truth[reference]["id"] in app.result.value and app.error.value == ""
    rows = {r["Reference"]: r for r in table(app.issued.value)}
    assert (rows[reference]["Status"], rows[reference]["Outcome"]) == (truth[reference]["status"], "created")
    assert app.lookup_button.layout.display == "none"
    assert sandbox.count("POST", "create") == 2  # looked up, never sent again


def test_a_batch_with_an_unknown_outcome_draws_its_table(app, sandbox):
    data = b"amount,currency,instrument\n7.00,USD,4111111111111111\n5040.00,USD,5555555555554444\n"
    app.batch_upload.value = upload("batch.csv", data)
    app.batch_button.click()
    app.batch_confirm.click()
    assert app.error.value == ""
    truth = {c["reference_code"]: c for c in sandbox.credits()}
    digest = hashlib.sha256(data).hexdigest()[:20]
    rows = {r["Line"]: r for r in table(app.batch_result.value)}
    assert {line: (r["Credit id"], r["Status"], r["Outcome"]) for line, r in rows.items()} == {
        "2": (truth[f"batch-{digest}-2"]["id"], "PENDING", "created"),
        "3": (truth[f"batch-{digest}-3"]["id"], "Outcome unknown", "unknown_outcome")}
    assert "Look it up" in rows["3"]["This run"] and app.lookup_button.layout.display == "flex"
    app.lookup_button.click()
    rows = {r["Line"]: r for r in table(app.batch_result.value)}
    assert (rows["3"]["Status"], rows["3"]["Outcome"]) == (truth[f"batch-{digest}-3"]["status"], "created")
