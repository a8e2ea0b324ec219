"""The break book's view model without widgets: a hypothesis state machine over filters, order,
pages, selection, single actions, bulk confirmations and another analyst writing meanwhile.

What must always hold: no action lands on another break than the one its label or confirmation
names; a confirmation carries exactly what it names (the breaks the view selected, their count
and their total per currency); a change of the view cancels a pending confirmation; after an
action the selection stays on the break acted on; and the view selects what its filters say,
never ordering amounts across currencies.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from decimal import Decimal
from functools import cache
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from reconkit.breakbook_view import ALL, ANYONE, MINE, SORTS, UNASSIGNED, VIEWS, BreakBookView
from reconkit.breaks import BreakBook
from reconkit.errors import BreakBookError

from .breaks_helpers import T0, credits_frame, days, run
from .conftest import examples

CREDITS = {"a": ("927.44", "USD"), "b": ("27250", "JPY"), "c": ("10.25", "USD"), "d": ("1.17", "GBP"),
           "e": ("0.44", "EUR"), "f": ("5.00", "USD")}
KEYS = [f"credit:{k}" for k in CREDITS]
CLOSED = {"resolved", "written_off", "timing_difference"}
VERBS = {"assign": "Assign", "note": "Add note to", "resolve": "Resolve", "sign_off": "Sign off", "reopen": "Reopen"}
FILTERS = st.one_of(
    st.tuples(st.just("status"), st.sampled_from(list(VIEWS))),
    st.tuples(st.just("owner"), st.sampled_from([ANYONE, MINE, UNASSIGNED, "bob", "carol"])),
    st.tuples(st.just("outcome"), st.sampled_from([ALL, "MISSING_PENDING", "AMOUNT_MISMATCH"])),
    st.tuples(st.just("currency"), st.sampled_from([ALL, "USD", "JPY", "EUR"])),
    st.tuples(st.just("text"), st.sampled_from(["", "credit:a", "C", "carol b"])),
    st.tuples(st.just("new_only"), st.booleans()),
    st.tuples(st.just("sort"), st.sampled_from(list(SORTS))),
)
PARAMS = {
    "assign": st.fixed_dictionaries({"owner": st.sampled_from(["", "ann", "bob", "carol"])}),
    "note": st.fixed_dictionaries({"text": st.sampled_from(["", "checked"])}),
    "resolve": st.fixed_dictionaries({"reason": st.sampled_from(["TIMING", "FALSE_BREAK", "OTHER"]),
                                      "status": st.sampled_from(sorted(CLOSED)),
                                      "note": st.sampled_from(["", "why"])}),
    "sign_off": st.just({}),
    "reopen": st.fixed_dictionaries({"why": st.sampled_from(["", "again"])}),
}
ACTIONS = st.sampled_from(list(PARAMS)).flatmap(lambda k: st.tuples(st.just(k), PARAMS[k]))
BULK = st.sampled_from(["assign", "note", "resolve"]).flatmap(lambda k: st.tuples(st.just(k), PARAMS[k]))


@cache
def _recorded() -> Path:
    """A ledger holding one recorded run (copied for each example: recording is the slow part)."""
    credits = credits_frame({k: a for k, (a, _c) in CREDITS.items()})
    credits["currency"] = [c for _a, c in CREDITS.values()]
    # "c" settles short (an amount mismatch); the others are missing.
    result = run(credits, [("r-c", "c", "10.00", "2026-11-03")], T0 + days(1))
    folder = tempfile.mkdtemp(prefix="bookview-template-")
    atexit.register(shutil.rmtree, folder, True)
    path = Path(folder) / "ledger.sqlite3"
    with BreakBook(path, analyst="ann") as book:
        book.record(result)
    return path


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount:,} {currency}"


def _expected_keys(book: BreakBook, view: BreakBookView) -> set[str]:
    """The keys the view's filters select, worked out here from the book's rows."""
    keys = set()
    words = view.text.replace(",", " ").split()
    for row in book.table().to_dict("records"):
        status = row["status"]
        wanted = {"open": status in ("open", "investigating"), "all": True,
                  "to_sign_off": status in CLOSED and row["signed_off_by"] is None}.get(view.status,
                                                                                        status == view.status)
        owner = {ANYONE: True, MINE: row["owner"] == book.analyst, UNASSIGNED: row["owner"] is None}.get(
            view.owner, row["owner"] == view.owner)
        text = " ".join(str(row[c] or "") for c in ("key", "owner", "detail")).lower()
        if (wanted and owner and view.outcome in (ALL, row["outcome"]) and view.currency in (ALL, row["currency"])
                and (not view.new_only or row["new"]) and (not words or any(w.lower() in text for w in words))):
            keys.add(row["key"])
    return keys


class ViewWorkflow(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="bookview-sm-"))
        shutil.copy(_recorded(), self.folder / "ledger.sqlite3")
        self.ann = BreakBook(self.folder / "ledger.sqlite3", analyst="ann")
        self.bob = BreakBook(self.folder / "ledger.sqlite3", analyst="bob")
        self.view = BreakBookView(self.ann, page_size=2)
        self.held = None
        self.old_pending = None

    def teardown(self) -> None:
        self.ann.close()
        self.bob.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _events(self):
        return self.ann.events()

    def _new_events(self, before: int):
        return self._events()[before:]

    # --- changing the view ---------------------------------------------------------------
    @rule(change=FILTERS)
    def filter(self, change):
        name, value = change
        if getattr(self.view, name) == value:
            return
        setattr(self.view, name, value)
        assert self.view.pending is None and self.view.page == 0
        page = list(self.view.page_frame()["key"])
        # The selection stays if the page shows it, else moves to the page's first break.
        assert self.view.selected in page if page else self.view.selected is None

    @rule(page=st.integers(0, 3))
    def go_to_page(self, page):
        if page == self.view.page:
            return
        self.view.page = page
        assert self.view.pending is None
        assert 0 <= self.view.page < self.view.pages

    @rule(key=st.sampled_from(KEYS))
    def pick(self, key):
        if key == self.view.selected:
            return
        self.view.selected = key
        assert self.view.pending is None and self.view.selected == key and self.view.shown.key == key

    @rule()
    def cancel(self):
        self.view.cancel()
        assert self.view.pending is None

    # --- one break ----------------------------------------------------------------------
    @rule(action=ACTIONS)
    def act(self, action):
        kind, params = action
        bound = self.view.bound(kind)
        before = len(self._events())
        if bound is None:
            with pytest.raises(BreakBookError, match="select a break first"):
                self.view.run(bound, **params)
            assert len(self._events()) == before
            return
        key = bound.targets[0].key
        seen = self.ann.get(key)
        # The label names the break: its key, amount and currency as the book holds them.
        assert bound.label == f"{VERBS[kind]} {key} · {_money(Decimal(seen.amount_at_risk), seen.currency)}"
        try:
            done = self.view.run(bound, **params)
        except BreakBookError:
            assert len(self._events()) == before  # refused: nothing written anywhere
        else:
            assert [(e.key, e.actor) for e in self._new_events(before)] == [(key, "ann")]
            assert [s.key for s in done.changed] == [key] and done.summary().startswith(f"{key} · ")
        assert self.view.selected == key  # the selection stays on the break acted on

    @rule(kind=st.sampled_from(list(PARAMS)))
    def hold(self, kind):
        self.held = self.view.bound(kind)

    @precondition(lambda self: self.held is not None)
    @rule()
    def run_held(self):
        held, self.held = self.held, None
        key = held.targets[0].key
        before = len(self._events())
        params = {"assign": {"owner": "ann"}, "note": {"text": "later"}, "resolve": {"reason": "TIMING"},
                  "reopen": {"why": "again"}}.get(held.kind, {})
        if key != self.view.selected:
            with pytest.raises(BreakBookError, match="no longer selected"):
                self.view.run(held, **params)
            assert len(self._events()) == before
            return
        try:
            self.view.run(held, **params)
        except BreakBookError:
            assert len(self._events()) == before
        else:
            assert {e.key for e in self._new_events(before)} == {key}

    # --- every break of the view --------------------------------------------------------
    @rule(action=BULK)
    def prepare(self, action):
        kind, params = action
        self.old_pending = self.view.pending
        expected = _expected_keys(self.ann, self.view)
        try:
            pending = self.view.prepare(kind, **params)
        except BreakBookError:
            assert self.view.pending is None
            return
        assert pending.keys == tuple(self.view.filtered()["key"]) and set(pending.keys) == expected
        totals: dict[str, Decimal] = {}
        for key in pending.keys:
            state = self.ann.get(key)
            totals[state.currency] = totals.get(state.currency, Decimal(0)) + Decimal(state.amount_at_risk)
        named = " · ".join(_money(totals[c], c) for c in sorted(totals))
        count = f"{len(expected)} break" + ("" if len(expected) == 1 else "s")
        assert pending.label == f"{VERBS[kind]} {count} ({named})"
        what = {"assign": f"Assign to {params.get('owner') or 'ann'}",
                "note": f"Add the note “{params.get('text')}” to",
                "resolve": f"Close as {params.get('status')} (reason {params.get('reason')})"
                           + (f" with the note “{params['note']}”" if params.get("note") else "")}[kind]
        assert pending.describe().startswith(f"{what} {count} worth {named}?")

    @precondition(lambda self: self.view.pending is not None)
    @rule()
    def confirm(self):
        pending = self.view.pending
        changed_since = {t.key for t in pending.targets if self.ann.get(t.key).version != t.version}
        before = len(self._events())
        done = self.view.confirm(pending)
        events = self._new_events(before)
        written = [e.key for e in events]
        assert len(written) == len(set(written)) and set(written) <= set(pending.keys)  # each named break once
        assert set(written) == {s.key for s in done.changed}
        assert {k for k, _ in done.conflicts} == changed_since
        parts = [*written, *(k for k, _ in done.conflicts), *(k for k, _ in done.refused)]
        assert sorted(parts) == sorted(pending.keys)  # every named break accounted for, once
        assert self.view.pending is None

    @precondition(lambda self: self.old_pending is not None and self.old_pending is not self.view.pending)
    @rule()
    def confirm_cancelled(self):
        before = len(self._events())
        with pytest.raises(BreakBookError, match="cancelled"):
            self.view.confirm(self.old_pending)
        assert len(self._events()) == before
        self.old_pending = None

    # --- someone else -------------------------------------------------------------------
    @rule(key=st.sampled_from(KEYS), assign=st.booleans())
    def bob_writes(self, key, assign):
        if assign:
            self.bob.assign(key, "bob")
        else:
            self.bob.note(key, "bob was here")

    @rule()
    def reload(self):
        pending = self.view.pending
        self.view.reload()
        assert self.view.pending is None or pending is None

    # --- always -------------------------------------------------------------------------
    @invariant()
    def pending_names_the_view(self):
        if self.view.pending is not None:
            assert self.view.pending.keys == tuple(self.view.filtered()["key"])

    @invariant()
    def selection_and_binding_agree(self):
        selected = self.view.selected
        assert selected is None or selected in KEYS
        for kind in VERBS:
            bound = self.view.bound(kind)
            assert (bound is None) == (selected is None)
            assert bound is None or bound.targets[0].key == selected

    @invariant()
    def amounts_stay_within_their_currency(self):
        if self.view.sort not in ("largest", "smallest"):
            return
        frame = self.view.filtered()
        currencies = list(frame["currency"])
        runs = [c for i, c in enumerate(currencies) if i == 0 or currencies[i - 1] != c]
        assert len(runs) == len(set(runs))  # each currency together
        for currency in set(currencies):
            amounts = list(frame.loc[frame["currency"] == currency, "amount_at_risk"])
            assert amounts == sorted(amounts, reverse=self.view.sort == "largest")


ViewWorkflow.TestCase.settings = settings(max_examples=examples(25), stateful_step_count=20,  # each step redraws the view
                                          deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
test_view_workflow = ViewWorkflow.TestCase
