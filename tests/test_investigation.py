"""The investigation model without widgets: a state machine over load/replace inputs, parameter
changes, fetch, reconcile and record, against the sandbox over loopback HTTP; the one set of
parameter rules the app and the command line share; the break table's view."""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from reconkit.breaks import BreakBook
from reconkit.errors import IntakeError, SettlementFormatError
from reconkit.investigation import (
    FieldError,
    Investigation,
    NotReadError,
    parse_as_of,
    parse_grace_days,
    parse_tolerance,
)
from reconkit.sandbox import Sandbox
from reconkit.sandbox.scenario import populate

from .conftest import examples

START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _World:
    """One sandbox for every example: 12 credits over two days, their settlement (``a.csv``), a
    smaller file (``b.csv``) and one with an unreadable amount (``broken.csv``) in a folder."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="investigation-sm-"))
        self.sandbox = Sandbox(start=START, seed=9).start()
        self.client = self.sandbox.client(ledger=str(self.folder / "ledger.sqlite3"))
        self.ids = populate(self.sandbox, self.client, 12, seed=9, days=2).credit_ids
        bundle = self.sandbox.settlement(format="pbdr_csv", discrepancies={"amount": 1, "unexpected": 1},
                                         out_dir=self.folder / "data", seed=9, filename="a.csv")
        self.as_of = bundle.as_of
        lines = bundle.files[0].read_text().splitlines()
        credits = [line for line in lines[2:] if "ics_credit" in line]
        (self.folder / "data" / "b.csv").write_text("\n".join(lines[:2] + credits[:3]) + "\n")
        fields = credits[0].split(",")
        fields[8] = "oops"  # the amount column
        (self.folder / "data" / "broken.csv").write_text("\n".join([*lines[:2], ",".join(fields), *credits[1:4]])
                                                         + "\n")
        self.original = {n: (self.folder / "data" / n).read_bytes() for n in ("a.csv", "b.csv", "broken.csv")}
        atexit.register(self.close)

    def close(self) -> None:
        self.client.close()
        self.sandbox.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


_world: _World | None = None


def world() -> _World:
    global _world
    if _world is None:
        _world = _World()
    return _world


# --- the state machine ------------------------------------------------------------------------------

PARAMETER_NAMES = {"tolerance": "amount tolerance", "grace_days": "grace days", "as_of": "as of"}
TOLERANCES = ["0.00", "0.5", "1000", "0,05", "-1"]
GRACES = ["3", "0", "7.5", "many"]


class InvestigationMachine(RuleBasedStateMachine):
    """Whatever the order of choosing, fetching, loading, changing parameters, reconciling and
    recording: a result is current only for the ids, bytes and parameters it was computed from;
    every change after it makes it stale naming what changed; a recorded run holds the digests of
    the bytes the model actually read (a file changed on disk afterwards does not change them)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = world()
        for name, data in self.w.original.items():  # an earlier example may have rewritten a file
            (self.w.folder / "data" / name).write_bytes(data)
        self.model = Investigation(self.w.client)
        self.book_dir = Path(tempfile.mkdtemp(prefix="investigation-book-"))
        self.book = BreakBook(self.book_dir / "book.sqlite3", analyst="ann")
        # The ghost: what was chosen, fetched and read, computed here from the rules' own arguments.
        self.chosen_ids: tuple[str, ...] | None = None
        self.fetched: tuple[str, ...] | None = None
        self.chosen_files: tuple | None = None
        self.read: list[tuple[str, bytes]] | None = None  # (name, bytes) of the last successful load
        self.read_key: tuple | None = None
        self.parameters = {"tolerance": Decimal("0.00"), "grace_days": 3, "as_of": None}
        self.refused: set[str] = set()
        self.snapshot: dict | None = None  # the ghost when the model's result was computed

    def teardown(self) -> None:
        self.book.close()
        shutil.rmtree(self.book_dir, ignore_errors=True)

    # --- inputs --------------------------------------------------------------------------
    def _sources(self, picks: list[tuple[str, bool]]) -> tuple[list, tuple]:
        sources, keys = [], []
        for name, as_upload in picks:
            path = self.w.folder / "data" / name
            if as_upload:
                data = path.read_bytes()
                sources.append((f"uploaded_{name}", data))
                keys.append((f"uploaded_{name}", _sha(data)))
            else:
                sources.append(path)
                keys.append(("path", os.path.realpath(path)))
        return sources, tuple(keys)

    @initialize()
    def a_first_result(self):
        """Start from a reconciled run at the settlement's as-of, as an analyst coming back to change
        an input would."""
        self.model.set_parameters(as_of=self.w.as_of.isoformat())
        self.parameters["as_of"] = self.w.as_of
        self.fetch("all")
        self.load([("a.csv", False)])
        self.reconcile()
        assert self.model.current is not None

    @rule(which=st.sampled_from(["all", "first half", "last four"]),
          picks=st.sampled_from([[("a.csv", False)], [("b.csv", True)], [("a.csv", True), ("broken.csv", False)]]))
    def fetch_load_and_reconcile(self, which, picks):
        self.fetch(which)
        self.load(picks)
        self.reconcile()

    @rule(which=st.sampled_from(["all", "first half", "last four"]))
    def choose_ids(self, which):
        ids = tuple({"all": self.w.ids, "first half": self.w.ids[:6], "last four": self.w.ids[-4:]}[which])
        self.model.choose_ids(ids)
        self.chosen_ids = ids
        self.check_staleness()

    @rule(which=st.sampled_from(["all", "first half", "last four"]))
    def fetch(self, which):
        ids = tuple({"all": self.w.ids, "first half": self.w.ids[:6], "last four": self.w.ids[-4:]}[which])
        had_result = self.model.result is not None
        fetched = self.model.fetch(ids, progress=False)
        assert len(fetched.failed) == 0
        self.chosen_ids = self.fetched = ids
        self.after_replacing(had_result)

    PICKS = st.lists(st.tuples(st.sampled_from(["a.csv", "b.csv", "broken.csv"]), st.booleans()), min_size=1,
                     max_size=2, unique_by=lambda p: p[0])

    @rule(picks=PICKS)
    def choose_settlement(self, picks):
        sources, key = self._sources(picks)
        self.model.choose_settlement(sources)
        self.chosen_files = key
        self.check_staleness()

    @rule(picks=PICKS)
    def load(self, picks):
        sources, key = self._sources(picks)
        expected = [(s[0], s[1]) if isinstance(s, tuple) else (str(s), s.read_bytes()) for s in sources]
        had_result = self.model.result is not None
        self.chosen_files = key
        digests = [_sha(data) for _, data in expected]
        if len(set(digests)) < len(digests):  # the same bytes twice would count rows twice
            with pytest.raises(SettlementFormatError, match="byte-identical copy"):
                self.model.load(sources)
            self.read = self.read_key = None
            event("load refused: a copy")
        else:
            files = self.model.load(sources)
            self.read, self.read_key = expected, key
            assert [(f.file, f.size, f.sha256) for f in files] == [(n, len(d), _sha(d)) for n, d in expected]
            broken = sum(1 for n, _ in expected if n.endswith("broken.csv"))
            assert (self.model.read_failures["source_file"].nunique() if len(self.model.read_failures) else 0) == broken
        self.after_replacing(had_result)

    @rule(name=st.sampled_from(["a.csv", "b.csv"]))
    def a_file_changes_on_disk(self, name):
        """Another program rewrites a file after it was loaded: what was read stays what was read."""
        path = self.w.folder / "data" / name
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n", 1))
        self.check_staleness()

    # --- parameters ------------------------------------------------------------------------
    @rule(field=st.sampled_from(["tolerance", "grace_days", "as_of"]), pick=st.integers(0, 4))
    def set_parameter(self, field, pick):
        if field == "tolerance":
            text = TOLERANCES[pick]
            valid = text in ("0.00", "0.5", "1000")
            value = Decimal(text) if valid else None
        elif field == "grace_days":
            text = GRACES[pick % len(GRACES)]
            valid = text != "many"
            value = (float(text) if "." in text else int(text)) if valid else None
        else:
            moments = [self.w.as_of, self.w.as_of + timedelta(days=1), None, None, None]
            texts = [self.w.as_of.isoformat(), (self.w.as_of + timedelta(days=1)).isoformat(), "", "yesterday",
                     "2026-13-40"]
            text, value, valid = texts[pick], moments[pick], pick < 3
        if valid:
            assert self.model.set_parameters(**{field: text}) is self.model.parameters
            self.parameters[field] = value
            self.refused.discard(field)
        else:
            with pytest.raises(FieldError) as refused:
                self.model.set_parameters(**{field: text})
            assert refused.value.field == field and text in str(refused.value)
            self.refused.add(field)
        assert getattr(self.model.parameters, field) == self.parameters[field]
        self.check_staleness()

    # --- reconcile and record -----------------------------------------------------------------
    @rule()
    def reconcile(self):
        before = self.model.result
        unread = [f for f, bad in (("ids", self.fetched is not None and self.chosen_ids != self.fetched),
                                   ("files", self.read_key is not None and self.chosen_files != self.read_key)) if bad]
        if unread:
            with pytest.raises(NotReadError) as refused:
                self.model.reconcile()
            assert [f.field for f in refused.value.fields] == unread
            assert self.model.result is before  # nothing changes
            event("reconcile refused: not read")
            return
        if self.refused or self.fetched is None or self.read is None:
            with pytest.raises(FieldError) as refused:
                self.model.reconcile()
            field = refused.value.field
            assert field in self.refused or (field == "ids" and self.fetched is None) or \
                (field == "files" and self.read is None)
            assert self.model.result is None
            self.snapshot = None
            event("reconcile refused: a field")
            return
        result = self.model.reconcile()
        assert self.model.result is result and not self.model.stale and self.model.recorded_run is None
        self.snapshot = {"ids": self.fetched, "read": list(self.read), "read_key": self.read_key,
                         "parameters": dict(self.parameters)}
        event("reconciled")

    @rule()
    def record(self):
        runs = len(self.book.runs())
        if self.model.result is None or self.model.stale:
            with pytest.raises(ValueError, match=r"reconcile first|stale"):
                self.model.record(self.book)
            assert len(self.book.runs()) == runs
            return
        preview = self.model.preview(self.book)
        override = None
        if not preview.ok:  # a subset of the credits: the intake refuses it without a reason
            with pytest.raises(IntakeError):
                self.model.record(self.book)
            assert len(self.book.runs()) == runs
            override = "a subset of the credits, on purpose"
            event("intake refused")
        run = self.model.record(self.book, override=override)
        assert self.model.recorded_run == run and len(self.book.runs()) == runs + 1
        read = self.snapshot["read"]
        assert self.model.record_inputs() == [{"file": n, "bytes": len(d), "sha256": _sha(d)} for n, d in read]
        last = self.book.runs().iloc[-1]
        assert last["sha256"] == ", ".join(_sha(d)[:12] for _, d in read)
        assert last["files"] == ", ".join(Path(n).name for n, _ in read)
        event("recorded")

    # --- what must hold after every step ----------------------------------------------------------
    def after_replacing(self, had_result: bool) -> None:
        """A fetch or a load replaces an input: the result it fed is gone, and the model says why."""
        assert self.model.result is None and self.model.run_id is None
        if had_result:
            assert self.model.cleared
        self.snapshot = None

    def expected_reasons(self) -> set[str]:
        if self.snapshot is None:
            return set()
        reasons = set()
        if self.chosen_ids != self.snapshot["ids"]:
            reasons.add("credit ids")
        if self.chosen_files != self.snapshot["read_key"]:
            reasons.add("settlement files")
        for field, name in PARAMETER_NAMES.items():
            if field in self.refused or self.parameters[field] != self.snapshot["parameters"][field]:
                reasons.add(name)
        return reasons

    def check_staleness(self) -> None:
        assert set(self.model.stale_reasons) == self.expected_reasons()
        if self.expected_reasons():
            event("stale")

    @invariant()
    def a_current_result_is_of_exactly_its_inputs(self):
        result = self.model.current
        if result is None:
            return
        assert self.snapshot is not None and not self.expected_reasons()
        assert set(result.credits["credit_id"]) == set(self.fetched)
        read = self.snapshot["read"]
        assert [(f.file, f.sha256) for f in self.model.result_files] == [(n, _sha(d)) for n, d in read]
        assert sorted(result.parameters["input_files"]) == sorted({n for n, _ in read})
        assert Decimal(str(result.parameters["amount_tolerance"])) == self.parameters["tolerance"]
        assert float(result.parameters["grace_days"]) == float(self.parameters["grace_days"])
        if self.parameters["as_of"] is not None:
            assert datetime.fromisoformat(result.parameters["as_of"]) == self.parameters["as_of"]

    @invariant()
    def staleness_names_every_change(self):
        if self.model.result is not None:
            assert set(self.model.stale_reasons) == self.expected_reasons()
        else:
            assert self.model.stale_reasons == [] and not self.model.stale


