"""The ``reconkit`` command line: every argument and file checked before any fetch, in one line."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from reconkit.cli import build_parser, main

ROOT = Path(__file__).parents[1]
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A project folder with the shipped samples, no credentials, and the working directory in it."""
    shutil.copytree(SAMPLE, tmp_path / "data" / "sample")
    for name in [k for k in os.environ if k.startswith("CYBERSOURCE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RECONKIT_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header_only.csv").write_text("credit_id\n")
    (tmp_path / "words.csv").write_text("name\nalice\nbob\n")
    (tmp_path / "book.xlsx").write_bytes(b"PK\x03\x04" + bytes(64))
    (tmp_path / "folder").mkdir()
    shutil.copy(SAMPLE / "pbdr_csv.csv", tmp_path / "pbdr_csv (1).csv")
    (tmp_path / "no_currency.csv").write_text("credit_id,amount,submit_time_utc\n1,1.00,2026-11-02T09:00:00Z\n")  # as a second browser download is named
    return tmp_path


S = "data/sample/"
BAD = {
    "credits file missing": (["missing.csv", S + "pbdr_csv.csv"], "missing.csv: no such file"),
    "credits file empty": (["empty.csv", S + "pbdr_csv.csv"], "empty.csv: is empty"),
    "credits file only a header": (["header_only.csv", S + "pbdr_csv.csv"], "header_only.csv: has a header but no"),
    "credits file not a CSV": ([S + "sandbox.sqlite3", S + "pbdr_csv.csv"], "sandbox.sqlite3: is not a CSV"),
    "credits file a workbook": (["book.xlsx", S + "pbdr_csv.csv"], "book.xlsx: is not a CSV"),
    "credits file a folder": (["folder", S + "pbdr_csv.csv"], "folder: is a directory"),
    "credits file holds no ids": (["words.csv", S + "pbdr_csv.csv"], "column 'name' holds no credit ids"),
    "as-of yesterday": ([S + "credit_ids.csv", S + "pbdr_csv.csv", "--as-of", "yesterday"],
                        "argument --as-of: “yesterday” is not a date"),
    "tolerance 0.1.2": ([S + "credit_ids.csv", S + "pbdr_csv.csv", "--tolerance", "0.1.2"],
                        "argument --tolerance: “0.1.2” is not an amount"),
    "tolerance with a comma": ([S + "credit_ids.csv", S + "pbdr_csv.csv", "--tolerance", "0,05"],
                               "argument --tolerance: “0,05” is not an amount: write the tolerance with a dot"),
    "negative grace days": ([S + "credit_ids.csv", S + "pbdr_csv.csv", "--grace-days", "-1"],
                            "argument --grace-days: “-1” is not a number of days"),
    "unknown format": ([S + "credit_ids.csv", S + "pbdr_csv.csv", "--format", "pdf"], "argument --format"),
    "swapped (a CSV report)": ([S + "pbdr_csv.csv", S + "credit_ids.csv"], "is a settlement file and settlement file"),
    "swapped (a processor file)": ([S + "processor_csv.csv", S + "credit_ids.csv"], "credits come first"),
    "swapped (an XML report)": ([S + "pbdr_xml.xml", S + "credit_ids.csv"], "credits come first"),
    "credits file part of a saved frame": (["no_currency.csv", S + "pbdr_csv.csv"],
                                           "looks like a saved credits frame but lacks the column(s) currency"),
    "settlement file missing": ([S + "credit_ids.csv", "nowhere.csv"], "settlement file nowhere.csv: no such file"),
    "settlement glob matches nothing": ([S + "credit_ids.csv", "data/*.nope"], "'data/*.nope': no file matches"),
    "settlement file is the credits file": ([S + "credit_ids.csv", S + "credit_ids.csv"], "is the credits file too"),
    "settlement file and its byte-identical copy": (
        [S + "credit_ids.csv", S + "pbdr_csv.csv", "pbdr_csv (1).csv"],
        f"pbdr_csv (1).csv is a byte-identical copy of {S}pbdr_csv.csv: the same rows would be counted twice"),
    "settlement file empty": ([S + "credit_ids.csv", "empty.csv"], "settlement file empty.csv: is empty"),
    "output folder missing": ([S + "credit_ids.csv", S + "pbdr_csv.csv", "-o", "nowhere/r.html"],
                              "folder nowhere does not exist"),
    "workbook is not .xlsx": ([S + "credit_ids.csv", S + "pbdr_xml.xml", "--excel", "breaks.csv"],
                              "--excel breaks.csv: the file name must end in .xlsx"),
    "workbook would overwrite an input": ([S + "credit_ids.csv", "book.xlsx", "--excel", "book.xlsx"],
                                          "--excel book.xlsx: would overwrite an input file"),
    "report is not HTML": ([S + "credit_ids.csv", S + "pbdr_csv.csv", "-o", "report.xlsx"], "must end in .html"),
}


def _status(argv):
    """main's exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_is_fetched(workspace, capsys, case):
    argv, expected = BAD[case]
    assert _status(["reconcile", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert expected in err, err
    # Fetching opens the ledger and the embedded sandbox's database in data/: neither exists.
    assert not (workspace / "data" / "reconkit.sqlite3").exists()
    assert not (workspace / "data" / "sandbox.sqlite3").exists()
    assert not (workspace / "report.html").exists()


def test_every_option_of_every_command_has_help_text():
    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    seen = 0
    for parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            seen += 1
            assert action.help and action.help != argparse.SUPPRESS, f"{parser.prog}: {action.dest} has no help"
    assert seen >= 30


def test_on_the_shipped_samples_it_uses_the_samples_as_of(workspace):
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    truth = pd.read_csv(SAMPLE / "pbdr_csv_truth.csv", dtype=str)
    credit_outcomes = set(truth.loc[truth["side"] == "credit", "outcome"])
    assert "MISSING_PENDING" in credit_outcomes and "MISSING_OVERDUE" not in credit_outcomes
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYBERSOURCE_")}
    run = subprocess.run([sys.executable, "-m", "reconkit", "reconcile", S + "credit_ids.csv", S + "pbdr_csv.csv",
                          "-o", "report.html"], capture_output=True, text=True, env=env, cwd=workspace, timeout=300)
    assert run.returncode == 0, run.stderr
    first = run.stdout.splitlines()[0]
    assert first.startswith(f"AS OF {manifest['as_of']}") and "manifest.json" in first
    assert f"grace {manifest['grace_days']} days" in run.stdout
    assert "MISSING_PENDING" in run.stdout and "MISSING_OVERDUE" not in run.stdout
    assert (workspace / "report.html").stat().st_size > 0


def test_elsewhere_it_says_prominently_which_as_of_it_used(workspace, capsys):
    from reconkit import Credit, credits_to_frame
    from reconkit.sandbox import Sandbox

    from .conftest import CARD, START

    with Sandbox(start=START, seed=3) as sandbox:
        client = sandbox.client(ledger=str(workspace / "elsewhere.sqlite3"))
        credits: list[Credit] = [client.create_credit("5.00", "USD", card=CARD) for _ in range(3)]
        sandbox.advance(hours=24)
        bundle = sandbox.settlement(format="pbdr_csv", out_dir=workspace / "settlement")
    saved = credits_to_frame(credits)[["credit_id", "reconciliation_id", "status", "submit_time_utc", "amount",
                                       "currency"]]
    saved.to_csv(workspace / "credits.csv", index=False)
    assert main(["reconcile", "credits.csv", str(bundle.files[0]), "-o", "r.html"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("AS OF ") and "now, as no --as-of was given" in first
    assert main(["reconcile", "credits.csv", str(bundle.files[0]), "-o", "r.html", "--as-of", "2026-11-05"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "AS OF 2026-11-05T00:00:00+00:00 — given by --as-of"


def test_a_saved_frame_with_a_bad_amount_names_file_line_and_column(workspace, capsys):
    (workspace / "saved.csv").write_text("credit_id,amount,currency,submit_time_utc,reconciliation_id,status\n"
                                         "1,1.00,USD,2026-11-02T09:00:00Z,A,PENDING\n"
                                         "2,NaN,USD,2026-11-02T09:00:00Z,B,PENDING\n")
    assert main(["reconcile", "saved.csv", S + "pbdr_csv.csv"]) == 2
    err = capsys.readouterr().err
    assert "saved.csv, line 3, column amount" in err and "NaN" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("argv", "expected"), [
    (["sandbox", "--start", "yesterday"], "argument --start: “yesterday” is not a date"),
    (["sandbox", "--fault", "get:teapot=0.1"], "--fault:"),
    (["sandbox", "--tls-cert", "nowhere.pem"], "--tls-cert nowhere.pem: no such file"),
    (["sandbox", "--tls-key", "words.csv"], "--tls-key needs --tls-cert"),
    (["sandbox", "--tls-cert", "words.csv"], "--tls-cert words.csv: not a PEM certificate with its private key"),
    (["sandbox", "--tls-cert", "words.csv", "--tls-key", "folder"], "--tls-key folder: is not a file"),
    (["sandbox", "settlement", "--db", "nowhere.sqlite3"], "--db nowhere.sqlite3: no such sandbox database"),
    (["sandbox", "settlement", "--db", "x.sqlite3", "--discrepancy", "missing=many"], "argument --discrepancy"),
    (["sandbox", "settlement", "--db", "x.sqlite3", "--discrepancy", "lost=3"], "with a kind among missing"),
    (["sandbox", "settlement", "--db", "x.sqlite3", "--from", "last week"], "argument --from: 'last week'"),
    (["demo", "--credits", "-5"], "argument --credits: '-5' is not a whole number"),
])
def test_the_other_commands_refuse_bad_arguments_in_one_line_too(workspace, capsys, argv, expected):
    assert _status(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_an_unreadable_settlement_line_reaches_the_reconciliation(workspace):
    truth = pd.read_csv(SAMPLE / "pbdr_csv_truth.csv", dtype=str)
    victim = truth[(truth["side"] == "credit") & (truth["outcome"] == "MATCHED")].iloc[0]
    path = workspace / S / "pbdr_csv.csv"
    lines = path.read_bytes().split(b"\r\n")
    number = next(n for n, line in enumerate(lines, start=1) if victim["reconciliation_id"].encode() in line)
    lines[number - 1] = lines[number - 1].replace(b",-", b",-1O", 1)
    path.write_bytes(b"\r\n".join(lines))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYBERSOURCE_")}
    run = subprocess.run([sys.executable, "-m", "reconkit", "reconcile", S + "credit_ids.csv", S + "pbdr_csv.csv",
                          "-o", "report.html"], capture_output=True, text=True, env=env, cwd=workspace, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"UNREADABLE: 1 settlement line(s) could not be read; first: pbdr_csv.csv line {number}" in run.stdout
    assert "UNREADABLE_SETTLEMENT" in run.stdout
    assert victim["credit_id"] in (workspace / "report.html").read_text(encoding="utf-8")


def _help_columns() -> list[str]:
    """The saved frame's needed columns as ``reconcile --help`` names them."""
    import re

    text = " ".join(build_parser()._subparsers._group_actions[0].choices["reconcile"].format_help().split())
    listed = re.search(r"saved credits frame \(\.csv/\.parquet with ([^;)]*)", text).group(1)
    return [name.strip() for name in listed.split(",")]


def _sample_credits(workspace):
    """The sample credits as the sandbox holds them, fetched over HTTP, and the sample's truth."""
    from reconkit.sandbox import Sandbox

    ids = pd.read_csv(SAMPLE / "credit_ids.csv", dtype=str).iloc[:, 0].tolist()
    shutil.copy(SAMPLE / "sandbox.sqlite3", workspace / "copy.sqlite3")
    with Sandbox(db=str(workspace / "copy.sqlite3"), seed=42) as sandbox:
        fetched = sandbox.client(ledger=":memory:").fetch_credits(ids, progress=False)
    assert len(fetched.failed) == 0
    return fetched.to_frame(), pd.read_csv(SAMPLE / "pbdr_csv_truth.csv", dtype=str)


def test_a_saved_frame_with_exactly_the_columns_help_names_is_reconciled(workspace, capsys):
    credits, truth = _sample_credits(workspace)
    columns = _help_columns()
    credits[columns].to_csv(workspace / "saved.csv", index=False)
    assert main(["reconcile", "saved.csv", S + "pbdr_csv.csv", "-o", "r.html", "--excel", "b.xlsx"]) == 0
    # Every credit break is the one the generator's truth gives it, and every credit the truth calls a break is one.
    shown = pd.read_excel(workspace / "b.xlsx", sheet_name="Breaks", dtype=str).dropna(subset=["Credit id"])
    credit_truth = truth[truth["side"] == "credit"]
    assert set(zip(shown["Credit id"], shown["Outcome"], strict=True)) <= set(
        zip(credit_truth["credit_id"], credit_truth["outcome"], strict=True))
    assert set(shown["Credit id"]) == set(
        credit_truth.loc[~credit_truth["outcome"].isin(["MATCHED", "NO_SETTLEMENT_EXPECTED"]), "credit_id"])
    # One column fewer (here: the ones a bare export lacks) is refused in one line, naming them.
    credits[["credit_id", "amount", "currency", "submit_time_utc"]].to_csv(workspace / "bare.csv", index=False)
    assert main(["reconcile", "bare.csv", S + "pbdr_csv.csv"]) == 2
    err = capsys.readouterr().err
    assert "lacks the column(s) reconciliation_id, status" in err and len(err.strip().splitlines()) == 1


def test_unfetched_ids_stop_the_report_unless_allowed(workspace, capsys):
    ids = pd.read_csv(SAMPLE / "credit_ids.csv", dtype=str).iloc[:, 0].tolist()
    unknown = ["1" * 22, "2" * 22, "3" * 22]  # no sandbox holds them: 404
    pd.DataFrame({"credit_id": ids + unknown}).to_csv(workspace / "ids.csv", index=False)
    assert main(["reconcile", "ids.csv", S + "pbdr_csv.csv", "-o", "r.html"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    line = captured.err.strip().splitlines()[-1]  # after the progress bar
    assert f"3 of {len(ids) + 3} credit id(s) could not be fetched (listed in r_unfetched.csv)" in line
    assert "--allow-unfetched" in line and not (workspace / "r.html").exists()
    listed = pd.read_csv(workspace / "r_unfetched.csv", dtype=str)
    assert sorted(listed["id"]) == unknown
    # Allowed: the report is written and its Parameters say how many were left out.
    assert main(["reconcile", "ids.csv", S + "pbdr_csv.csv", "-o", "r.html", "--excel", "b.xlsx",
                 "--allow-unfetched"]) == 0
    out = capsys.readouterr().out
    assert "UNFETCHED: 3 of" in out
    page = (workspace / "r.html").read_text(encoding="utf-8")
    assert "<th>Credit ids not fetched</th><td>3 (left out of this report)</td>" in page
    assert '<span class="environment SANDBOX">SANDBOX</span>' in page
    sheet = pd.read_excel(workspace / "b.xlsx", sheet_name="Parameters", dtype=str)
    assert dict(zip(sheet["Parameter"], sheet["Value"], strict=True))["Credit ids not fetched"] == \
        "3 (left out of this report)"


def test_the_report_names_the_environment_the_credits_came_from(workspace, capsys):
    from reconkit.session import connect

    with connect() as client:  # what the command connects to here: the embedded sandbox
        expected = client.config.environment_name
    assert expected == "SANDBOX"
    assert main(["reconcile", S + "credit_ids.csv", S + "pbdr_csv.csv", "-o", "r.html", "--excel", "b.xlsx"]) == 0
    page = (workspace / "r.html").read_text(encoding="utf-8")
    assert f"<title>Refund reconciliation · {expected} ·" in page and "not given" not in page
    sheet = pd.read_excel(workspace / "b.xlsx", sheet_name="Parameters", dtype=str)
    assert sheet.loc[sheet["Parameter"] == "Environment", "Value"].tolist() == [expected]
