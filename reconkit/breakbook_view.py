"""The break book as an analyst works it, without widgets: what the panel shows and what each
of its buttons will do.

:class:`BreakBookView` holds the view's state (the filters: status, owner, outcome, currency,
text and "new since the last run"; the order; the page; the selected break) and the actions.
Every action is an :class:`Action` that names the break(s) it will act on, each with the
version the analyst saw, which the book checks (``expected_version``) before it writes.

* A single action is bound to the selected break: its label, written on the button, names the
  break's key, amount and currency, and running it acts on that key only. An action bound to a
  break that is no longer selected is refused.
* A bulk action (assign, note or resolve every break the filters select, on every page) is a
  pending confirmation naming the count and the total per currency; confirming applies it to
  exactly those keys, each with its version, and reports per key the ones changed since or
  refused. Any change of the view (filters, order, page, selection) or of the book through
  this view cancels it.
* After an action the selection stays on the break acted on, even when the filters no longer
  select it (a resolved break leaves the "open" view but stays selected for its sign-off).

Amounts are never compared across currencies without rates: "largest first" orders each
currency's breaks by amount and keeps a currency's breaks together (the currency with the most
breaks first); given ``fx`` rates it orders by the converted amount.

The widgets of :class:`reconkit.widgets.BreaksPanel` are a view over this model (a model/view
pair as in aiidalab-qe); the tests drive the model without ipywidgets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from os import PathLike
from typing import Any

import pandas as pd
from traitlets import Bool, HasTraits, Instance, Int, Unicode, observe, validate

from .breaks import CLOSED, Break, BreakBook, Reason, Status
from .errors import BreakBookError, BreakConflictError, ConfigError
from .identity import identity_key

__all__ = ["ALL", "ANYONE", "BULK_KINDS", "KINDS", "MINE", "SORTS", "UNASSIGNED", "VIEWS", "Action",
           "BreakBookView", "Done", "Target", "format_totals", "money"]

ALL = "(all)"
"""The outcome or currency filter that selects every value."""
ANYONE, MINE, UNASSIGNED = "(anyone)", "(mine)", "(unassigned)"
"""Owner filters besides a name: no filter, the book's analyst, nobody."""

VIEWS: dict[str, str] = {
    "open": "open (open or investigating)", "to_sign_off": "closed, awaiting sign-off",
    **{s.value: s.value.replace("_", " ") for s in Status}, "all": "all",
}
"""The status filters (value: words): ``open`` is every break still being worked."""
_OPEN = frozenset({Status.OPEN.value, Status.INVESTIGATING.value})

SORTS: dict[str, str] = {
    "largest": "largest amount at risk first", "smallest": "smallest amount at risk first",
    "oldest": "longest open first", "newest": "newest first",
    "submitted": "longest since the credit's submission first",
    "status": "status", "owner": "owner", "outcome": "outcome", "key": "break key",
}
"""The orders offered (value: words). Amount orders never compare amounts across currencies
without rates."""

KINDS: dict[str, str] = {"assign": "Assign", "note": "Add note to", "resolve": "Resolve",
                         "sign_off": "Sign off", "reopen": "Reopen"}
"""Every action on a break, with the verb its button starts with."""
BULK_KINDS = ("assign", "note", "resolve")
"""The actions that can be applied to every break a view selects at once."""


def money(amount: Decimal | None, currency: str | None) -> str:
    """An amount as the analyst reads it: ``27,250 JPY``, ``1,234.50 USD`` (the digits it carries)."""
    if amount is None:
        return f"amount unknown {currency or ''}".rstrip()
    return f"{amount:,} {currency or '(no currency)'}"


def format_totals(totals: Mapping[str | None, Decimal | None]) -> str:
    """Totals per currency in currency order: ``1,234.00 USD · 27,250 JPY`` (one currency never
    added to another)."""
    if not totals:
        return "nothing"
    order = sorted(totals, key=lambda c: (c is None, c or ""))
    return " · ".join(money(totals[c], c) for c in order)


def _totals(amounts: Iterable[tuple[Decimal | None, str | None]]) -> dict[str | None, Decimal | None]:
    """Sum per currency; a currency with any unknown amount totals ``None`` (unknown)."""
    totals: dict[str | None, Decimal | None] = {}
    for amount, currency in amounts:
        if currency in totals and totals[currency] is None:
            continue
        totals[currency] = None if amount is None else totals.get(currency, Decimal(0)) + amount
    return totals


