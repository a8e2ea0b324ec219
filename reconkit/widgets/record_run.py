"""Recording a reconciliation in the break book, as a step the analyst confirms: what the run would
open and clear, the intake checks it passes or fails, a reason when recording it anyway, and the
withdrawal of the last run recorded.

A view over :class:`reconkit.investigation.Investigation` and the book; the preview is tied to the
result it was computed for, so a result replaced since cannot be recorded under its preview.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ..breaks import BreakBook, IntakePreview
from ..inert import shown
from ..investigation import Investigation
from .common import App, escape, guarded

__all__ = ["RunRecorder"]

_STYLE = {"description_width": "initial"}


class RunRecorder(App):
    """The "record this run" step under the investigation app.

    Parameters
    ----------
    model : Investigation
        Whose current result is recorded.
    book : BreakBook
    on_change : callable, optional
        Called after a run is recorded or withdrawn (the host redraws the book).
    """

    def __init__(self, model: Investigation, book: BreakBook, on_change: Any = None) -> None:
        self.model, self.book, self.on_change = model, book, on_change
        self.preview_html = w.HTML()
        self.override = w.Text(description="record anyway because", placeholder="why this file is right",
                               style=_STYLE, layout=w.Layout(width="100%", max_width="560px", display="none"))
        self.record_button = w.Button(description="Record run", button_style="primary", disabled=True,
                                      layout=w.Layout(width="auto"))
        self.withdraw_reason = w.Text(description="withdraw because", placeholder="why the run was wrong",
                                      style=_STYLE, layout=w.Layout(width="100%", max_width="560px"))
        self.withdraw_button = w.Button(description="Withdraw the last run", disabled=True,
                                        layout=w.Layout(width="auto"))
        self.message = w.HTML()
        self.error = w.HTML()
        self.preview: IntakePreview | None = None
        self._prepared_for: Any = None  # the result the preview and the button were made for
        self.override.observe(lambda _change: self._show_button(), names="value")
        self.withdraw_reason.observe(lambda _change: self._show_withdraw(), names="value")
        self.record_button.on_click(self.on_record)
        self.withdraw_button.on_click(self.on_withdraw)
        super().__init__([self.preview_html, self.override, self.record_button, self.error, self.message,
                          w.HBox([self.withdraw_reason, self.withdraw_button],
                                 layout=w.Layout(flex_flow="row wrap"))])
        self.add_class("reconkit-record-run")
        self._show_withdraw()

    def prepare(self) -> IntakePreview | None:
        """Preview the model's current result (nothing when there is none) and offer to record it."""
        self.error.value = ""
        result = self.model.current
        self._prepared_for = result
        self.preview = None if result is None else self.model.preview(self.book)
        self.override.value = ""
        self._show_preview()
        return self.preview

    def invalidate(self, why: str) -> None:
        """The result the preview was made for is gone or stale: nothing can be recorded under it."""
        if self._prepared_for is not None:
            self._prepared_for, self.preview = None, None
            self._show_preview()
            self.message.value = f"<i>Not recorded: {escape(why)}.</i>"

    @guarded
    def on_record(self, _button: Any = None) -> int:
        """Record the previewed result (with the reason typed, when a check failed)."""
        self.error.value = self.message.value = ""
        if self._prepared_for is None or self.model.current is not self._prepared_for:
            self.prepare()
            raise ValueError("the result changed since its preview: check the new preview, then record")
        override = self.override.value.strip() or None
        if self.preview is not None and not self.preview.ok and override is None:
            raise ValueError("this run fails an intake check: say why it is right to record it anyway")
        run = self.model.record(self.book, override=override if self.preview and not self.preview.ok else None)
        self._prepared_for, self.preview = None, None
        self._show_preview()
        changed = self.book.diff().summary_text() if len(self.book.runs()) > 1 else "the book's first run"
        self.message.value = escape(shown(f"recorded run {run} · {changed}"))
        self._show_withdraw()
        if self.on_change is not None:
            self.on_change()
        return run

    @guarded
    def on_withdraw(self, _button: Any = None) -> list[str]:
        """Withdraw the last run recorded (named on the button), with the reason typed."""
        self.error.value = self.message.value = ""
        run = self._last_run()
        reason = self.withdraw_reason.value.strip()
        if run is None or not reason:
            raise ValueError("say why the run is withdrawn" if run is not None else "no run to withdraw")
        keys = self.book.withdraw(run, reason)
        self.withdraw_reason.value = ""
        self.message.value = escape(f"withdrew run {run}: {len(keys)} break(s) put back as they were")
        self._show_withdraw()
        if self.on_change is not None:
            self.on_change()
        return keys

    # --- drawing ---------------------------------------------------------------------------------
    def _last_run(self) -> int | None:
        runs = self.book.runs()
        standing = runs[~runs["withdrawn"].astype(bool)]
        return None if standing.empty else int(standing["run_id"].iloc[-1])

    def _show_preview(self) -> None:
        preview = self.preview
        if preview is None:
            self.preview_html.value = ""
            self.override.layout.display = "none"
        else:
            failed = "".join(f"<li>{escape(shown(check.message))}</li>" for check in preview.failed)
            self.preview_html.value = (
                f"<b>Recording this run {'would' if preview.ok else 'would still'}:</b> "
                f"{escape(shown(preview.effect))}"
                + (f"<div style='color:#b00020'><b>It fails {len(preview.failed)} intake check(s):</b>"
                   f"<ul>{failed}</ul>Check that the settlement file is the right merchant's and week's. "
                   "To record it anyway, say why.</div>" if failed else ""))
            self.override.layout.display = "" if failed else "none"
        self._show_button()

    def _show_button(self) -> None:
        preview = self.preview
        if preview is None:
            self.record_button.description, self.record_button.disabled = "Record run", True
            return
        counts = f"opens {preview.opens}, clears {preview.clears}"
        if preview.ok:
            self.record_button.description = f"Record run ({counts})"
            self.record_button.disabled = False
        else:
            self.record_button.description = f"Record anyway ({counts})"
            self.record_button.disabled = not self.override.value.strip()

    def _show_withdraw(self) -> None:
        run = self._last_run()
        self.withdraw_button.description = "Withdraw the last run" if run is None else f"Withdraw run {run}"
        self.withdraw_button.disabled = run is None or not self.withdraw_reason.value.strip()