InvestigationMachine.TestCase.settings = settings(max_examples=examples(12),  # each step is HTTP to a sandbox
                                                  stateful_step_count=14, deadline=None)
TestInvestigation = InvestigationMachine.TestCase


# --- one rule set for the parameters, in the app and on the command line -------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("0.05", Decimal("0.05")), (" 1000 ", Decimal("1000")), ("", Decimal("0")), ("0", Decimal("0")),
])
def test_a_tolerance_is_zero_or_a_positive_amount_written_with_a_dot(text, expected):
    assert parse_tolerance(text) == expected


@pytest.mark.parametrize(("text", "words"), [
    ("0,05", "“0,05” is not an amount: write the tolerance with a dot for decimals, such as 0.05"),
    ("0.1.2", "“0.1.2” is not an amount such as 0.05"),
    ("-1", "“-1” is not an amount such as 0.05 (the tolerance is zero or positive)"),
    ("NaN", "“NaN” is not an amount such as 0.05 (the tolerance is zero or positive)"),
    ("ten", "“ten” is not an amount such as 0.05"),
])
def test_a_refused_tolerance_names_the_value_in_one_sentence(text, words):
    with pytest.raises(FieldError) as refused:
        parse_tolerance(text)
    assert refused.value.field == "tolerance" and str(refused.value) == words


