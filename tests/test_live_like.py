"""The ``live_like`` sandbox profile (no GET on a credit, Transaction Details and search lag
creation) and what the client makes of it: "not indexed yet", kept apart from failures."""

from __future__ import annotations

import pickle
from datetime import timedelta

import pytest

import reconkit
from reconkit import NotFoundError, NotIndexedYetError
from reconkit.sandbox import Sandbox

from .conftest import CARD, START

LAG = timedelta(minutes=2)
UNKNOWN = "9999999999999999999999"


@pytest.fixture
def live():
    with Sandbox(start=START, seed=11, profile="live_like", index_lag=LAG) as sb:
        yield sb


@pytest.fixture
def live_client(live, tmp_path):
    c = live.client(ledger=str(tmp_path / "ledger.sqlite3"), backoff_base=0.01, timeout=(2, 5))
    yield c
    c.close()


def _answers(sandbox, method, path_end):
    return [r for r in sandbox.requests if r[0] == method and r[1].endswith(path_end)]


def test_a_credit_read_at_once_is_not_indexed_yet_with_its_create_state(live, live_client):
    created = live_client.create_credit("12.34", "USD", card=CARD)
    with pytest.raises(NotIndexedYetError) as caught:
        live_client.get_credit(created.id)
    error = caught.value
    assert isinstance(error, NotFoundError) and error.http_status == 404
    assert error.credit_id == created.id and error.outcome == "created"
    assert error.created is not None and error.created.source == "create"
    assert error.created.id == created.id and error.created.status == "PENDING"
    assert error.created.reconciliation_id == created.reconciliation_id
    assert error.created_at is not None and error.created_at.startswith("2026-11-02T09:00:00")
    assert f"credit {created.id} is not indexed yet" in str(error) and "\n" not in str(error)
    # The self link was asked first and refused, as live: no documented GET on a credit.
    assert _answers(live, "GET", f"/pts/v2/credits/{created.id}")
    again = pickle.loads(pickle.dumps(error))
    assert (again.credit_id, again.outcome, again.created.status, str(again)) == (
        error.credit_id, error.outcome, "PENDING", str(error))


def test_after_the_lag_transaction_details_answers(live, live_client):
    created = live_client.create_credit("5.00", "EUR", card=CARD)
    live.advance(LAG - timedelta(seconds=1))
    with pytest.raises(NotIndexedYetError):
        live_client.get_credit(created.id)
    live.advance(seconds=1)
    credit = live_client.get_credit(created.id)
    assert (credit.id, credit.source, str(credit.amount), credit.currency) == (created.id, "tss", "5.00", "EUR")


def test_an_id_the_ledger_does_not_hold_is_plainly_not_found(live_client):
    with pytest.raises(NotFoundError) as caught:
        live_client.get_credit(UNKNOWN)
    assert type(caught.value) is NotFoundError


def test_another_clients_credit_is_not_claimed_as_not_indexed(live, live_client, tmp_path):
    created = live_client.create_credit("1.00", "USD", card=CARD)
    with live.client(ledger=str(tmp_path / "other.sqlite3")) as stranger, pytest.raises(NotFoundError) as caught:
        stranger.get_credit(created.id)
    assert type(caught.value) is NotFoundError  # its ledger never saw the credit: no claim either way


def test_search_indexes_after_the_lag_too(live, live_client):
    created = live_client.create_credit("7.00", "USD", card=CARD, reference_code="LIVE-LIKE-1")
    assert live_client.find_credits_by_reference("LIVE-LIKE-1") == []
    live.advance(LAG)
    assert [c.id for c in live_client.find_credits_by_reference("LIVE-LIKE-1")] == [created.id]


def test_the_seed_profile_keeps_the_self_link(sandbox, client):
    created = client.create_credit("3.00", "USD", card=CARD, reference_code="SEED-1")
    assert client.get_credit(created.id).source == "self_link"
    assert [c.id for c in client.find_credits_by_reference("SEED-1")] == [created.id]  # no search lag


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"profile": "live"}, "profile must be one of seed, live_like"),
    ({"profile": "live_like", "self_link_status": 200}, "self_link_status=200"),
    ({"index_lag": timedelta(minutes=1)}, "index_lag applies to profile='live_like'"),
    ({"profile": "live_like", "index_lag": timedelta(seconds=-1)}, "index_lag must be 0 or more"),
    ({"profile": "live_like", "tss_delay": timedelta(minutes=5)}, "tss_delay applies to profile='seed'"),
])
def test_contradictory_profiles_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        Sandbox(**kwargs)