@dataclass(frozen=True)
class Target:
    """One break as an action names it: its key, the version the analyst saw, its amount at
    risk and currency."""

    key: str
    version: int
    amount: Decimal | None
    currency: str | None

    @classmethod
    def of(cls, state: Break) -> Target:
        """The target a break's current state names."""
        amount = None if state.amount_at_risk is None else Decimal(state.amount_at_risk)
        return cls(state.key, state.version, amount, state.currency)

    def words(self) -> str:
        """``credit:7001… · 27,250 JPY``."""
        return f"{self.key} · {money(self.amount, self.currency)}"


@dataclass(frozen=True)
class Action:
    """What a button will do: which action, on which breaks (each with the version seen) and,
    for a bulk action, with which parameters (frozen when its confirmation was shown).

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    targets : tuple of Target
        One target for a single action; every break the view selected for a bulk one.
    params : tuple of (name, value)
        A bulk action's parameters (owner, note, reason, status); empty for a single action,
        which takes them when it runs.
    bulk : bool
    """

    kind: str
    targets: tuple[Target, ...]
    params: tuple[tuple[str, str], ...] = ()
    bulk: bool = False

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys of the breaks it acts on, in order."""
        return tuple(t.key for t in self.targets)

    def totals(self) -> dict[str | None, Decimal | None]:
        """Amount at risk per currency of its breaks."""
        return _totals((t.amount, t.currency) for t in self.targets)

    @property
    def label(self) -> str:
        """The button's words: the verb and the break (key, amount, currency), or for a bulk
        action the count and the total per currency."""
        verb = KINDS[self.kind]
        if not self.bulk:
            return f"{verb} {self.targets[0].words()}"
        return f"{verb} {_count(len(self.targets))} ({format_totals(self.totals())})"

    def describe(self) -> str:
        """The confirmation in one sentence: what is done to how many breaks, worth what."""
        params = dict(self.params)
        what = {"assign": f"assign to {params.get('owner')}",
                "note": f"add the note “{params.get('text')}” to",
                "resolve": f"close as {params.get('status')} (reason {params.get('reason')})"
                           + (f" with the note “{params['note']}”" if params.get("note") else ""),
                "sign_off": "sign off", "reopen": f"reopen (“{params.get('why')}”)"}[self.kind]
        return (f"{what[0].upper()}{what[1:]} {_count(len(self.targets))} worth {format_totals(self.totals())}? "
                "Each break is changed only if nobody changed it since this view read it.")


def _count(n: int) -> str:
    return f"{n:,} break" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class Done:
    """What an action did: the breaks changed (their states after), and per key the ones
    changed by someone else since the view read them (``conflicts``) or refused by the book's
    rules (``refused``), each with the book's sentence."""

    action: Action
    changed: tuple[Break, ...] = ()
    conflicts: tuple[tuple[str, str], ...] = ()
    refused: tuple[tuple[str, str], ...] = ()
    words: tuple[str, ...] = field(default=(), compare=False)

    def summary(self) -> str:
        """One line: for a single action the break and what happened to it; for a bulk action
        how many of how many were changed, and how many were not."""
        if not self.action.bulk:
            return "; ".join(self.words)
        verb = KINDS[self.action.kind]
        text = f"{verb}: {len(self.changed):,} of {_count(len(self.action.targets))} done"
        if self.conflicts:
            text += f", {len(self.conflicts):,} changed by someone else since (not done)"
        if self.refused:
            text += f", {len(self.refused):,} refused"
        return text