@given(st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False))
def test_any_non_negative_amount_is_a_tolerance_in_text_or_as_a_value(amount):
    assert parse_tolerance(f" {amount} ") == amount == parse_tolerance(amount)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-05", datetime(2026, 11, 5, tzinfo=UTC)),
    ("2026-11-05T18:30:00Z", datetime(2026, 11, 5, 18, 30, tzinfo=UTC)),
    ("2026-11-05T18:30:00+01:00", datetime(2026, 11, 5, 17, 30, tzinfo=UTC)),
    ("", None), ("now", None), (" NOW ", None),
])
def test_an_as_of_is_a_date_or_a_time_utc_unless_told(text, expected):
    assert parse_as_of(text) == expected


def test_a_refused_as_of_or_grace_names_the_value():
    with pytest.raises(FieldError, match="“yesterday” is not a date") as refused:
        parse_as_of("yesterday")
    assert refused.value.field == "as_of"
    assert parse_grace_days("3") == 3 and parse_grace_days("2.5") == 2.5
    for text in ("-1", "many", "4000"):
        with pytest.raises(FieldError, match=f"“{text}” is not a number of days") as refused:
            parse_grace_days(text)
        assert refused.value.field == "grace_days"


def test_the_app_and_the_command_line_apply_the_same_rules():
    """The command line's argument types are the model's parsers, their refusals its sentences."""
    import argparse

    from reconkit import cli_reconcile
    from reconkit.widgets import investigate

    assert investigate.parse_tolerance is parse_tolerance and investigate.parse_as_of is parse_as_of
    for text in ("0.05", "0", "12.3456"):
        assert cli_reconcile.parse_tolerance(text) == parse_tolerance(text)
    for text in ("0,05", "-1", "0.1.2"):
        with pytest.raises(argparse.ArgumentTypeError) as refused:
            cli_reconcile.parse_tolerance(text)
        with pytest.raises(FieldError) as same:
            parse_tolerance(text)
        assert str(refused.value) == str(same.value)