def _mix(live, client):
    """Two credits indexed, two not yet, an unknown id and a malformed one."""
    old = [client.create_credit(amount, "USD", card=CARD).id for amount in ("1.00", "2.00")]
    live.advance(LAG)
    new = [client.create_credit(amount, "USD", card=CARD).id for amount in ("3.00", "4.00")]
    return old, new, [old[0], new[0], UNKNOWN, "12ab", new[1], old[1]]


def test_fetch_lists_not_indexed_apart_from_failures(live, live_client):
    old, new, ids = _mix(live, live_client)
    result = live_client.fetch_credits(ids, progress=False)
    assert [c.id for c in result.credits] == old
    assert result.not_indexed["id"].tolist() == new
    assert result.not_indexed["outcome"].tolist() == ["created", "created"]
    assert result.not_indexed["status"].tolist() == ["PENDING", "PENDING"]
    assert result.not_indexed["attempts"].tolist() == [1, 1]
    assert result.failed["id"].tolist() == [UNKNOWN, "12ab"]
    assert result.failed["error"].tolist() == ["NotFoundError", "MalformedId"]
    assert result.requested == 6 == len(result.credits) + len(result.not_indexed) + len(result.failed)
    assert "not_indexed=2" in repr(result)
    frame = result.to_frame()
    assert frame["credit_id"].tolist() == old
    shown = result.to_frame(not_indexed=True)
    assert shown["credit_id"].tolist() == [*old, *new]
    assert shown["indexed"].tolist() == [True, True, False, False]
    assert shown["status"].tolist() == ["PENDING", "PENDING", "PENDING", "PENDING"]
    assert [str(a) for a in shown["amount"]] == ["1.00", "2.00", "3.00", "4.00"]


def test_fetch_retries_not_indexed_within_its_budget(live, live_client):
    old, new, ids = _mix(live, live_client)
    before = live.now()
    short = live_client.fetch_credits(ids, progress=False, index_wait=timedelta(minutes=1),
                                      sleep=lambda s: live.advance(seconds=s))
    waited = live.now() - before
    assert timedelta(seconds=30) <= waited <= timedelta(minutes=1)  # asked again, within the budget
    assert short.not_indexed["id"].tolist() == new
    assert (short.not_indexed["attempts"] > 1).all()
    assert len(short.credits) + len(short.not_indexed) + len(short.failed) == short.requested

    enough = live_client.fetch_credits(ids, progress=False, index_wait=timedelta(minutes=5), refresh=True,
                                       sleep=lambda s: live.advance(seconds=s))
    assert [c.id for c in enough.credits] == [old[0], new[0], new[1], old[1]]
    assert enough.not_indexed.empty and enough.failed["id"].tolist() == [UNKNOWN, "12ab"]
    assert live.now() - before < timedelta(minutes=1) + LAG + timedelta(seconds=31)  # stopped once all came


def test_fetch_waits_on_the_wall_clock_against_a_ticking_sandbox(tmp_path):
    with Sandbox(seed=3, profile="live_like", index_lag=timedelta(seconds=1)) as sb, \
            sb.client(ledger=str(tmp_path / "l.sqlite3"), backoff_base=0.01) as client:
        created = client.create_credit("9.99", "USD", card=CARD)
        result = client.fetch_credits([created.id], progress=False, index_wait=timedelta(seconds=10))
    assert [c.id for c in result.credits] == [created.id] and result.not_indexed.empty


def test_a_frozen_clock_and_real_sleep_still_end_on_the_wall_clock(live, live_client):
    created = live_client.create_credit("8.00", "USD", card=CARD)
    result = live_client.fetch_credits([created.id], progress=False, index_wait=timedelta(seconds=1.5))
    # Asked once, then after waiting 1 s, then after the 0.5 s left of the budget: three rounds.
    assert result.not_indexed["id"].tolist() == [created.id] and result.not_indexed["attempts"].tolist() == [3]


def test_the_error_is_public():
    assert reconkit.NotIndexedYetError is NotIndexedYetError
    assert issubclass(NotIndexedYetError, reconkit.ReconkitError)


