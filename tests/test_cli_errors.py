"""Every refusal of the ``reconkit`` command: one line on stderr naming the thing at fault, exit status 2,
and not a byte written (issue 23, "The command line").

Each row of :data:`CASES` runs :func:`reconkit.cli.main` in a folder shared by all rows (the samples, a
PNG, a ledger, a sandbox's database, ...), whose every file and folder is compared before and after.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import struct
import zlib
from pathlib import Path

import pandas as pd
import pytest

from reconkit.cli import main

ROOT = Path(__file__).parents[1]
SAMPLE = ROOT / "data" / "sample"
S = "data/sample/"
IDS = S + "credit_ids.csv"
PBDR = S + "pbdr_csv.csv"
SANDBOX_DB = S + "sandbox.sqlite3"


def _png() -> bytes:
    """A real 1x1 PNG, as ``out/figures.png`` is one."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00\xff")) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The shared folder: the samples, and one file of every wrong kind the cases give."""
    from reconkit.breaks import BreakBook
    from reconkit.ledger import Ledger
    from reconkit.sandbox.state import SandboxState

    root = tmp_path_factory.mktemp("cli_errors")
    shutil.copytree(SAMPLE, root / "data" / "sample")
    (root / "out").mkdir()
    (root / "out" / "figures.png").write_bytes(_png())
    (root / "notes.txt").write_text("not a folder\n")
    (root / "folder.html").mkdir()  # a folder where a file is to be written
    latin = (SAMPLE / "pbdr_csv.csv").read_bytes().replace(b"Visa", b"Vis\xe9", 1)  # é in Latin-1
    (root / "latin1.csv").write_bytes(latin)
    empty = SandboxState(str(root / "empty_sandbox.sqlite3"))  # a sandbox's database that never held a credit
    empty.close()
    Ledger(str(root / "plain_ledger.sqlite3")).close()  # a ledger no run was ever recorded into
    with BreakBook(str(root / "book.sqlite3"), analyst="ann"):  # a ledger with a (still empty) break book
        pass
    import sqlite3

    other = sqlite3.connect(root / "other_app.sqlite3")
    other.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    other.commit()
    other.close()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    yield root, busy.getsockname()[1]
    busy.close()


def _tree(root: Path) -> dict[str, str]:
    """Every file's SHA-256 and every folder under ``root``: what "nothing written" compares."""
    found = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        found[name] = "folder" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


LEDGER_ACTIONS = [["list"], ["show", "credit:1"], ["runs"], ["aging"], ["diff"], ["verify"], ["audit", "a.csv"],
                  ["assign", "credit:1", "ann"], ["note", "credit:1", "hello"],
                  ["resolve", "credit:1", "--reason", "OTHER", "--note", "x"], ["sign-off", "credit:1"],
                  ["reopen", "credit:1", "why"], ["withdraw", "1", "--reason", "wrong"]]