# --- the break table's view ----------------------------------------------------------------------------

def test_the_view_filters_searches_sorts_and_pages_and_a_new_result_starts_it_afresh():
    w = world()
    for name, data in w.original.items():
        (w.folder / "data" / name).write_bytes(data)
    model = Investigation(w.client, page_size=2)
    model.fetch(w.ids, progress=False)
    model.load([w.folder / "data" / "a.csv"])
    model.set_parameters(as_of=w.as_of)
    result = model.reconcile()
    breaks = result.breaks.reset_index(drop=True)
    assert len(model.positions()) == len(breaks) and model.pages == -(-len(breaks) // 2)
    target = breaks.dropna(subset=["credit_id"]).iloc[0]
    model.set_view(search=str(target["credit_id"])[-6:].lower())
    assert model.filtered_breaks()["credit_id"].tolist() == [target["credit_id"]]
    model.set_view(search="", outcome=target["outcome"])
    assert set(model.filtered_breaks()["outcome"]) == {target["outcome"]}
    model.set_view(outcome="(all)", sort_by="credit_id", descending=True, page=1)
    ids = [c for c in breaks["credit_id"] if isinstance(c, str)]
    assert model.filtered_breaks()["credit_id"].dropna().tolist() == sorted(ids, reverse=True)
    assert model.view.page == 1 and len(model.page_positions()) == min(2, len(breaks) - 2)
    model.set_view(page=99)
    model.page_positions()
    assert model.view.page == model.pages - 1  # clamped to the pages there are
    with pytest.raises(FieldError, match="cannot sort by"):
        model.set_view(sort_by="amount")
    model.set_view(search=str(target["credit_id"]))
    model.reconcile()  # a new result is seen whole: no search kept from the earlier one
    assert model.view.search == () and len(model.positions()) == len(breaks)


# --- what a missing credit's age says: the sentence and the histogram ------------------------------

def _reconciled_at(as_of: datetime) -> Investigation:
    w = world()
    for name, data in w.original.items():
        (w.folder / "data" / name).write_bytes(data)
    model = Investigation(w.client)
    model.fetch(w.ids, progress=False)
    model.load([w.folder / "data" / "b.csv"])  # three credits settled: the others are missing
    model.set_parameters(as_of=as_of, grace_days=3)
    model.reconcile()
    return model


def test_a_credit_submitted_after_the_as_of_is_said_to_be_so():
    credits = _reconciled_at(world().as_of).credits
    submitted = sorted(credits["submit_time_utc"])
    as_of = submitted[len(submitted) // 2].to_pydatetime() - timedelta(hours=2)  # about half are submitted after it
    result = _reconciled_at(as_of).result
    missing = result.credits[result.credits["outcome"] == "MISSING_PENDING"]
    later = missing[missing["submit_time_utc"] > as_of]
    assert len(later) >= 2
    pattern = re.compile(r"not in settlement, submitted (\d+\.\d) days after the as-of, so not yet due")
    for _, row in later.iterrows():
        days = (row["submit_time_utc"].to_pydatetime() - as_of).total_seconds() / 86400
        said = pattern.fullmatch(row["detail"])
        assert said and abs(float(said.group(1)) - days) <= 0.051, row["detail"]
    pattern = re.compile(r"not in settlement, (\d+\.\d) days after submission: within the 3-day grace period")
    for _, row in missing[missing["submit_time_utc"] <= as_of].iterrows():
        days = (as_of - row["submit_time_utc"].to_pydatetime()).total_seconds() / 86400
        said = pattern.fullmatch(row["detail"])
        assert said and abs(float(said.group(1)) - days) <= 0.051, row["detail"]


def test_the_age_histogram_has_one_bar_per_day():
    import math

    result = _reconciled_at(world().as_of + timedelta(days=2, hours=5)).result
    missing = result.credits[result.credits["outcome"].isin(["MISSING_PENDING", "MISSING_OVERDUE"])]
    ages = [(result_as_of - t.to_pydatetime()).total_seconds() / 86400
            for result_as_of in [datetime.fromisoformat(result.parameters["as_of"])]
            for t in missing["submit_time_utc"]]
    per_day: dict[int, int] = {}
    for age in ages:
        per_day[math.floor(age)] = per_day.get(math.floor(age), 0) + 1
    figure = result.plot()
    axis = next(a for a in figure.axes if a.get_title() == "Age of missing credits")
    bars = [p for p in axis.patches if p.get_height() > 0]
    assert all(p.get_width() == 1 and float(p.get_x()).is_integer() for p in axis.patches)
    assert {int(p.get_x()): int(p.get_height()) for p in bars} == per_day
    assert sum(per_day.values()) == len(missing) > 3
