"""``reconkit breaks ...`` through :func:`reconkit.cli.main`, on files written here."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from reconkit.cli import main

HEADER = "batch_id,merchant_id,batch_date,request_id,merchant_ref_number,trans_ref_no,payment_method,currency," \
         "amount,transaction_type"


def _settlement(path, rows):
    lines = ["Payment Batch Detail Report,1.0,2026-11-03 to 2026-11-04,,,,,,,", HEADER]
    lines += [f"26110{n}0001,m1,{day},{qid},ref-{qid},{rid},Visa,USD,-{amount},ics_credit"
              for n, (rid, qid, amount, day) in enumerate(rows, start=1)]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return str(path)


@pytest.fixture
def files(tmp_path):
    credits = tmp_path / "credits.csv"
    pd.DataFrame({"credit_id": ["701", "702", "703"], "reconciliation_id": ["r1", "r2", "r3"],
                  "status": ["PENDING"] * 3,
                  "submit_time_utc": ["2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z", "2026-11-03T09:00:00Z"],
                  "amount": ["10.00", "20.00", "30.00"], "currency": ["USD"] * 3}).to_csv(credits, index=False)
    day1 = _settlement(tmp_path / "day1.csv", [("r1", "701", "10.00", "2026-11-03"), ("r2", "702", "18.75", "2026-11-03")])
    day2 = _settlement(tmp_path / "day2.csv", [("r3", "703", "30.00", "2026-11-04")])
    return str(credits), day1, day2, str(tmp_path / "ledger.sqlite3")


def _breaks(ledger, *args, analyst="ann"):
    return main(["breaks", "--ledger", ledger, "--as", analyst, *args])


def test_a_day_of_break_work_on_the_command_line(files, capsys, tmp_path):
    credits, day1, day2, ledger = files
    assert _breaks(ledger, "record", credits, day1, "--as-of", "2026-11-03T18:00:00Z") == 0
    out = capsys.readouterr().out
    assert "recorded run 1 (2 open breaks)" in out

    assert _breaks(ledger, "list") == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:7] == ["key", "status", "owner", "outcome", "amount_at_risk", "currency", "days_open"]
    # 702 settled 18.75 of 20.00: 1.25 at risk; 703 is missing and within the 3-day grace period
    assert listing[1].split()[:10] == ["credit:703", "open", "-", "MISSING_PENDING", "30.00", "USD", "0", "0–2", "0",
                                       "timing"]
    assert listing[2].split()[:10] == ["credit:702", "open", "-", "AMOUNT_MISMATCH", "1.25", "USD", "0", "0–2", "1",
                                       "break"]
    assert listing[-1] == "2 break(s) · analyst ann"

    assert _breaks(ledger, "assign", "702", "ann") == 0
    assert capsys.readouterr().out.strip() == "credit:702: investigating, owner ann (version 3)"
    assert _breaks(ledger, "note", "702", "processor short-paid") == 0
    assert _breaks(ledger, "list", "--mine") == 0
    assert "credit:702" in capsys.readouterr().out
    assert _breaks(ledger, "resolve", "702", "--reason", "BOGUS") == 2
    assert "reason 'BOGUS' is not a reason code; use one of SETTLED," in capsys.readouterr().err
    assert _breaks(ledger, "resolve", "702", "--reason", "PROCESSOR_CORRECTED", "--note", "re-sent") == 0
    assert _breaks(ledger, "sign-off", "702") == 2
    assert "ann resolved break credit:702 and cannot also sign it off" in capsys.readouterr().err
    assert _breaks(ledger, "sign-off", "702", analyst="bob") == 0
    assert capsys.readouterr().out.strip().endswith(
        "credit:702: resolved, owner ann, reason PROCESSOR_CORRECTED, signed off by bob (version 6)")
    assert _breaks(ledger, "note", "702", "late", "--expect", "5") == 2
    assert "changed since version 5 (now 6, last by bob)" in capsys.readouterr().err

    assert _breaks(ledger, "record", credits, day1, day2, "--as-of", "2026-11-04T18:00:00Z") == 0
    out = capsys.readouterr().out
    assert "recorded run 2 (0 open breaks)" in out
    assert "run 1 -> run 2: 0 new, 1 cleared, 0 still open (0 of them changed), 0 not seen" in out

    assert _breaks(ledger, "diff") == 0
    diff = capsys.readouterr().out.splitlines()
    assert diff[2].split()[:4] == ["credit:703", "cleared", "MISSING_PENDING", "MATCHED"]
    assert "SETTLED" in diff[2].split()

    assert _breaks(ledger, "list", "--all") == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert rows["credit:703"][1] == "timing_difference" and rows["credit:702"][-1] == "bob"

    assert _breaks(ledger, "show", "702") == 0
    shown = capsys.readouterr().out
    assert "ann: processor short-paid" in shown and "ann: re-sent" in shown
    assert [line.split(None, 3)[2:] for line in shown.split("events:")[1].strip().splitlines()] == [
        ["reconkit", "opened (run 1)"], ["ann", "assigned"], ["ann", "noted"], ["ann", "resolved"],
        ["bob", "signed_off"]]

    assert _breaks(ledger, "runs") == 0
    runs = capsys.readouterr().out
    assert "day1.csv, day2.csv" in runs

    out_file = tmp_path / "audit.csv"
    assert _breaks(ledger, "audit", str(out_file)) == 0
    audit = pd.read_csv(out_file, dtype=str)
    assert audit["who"].tolist() == ["reconkit", "reconkit", "ann", "ann", "ann", "bob", "reconkit"]
    assert audit["event"].tolist()[-1] == "cleared"


def test_the_book_says_what_is_missing(files, capsys):
    from reconkit.breaks import BreakBook

    *_, ledger = files
    for action in (["diff"], ["aging"], ["list"]):  # only record starts a ledger: a typo creates nothing
        assert _breaks(ledger, *action) == 2
        assert "no such ledger (only reconkit breaks record starts one)" in capsys.readouterr().err
    assert not os.path.exists(ledger)
    BreakBook(ledger).close()  # an empty book
    assert _breaks(ledger, "diff") == 2
    assert "no run recorded yet" in capsys.readouterr().err
    assert _breaks(ledger, "show", "nope") == 2
    assert "no break 'nope' in the book" in capsys.readouterr().err
    assert _breaks(ledger, "aging") == 0
    assert capsys.readouterr().out.strip() == "no open breaks"


# --- `breaks record` runs the investigation `reconcile` runs (and the app) ------------------------

SAMPLE = Path(__file__).parents[1] / "data" / "sample"


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """A copy of the shipped ``data/sample``, no credentials, the working directory beside it: the
    command and the app reach the embedded sandbox over loopback HTTP."""
    import reconkit.session as session

    shutil.copytree(SAMPLE, tmp_path / "data" / "sample")
    for name in [n for n in os.environ if n.startswith("CYBERSOURCE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RECONKIT_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(session, "_sandbox", None)
    try:
        yield tmp_path
    finally:
        if session._sandbox is not None:
            session._sandbox.stop()
        monkeypatch.setattr(session, "_sandbox", None)


def _sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_record_fetches_a_csv_of_ids_as_reconcile_does(embedded, capsys):
    # It used to read the ids file as a saved credits frame: KeyError: 'amount'.
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    ledger = str(embedded / "book.sqlite3")
    assert _breaks(ledger, "record", "data/sample/credit_ids.csv", "data/sample/pbdr_csv.csv") == 0
    out = capsys.readouterr().out
    ids = pd.read_csv(SAMPLE / "credit_ids.csv", dtype=str)["credit_id"]
    assert f"fetching {len(ids)} credit(s) from SANDBOX" in out
    assert out.startswith(f"AS OF {manifest['as_of']}")  # the samples' as-of, as reconcile takes it
    from reconkit.breaks import BreakBook

    truth = pd.read_csv(SAMPLE / "pbdr_csv_truth.csv", dtype=str)
    with BreakBook(ledger) as book:
        run = book.runs().iloc[-1]
        assert (run["files"], run["sha256"]) == ("pbdr_csv.csv", _sha12(SAMPLE / "pbdr_csv.csv"))
        open_breaks = book.open()
    credit_breaks = open_breaks.dropna(subset=["credit_id"])
    credit_truth = truth[(truth["side"] == "credit") & ~truth["outcome"].isin(["MATCHED", "NO_SETTLEMENT_EXPECTED"])]
    assert sorted(zip(credit_breaks["credit_id"], credit_breaks["outcome"], strict=True)) == sorted(
        zip(credit_truth["credit_id"], credit_truth["outcome"], strict=True))
    assert f"recorded run 1 ({len(open_breaks)} open breaks)" in out


def test_the_command_and_the_app_give_the_same_result_and_record_the_same_digests(embedded, capsys):
    from reconkit.breaks import BreakBook
    from reconkit.widgets import InvestigateApp

    ledger = str(embedded / "book.sqlite3")
    assert _breaks(ledger, "record", "data/sample/credit_ids.csv", "data/sample/pbdr_csv.csv") == 0
    capsys.readouterr()
    app = InvestigateApp(out_dir=embedded / "out")
    app.load_sample("pbdr_csv", progress=False)
    assert app.error.value == "" and app.result is not None and not app.model.stale
    with BreakBook(ledger) as book:
        by_command, command_run = book.table(), book.runs().iloc[-1]
    by_app, app_run = app.breaks_panel.book.table(), app.breaks_panel.book.runs().iloc[-1]
    columns = ["key", "outcome", "amount_at_risk", "currency", "status"]
    assert by_command[columns].sort_values("key").reset_index(drop=True).equals(
        by_app[columns].sort_values("key").reset_index(drop=True))
    assert len(by_app) > 0
    for name in ("files", "sha256", "credits", "settlement_rows", "breaks"):
        assert command_run[name] == app_run[name], name
    assert app_run["sha256"] == _sha12(SAMPLE / "pbdr_csv.csv")
    assert app.model.record_inputs() == [{"file": str(embedded / "data" / "sample" / "pbdr_csv.csv"),
                                          "bytes": (SAMPLE / "pbdr_csv.csv").stat().st_size,
                                          "sha256": hashlib.sha256((SAMPLE / "pbdr_csv.csv").read_bytes()).hexdigest()}]


def test_a_run_failing_intake_is_refused_then_recorded_with_override_and_withdrawn(files, capsys, tmp_path):
    """Another merchant's file a month later: the preview names the failed checks, nothing is recorded
    without --override, the run recorded with one is withdrawn, and the book verifies throughout."""
    credits, day1, _day2, ledger = files
    frame = pd.read_csv(credits, dtype=str).assign(merchant_id="m1")
    frame.to_csv(credits, index=False)
    assert _breaks(ledger, "record", credits, day1, "--as-of", "2026-11-03T18:00:00Z") == 0
    capsys.readouterr()
    wrong = tmp_path / "other.csv"
    wrong.write_text(Path(day1).read_text().replace(",m1,", ",m9,").replace("2026-11-03,c", "2026-12-09,x"))
    assert _breaks(ledger, "record", credits, str(wrong), "--as-of", "2026-11-03T18:00:00Z", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "INTAKE CHECK FAILED (merchant)" in out and "m9" in out and "not recorded (--dry-run)" in out
    assert _breaks(ledger, "record", credits, str(wrong), "--as-of", "2026-11-03T18:00:00Z") == 2
    err = capsys.readouterr().err
    assert "not recorded" in err and "merchant" in err and "--override" in err
    assert _breaks(ledger, "runs") == 0
    assert capsys.readouterr().out.count("\n") == 2  # the header and run 1
    assert _breaks(ledger, "record", credits, str(wrong), "--as-of", "2026-11-03T18:00:00Z",
                   "--override", "the processor's test file") == 0
    assert "recorded anyway because: the processor's test file" in capsys.readouterr().out
    assert _breaks(ledger, "withdraw", "2", "--reason", "wrong merchant") == 0
    assert "withdrew run 2" in capsys.readouterr().out
    assert _breaks(ledger, "verify") == 0
    assert "the book verifies" in capsys.readouterr().out
    assert _breaks(ledger, "list") == 0
    listing = capsys.readouterr().out
    assert "credit:702" in listing and "credit:703" in listing and listing.strip().endswith("2 break(s) · analyst ann")