# name: (argv, environment, what the line must say). "{busy}" is a port something listens on already.
CASES: dict[str, tuple[list[str], dict[str, str], str]] = {
    # breaks record takes what reconcile takes, refused as reconcile refuses it
    "record: as-of a day that does not exist": (
        ["breaks", "--ledger", "new.sqlite3", "record", IDS, PBDR, "--as-of", "2026-02-31"], {},
        "argument --as-of: “2026-02-31” is not a date"),
    "record: a picture as the credits": (
        ["breaks", "--ledger", "new.sqlite3", "record", "out/figures.png", PBDR], {},
        "credits file out/figures.png: is not a CSV"),
    "record: a picture as settlement": (
        ["breaks", "--ledger", "new.sqlite3", "record", IDS, "out/figures.png"], {},
        "file out/figures.png, line 1: binary content (a PNG image): not a settlement report"),
    "record: Latin-1 settlement names --encoding": (
        ["breaks", "--ledger", "new.sqlite3", "record", IDS, "latin1.csv"], {},
        "if the file is Latin-1 (Windows-1252), pass --encoding latin-1"),
    "record: a sandbox database as --ledger": (
        ["breaks", "--ledger", SANDBOX_DB, "record", IDS, PBDR], {},
        f"argument --ledger: {SANDBOX_DB}: is a reconkit sandbox database, not a reconkit ledger"),
    "record: unknown --encoding": (
        ["breaks", "--ledger", "new.sqlite3", "record", IDS, PBDR, "--encoding", "klingon"], {},
        "argument --encoding: 'klingon' is not a text encoding"),
    # reconcile
    "reconcile: a picture as settlement": (
        ["reconcile", IDS, "out/figures.png"], {}, "file out/figures.png, line 1: binary content (a PNG image)"),
    "reconcile: a picture as settlement, with --encoding": (
        ["reconcile", IDS, "out/figures.png", "--encoding", "latin-1"], {}, "binary content (a PNG image)"),
    "reconcile: Latin-1 settlement names --encoding": (
        ["reconcile", IDS, "latin1.csv"], {}, "byte 0xe9 at offset"),
    "reconcile: a bytes codec as --encoding": (
        ["reconcile", IDS, PBDR, "--encoding", "hex"], {}, "argument --encoding: 'hex' is not a text encoding"),
    "reconcile: the report is a folder": (
        ["reconcile", IDS, PBDR, "-o", "folder.html"], {}, "-o/--output folder.html: is a folder, not a file"),
    # databases of the wrong kind
    "sandbox: a picture as --db": (
        ["sandbox", "--db", "out/figures.png"], {},
        "argument --db: out/figures.png: is not an SQLite database, not a reconkit sandbox database"),
    "sandbox: the ledger as --db": (
        ["sandbox", "--db", "book.sqlite3"], {},
        "argument --db: book.sqlite3: is a reconkit ledger, not a reconkit sandbox database"),
    "sandbox: a folder as --db": (["sandbox", "--db", "out"], {}, "argument --db: out: is a folder"),
    "settlement: a picture as --db": (
        ["sandbox", "settlement", "--db", "out/figures.png"], {},
        "argument --db: out/figures.png: is not an SQLite database, not a reconkit sandbox database"),
    "settlement: the ledger as --db": (
        ["sandbox", "settlement", "--db", "plain_ledger.sqlite3"], {},
        "argument --db: plain_ledger.sqlite3: is a reconkit ledger, not a reconkit sandbox database"),
    "settlement: another application's database": (
        ["sandbox", "settlement", "--db", "other_app.sqlite3"], {},
        "other_app.sqlite3: is an SQLite database of another application (tables photos)"),
    "breaks: a picture as --ledger": (
        ["breaks", "--ledger", "out/figures.png", "list"], {},
        "argument --ledger: out/figures.png: is not an SQLite database, not a reconkit ledger"),
    "breaks: a sandbox database as --ledger": (
        ["breaks", "--ledger", SANDBOX_DB, "list"], {}, "is a reconkit sandbox database, not a reconkit ledger"),
    "breaks: another application's database": (
        ["breaks", "--ledger", "other_app.sqlite3", "runs"], {},
        "other_app.sqlite3: is an SQLite database of another application (tables photos), not a reconkit ledger"),
    "breaks: a picture as RECONKIT_LEDGER": (
        ["breaks", "list"], {"RECONKIT_LEDGER": "out/figures.png"},
        "RECONKIT_LEDGER out/figures.png: is not an SQLite database, not a reconkit ledger"),
    "breaks: a ledger without a break book": (
        ["breaks", "--ledger", "plain_ledger.sqlite3", "list"], {},
        "--ledger plain_ledger.sqlite3: holds no break book yet (reconkit breaks record starts one)"),
    "breaks audit: not .csv or .xlsx": (
        ["breaks", "--ledger", "book.sqlite3", "audit", "audit.txt"], {},
        "audit audit.txt: the file name must end in .csv or .xlsx"),
    "breaks audit: over the ledger itself": (
        ["breaks", "--ledger", "book.sqlite3", "audit", "book.sqlite3"], {},
        "audit book.sqlite3: the file name must end in .csv or .xlsx"),
    # numbers and ports
    "sandbox: port out of range": (["sandbox", "--port", "99999"], {}, "argument --port: '99999' is not a port"),
    "sandbox: negative port": (["sandbox", "--port", "-1"], {}, "argument --port: '-1' is not a port"),
    "sandbox: port in use": (["sandbox", "--port", "{busy}"], {}, "--port {busy} on --host 127.0.0.1: cannot listen"),
    "sandbox: negative latency": (["sandbox", "--latency-ms", "-5"], {},
                                  "argument --latency-ms: '-5' is not a number, 0 or more"),
    "sandbox: jitter not a number": (["sandbox", "--jitter-ms", "nan"], {},
                                     "argument --jitter-ms: 'nan' is not a number, 0 or more"),
    "sandbox: endless hang": (["sandbox", "--hang-seconds", "inf"], {},
                              "argument --hang-seconds: 'inf' is not a number, 0 or more"),
    "sandbox: negative TSS delay": (["sandbox", "--tss-delay-minutes", "-1"], {},
                                    "argument --tss-delay-minutes: '-1' is not a number, 0 or more"),
    "sandbox: live_like with --self-link-405": (
        ["sandbox", "--profile", "live_like", "--self-link-405"], {},
        "--self-link-405: the live_like profile already answers the self link 405"),
    "sandbox: live_like with a TSS delay": (
        ["sandbox", "--profile", "live_like", "--tss-delay-minutes", "5"], {},
        "--tss-delay-minutes applies to --profile seed; the live_like profile's lag is --index-lag-minutes"),
    "sandbox: an index lag without live_like": (
        ["sandbox", "--index-lag-minutes", "3"], {},
        "--index-lag-minutes applies to --profile live_like; the seed profile's lag is --tss-delay-minutes"),
    "sandbox: Retry-After in words": (["sandbox", "--retry-after", "soon"], {},
                                      "argument --retry-after: 'soon' is not a Retry-After value"),
    "sandbox: fault rate in words": (["sandbox", "--fault", "get:429=often"], {},
                                     "--fault: fault 'get:429=often': rate 'often' is not a number"),
    "settlement: clock moved back": (["sandbox", "settlement", "--db", SANDBOX_DB, "--advance-hours", "-2"], {},
                                     "argument --advance-hours: '-2' is not a number, 0 or more"),
    "settlement: a rate of 1.5": (["sandbox", "settlement", "--db", SANDBOX_DB, "--discrepancy", "missing=1.5"], {},
                                  "argument --discrepancy: 'missing=1.5' is not kind=count or kind=rate"),
    "settlement: a rate of nan": (["sandbox", "settlement", "--db", SANDBOX_DB, "--discrepancy", "amount=nan"], {},
                                  "argument --discrepancy: 'amount=nan' is not kind=count or kind=rate"),
    "demo: no credits": (["demo", "--credits", "0"], {}, "argument --credits: '0' is not a whole number, 1 or more"),
    # dates
    "settlement: --from a day that does not exist": (
        ["sandbox", "settlement", "--db", SANDBOX_DB, "--from", "2026-02-31"], {},
        "argument --from: '2026-02-31' is not a date"),
    "settlement: --from after --to": (
        ["sandbox", "settlement", "--db", SANDBOX_DB, "--from", "2026-11-05", "--to", "2026-11-02"], {},
        "--from 2026-11-05 is after --to 2026-11-02"),
    "sandbox: --start a day that does not exist": (["sandbox", "--start", "2026-02-31"], {},
                                                   "argument --start: “2026-02-31” is not a date"),
    # folders that are files
    "settlement: --out is a file": (["sandbox", "settlement", "--db", SANDBOX_DB, "--out", "notes.txt"], {},
                                    "--out notes.txt: notes.txt is a file, not a folder"),
    "settlement: --truth is a file": (["sandbox", "settlement", "--db", SANDBOX_DB, "--truth", "notes.txt"], {},
                                      "--truth notes.txt: notes.txt is a file, not a folder"),
    "demo: --out is a file": (["demo", "--out", "notes.txt/out"], {}, "--out notes.txt/out: notes.txt is a file"),
    # nothing to settle
    "settlement: a sandbox without credits": (
        ["sandbox", "settlement", "--db", "empty_sandbox.sqlite3", "--discrepancy", "missing=3"], {},
        "--db empty_sandbox.sqlite3: the sandbox holds no credits, so there are none to settle"),
    "settlement: a memory sandbox": (["sandbox", "settlement", "--db", ":memory:"], {},
                                     "--db :memory: holds nothing to read"),
}
# A read of a ledger that is not there, or any change to a break in it, creates nothing.
for _action in LEDGER_ACTIONS:
    CASES[f"breaks {_action[0]}: no such ledger"] = (
        ["breaks", "--ledger", "typo.sqlite3", *_action], {},
        "--ledger typo.sqlite3: no such ledger (only reconkit breaks record starts one)")