class BreakBookView(HasTraits):
    """The break book's view state and actions, without widgets.

    Parameters
    ----------
    book : BreakBook
        The book; its ``analyst`` is who acts.
    page_size : int
        Breaks per page.
    fx : mapping, optional
        Units of the base currency per unit of each currency (``{"JPY": "0.0067"}``): amount
        orders then compare converted amounts; currencies without a rate come after the
        converted ones, each kept together.
    base : str, optional
        The base currency (its rate is 1).

    Notes
    -----
    Change the filters by assigning the traits (``view.currency = "USD"``); every change
    re-reads the book, returns to the first page, cancels a pending bulk action and keeps the
    selection if the page still shows it (else selects the page's first break).
    """

    status = Unicode("open", help="A key of VIEWS.")
    owner = Unicode(ANYONE, help="ANYONE, MINE, UNASSIGNED or an owner's name.")
    outcome = Unicode(ALL, help="ALL or an outcome.")
    currency = Unicode(ALL, help="ALL or a currency code.")
    text = Unicode("", help="Words any of which a break's key, owner or detail contains (any case).")
    new_only = Bool(False, help="Only breaks the latest run saw first.")
    sort = Unicode("largest", help="A key of SORTS.")
    page = Int(0, help="The page shown, from 0.")
    selected = Unicode(None, allow_none=True, help="The key of the selected break.")
    pending = Instance(Action, allow_none=True, help="The bulk action awaiting confirmation.")
    message = Unicode("", help="What the last step did, in words.")
    revision = Int(0, help="Counts every redraw-worthy change (a view observes it).")

    def __init__(self, book: BreakBook, *, page_size: int = 50, fx: Mapping[str, Any] | None = None,
                 base: str | None = None) -> None:
        super().__init__()
        if page_size < 1:
            raise ConfigError("page_size", f"a page holds at least one break, not {page_size}")
        self.book = book
        self.page_size = page_size
        self.fx = _rates(fx, base)
        self.last: Done | None = None
        """What the last action did (``None`` once the selection moves to another break)."""
        self.shown: Break | None = None
        """The selected break as last read from the book."""
        self._book_frame = pd.DataFrame()
        self._frame = pd.DataFrame()
        self._settling = False
        self._recorded = 0
        self.reload()

    # --- validation ----------------------------------------------------------------------
    @validate("status")
    def _valid_status(self, proposal: dict[str, Any]) -> str:
        return _one_of(proposal["value"], VIEWS, "status")

    @validate("sort")
    def _valid_sort(self, proposal: dict[str, Any]) -> str:
        return _one_of(proposal["value"], SORTS, "sort")

    @validate("selected")
    def _valid_selected(self, proposal: dict[str, Any]) -> str | None:
        return None if proposal["value"] is None else self.book.find(proposal["value"])

    # --- keeping the view consistent ------------------------------------------------------
    @observe("status", "owner", "outcome", "currency", "text", "new_only", "sort")
    def _on_filters(self, _change: Any) -> None:
        if not self._settling:
            self._settle(first_page=True)

    @observe("page")
    def _on_page(self, _change: Any) -> None:
        if not self._settling:
            self._settle()

    @observe("selected")
    def _on_selected(self, change: dict[str, Any]) -> None:
        self.pending = None
        if self.last is not None and change["new"] not in self.last.action.keys:
            self.last, self.message = None, ""
        self._read_selected()
        if not self._settling:
            self.revision += 1

    def _settle(self, *, first_page: bool = False, keep_selection: bool = False) -> None:
        """Re-read the book and make page and selection agree with the filters."""
        self._settling = True
        try:
            self.pending = None
            if first_page:
                self.page = 0
            self._book_frame = self.book.table()
            self._frame = self._order(self._select(self._book_frame))
            self.page = min(max(self.page, 0), self.pages - 1)
            exists = self.selected is not None and self.selected in set(self._book_frame["key"])
            on_page = self.selected in set(self.page_frame()["key"])
            if not exists or not (on_page or keep_selection):
                keys = list(self.page_frame()["key"])
                first = keys[0] if keys else None
                if first != self.selected:
                    self.selected = first
                    return
            self._read_selected()
        finally:
            self._settling = False
            self.revision += 1

    def _read_selected(self) -> None:
        self.shown = None if self.selected is None else self.book.get(self.selected)

    @property
    def stamp(self) -> tuple[int, int, int]:
        """Changes whenever the book read last differs from the one read before (breaks, their
        latest event, runs recorded here): a view redraws what it derives from the whole book
        (runs, aging) only then."""
        frame = self._book_frame
        return len(frame), int(frame["version"].max()) if len(frame) else 0, self._recorded

    def reload(self) -> None:
        """Re-read the book (another notebook may have changed it); the selection stays."""
        self._settle(keep_selection=True)

    # --- what the view shows ---------------------------------------------------------------
    def filtered(self) -> pd.DataFrame:
        """Every break the filters select, in the chosen order (all pages)."""
        return self._frame

    @property
    def pages(self) -> int:
        """How many pages the filtered breaks fill (at least one)."""
        return max(1, -(-len(self._frame) // self.page_size))

    def page_frame(self) -> pd.DataFrame:
        """The breaks on the current page."""
        start = self.page * self.page_size
        return self._frame.iloc[start:start + self.page_size].reset_index(drop=True)

    def totals(self, frame: pd.DataFrame | None = None) -> dict[str | None, Decimal | None]:
        """Amount at risk per currency of ``frame`` (default: every break the filters select)."""
        frame = self._frame if frame is None else frame
        return _totals(zip(frame["amount_at_risk"], frame["currency"], strict=True)) if len(frame) else {}

    def choices(self) -> dict[str, list[tuple[str, str]]]:
        """The values each filter offers now, as (words, value): statuses, owners (and the
        value set even if the book no longer holds it), outcomes, currencies, orders."""
        frame = self._book_frame

        def present(column: str, current: str, first: list[tuple[str, str]]) -> list[tuple[str, str]]:
            values = sorted({str(v) for v in frame[column].dropna()}) if len(frame) else []
            offered = [value for _, value in first]
            extra = [current] if current not in values and current not in offered else []
            return [*first, *((v, v) for v in [*values, *extra])]

        return {
            "status": [(words, value) for value, words in VIEWS.items()],
            "owner": present("owner", self.owner, [("anyone", ANYONE), (f"mine ({self.book.analyst})", MINE),
                                                   ("nobody", UNASSIGNED)]),
            "outcome": present("outcome", self.outcome, [("all", ALL)]),
            "currency": present("currency", self.currency, [("all", ALL)]),
            "sort": [(self.sort_words(value), value) for value in SORTS],
        }

    def sort_words(self, sort: str | None = None) -> str:
        """The order in words (saying how amounts in several currencies are compared)."""
        sort = sort or self.sort
        words = SORTS[sort]
        if sort in ("largest", "smallest"):
            words += ", converted at the rates given" if self.fx else ", within each currency"
        return words

    @property
    def grouped(self) -> bool:
        """Whether the order keeps each currency's breaks together (an amount order without rates)."""
        return self.sort in ("largest", "smallest") and not self.fx

    def unconverted(self) -> list[str]:
        """Currencies in the view with no rate in ``fx`` (listed after the converted breaks)."""
        if not self.fx:
            return []
        return sorted({str(c) for c in self._frame["currency"].dropna()} - set(self.fx)) if len(self._frame) else []

    # --- filtering and ordering -----------------------------------------------------------
    def _select(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not len(frame):
            return frame
        keep = pd.Series(True, index=frame.index)
        if self.status == "to_sign_off":
            keep &= frame["status"].isin(CLOSED) & frame["signed_off_by"].isna()
        elif self.status == "open":
            keep &= frame["status"].isin(_OPEN)
        elif self.status != "all":
            keep &= frame["status"] == self.status
        if self.owner == MINE:  # "mine" as identities compare: "Ann" owns what "ann" was assigned
            me = identity_key(self.book.analyst)
            keep &= frame["owner"].map(lambda owner: isinstance(owner, str) and identity_key(owner) == me).astype(bool)
        elif self.owner == UNASSIGNED:
            keep &= frame["owner"].isna()
        elif self.owner != ANYONE:
            keep &= frame["owner"] == self.owner
        for trait, column in (("outcome", "outcome"), ("currency", "currency")):
            value = getattr(self, trait)
            if value != ALL:
                keep &= frame[column] == value
        if self.new_only:
            keep &= frame["new"].astype(bool)
        needles = [n.casefold() for n in re.split(r"[\s,;]+", self.text) if n]
        if needles:
            hay = (frame["key"].fillna("") + "\n" + frame["owner"].fillna("") + "\n"
                   + frame["detail"].fillna("")).str.casefold()
            keep &= hay.map(lambda h: any(n in h for n in needles)).astype(bool)
        return frame[keep.fillna(False).astype(bool)]

    def _order(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not len(frame):
            return frame.reset_index(drop=True)
        rows = frame.to_dict("records")
        counts = frame["currency"].value_counts(dropna=False).to_dict()
        descending = self.sort != "smallest"

        def amount_key(row: dict[str, Any]) -> tuple[Any, ...]:
            amount, currency = row["amount_at_risk"], row["currency"]
            currency = None if pd.isna(currency) else currency
            unknown = amount is None or (not isinstance(amount, Decimal) and pd.isna(amount))
            signed = Decimal(0) if unknown else (-amount if descending else amount)
            rate = self.fx.get(currency) if self.fx and currency is not None else None
            if rate is not None:  # converted: one scale for every currency with a rate
                return (0, 0, "", unknown, signed * rate if not unknown else signed)
            # Each currency's breaks together, the currency with the most breaks first.
            return (1, -counts.get(currency, 0), currency or "\uffff", unknown, signed)

        def text_key(column: str) -> Any:
            return lambda row: (pd.isna(row[column]), "" if pd.isna(row[column]) else str(row[column]))

        def days_key(column: str, longest: bool) -> Any:
            def key(row: dict[str, Any]) -> tuple[bool, int]:
                value = row[column]
                return (pd.isna(value), 0 if pd.isna(value) else (-int(value) if longest else int(value)))
            return key

        by = {"largest": amount_key, "smallest": amount_key, "oldest": days_key("days_open", True),
              "newest": days_key("days_open", False), "submitted": days_key("days_since_submission", True),
              "status": text_key("status"), "owner": text_key("owner"), "outcome": text_key("outcome"),
              "key": text_key("key")}[self.sort]
        order = sorted(range(len(rows)), key=lambda i: (by(rows[i]), rows[i]["key"]))
        return frame.iloc[order].reset_index(drop=True)

    # --- single actions: bound to the selected break -----------------------------------------
    def bound(self, kind: str) -> Action | None:
        """The action a button of ``kind`` takes now: on the selected break, at the version shown
        (``None`` with nothing selected)."""
        _one_of(kind, KINDS, "action")
        if self.shown is None:
            return None
        return Action(kind, (Target.of(self.shown),))

    def why_not(self, kind: str) -> str | None:
        """Why ``kind`` cannot apply to the selected break as shown (``None`` if it can)."""
        state = self.shown
        if state is None:
            return "select a break first"
        if kind == "resolve" and state.closed:
            return f"it is already {state.status}"
        if kind == "reopen" and not state.closed:
            return f"it is {state.status}, not closed"
        if kind == "sign_off" and not state.closed:
            return "only a closed break is signed off"
        if kind == "sign_off" and state.signed_off_by:
            return f"signed off by {state.signed_off_by}"
        return None

    def run(self, action: Action | None, **params: Any) -> Done:
        """Carry out a single action on the break it names, with ``params`` (``owner``; ``text``;
        ``reason``, ``status``, ``note``; ``note``; ``why``).

        Raises
        ------
        BreakBookError
            With nothing selected, when the action names a break that is no longer selected, or
            when the book refuses it (:class:`BreakConflictError` if the break changed since the
            version the action carries; the view then shows the break as it now is).
        """
        if action is None:
            raise BreakBookError("select a break first")
        if action.bulk:
            raise BreakBookError(f"{action.label} is a bulk action: confirm it instead")
        target = action.targets[0]
        if target.key != self.selected:
            raise BreakBookError(f"“{action.label}” named {target.key}, which is no longer selected "
                                 f"(now {self.selected or 'none'}): nothing was done")
        self.pending = None
        self.last, self.message = None, ""
        try:
            state, words = self._apply(action.kind, target, self._params(action.kind, params))
        except BreakBookError:
            self.reload()  # the break as it now is, before the refusal is read
            raise
        done = Done(action, (state,), words=(f"{target.words()}: {words} (now {state.status}, "
                                             f"version {state.version})",))
        self.last, self.message = done, done.summary()
        self.reload()
        return done

    # --- bulk actions: a confirmation naming count and totals --------------------------------
    def prepare(self, kind: str, **params: Any) -> Action:
        """Make ``kind`` over every break the filters select the pending confirmation (its
        parameters frozen now) and return it; nothing is written until :meth:`confirm`."""
        # A new request replaces the confirmation and message shown, even when refused below.
        self.pending, self.last, self.message = None, None, ""
        self.revision += 1
        if kind not in BULK_KINDS:
            raise BreakBookError(f"{kind!r} is not done in bulk; one of {', '.join(BULK_KINDS)} is")
        frame = self._frame
        if not len(frame):
            raise BreakBookError("no break in this view: nothing to " + KINDS[kind].lower())
        frozen = self._params(kind, params)
        targets = tuple(Target(str(r["key"]), int(r["version"]),
                               None if r["amount_at_risk"] is None or pd.isna(r["amount_at_risk"])
                               else r["amount_at_risk"], None if pd.isna(r["currency"]) else r["currency"])
                        for r in frame.to_dict("records"))
        self.pending = Action(kind, targets, tuple(sorted((k, v) for k, v in frozen.items() if v is not None)),
                              bulk=True)
        self.revision += 1
        return self.pending

    def cancel(self) -> None:
        """Drop the pending confirmation."""
        if self.pending is not None:
            self.pending = None
            self.revision += 1

    def confirm(self, action: Action | None) -> Done:
        """Apply the pending bulk action: exactly its keys, each at the version it carries.

        Raises
        ------
        BreakBookError
            If ``action`` is not the pending confirmation (cancelled by a change of the view,
            or replaced by another).
        """
        if action is None or action is not self.pending:
            raise BreakBookError("this confirmation was cancelled (the view changed since it was shown): "
                                 "nothing was done; ask again")
        self.pending = None
        params = dict(action.params)
        changed, conflicts, refused = [], [], []
        for target in action.targets:
            try:
                changed.append(self._apply(action.kind, target, params)[0])
            except BreakConflictError as exc:
                conflicts.append((target.key, str(exc)))
            except BreakBookError as exc:
                refused.append((target.key, str(exc)))
        done = Done(action, tuple(changed), tuple(conflicts), tuple(refused))
        self.last, self.message = done, done.summary()
        self.reload()
        return done

    # --- runs ---------------------------------------------------------------------------
    def record(self, result: Any, inputs: Iterable[str | PathLike[str] | Mapping[str, Any]] = (),
               **options: Any) -> int:
        """Record a reconciliation run (``options`` go to :meth:`BreakBook.record`) and say what
        changed since the last one; a pending confirmation is cancelled."""
        run_id = self.book.record(result, inputs=inputs, **options)
        self._recorded += 1
        text = f"recorded run {run_id}"
        if len(self.book.runs()) > 1:
            text += " · " + self.book.diff().summary_text()
        self.last, self.message = None, text
        self.reload()
        return run_id

    # --- the book's calls ------------------------------------------------------------------
    def _params(self, kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters of ``kind`` as the book takes them (blanks refused here, in words)."""
        def text(name: str) -> str:
            return str(params.get(name) or "").strip()

        if kind == "assign":
            return {"owner": text("owner") or self.book.analyst}
        if kind == "note":
            if not text("text"):
                raise BreakBookError("type the note first: a note needs text")
            return {"text": text("text")}
        if kind == "resolve":
            if not text("reason"):
                raise BreakBookError("choose a reason code first: a break is closed with a reason")
            if text("reason").upper() == Reason.OTHER and not text("note"):
                raise BreakBookError("reason OTHER needs a note saying what was found: type it first")
            return {"reason": text("reason"), "status": text("status") or Status.RESOLVED.value,
                    "note": text("note") or None}
        if kind == "reopen":
            if not text("why"):
                raise BreakBookError("say why first: reopening needs a reason in words")
            return {"why": text("why")}
        return {"note": text("note") or None}

    def _apply(self, kind: str, target: Target, params: Mapping[str, Any]) -> tuple[Break, str]:
        book, key, version = self.book, target.key, target.version
        if kind == "assign":
            state = book.assign(key, params["owner"], expected_version=version)
            return state, f"assigned to {params['owner']}"
        if kind == "note":
            return book.note(key, params["text"], expected_version=version), "note added"
        if kind == "resolve":
            state = book.resolve(key, params["reason"], status=params["status"], note=params.get("note"),
                                 expected_version=version)
            return state, f"{state.status} ({state.reason})"
        if kind == "reopen":
            return book.reopen(key, params["why"], expected_version=version), "reopened"
        state = book.sign_off(key, note=params.get("note"), expected_version=version)
        return state, f"signed off by {state.signed_off_by}"


def _one_of(value: str, allowed: Mapping[str, Any], what: str) -> str:
    if value not in allowed:
        raise BreakBookError(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return value


def _rates(fx: Mapping[str, Any] | None, base: str | None) -> dict[str, Decimal]:
    if not fx:
        return {}
    rates = {}
    for code, rate in fx.items():
        try:
            value = Decimal(str(rate).strip())
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or value <= 0:
            raise ConfigError("fx", f"the rate for {code} must be a positive number such as 0.0067, not {rate!r}")
        rates[str(code).strip().upper()] = value
    if base:
        rates.setdefault(base.strip().upper(), Decimal(1))
    return rates
