"""The break book in a notebook: a view over :class:`reconkit.breakbook_view.BreakBookView`.

The book's breaks, filtered (status, owner, outcome, currency, words, new since the last run),
ordered and paged; one break selected and worked with buttons that each name the break they
act on (key, amount, currency); and bulk assign / note / resolve over every break the filters
select, after one confirmation naming the count and the total per currency.

Every action carries the break's key and the version the panel showed; if someone else (another
notebook) changed the break since, the book refuses it and the panel shows the break as it now
is. After an action the selection stays on the break acted on. Every control sits in rows that
wrap and a single column, so nothing needs a horizontal scroll at 1280 px. A host app (notebook
02's investigation) embeds it and calls :meth:`BreaksPanel.record` after each reconciliation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from os import PathLike
from typing import Any

import ipywidgets as w
import pandas as pd

from ..breakbook_view import KINDS, Action, BreakBookView, Done, format_totals, money
from ..breaks import AUTOMATIC_REASONS, CLOSED, Break, BreakBook, Reason, Status
from ..markup import format_amount
from .common import App, escape, guarded, table_html

__all__ = ["BreaksPanel"]

_COLUMNS = ["key", "status", "owner", "outcome", "amount_at_risk", "currency", "days_open", "open_bucket",
            "days_since_submission", "category", "new"]
_LABELS = {"key": "Break", "status": "Status", "owner": "Owner", "outcome": "Outcome",
           "amount_at_risk": "Amount at risk", "currency": "Currency", "days_open": "Days open",
           "open_bucket": "Open (days)", "days_since_submission": "Days since submitted", "category": "Kind",
           "new": "New since last run"}
"""The book's columns in analyst words."""
_STYLE = {"description_width": "initial"}
_ROW = {"flex_flow": "row wrap", "align_items": "center", "width": "100%"}
"""A row of controls that wraps onto the next line rather than growing past the page."""


def _fit() -> w.Layout:
    """A button as wide as its words, never squeezed by the fields beside it."""
    return w.Layout(width="auto", flex="0 0 auto", max_width="100%")


def _row(*children: w.Widget) -> w.HBox:
    return w.HBox(list(children), layout=w.Layout(**_ROW))


def _shown(frame: pd.DataFrame) -> pd.DataFrame:
    """The book's rows as the analyst reads them: labelled columns, amounts with separators."""
    shown = frame[_COLUMNS].copy()
    shown["amount_at_risk"] = shown["amount_at_risk"].map(format_amount)
    shown["new"] = shown["new"].map({True: "new", False: ""})
    return shown.rename(columns=_LABELS)