CASES["breaks list: no such default ledger"] = (
    ["breaks", "list"], {}, "the default ledger data/reconkit.sqlite3: no such ledger")


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_refusal_is_one_line_exit_2_and_writes_nothing(folder, monkeypatch, capsys, case):
    root, busy = folder
    argv, env, expected = CASES[case]
    argv = [a.replace("{busy}", str(busy)) for a in argv]
    expected = expected.replace("{busy}", str(busy))
    for name in [k for k in os.environ if k.startswith("CYBERSOURCE_") or k in ("RECONKIT_LEDGER",)]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RECONKIT_DATA", str(root / "data"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(root)
    before = _tree(root)
    assert _status(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and expected in err, err
    assert "encoding='" not in err, err  # a Python argument the command line does not have
    assert _tree(root) == before


def test_record_creates_its_ledger_only_when_it_records_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECONKIT_DATA", str(tmp_path / "data"))
    pd.DataFrame({"credit_id": ["7000000000000000000001", "7000000000000000000002"],
                  "reconciliation_id": ["r1", "r2"], "status": ["PENDING"] * 2,
                  "submit_time_utc": ["2026-11-02T10:00:00Z"] * 2, "amount": ["10.00", "20.00"],
                  "currency": ["USD"] * 2}).to_csv("credits.csv", index=False)
    header = ("batch_id,merchant_id,batch_date,request_id,merchant_ref_number,trans_ref_no,payment_method,currency,"
              "amount,transaction_type")
    row = "261103001,m1,2026-11-03,7000000000000000000001,ref-1,r1,Vis\xe9,USD,-10.00,ics_credit"  # é: Latin-1
    Path("day1.csv").write_bytes(("Payment Batch Detail Report,1.0,2026-11-03 to 2026-11-03,,,,,,,\r\n"
                                  f"{header}\r\n{row}\r\n").encode("latin-1"))
    record = ["breaks", "--ledger", "book/ledger.sqlite3", "--as", "ann", "record", "credits.csv", "day1.csv",
              "--as-of", "2026-11-03T18:00:00Z", "--encoding", "latin-1"]
    assert main([*record, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "not recorded (--dry-run)" in out and "created ledger" not in out
    assert not Path("book").exists()
    assert main(record) == 0
    out = capsys.readouterr().out
    assert "created ledger book/ledger.sqlite3" in out and "recorded run 1 (1 open breaks)" in out
    assert main(record) == 0
    assert "created ledger" not in capsys.readouterr().out
    assert main(["breaks", "--ledger", "book/ledger.sqlite3", "list"]) == 0
    assert "credit:7000000000000000000002" in capsys.readouterr().out


def test_the_library_refuses_a_database_of_the_wrong_kind_without_touching_it(tmp_path):
    from reconkit.errors import DatabaseKindError
    from reconkit.ledger import Ledger
    from reconkit.sandbox.state import SandboxState

    picture = tmp_path / "figures.png"
    picture.write_bytes(_png())
    shutil.copy(SAMPLE / "sandbox.sqlite3", tmp_path / "sandbox.sqlite3")
    sandbox_bytes = (tmp_path / "sandbox.sqlite3").read_bytes()
    with pytest.raises(DatabaseKindError, match=r"figures\.png: is not an SQLite database, not a reconkit ledger"):
        Ledger(str(picture))
    with pytest.raises(DatabaseKindError, match="is a reconkit sandbox database, not a reconkit ledger"):
        Ledger(str(tmp_path / "sandbox.sqlite3"))
    Ledger(str(tmp_path / "ledger.sqlite3")).close()
    with pytest.raises(DatabaseKindError, match="is a reconkit ledger, not a reconkit sandbox database"):
        SandboxState(str(tmp_path / "ledger.sqlite3"))
    assert picture.read_bytes() == _png() and (tmp_path / "sandbox.sqlite3").read_bytes() == sandbox_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures.png", "ledger.sqlite3", "sandbox.sqlite3"]


def test_a_scenario_issues_exactly_the_credits_asked(tmp_path):
    """``demo --credits N`` says "issuing N" and then how many were issued: the two agree for any N."""
    from reconkit.sandbox import Sandbox
    from reconkit.sandbox.scenario import populate

    from .conftest import START

    with Sandbox(start=START, seed=5) as sandbox:
        client = sandbox.client(ledger=":memory:")
        issued = [len(populate(sandbox, client, n, seed=n, days=3).credit_ids) for n in (1, 2, 4, 5)]
    assert issued == [1, 2, 4, 5]


def test_more_discrepancies_than_credits_is_said(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    import sqlite3

    shutil.copy(SAMPLE / "sandbox.sqlite3", "copy.sqlite3")
    with sqlite3.connect("copy.sqlite3") as conn:  # only a voided credit can be settled by mistake
        voided = conn.execute("SELECT count(*) FROM credits WHERE status = 'VOIDED'").fetchone()[0]
    assert 0 < voided < 1000
    assert main(["sandbox", "settlement", "--db", "copy.sqlite3", "--out", "out/settlement",
                 "--discrepancy", "voided_settled=1000"]) == 0
    out = capsys.readouterr().out
    assert f"NOTE: --discrepancy voided_settled=1000: only {voided} injected" in out


def test_a_book_open_elsewhere_is_seen_as_one_and_a_look_creates_no_file(tmp_path):
    """A notebook holding the ledger open (WAL: its tables may still be in the -wal file only) does not
    make the command take the ledger for an empty one; looking adds no -shm beside a closed ledger."""
    from reconkit.breaks import BreakBook
    from reconkit.databases import database_kind, has_break_book

    path = str(tmp_path / "ledger.sqlite3")
    with BreakBook(path, analyst="ann"):
        assert os.path.exists(path + "-wal")
        assert has_break_book(path) and database_kind(path)[0] == "ledger"
    listed = sorted(p.name for p in tmp_path.iterdir())
    assert has_break_book(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == listed == ["ledger.sqlite3"]
