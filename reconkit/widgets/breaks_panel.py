"""The break book in a notebook: the breaks with status and owner, "new since last run" and
"mine" filters, and a side panel to assign, note, resolve, sign off and reopen the selected one.

Every action names the break and the version the panel showed; if someone else (another
notebook) changed the break since, the action is refused and the panel shows the break as it now
is. A host app (notebook 02's investigation) embeds it and calls :meth:`BreaksPanel.record` after
each reconciliation.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from os import PathLike
from typing import Any

import ipywidgets as w
import pandas as pd

from ..breaks import AUTOMATIC_REASONS, CLOSED, Break, BreakBook, Reason, Status
from ..errors import BreakConflictError
from .common import App, guarded, table_html

__all__ = ["BreaksPanel"]

_COLUMNS = ["key", "status", "owner", "outcome", "amount_at_risk", "currency", "days_open", "open_bucket",
            "days_since_submission", "category", "new"]
_VIEWS = {**{s.value: [s.value] for s in Status}, "open": [Status.OPEN.value, Status.INVESTIGATING.value],
          "all": None}
"""What the "show" list offers: "open" is every break still being worked (open or investigating)."""


class BreaksPanel(App):
    """The break book as an app.

    Parameters
    ----------
    book : BreakBook
        The book (in the ledger file); its ``analyst`` is who acts and is shown.
    page_size : int
        Rows shown at once.
    """

    def __init__(self, book: BreakBook, *, page_size: int = 50) -> None:
        self.book = book
        self.page_size = page_size
        self.on_change: Callable[[], Any] | None = None
        """Called after every change the panel makes (a host redraws what shows the book)."""
        self.shown: Break | None = None
        self.who = w.HTML(f"<b>analyst:</b> {html.escape(book.analyst)}")
        self.view = w.Dropdown(options=list(_VIEWS), value="open", description="show")
        self.new_only = w.Checkbox(value=False, description="new since last run", indent=False)
        self.mine_only = w.Checkbox(value=False, description="mine", indent=False)
        self.table = w.HTML()
        self.runs = w.HTML()
        self.aging = w.HTML()
        self.pick = w.Dropdown(options=[], description="break", layout=w.Layout(width="560px"))
        self.details = w.HTML()
        self.owner = w.Text(description="owner", placeholder=book.analyst)
        self.assign_button = w.Button(description="Assign")
        self.note_text = w.Textarea(description="note", placeholder="what you found")
        self.note_button = w.Button(description="Add note")
        self.reason = w.Dropdown(options=[r.value for r in Reason if r not in AUTOMATIC_REASONS], description="reason")
        self.close_as = w.Dropdown(options=sorted(CLOSED), value=Status.RESOLVED.value, description="close as")
        self.resolve_button = w.Button(description="Resolve", button_style="warning")
        self.sign_button = w.Button(description="Sign off", button_style="success")
        self.why = w.Text(description="why", placeholder="reason to reopen")
        self.reopen_button = w.Button(description="Reopen")
        self.message = w.HTML()
        self.error = w.HTML()
        for control in (self.view, self.new_only, self.mine_only):
            control.observe(self._on_filter, names="value")
        self.pick.observe(self._on_pick, names="value")
        self.assign_button.on_click(self.on_assign)
        self.note_button.on_click(self.on_note)
        self.resolve_button.on_click(self.on_resolve)
        self.sign_button.on_click(self.on_sign_off)
        self.reopen_button.on_click(self.on_reopen)
        side = w.VBox([self.pick, self.details, w.HBox([self.owner, self.assign_button]),
                       w.HBox([self.note_text, self.note_button]),
                       w.HBox([self.reason, self.close_as, self.resolve_button]),
                       self.sign_button, w.HBox([self.why, self.reopen_button])],
                      layout=w.Layout(min_width="560px"))
        super().__init__([self.who, w.HBox([self.view, self.new_only, self.mine_only]), self.error, self.message,
                          w.HBox([self.table, side]), self.runs, self.aging])
        self.refresh()

    # --- the host's entry point ----------------------------------------------------------
    @guarded
    def record(self, result: Any, inputs: Iterable[str | PathLike[str]] = ()) -> int | None:
        """Record a reconciliation run in the book and show what changed since the last one."""
        run_id = self.book.record(result, inputs=inputs)
        text = f"recorded run {run_id}"
        if len(self.book.runs()) > 1:
            text += " · " + self.book.diff().summary_text()
        self.message.value = html.escape(text)
        self.refresh()
        return run_id

    # --- showing -------------------------------------------------------------------------
    def filtered(self) -> pd.DataFrame:
        """The breaks the filters select, largest amount at risk first."""
        frame = self.book.table(statuses=_VIEWS[self.view.value])
        if self.mine_only.value:
            frame = frame[frame["owner"] == self.book.analyst]
        if self.new_only.value:
            frame = frame[frame["new"]]
        return frame.reset_index(drop=True)

    def refresh(self) -> None:
        """Redraw the table, the runs, the aging and the selected break from the book."""
        frame = self.filtered()
        shown = frame.head(self.page_size)
        more = f"<p>{len(shown)} of {len(frame)} shown.</p>" if len(frame) > len(shown) else ""
        self.table.value = table_html(shown[_COLUMNS]) + more if len(frame) else "<p>No breaks.</p>"
        keys = list(shown["key"])
        current = self.pick.value
        self.pick.options = keys
        self.pick.value = current if current in keys else (keys[0] if keys else None)
        runs = self.book.runs()
        self.runs.value = table_html(runs.tail(5)) if len(runs) else "<p>No run recorded yet.</p>"
        aging = self.book.aging()
        self.aging.value = table_html(aging[aging["breaks"] > 0]) if (aging["breaks"] > 0).any() else ""
        self._show(self.pick.value)

    def _show(self, key: str | None) -> None:
        if key is None:
            self.shown = None
            self.details.value = ""
            return
        state = self.book.get(key)
        self.shown = state
        notes = "".join(f"<li>{html.escape(n.at[:19])} <b>{html.escape(n.author)}</b>: {html.escape(n.text)}</li>"
                        for n in state.notes)
        facts = [("status", state.status), ("owner", state.owner), ("outcome", state.outcome),
                 ("amount at risk", f"{state.amount_at_risk} {state.currency}"), ("first seen", state.first_seen),
                 ("reason", state.reason), ("resolved by", state.resolved_by),
                 ("signed off by", state.signed_off_by), ("detail", state.detail)]
        rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts if v)
        self.details.value = (f"<h4>{html.escape(state.key)} <small>(version {state.version})</small></h4>"
                              f"<table>{rows}</table><ul>{notes}</ul>")

    def _on_filter(self, _change: Any) -> None:
        self.refresh()

    @guarded
    def _on_pick(self, change: dict[str, Any]) -> None:
        self._show(change["new"])

    # --- acting on the selected break ----------------------------------------------------
    def _act(self, action: Any, done: str) -> None:
        if self.shown is None:
            raise ValueError("select a break first")
        key, version = self.shown.key, self.shown.version
        try:
            state = action(key, version)
        except BreakConflictError:
            self.refresh()  # show the break as it now is before the refusal is read
            raise
        self.error.value = ""
        self.message.value = html.escape(f"{key}: {done} (now {state.status}, version {state.version})")
        self.refresh()
        if self.on_change is not None:
            self.on_change()

    @guarded
    def on_assign(self, _button: Any = None) -> None:
        """Assign the selected break to the owner typed (default: me)."""
        owner = self.owner.value.strip() or self.book.analyst
        self._act(lambda key, version: self.book.assign(key, owner, expected_version=version),
                  f"assigned to {owner}")

    @guarded
    def on_note(self, _button: Any = None) -> None:
        """Add the note typed to the selected break."""
        text = self.note_text.value
        self._act(lambda key, version: self.book.note(key, text, expected_version=version), "note added")
        self.note_text.value = ""

    @guarded
    def on_resolve(self, _button: Any = None) -> None:
        """Close the selected break with the reason and status chosen (the note typed goes with it)."""
        reason, status, text = self.reason.value, self.close_as.value, self.note_text.value
        self._act(lambda key, version: self.book.resolve(key, reason, status=status, note=text,
                                                         expected_version=version), f"{status} ({reason})")
        self.note_text.value = ""

    @guarded
    def on_sign_off(self, _button: Any = None) -> None:
        """Sign off the selected break (as a second person: not its resolver)."""
        self._act(lambda key, version: self.book.sign_off(key, expected_version=version),
                  f"signed off by {self.book.analyst}")

    @guarded
    def on_reopen(self, _button: Any = None) -> None:
        """Reopen the selected break, saying why."""
        why = self.why.value
        self._act(lambda key, version: self.book.reopen(key, why, expected_version=version), "reopened")
        self.why.value = ""

