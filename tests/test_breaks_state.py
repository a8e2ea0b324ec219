"""A hypothesis state machine over the break workflow: record / assign / note / resolve /
sign-off / reopen / next run. After every step the log has only grown, the stored state is the
replay of the log, and both agree with a model written here from the rules alone."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from reconkit.breaks import SYSTEM, BreakBook
from reconkit.errors import BreakBookError

from .breaks_helpers import T0, credits_frame, days, run
from .conftest import examples

CREDITS = {"k0": "10.00", "k1": "20.00", "k2": "30.00"}
GRACE = 3
PEOPLE = ("ann", "bob")
SETTLES = ("matched", "missing", "short")
CLOSED = {"resolved", "written_off", "timing_difference"}


@cache
def _result(rows, day):
    # Reconciling is pure and the slow part of a step: the same run is reconciled once.
    return run(credits_frame(CREDITS), list(rows), T0 + days(day), grace_days=GRACE)


@dataclass
class Expected:
    outcome: str
    status: str = "open"
    owner: str | None = None
    notes: int = 0
    resolved_by: str | None = None
    signed_off_by: str | None = None


class BreakWorkflow(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="breaks-sm-"))
        self.book = BreakBook(self.folder / "ledger.sqlite3", analyst="ann")
        self.model: dict[str, Expected] = {}
        self.day = 1.0
        self.log: list = []

    def teardown(self) -> None:
        self.book.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- a run -------------------------------------------------------------------------
    @rule(settles=st.tuples(*[st.sampled_from(SETTLES)] * len(CREDITS)), later=st.sampled_from([0.5, 1, 2, 4]))
    def next_run(self, settles, later):
        self.day += later
        rows = []
        outcomes = {}
        for (credit, amount), how in zip(CREDITS.items(), settles, strict=True):
            if how == "matched":
                rows.append((f"r-{credit}", credit, amount, "2026-11-03"))
                outcomes[credit] = "MATCHED"
            elif how == "short":
                rows.append((f"r-{credit}", credit, "1.00", "2026-11-03"))
                outcomes[credit] = "AMOUNT_MISMATCH"
            else:  # the rule in docs/reconciling.md: pending while no older than the grace period
                outcomes[credit] = "MISSING_PENDING" if self.day <= GRACE else "MISSING_OVERDUE"
        self.book.record(_result(tuple(rows), self.day))
        for credit, outcome in outcomes.items():
            key = f"credit:{credit}"
            known = self.model.get(key)
            if outcome != "MATCHED":
                if known is None:
                    self.model[key] = Expected(outcome)
                elif known.status in CLOSED and known.resolved_by == SYSTEM:  # came back
                    known.status = "investigating" if known.owner else "open"
                    known.resolved_by = known.signed_off_by = None
                    known.notes += 1
                known = self.model[key]
                known.outcome = outcome
            elif known is not None and known.status not in CLOSED:  # the run clears it
                known.status = "timing_difference" if known.outcome == "MISSING_PENDING" else "resolved"
                known.resolved_by, known.signed_off_by, known.outcome = SYSTEM, None, outcome
                known.notes += 1

    # --- people ------------------------------------------------------------------------
    @precondition(lambda self: self.model)
    @rule(credit=st.sampled_from(sorted(CREDITS)), owner=st.sampled_from(PEOPLE), by=st.sampled_from(PEOPLE))
    def assign(self, credit, owner, by):
        known = self.model.get(f"credit:{credit}")
        if known is None:
            self._refused(lambda: self.book.assign(credit, owner, by=by))
            return
        self.book.assign(credit, owner, by=by)
        known.owner = owner
        if known.status == "open":
            known.status = "investigating"

    @precondition(lambda self: self.model)
    @rule(credit=st.sampled_from(sorted(CREDITS)), text=st.text(min_size=0, max_size=8), by=st.sampled_from(PEOPLE))
    def note(self, credit, text, by):
        known = self.model.get(f"credit:{credit}")
        if known is None or not text.strip():
            self._refused(lambda: self.book.note(credit, text, by=by))
            return
        self.book.note(credit, text, by=by)
        known.notes += 1

    @precondition(lambda self: self.model)
    @rule(credit=st.sampled_from(sorted(CREDITS)), reason=st.sampled_from(["PROCESSOR_CORRECTED", "OTHER", "BOGUS"]),
          status=st.sampled_from(["resolved", "written_off", "open"]), note=st.sampled_from(["", "found it"]),
          by=st.sampled_from(PEOPLE))
    def resolve(self, credit, reason, status, note, by):
        known = self.model.get(f"credit:{credit}")
        allowed = (known is not None and known.status not in CLOSED and reason != "BOGUS" and status != "open"
                   and (reason != "OTHER" or note))
        if not allowed:
            self._refused(lambda: self.book.resolve(credit, reason, status=status, note=note, by=by))
            return
        self.book.resolve(credit, reason, status=status, note=note, by=by)
        known.status, known.resolved_by, known.signed_off_by = status, by, None
        known.notes += bool(note)

    @precondition(lambda self: self.model)
    @rule(credit=st.sampled_from(sorted(CREDITS)), by=st.sampled_from(PEOPLE))
    def sign_off(self, credit, by):
        known = self.model.get(f"credit:{credit}")
        allowed = (known is not None and known.status in CLOSED and known.signed_off_by is None
                   and known.resolved_by != by)
        if not allowed:
            self._refused(lambda: self.book.sign_off(credit, by=by))
            return
        self.book.sign_off(credit, by=by)
        known.signed_off_by = by

    @precondition(lambda self: self.model)
    @rule(credit=st.sampled_from(sorted(CREDITS)), by=st.sampled_from(PEOPLE))
    def reopen(self, credit, by):
        known = self.model.get(f"credit:{credit}")
        if known is None or known.status not in CLOSED:
            self._refused(lambda: self.book.reopen(credit, "not so fast", by=by))
            return
        self.book.reopen(credit, "not so fast", by=by)
        known.status = "investigating" if known.owner else "open"
        known.resolved_by = known.signed_off_by = None
        known.notes += 1

    def _refused(self, action) -> None:
        before = len(self.book.events())
        try:
            action()
        except BreakBookError:
            pass
        else:
            raise AssertionError("the book allowed what the rules forbid")
        assert len(self.book.events()) == before, "a refused action left an event"

    # --- invariants --------------------------------------------------------------------
    @invariant()
    def the_log_only_grows(self):
        log = self.book.events()
        assert log[: len(self.log)] == self.log
        assert [e.seq for e in log] == sorted({e.seq for e in log})
        self.log = log

    @invariant()
    def the_state_is_the_replay_of_the_log(self):
        assert self.book.stored_states() == self.book.replay()

    @invariant()
    def the_state_follows_the_rules(self):
        states = self.book.stored_states()
        assert set(states) == set(self.model)
        for key, expected in self.model.items():
            got = states[key]
            assert (got.outcome, got.status, got.owner, len(got.notes), got.resolved_by, got.signed_off_by) == (
                expected.outcome, expected.status, expected.owner, expected.notes, expected.resolved_by,
                expected.signed_off_by), key


BreakWorkflow.TestCase.settings = settings(max_examples=examples(20), stateful_step_count=15,  # each step writes the book
                                           deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
TestBreakWorkflow = BreakWorkflow.TestCase