class BreaksPanel(App):
    """The break book as an app.

    Parameters
    ----------
    book : BreakBook
        The book (in the ledger file); its ``analyst`` is who acts and is shown.
    page_size : int
        Rows shown at once.
    fx, base : optional
        Rates to the base currency: "largest first" then compares converted amounts (see
        :class:`~reconkit.breakbook_view.BreakBookView`).
    """

    def __init__(self, book: BreakBook, *, page_size: int = 50, fx: Mapping[str, Any] | None = None,
                 base: str | None = None) -> None:
        self.on_change: Callable[[], Any] | None = None
        """Called after every change the panel makes (a host redraws what shows the book)."""
        self._rendering = False
        self._bound: dict[str, Action | None] = {}
        self._confirming: Action | None = None
        self._drawn_stamp: tuple[int, int, int] | None = None
        self.who = w.HTML(f"<b>analyst:</b> {escape(book.analyst)}")
        # which breaks, in which order, which page
        self.view = w.Dropdown(description="show", style=_STYLE)
        self.owner_filter = w.Dropdown(description="owner", style=_STYLE)
        self.outcome_filter = w.Dropdown(description="outcome", style=_STYLE)
        self.currency_filter = w.Dropdown(description="currency", style=_STYLE, layout=w.Layout(width="auto"))
        self.search = w.Text(description="search", placeholder="break key, credit id, owner or words", style=_STYLE,
                             layout=w.Layout(width="340px"))
        self.new_only = w.Checkbox(value=False, description="new since last run", indent=False,
                                   layout=w.Layout(width="auto"))
        self.sort_by = w.Dropdown(description="order", style=_STYLE, layout=w.Layout(width="auto"))
        self.prev_button = w.Button(description="◀ Previous", layout=_fit())
        self.page_box = w.BoundedIntText(value=1, min=1, max=1, description="page", style=_STYLE,
                                         layout=w.Layout(width="110px"))
        self.page_label = w.HTML()
        self.next_button = w.Button(description="Next ▶", layout=_fit())
        self.summary = w.HTML()
        self.table = w.HTML()
        # one break
        self.pick = w.Dropdown(options=[], description="break", style=_STYLE,
                               layout=w.Layout(width="100%", max_width="760px"))
        self.details = w.HTML()
        self.owner = w.Text(description="assign to", placeholder=book.analyst, style=_STYLE)
        self.assign_button = w.Button(layout=_fit())
        self.note_text = w.Textarea(description="note", placeholder="what you found", style=_STYLE)
        self.note_button = w.Button(layout=_fit())
        self.reason = w.Dropdown(options=[r.value for r in Reason if r not in AUTOMATIC_REASONS], description="reason",
                                 style=_STYLE, layout=w.Layout(width="auto"))
        self.close_as = w.Dropdown(options=sorted(CLOSED), value=Status.RESOLVED.value, description="close as",
                                   style=_STYLE, layout=w.Layout(width="auto"))
        self.resolve_button = w.Button(button_style="warning", layout=_fit())
        self.sign_button = w.Button(button_style="success", layout=_fit())
        self.why = w.Text(description="why", placeholder="reason to reopen", style=_STYLE)
        self.reopen_button = w.Button(layout=_fit())
        # every break of the view
        self.bulk_assign_button = w.Button(description="Assign all in this view…", layout=_fit())
        self.bulk_note_button = w.Button(description="Add the note to all in this view…", layout=_fit())
        self.bulk_resolve_button = w.Button(description="Resolve all in this view…", button_style="warning",
                                            layout=_fit())
        self.confirm_text = w.HTML()
        self.confirm_button = w.Button(button_style="danger", layout=_fit())
        self.cancel_button = w.Button(description="Cancel", layout=_fit())
        self.confirm_box = w.VBox([self.confirm_text, _row(self.confirm_button, self.cancel_button)],
                                  layout=w.Layout(display="none", border="1px solid #b8860b", padding="4px"))
        self.message = w.HTML()
        self.error = w.HTML()
        self.runs = w.HTML()
        self.aging = w.HTML()
        self._buttons = {"assign": self.assign_button, "note": self.note_button, "resolve": self.resolve_button,
                         "sign_off": self.sign_button, "reopen": self.reopen_button}

        self.model = BreakBookView(book, page_size=page_size, fx=fx, base=base)
        """The widget-free model this panel shows and acts through."""
        for widget, trait in ((self.view, "status"), (self.owner_filter, "owner"), (self.outcome_filter, "outcome"),
                              (self.currency_filter, "currency"), (self.search, "text"), (self.new_only, "new_only"),
                              (self.sort_by, "sort")):
            widget.observe(self._to_model(trait), names="value")
        self.page_box.observe(self._on_page_box, names="value")
        self.pick.observe(self._on_pick, names="value")
        for widget in (self.owner, self.note_text, self.reason, self.close_as):
            widget.observe(self._on_field, names="value")
        self.prev_button.on_click(self.on_prev)
        self.next_button.on_click(self.on_next)
        self.assign_button.on_click(self.on_assign)
        self.note_button.on_click(self.on_note)
        self.resolve_button.on_click(self.on_resolve)
        self.sign_button.on_click(self.on_sign_off)
        self.reopen_button.on_click(self.on_reopen)
        self.bulk_assign_button.on_click(self.on_bulk_assign)
        self.bulk_note_button.on_click(self.on_bulk_note)
        self.bulk_resolve_button.on_click(self.on_bulk_resolve)
        self.confirm_button.on_click(self.on_confirm)
        self.cancel_button.on_click(self.on_cancel)
        self.model.observe(lambda _change: self.render(), names="revision")

        super().__init__([
            self.who,
            _row(self.view, self.owner_filter, self.outcome_filter, self.currency_filter, self.search,
                 self.new_only, self.sort_by),
            _row(self.prev_button, self.page_box, self.page_label, self.next_button),
            self.summary, self.error, self.message, self.table,
            w.HTML("<b>Work on one break</b>"), self.pick, self.details,
            _row(self.owner, self.assign_button),
            _row(self.note_text, self.note_button),
            _row(self.reason, self.close_as, self.resolve_button),
            _row(self.sign_button),
            _row(self.why, self.reopen_button),
            w.HTML("<b>Work on every break in this view</b> (all pages; with the owner, note, reason and "
                   "“close as” above)"),
            _row(self.bulk_assign_button, self.bulk_note_button, self.bulk_resolve_button),
            self.confirm_box,
            self.runs, self.aging,
        ], layout=w.Layout(width="100%", max_width="100%"))
        self.add_class("reconkit-breakbook")
        self.render()

    # --- the host's entry points -----------------------------------------------------------
    @property
    def book(self) -> BreakBook:
        """The book this panel works on."""
        return self.model.book

    @property
    def shown(self) -> Break | None:
        """The selected break as last read from the book."""
        return self.model.shown

    @guarded
    def record(self, result: Any, inputs: Iterable[str | PathLike[str]] = (), **options: Any) -> int | None:
        """Record a reconciliation run in the book and show what changed since the last one
        (``options`` go to :meth:`BreakBook.record`)."""
        self.error.value = ""
        return self.model.record(result, inputs, **options)

    def filtered(self) -> pd.DataFrame:
        """The breaks the filters select, in the chosen order (every page)."""
        return self.model.filtered()

    def refresh(self) -> None:
        """Re-read the book (another notebook may have changed it) and redraw."""
        self.model.reload()

    # --- drawing the model ------------------------------------------------------------------
    def render(self) -> None:
        """Draw every widget from the model (widget events raised meanwhile are ignored)."""
        model = self.model
        self._rendering = True
        try:
            choices = model.choices()
            for widget, name in ((self.view, "status"), (self.owner_filter, "owner"),
                                 (self.outcome_filter, "outcome"), (self.currency_filter, "currency"),
                                 (self.sort_by, "sort")):
                # Options sent again reset the browser's choice: send them only when they change.
                if tuple(widget.options) != tuple(choices[name]):
                    widget.options = choices[name]
                if widget.value != getattr(model, name):
                    widget.value = getattr(model, name)
            if self.search.value != model.text:
                self.search.value = model.text
            self.new_only.value = model.new_only
            self._render_table()
            self._render_pick()
            self._render_actions()
            self.message.value = self._message_html(model.last) if model.last is not None else \
                escape(model.message)
            if model.stamp != self._drawn_stamp:  # the runs and the aging read the whole book
                self._drawn_stamp = model.stamp
                runs = model.book.runs()
                self.runs.value = table_html(runs.tail(5)) if len(runs) else "<p>No run recorded yet.</p>"
                aging = model.book.aging()
                self.aging.value = table_html(aging[aging["breaks"] > 0]) if (aging["breaks"] > 0).any() else ""
        finally:
            self._rendering = False

    def _render_table(self) -> None:
        model = self.model
        frame, page = model.filtered(), model.page_frame()
        self.page_box.max = model.pages
        self.page_box.value = model.page + 1
        self.page_label.value = f"of {model.pages} · {len(frame):,} break(s)"
        self.prev_button.disabled = model.page == 0
        self.next_button.disabled = model.page >= model.pages - 1
        total = f"{len(frame):,} break(s) in this view, at risk {escape(format_totals(model.totals()))}"
        order = f"order: {escape(model.sort_words())}"
        if model.unconverted():
            order += (f"; no rate for {escape(', '.join(model.unconverted()))}: listed after the converted "
                      "breaks, each currency together")
        self.summary.value = f"<div class='reconkit-book-summary'>{total} · {order}</div>"
        if not len(page):
            self.table.value = "<p>No breaks.</p>"
            return
        if not model.grouped:
            self.table.value = table_html(_shown(page))
            return
        # An amount order without rates keeps each currency together: say where one ends.
        parts, start = [], 0
        currencies = list(page["currency"])
        for end in range(1, len(page) + 1):
            if end == len(page) or currencies[end] != currencies[start]:
                currency = currencies[start]
                same = frame[frame["currency"] == currency] if currency is not None else frame[frame["currency"].isna()]
                parts.append(f"<div class='reconkit-book-group'><b>{escape(str(currency or 'no currency'))}"
                             f"</b>: {len(same):,} break(s) in this view</div>"
                             + table_html(_shown(page.iloc[start:end])))
                start = end
        self.table.value = "".join(parts)

    def _render_pick(self) -> None:
        model = self.model
        page = model.page_frame()
        options = [(f"{r.key} · {money(r.amount_at_risk, r.currency)} · {r.status}", r.key)
                   for r in page.itertuples()]
        shown = model.shown
        if shown is not None and shown.key not in set(page["key"]):
            # Kept selected after an action, though this view no longer lists it.
            amount = None if shown.amount_at_risk is None else Decimal(shown.amount_at_risk)
            options.append((f"{shown.key} · {money(amount, shown.currency)} · {shown.status} (not in this view)",
                            shown.key))
        if tuple(self.pick.options) != tuple(options):
            self.pick.options = options
        if self.pick.value != model.selected:
            self.pick.value = model.selected
        self.details.value = _details(shown) if shown is not None else ""

    def _render_actions(self) -> None:
        model = self.model
        for kind, button in self._buttons.items():
            action = model.bound(kind)
            self._bound[kind] = action
            button.description = action.label if action is not None else f"{KINDS[kind]} (select a break)"
            why_not = model.why_not(kind)
            button.disabled = why_not is not None
            button.tooltip = (why_not or action.label) if action is not None else "select a break first"
        empty = not len(model.filtered())
        for button in (self.bulk_assign_button, self.bulk_note_button, self.bulk_resolve_button):
            button.disabled = empty
        pending = model.pending
        self._confirming = pending
        if pending is None:
            self.confirm_box.layout.display = "none"
            self.confirm_text.value = ""
            self.confirm_button.description = "Confirm"
            return
        self.confirm_text.value = f"<div class='reconkit-confirm'>{escape(pending.describe())}</div>"
        self.confirm_button.description = pending.label
        self.confirm_box.layout.display = "flex"

    @staticmethod
    def _message_html(done: Done) -> str:
        text = escape(done.summary())
        problems = [*((k, "changed since", m) for k, m in done.conflicts),
                    *((k, "refused", m) for k, m in done.refused)]
        if not problems:
            return text
        items = "".join(f"<li><code>{escape(k)}</code> {what}: {escape(m)}</li>" for k, what, m in problems)
        return f"{text}<ul class='reconkit-not-done'>{items}</ul>"

    # --- widget events into the model ---------------------------------------------------------
    def _to_model(self, trait: str) -> Callable[[dict[str, Any]], None]:
        @guarded
        def update(panel: BreaksPanel, change: dict[str, Any]) -> None:
            if panel._rendering:
                return
            panel.error.value = ""
            setattr(panel.model, trait, change["new"])

        return lambda change: update(self, change)

    @guarded
    def _on_page_box(self, change: dict[str, Any]) -> None:
        if self._rendering:
            return
        self.model.page = int(change["new"]) - 1

    @guarded
    def _on_pick(self, change: dict[str, Any]) -> None:
        if self._rendering or change["new"] is None:
            return
        self.error.value = ""
        self.model.selected = change["new"]

    def _on_field(self, _change: Any) -> None:
        # A confirmation names what it will write: editing what it was made from cancels it.
        if not self._rendering:
            self.model.cancel()

    @guarded
    def on_prev(self, _button: Any = None) -> None:
        """Previous page."""
        self.model.page -= 1

    @guarded
    def on_next(self, _button: Any = None) -> None:
        """Next page."""
        self.model.page += 1

    # --- acting on the selected break -----------------------------------------------------
    def _run(self, kind: str, **params: Any) -> Done:
        self.error.value = ""
        # The model re-reads the book whatever it says (the view redraws on its revision), so a
        # refusal is read beside the break as it now is.
        done = self.model.run(self._bound.get(kind), **params)
        if self.on_change is not None:
            self.on_change()
        return done

    @guarded
    def on_assign(self, _button: Any = None) -> None:
        """Assign the break the button names to the owner typed (default: me)."""
        self._run("assign", owner=self.owner.value)

    @guarded
    def on_note(self, _button: Any = None) -> None:
        """Add the note typed to the break the button names."""
        self._run("note", text=self.note_text.value)
        self._clear(self.note_text)

    @guarded
    def on_resolve(self, _button: Any = None) -> None:
        """Close the break the button names with the reason and status chosen (the note typed goes
        with it)."""
        self._run("resolve", reason=self.reason.value, status=self.close_as.value, note=self.note_text.value)
        self._clear(self.note_text)

    @guarded
    def on_sign_off(self, _button: Any = None) -> None:
        """Sign off the break the button names (as a second person: not its resolver)."""
        self._run("sign_off")

    @guarded
    def on_reopen(self, _button: Any = None) -> None:
        """Reopen the break the button names, saying why."""
        self._run("reopen", why=self.why.value)
        self._clear(self.why)

    def _clear(self, widget: w.Widget) -> None:
        self._rendering = True
        try:
            widget.value = ""
        finally:
            self._rendering = False

    # --- acting on every break of the view -------------------------------------------------
    def _prepare(self, kind: str, **params: Any) -> None:
        self.error.value = ""
        self.model.prepare(kind, **params)

    @guarded
    def on_bulk_assign(self, _button: Any = None) -> None:
        """Ask to assign every break of the view to the owner typed (default: me)."""
        self._prepare("assign", owner=self.owner.value)

    @guarded
    def on_bulk_note(self, _button: Any = None) -> None:
        """Ask to add the note typed to every break of the view."""
        self._prepare("note", text=self.note_text.value)

    @guarded
    def on_bulk_resolve(self, _button: Any = None) -> None:
        """Ask to close every break of the view with the reason and status chosen."""
        self._prepare("resolve", reason=self.reason.value, status=self.close_as.value, note=self.note_text.value)

    @guarded
    def on_confirm(self, _button: Any = None) -> None:
        """Apply the confirmation shown: exactly the breaks it counted, each at the version read."""
        self.error.value = ""
        self.model.confirm(self._confirming)
        if self.on_change is not None:
            self.on_change()

    @guarded
    def on_cancel(self, _button: Any = None) -> None:
        """Drop the confirmation shown."""
        self.model.cancel()


def _details(state: Break) -> str:
    notes = "".join(f"<li>{escape(n.at[:19])} <b>{escape(n.author)}</b>: {escape(n.text)}</li>"
                    for n in state.notes)
    facts = [("status", state.status), ("owner", state.owner), ("outcome", state.outcome),
             ("amount at risk", f"{state.amount_at_risk} {state.currency}"), ("first seen", state.first_seen),
             ("reason", state.reason), ("resolved by", state.resolved_by),
             ("signed off by", state.signed_off_by), ("detail", state.detail)]
    rows = "".join(f"<tr><th>{k}</th><td>{escape(str(v))}</td></tr>" for k, v in facts if v)
    return (f"<h4 style='overflow-wrap:anywhere'>{escape(state.key)} <small>(version {state.version})</small>"
            f"</h4><table>{rows}</table><ul>{notes}</ul>")