# --- the apps ---------------------------------------------------------------------------------
def test_the_issue_app_shows_a_fresh_credit_as_not_indexed_yet(live, live_client):
    from reconkit.widgets import IssueCreditApp

    from .test_issue_app import issue

    app = IssueCreditApp(live_client)
    issue(app, amount="21.00")
    created = live.state.credits()[-1]
    assert app.credit_picker.value == created["id"]
    app.fetch_button.click()
    assert app.error.value == ""
    assert "reconkit-not-indexed" in app.result.value and "Not indexed yet" in app.result.value
    assert created["id"] in app.result.value and "PENDING" in app.result.value
    assert app.last_credit.source == "create" and app.last_credit.id == created["id"]
    live.advance(LAG)
    app.fetch_button.click()
    assert "not-indexed" not in app.result.value and "read from tss" in app.result.value
    assert app.last_credit.source == "tss"


def test_the_investigate_app_lists_not_indexed_credits_apart(live, live_client, tmp_path):
    from reconkit.widgets import InvestigateApp

    from .test_issue_app import table

    old, new, ids = _mix(live, live_client)
    app = InvestigateApp(live_client, out_dir=tmp_path / "out", data=tmp_path / "data")
    app.ids.value = "\n".join(ids)
    app.on_fetch(progress=False)
    assert app.error.value == ""
    assert "Fetched <b>2</b> credit(s)" in app.fetch_status.value
    assert "<b>2</b> not indexed yet" in app.fetch_status.value and "<b>2</b> failed" in app.fetch_status.value
    waiting_html, failed_html = app.failures.value.split("Credits that could not be fetched")
    assert [row["Credit id"] for row in table(waiting_html)] == new
    assert {row["Status when created"] for row in table(waiting_html)} == {"PENDING"}
    assert [row["Credit id"] for row in table(failed_html)] == [UNKNOWN, "12ab"]
    assert app.model.credits["credit_id"].tolist() == old  # reconciled: the indexed ones only
    assert (app.model.not_indexed, app.model.unfetched) == (2, 4)
    live.advance(LAG)
    app.on_fetch(progress=False)
    assert "not indexed yet" not in app.fetch_status.value and app.model.not_indexed == 0
    assert app.model.credits["credit_id"].tolist() == [old[0], new[0], new[1], old[1]]


def test_left_out_holds_failures_then_not_indexed_in_failed_columns(live, live_client):
    _old, new, ids = _mix(live, live_client)
    result = live_client.fetch_credits(ids, progress=False)
    left = result.left_out()
    assert left["id"].tolist() == [UNKNOWN, "12ab", *new]
    assert left["error"].tolist() == ["NotFoundError", "MalformedId", "NotIndexedYetError", "NotIndexedYetError"]
    assert left["http_status"].tolist()[2:] == [404, 404]
    assert list(left.columns) == list(result.failed.columns) and len(left) + len(result.credits) == result.requested


def test_the_reconcile_command_counts_not_indexed_credits_as_left_out(tmp_path, monkeypatch, capsys):
    import pandas as pd

    from reconkit.cli import main
    from reconkit.session import connect

    with Sandbox(start=START, seed=5, profile="live_like", index_lag=LAG) as sb:
        creds = sb.credentials
        monkeypatch.setenv("RECONKIT_DATA", str(tmp_path / "data"))
        for name, value in (("ENVIRONMENT", sb.url), ("MERCHANT_ID", creds.merchant_id),
                            ("KEY_ID", creds.key_id), ("SECRET_KEY", creds.secret_key)):
            monkeypatch.setenv(f"CYBERSOURCE_{name}", value)
        monkeypatch.chdir(tmp_path)
        with connect() as client:  # the ledger the command uses: data/reconkit.sqlite3
            old = [client.create_credit(a, "USD", card=CARD).id for a in ("1.00", "2.00")]
            sb.advance(hours=24)
            bundle = sb.settlement(format="pbdr_csv", out_dir=tmp_path / "files")
            new = [client.create_credit(a, "USD", card=CARD).id for a in ("3.00", "4.00")]
        pd.DataFrame({"credit_id": old + new}).to_csv(tmp_path / "ids.csv", index=False)
        settlement = str(bundle.files[0])
        assert main(["reconcile", "ids.csv", settlement, "-o", "r.html"]) == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert "2 of 4 credit id(s) could not be fetched, 2 of them not indexed yet" in line
        listed = pd.read_csv(tmp_path / "r_unfetched.csv", dtype=str)
        assert listed["id"].tolist() == new and set(listed["error"]) == {"NotIndexedYetError"}
        assert main(["reconcile", "ids.csv", settlement, "-o", "r.html", "--allow-unfetched"]) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert ("<th>Credit ids not fetched</th><td>2 (left out of this report), 2 of them not indexed yet by "
            "Transaction Details</td>") in page
