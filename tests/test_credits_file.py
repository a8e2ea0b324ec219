"""Credits an analyst brings as a file (read_credits): each format read back from credits issued on the
sandbox over real HTTP, reconciled against the sandbox's settlement and compared with the generator's
ground truth and the sandbox's own records (never with reconkit's own output); every bad input named
by file, line and column."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconkit import CreditsFileError, inert, read_credits, read_settlement, reconcile
from reconkit.cli import main
from reconkit.credits_file import CreditsFile
from reconkit.investigation import Investigation
from reconkit.sandbox import Sandbox
from reconkit.sandbox.scenario import populate
from reconkit.sandbox.settlement import missing_outcome
from reconkit.sandbox.state import SandboxState

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
KINDS = {"missing": 2, "amount": 3, "currency": 2, "duplicate": 2, "unexpected": 2, "voided_settled": 1,
         "next_day": 1, "debit_shared_id": 2, "whitespace": 2, "recon_id_missing": 2}
DIGITS = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3}
"""ISO 4217 minor units, written out here (not imported from reconkit)."""
HEADER = "Merchant ID,Date and Time,Request ID,Merchant Reference Number,Amount,Currency,Applications\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("credits_file")
    with Sandbox(start=START, seed=31) as sb:
        client = sb.client(ledger=str(folder / "ledger.sqlite3"))
        scenario = populate(sb, client, 60, seed=31, days=3, void_rate=0.08)
        sb.advance(timedelta(hours=6))
        fetched = client.fetch_credits(scenario.credit_ids, progress=False)
        bundle = sb.settlement(format="pbdr_csv", discrepancies=KINDS, seed=31, out_dir=folder / "settlement")
        export = sb.transaction_search_export(folder / "search_export.csv")
        records = {c["id"]: c for c in sb.state.credits()}  # the sandbox's own book of what it issued
        yield {"folder": folder, "fetched": fetched, "bundle": bundle, "export": export, "records": records,
               "client": client}


def _reconciled(world, credits: pd.DataFrame):
    bundle = world["bundle"]
    return reconcile(credits, read_settlement(bundle.files[0]), as_of=bundle.as_of, grace_days=bundle.grace_days)


def _outcomes(result) -> dict[str, str]:
    return dict(zip(result.credits["credit_id"], result.credits["outcome"], strict=True))


def _truth(world) -> dict[str, str]:
    truth = world["bundle"].credits_truth
    return dict(zip(truth["credit_id"], truth["outcome"], strict=True))


def _search_truth(world) -> dict[str, str]:
    """The generator's truth for credits that carry no reconciliation id: a settlement row missing only the
    reconciliation id is their match, and a debit row sharing only the reconciliation id is not theirs (the
    credit is then missing, pending or overdue by its age)."""
    bundle, records = world["bundle"], world["records"]
    expected = {}
    for credit_id, outcome, kind in bundle.credits_truth[["credit_id", "outcome", "kind"]].itertuples(index=False):
        if kind == "recon_id_missing":
            outcome = "MATCHED"
        elif kind == "debit_shared_id":
            outcome = missing_outcome(datetime.fromisoformat(records[credit_id]["created_at"]), bundle.as_of,
                                      bundle.grace_days)
        expected[credit_id] = outcome
    return expected


def _amounts_are_the_sandboxes(world, frame: pd.DataFrame) -> None:
    records = world["records"]
    for credit_id, amount, currency in frame[["credit_id", "amount", "currency"]].itertuples(index=False):
        assert isinstance(amount, Decimal)
        assert (amount, currency) == (Decimal(records[credit_id]["amount"]), records[credit_id]["currency"])


# --- each format, round-tripped -----------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["array", "json lines", "one object"])
def test_saved_credit_json_reads_back_as_the_fetched_frame(world, shape):
    raws = [c.raw for c in world["fetched"].credits]
    if shape == "array":
        data = json.dumps(raws, indent=2).encode()
    elif shape == "json lines":
        data = "\n".join(json.dumps(r) for r in raws).encode()
    else:
        raws = raws[:1]
        data = json.dumps(raws[0]).encode()
    frame = read_credits(data, name="credits.json")
    pd.testing.assert_frame_equal(frame, world["fetched"].to_frame().head(len(raws)))
    assert frame["credit_id"].tolist() == [r["id"] for r in raws]
    _amounts_are_the_sandboxes(world, frame)
    if shape != "one object":
        assert _outcomes(_reconciled(world, frame)) == _truth(world)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_saved_credits_frame_reconciles_as_the_fetched_credits(world, suffix, tmp_path):
    fetched = world["fetched"].to_frame()
    saved = fetched.drop(columns=[c for c in fetched.columns if "." in c])  # as the demo writes credits.csv
    path = tmp_path / f"credits{suffix}"
    if suffix == ".csv":
        inert.frame(saved).to_csv(path, index=False)
    else:
        saved.to_parquet(path)
    frame = read_credits(path)
    assert frame["credit_id"].tolist() == fetched["credit_id"].tolist()
    assert frame["reconciliation_id"].tolist() == fetched["reconciliation_id"].tolist()
    _amounts_are_the_sandboxes(world, frame)
    assert _outcomes(_reconciled(world, frame)) == _truth(world)


def test_a_transaction_search_export_matches_by_request_id(world):
    frame = read_credits(world["export"])
    records = world["records"]
    assert frame["credit_id"].tolist() == list(records)  # every credit issued, in the order issued
    assert frame["reconciliation_id"].isna().all()
    _amounts_are_the_sandboxes(world, frame)
    result = _reconciled(world, frame)
    assert _outcomes(result) == _search_truth(world)
    # The breaks are those of the fetched credits but for what only a reconciliation id can tell.
    fetched = _reconciled(world, world["fetched"].to_frame())
    kinds = dict(zip(world["bundle"].credits_truth["credit_id"], world["bundle"].credits_truth["kind"], strict=True))
    only_by_recon_id = {c for c, k in kinds.items() if k in ("recon_id_missing", "debit_shared_id")}

    def breaks(res) -> set[tuple]:
        b = res.breaks
        keep = ~b["credit_id"].isin(only_by_recon_id) & b["outcome"].ne("DIRECTION_MISMATCH")
        return set(b.loc[keep, ["credit_id", "outcome", "amount_at_risk", "currency"]].astype(str)
                   .itertuples(index=False))

    assert breaks(result) == breaks(fetched) and breaks(result)


def test_the_shipped_export_reconciles_against_the_sample_settlement(tmp_path):
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    frame = read_credits(SAMPLE / manifest["credits_export"])
    ids = pd.read_csv(SAMPLE / "credit_ids.csv", dtype=str)["credit_id"].tolist()
    assert frame["credit_id"].tolist() == ids
    shutil.copy(SAMPLE / "sandbox.sqlite3", tmp_path / "sandbox.sqlite3")  # read, never touched
    state = SandboxState(db=str(tmp_path / "sandbox.sqlite3"), seed=manifest["seed"])
    try:
        created = {c["id"]: datetime.fromisoformat(c["created_at"]) for c in state.credits()}
    finally:
        state.close()
    as_of = datetime.fromisoformat(manifest["as_of"])
    truth = pd.read_csv(SAMPLE / "pbdr_csv_truth.csv", dtype=str)
    truth = truth[truth["side"] == "credit"]
    expected = {c: ("MATCHED" if k == "recon_id_missing" else
                    missing_outcome(created[c], as_of, manifest["grace_days"]) if k == "debit_shared_id" else o)
                for c, o, k in truth[["credit_id", "outcome", "kind"]].itertuples(index=False)}
    result = reconcile(frame, read_settlement(SAMPLE / "pbdr_csv.csv"), as_of=as_of,
                       grace_days=manifest["grace_days"])
    assert _outcomes(result) == expected


# --- bad input: file, line and column named ----------------------------------------------------------

ROW = "m,Nov 02 2026 06:00:00 AM,{id},ref,{amount},{currency},Credit Card Credit (Accept)\n"


def _row(credit_id: str = "7935992000160476497167", amount: str = "-10.00", currency: str = "USD") -> str:
    return ROW.format(id=credit_id, amount=amount, currency=currency)


BAD = {
    "a bad amount": (HEADER + _row() + _row("0000000000000000000002", amount='"-12,50"'), 3, "Amount",
                     "'-12,50': not a plain decimal amount"),
    "too many decimals": (HEADER + _row(amount="-1.005"), 2, "Amount", "decimal places"),
    "an unknown currency": (HEADER + _row(currency="ZZZ"), 2, "Currency", "ISO 4217"),
    "a duplicate id": (HEADER + _row() + _row(), 3, "Request ID", "line 2 too"),
    "an id a spreadsheet rewrote": (HEADER + _row("7.93599E+21"), 2, "Request ID", "scientific notation"),
    "an id with letters": (HEADER + _row("79359920001604764971AB"), 2, "Request ID", "1-26 digits"),
    "a capture in the export": (HEADER + _row().replace("Credit Card Credit", "Credit Card Settlement"), 2,
                                "Applications", "not a credit"),
    "a bad date": (HEADER + _row().replace("Nov 02 2026", "32/13/2026"), 2, "Date and Time", "not a date"),
    "a missing column": (HEADER.replace(",Currency", "") + "m,Nov 02 2026 06:00:00 AM,1,ref,-1.00,x\n", 1,
                         "Currency", "lacks the column"),
    "a ragged row": (HEADER + "m,Nov 02 2026 06:00:00 AM,1\n", 2, None, "3 cells"),
    "a frame's bad amount": ("credit_id,reconciliation_id,status,amount,currency,submit_time_utc\n"
                             "1,A,PENDING,1.00,USD,2026-11-02T09:00:00Z\n2,B,PENDING,NaN,USD,2026-11-02T09:00:00Z\n",
                             3, "amount", "NaN"),
    "a frame's bad time": ("credit_id,reconciliation_id,status,amount,currency,submit_time_utc\n"
                           "1,A,PENDING,1.00,USD,yesterday\n", 2, "submit_time_utc", "ISO time"),
    "a frame's missing currency": ("credit_id,reconciliation_id,status,amount,currency,submit_time_utc\n"
                                   "1,A,PENDING,1.00,,2026-11-02T09:00:00Z\n", 2, "currency", "no currency"),
    "invalid JSON": ('[\n {"id": "1"},\n {"id": \n', 4, None, "not valid JSON"),
    "a JSON item that is no credit": ('[\n{"id": "1", "creditAmountDetails": {"creditAmount": "1.00", '
                                      '"currency": "USD"}},\n{"status": "SERVER_ERROR"}\n]', 3, "id", "no 'id'"),
    "a JSON credit with a bad amount": ('{"id": "1", "creditAmountDetails": {"creditAmount": "1e3", '
                                        '"currency": "USD"}}', 1, "creditAmountDetails.creditAmount", "1e3"),
    "bytes that are not UTF-8": (HEADER + _row().replace("ref", "r\xe9f"), 2, None, "not UTF-8"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_every_bad_input_names_file_line_and_column(case):
    text, line, column, words = BAD[case]
    data = text.encode("latin-1") if case == "bytes that are not UTF-8" else text.encode()
    with pytest.raises(CreditsFileError) as caught:
        read_credits(data, name="mine.csv")
    error, message = caught.value, str(caught.value)
    assert message.startswith(f"credits file mine.csv, line {line}") and words in message
    assert (error.file, error.line) == ("mine.csv", line)
    if column is not None:
        assert error.column == column and f"column {column}:" in message
    assert "\n" not in message


WRONG = {
    "empty": (b"", "is empty"),
    "blank": (b"  \n\n", "is empty"),
    "a PNG": (b"\x89PNG\r\n\x1a\n" + bytes(64), "is a PNG image"),
    "a PDF": (b"%PDF-1.7\n", "is a PDF document"),
    "a workbook": (b"PK\x03\x04" + bytes(40), "Excel workbook"),
    "a settlement report": ((SAMPLE / "pbdr_csv.csv").read_bytes(), "settlement report (Payment Batch Detail Report)"),
    "a processor file": ((SAMPLE / "processor_csv.csv").read_bytes(), "settlement"),
    "an XML report": ((SAMPLE / "pbdr_xml.xml").read_bytes(), "XML settlement report"),
    "a list of ids": ((SAMPLE / "credit_ids.csv").read_bytes(), "list of credit ids"),
    "the ground truth": ((SAMPLE / "pbdr_csv_truth.csv").read_bytes(), "ground-truth"),
    "something else": (b"name,age\nann,3\n", "its header (name, age)"),
    "a header only": (HEADER.encode(), "has a header but no rows"),
    "purchase refund JSON": (b'{"requestDetails": [], "settlements": []}', "purchase and refund details"),
}


@pytest.mark.parametrize("case", list(WRONG), ids=list(WRONG))
def test_a_file_that_is_no_credits_file_is_refused_saying_what_it_looks_like(case):
    data, words = WRONG[case]
    with pytest.raises(CreditsFileError, match=r"^credits file thing\.bin") as caught:
        read_credits(data, name="thing.bin")
    assert words in str(caught.value)


def test_a_parquet_frame_with_float_amounts_or_numeric_ids_is_refused(tmp_path):
    good = {"credit_id": ["0001"], "reconciliation_id": ["A"], "status": ["PENDING"], "amount": ["1.10"],
            "currency": ["USD"], "submit_time_utc": ["2026-11-02T09:00:00Z"]}
    pq.write_table(pa.table({**good, "amount": [1.1]}), tmp_path / "floats.parquet")
    with pytest.raises(CreditsFileError, match="column amount: holds binary-float amounts"):
        read_credits(tmp_path / "floats.parquet")
    pq.write_table(pa.table({**good, "credit_id": [1]}), tmp_path / "ints.parquet")
    with pytest.raises(CreditsFileError, match="column credit_id: holds int64 ids"):
        read_credits(tmp_path / "ints.parquet")
    pq.write_table(pa.table({**good, "amount": ["x"]}), tmp_path / "bad.parquet")
    with pytest.raises(CreditsFileError, match=r"bad.parquet, line 1, column amount: 'x'"):
        read_credits(tmp_path / "bad.parquet")
    pq.write_table(pa.table(good), tmp_path / "good.parquet")
    frame = read_credits(tmp_path / "good.parquet")
    assert frame["credit_id"].tolist() == ["0001"] and frame["amount"].tolist() == [Decimal("1.10")]


def test_every_failing_row_is_listed_not_only_the_first():
    text = HEADER + _row(amount="-x") + _row("0000000000000000000002", currency="ZZZ") + \
        _row("0000000000000000000003")
    with pytest.raises(CreditsFileError, match=r"\(1 more failing cell") as caught:
        read_credits(text.encode(), name="two.csv")
    cases = caught.value.failure_cases
    assert cases[["source_line", "column"]].values.tolist() == [[2, "Amount"], [3, "Currency"]]
    frame, failures = read_credits(text.encode(), name="two.csv", errors="collect")
    assert frame["credit_id"].tolist() == ["0000000000000000000003"] and len(failures) == 2


# --- invariants --------------------------------------------------------------------------------------

CURRENCY = st.sampled_from(sorted(DIGITS))


@st.composite
def export_rows(draw):
    rows = []
    for index in range(draw(st.integers(1, 12))):
        currency = draw(CURRENCY)
        minor = draw(st.integers(1, 10**12))
        amount = Decimal(minor).scaleb(-DIGITS[currency])
        text = f"-{amount:f}"
        broken = draw(st.sampled_from([None, None, "amount", "currency", "id", "application"]))
        credit_id = draw(st.sampled_from(["0", "00", ""])) + f"{index:04d}" + "7" * 10
        cells = {"id": credit_id, "amount": text, "currency": currency, "app": "Credit Card Credit (Accept)"}
        if broken == "amount":
            cells["amount"] = text + "e0"
        elif broken == "currency":
            cells["currency"] = "XTS1"
        elif broken == "id":
            cells["id"] = credit_id + "x"
        elif broken == "application":
            cells["app"] = "Credit Card Authorization (Accept)"
        rows.append((cells, broken, amount, currency, credit_id))
    return rows


@settings(max_examples=60, deadline=None)
@given(export_rows())
def test_rows_in_are_credits_out_plus_failures_and_money_round_trips_exactly(rows):
    text = HEADER + "".join(f"m,Nov 02 2026 06:00:00 AM,{c['id']},ref,{c['amount']},{c['currency']},\"{c['app']}\"\n"
                            for c, *_ in rows)
    frame, failures = read_credits(text.encode(), name="gen.csv", errors="collect")
    failing_lines = set(failures["source_line"].tolist())
    assert len(frame) + len(failing_lines) == len(rows)
    assert failing_lines == {line for line, (_c, broken, *_r) in enumerate(rows, start=2) if broken}
    good = [(credit_id, amount, currency) for _c, broken, amount, currency, credit_id in rows if not broken]
    assert list(zip(frame["credit_id"], frame["amount"], frame["currency"], strict=True)) == good


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(CURRENCY, st.integers(0, 10**15)), min_size=1, max_size=8))
def test_a_saved_frame_keeps_every_amount_and_leading_zero(values):
    rows = [{"credit_id": f"{i:022d}", "reconciliation_id": f"{i:016d}", "status": "PENDING",
             "amount": f"{Decimal(m).scaleb(-DIGITS[c]):f}", "currency": c, "submit_time_utc": "2026-11-02T09:00:00Z"}
            for i, (c, m) in enumerate(values)]
    data = pd.DataFrame(rows).to_csv(index=False).encode()
    frame = read_credits(data)
    assert frame["credit_id"].tolist() == [r["credit_id"] for r in rows]
    assert frame["reconciliation_id"].tolist() == [r["reconciliation_id"] for r in rows]
    assert [f"{a:f}" for a in frame["amount"]] == [r["amount"] for r in rows]


# --- the digest a run records, the model and the command ----------------------------------------------

def test_the_run_records_the_credits_files_digest(world, tmp_path):
    from reconkit import BreakBook, Ledger

    data = world["export"].read_bytes()
    model = Investigation()
    model.use_credits_file(data, name="search_export.csv")
    model.load([world["bundle"].files[0]])
    model.set_parameters(as_of=world["bundle"].as_of, grace_days=world["bundle"].grace_days)
    result = model.reconcile()
    digest = hashlib.sha256(data).hexdigest()
    assert model.record_inputs()[0] == {"file": "search_export.csv", "bytes": len(data), "sha256": digest,
                                        "role": "credits"}
    assert result.parameters["credits_file"] == f"search_export.csv (SHA-256 {digest})"
    book = BreakBook(Ledger(str(tmp_path / "book.sqlite3")))
    model.record(book, override="test: the export's credits carry no merchant checks")
    assert digest[:12] in book.runs()["sha256"].iloc[-1]
    # Reading other credits clears the result; a refused file leaves no credits behind.
    model.use_credits_file(io.BytesIO(data), name="again.csv")
    assert model.result is None and model.cleared
    with pytest.raises(CreditsFileError):
        model.use_credits_file(b"\x89PNG....", name="photo.png")
    assert model.credits is None and model.credits_file is None


def test_reconcile_command_takes_a_credits_file(world, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bundle = world["bundle"]
    out = tmp_path / "report.html"
    code = main(["reconcile", str(world["export"]), str(bundle.files[0]), "-o", str(out),
                 "--as-of", bundle.as_of.isoformat(), "--grace-days", str(bundle.grace_days)])
    printed = capsys.readouterr().out
    assert code == 0 and out.exists()
    assert f"read {len(world['records'])} credit(s)" in printed and "transaction_search_csv" in printed
    assert hashlib.sha256(world["export"].read_bytes()).hexdigest()[:12] in out.read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + _row(amount='"-1,00"'))
    assert main(["reconcile", str(bad), str(bundle.files[0])]) == 2
    err = capsys.readouterr().err
    assert "bad.csv, line 2, column Amount" in err and len(err.strip().splitlines()) == 1


def test_credits_file_read_digests_the_bytes(world):
    data = world["export"].read_bytes()
    read = CreditsFile.read(world["export"])
    assert (read.size, read.sha256, read.format) == (len(data), hashlib.sha256(data).hexdigest(),
                                                     "transaction_search_csv")
    assert read.rows == len(world["records"]) == len(read.frame)


# --- the app (notebook 02): a credits file beside the ids box -----------------------------------------

def _upload(name: str, data: bytes) -> tuple[dict, ...]:
    return ({"name": name, "type": "text/csv", "size": len(data), "content": memoryview(data),
             "last_modified": START},)


def test_the_app_reads_a_credits_file_and_invalidates_results_built_on_other_credits(world, tmp_path):
    from reconkit.widgets import InvestigateApp

    bundle = world["bundle"]
    app = InvestigateApp(world["client"], data=tmp_path / "data", out_dir=tmp_path / "out")
    data = json.dumps([c.raw for c in world["fetched"].credits]).encode()
    digest = hashlib.sha256(data).hexdigest()
    app.credits_upload.value = _upload("my_credits.json", data)
    assert f"Read <b>{len(world['records'])}</b> credit(s) from <b>my_credits.json</b>" in app.fetch_status.value
    assert digest[:12] in app.fetch_status.value and app.error.value == ""
    app.files_upload.value = _upload(bundle.files[0].name, bundle.files[0].read_bytes())
    app.load_button.click()
    app.as_of.value, app.grace.value = bundle.as_of.isoformat(), bundle.grace_days
    app.reconcile_button.click()
    assert app.error.value == "" and _outcomes(app.result) == _truth(world)
    assert f"from my_credits.json (SHA-256 {digest[:12]})" in app.run_label.value
    # Other credits: the result built on the JSON's credits is gone from the screen, and says why.
    app.credits_upload.value = _upload("search.csv", world["export"].read_bytes())
    assert app.result is None and app.run_label.value == "" and app.cards.value == ""
    assert "other credits were given" in app.stale.value and "transaction-search export" in app.fetch_status.value
    app.reconcile_button.click()
    assert _outcomes(app.result) == _search_truth(world)
    # A file refused: named with line and column beside the upload, and no credits left to reconcile.
    app.credits_upload.value = _upload("bad.csv", (HEADER + _row() + _row("0000000000000000000002", amount="-x"))
                                       .encode())
    shown = app.credits_file_error.value
    assert "credits file bad.csv, line 3, column Amount" in shown and "<td>Amount</td>" in shown
    assert app.model.credits is None and app.result is None
    # Fetching by id replaces a credits file: the upload is cleared, the model's file forgotten.
    app.ids.value = "\n".join(world["records"])
    app.fetch_button.click()
    assert app.credits_upload.value == () and app.model.credits_file is None and app.model.credits is not None
