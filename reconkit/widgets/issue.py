"""``IssueCreditApp``: issue test credits from a form, safely.

Every money-moving action goes through a confirmation that names exactly what it will do and is
used once; every action replaces (or clears) what it supersedes on screen; production is refused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ipywidgets as w
import pandas as pd

from .. import ledger as _ledger
from ..cards import luhn_ok
from ..client import Client, instrument_of
from ..credit import Credit
from ..errors import (
    AmbiguousOutcomeError,
    AmbiguousVoidError,
    ApiError,
    DeclinedError,
    InvalidRequestError,
    NotIndexedYetError,
    ReconkitError,
)
from ..money import CURRENCIES, format_amount, parse_amount
from ..session import connect
from .common import App, ConnectionBanner, escape, guarded, json_html, status_badge, table_html

__all__ = ["IssueCreditApp"]

_SOURCES = [("Card number", "card"), ("Instrument identifier", "instrument_identifier"),
            ("Payment instrument", "payment_instrument"), ("Customer token", "customer")]
_FIELD_OF = {"orderInformation.amountDetails.totalAmount": "amount",
             "orderInformation.amountDetails.currency": "currency",
             "paymentInformation.card.number": "source", "paymentInformation": "source",
             "paymentInformation.card.expirationMonth": "exp_month",
             "paymentInformation.card.expirationYear": "exp_year",
             "paymentInformation.card.type": "card_type", "clientReferenceInformation.code": "reference",
             "clientReferenceInformation.transactionId": "reference"}
_STYLE = {"description_width": "150px"}
REPEAT_WINDOW = timedelta(minutes=10)
"""The same amount to the same instrument within this window needs a second, explicit confirmation."""
_LEDGER_COLUMNS = {"intent_at": "Sent (UTC)", "credit_id": "Credit id", "amount": "Amount", "currency": "Currency",
                   "status": "Status", "outcome": "Outcome", "reference_code": "Reference"}
_WIDE = w.Layout(width="auto")
VOID_UNKNOWN = "void outcome unknown"
"""The status shown for a credit whose void was sent without a usable answer, until it is looked up."""
OUTCOME_UNKNOWN = "Outcome unknown"
"""The status shown for a credit sent without a usable answer (or by a process that died), until it is looked up."""
_NO_STATUS = {_ledger.INTENT: "sending", _ledger.REJECTED: "rejected", _ledger.NOT_SENT: "not sent",
              _ledger.NOT_CREATED: "not created"}
"""What the Status column says for outcomes that leave no credit status."""
_LOOKUP_NOTES = {
    ("credit", _ledger.CREATED): "it was created",
    ("credit", _ledger.DECLINED): "it was created, declined",
    ("credit", _ledger.NOT_CREATED): "not created: safe to issue again",
    ("credit", _ledger.UNKNOWN): "not found yet: try again in a few minutes before issuing again",
    ("void", _ledger.VOIDED): "void of credit {id} done: it is VOIDED",
    ("void", _ledger.NOT_VOIDED): "void of credit {id} not done: it is still {status}",
    ("void", _ledger.UNKNOWN): "void of credit {id} still unknown: it reads {status}; look again in a few minutes",
}


def shown_status(status: str | None, outcome: str, void_unknown: bool = False) -> str:
    """The Status column of a ledger row: the credit's status, unless its outcome or its void is
    unknown (then that, so that nobody takes it for settled either way) or no status came back."""
    if void_unknown:
        return VOID_UNKNOWN
    if outcome == _ledger.UNKNOWN:
        return OUTCOME_UNKNOWN
    return status or _NO_STATUS.get(outcome, outcome)


def _reference() -> str:
    return f"test-refund-{uuid.uuid4().hex[:12]}"


def _batch_reference(digest: str, line: int) -> str:
    """A batch row's reference: the same file gives the same references, so a rerun is recognised."""
    return f"batch-{digest[:20]}-{line}"


@dataclass(frozen=True)
class _Pending:
    """What a confirmation names, frozen when it is shown; confirming sends exactly this."""

    kwargs: dict[str, Any]
    amount: str
    currency: str
    payee: str
    repeat_of: dict[str, Any] | None


@dataclass(frozen=True)
class _VoidTarget:
    credit_id: str
    amount: str
    currency: str


@dataclass(frozen=True)
class _Batch:
    name: str
    rows: list[dict[str, Any]]
    already: list[dict[str, Any]]


class IssueCreditApp(App):
    """The form of notebook 01. Every callback is a method; tests call them without a browser.

    Parameters
    ----------
    client : Client, optional
        Defaults to :func:`reconkit.session.connect` (the embedded sandbox without credentials).
    """

    def __init__(self, client: Client | None = None) -> None:
        self.client = client or connect()
        self.banner = ConnectionBanner(self.client.config)
        layout = w.Layout(width="440px")
        self.source_kind = w.Dropdown(options=_SOURCES, value="card", description="Pay to", style=_STYLE,
                                      layout=layout)
        self.source = w.Text(value="4111111111111111", description="Card number or token", style=_STYLE,
                             layout=layout)
        self.exp_month = w.Dropdown(options=[f"{m:02d}" for m in range(1, 13)], value="12",
                                    description="Expiry month", style=_STYLE, layout=layout)
        self.exp_year = w.Text(value="2031", description="Expiry year", style=_STYLE, layout=layout)
        self.card_type = w.Dropdown(options=[("Visa (001)", "001"), ("Mastercard (002)", "002"),
                                             ("American Express (003)", "003"), ("Discover (004)", "004")],
                                    value="001", description="Card type", style=_STYLE, layout=layout)
        self.amount = w.Text(value="10.00", description="Amount", style=_STYLE, layout=layout)
        self.currency = w.Dropdown(options=sorted(CURRENCIES), value="USD", description="Currency", style=_STYLE,
                                   layout=layout)
        self.reference = w.Text(value=_reference(), description="Reference code", style=_STYLE, layout=layout)
        self.indicator = w.Dropdown(options=["internet", "moto", "recurring"], value="internet",
                                    description="Commerce indicator", style=_STYLE, layout=layout)
        self.fields = {"source": self.source, "exp_month": self.exp_month, "exp_year": self.exp_year,
                       "card_type": self.card_type, "amount": self.amount, "currency": self.currency,
                       "reference": self.reference}
        self.messages = {name: w.HTML() for name in self.fields}
        self.issue_button = w.Button(description="Issue credit", button_style="primary", icon="paper-plane")
        self.confirm_text = w.HTML()
        self.confirm_button = w.Button(description="Confirm", button_style="danger", layout=_WIDE)
        self.cancel_button = w.Button(description="Cancel")
        self.confirm_box = w.VBox([self.confirm_text, w.HBox([self.confirm_button, self.cancel_button])],
                                  layout=w.Layout(display="none"))
        self.result = w.HTML()
        self.raw = w.HTML()
        self.raw_view = w.Accordion(children=[self.raw], titles=("Raw JSON response",), selected_index=None)
        self.lookup_button = w.Button(description="Look it up", icon="search", layout=w.Layout(display="none"))
        self.lookup_result = w.HTML()
        self.error = w.HTML()
        self.issued = w.HTML()
        self.credit_picker = w.Dropdown(description="Credit", style=_STYLE, layout=layout)
        self.fetch_button = w.Button(description="Fetch again", icon="refresh")
        self.void_button = w.Button(description="Void", icon="ban")
        self.void_confirm = w.Button(description="Yes, void it", button_style="danger",
                                     layout=w.Layout(display="none", width="auto"))
        self.batch_upload = w.FileUpload(accept=".csv", multiple=False, description="Batch CSV")
        self.batch_button = w.Button(description="Issue batch", icon="list")
        self.batch_confirm_text = w.HTML()
        self.batch_confirm = w.Button(description="Confirm batch", button_style="danger", layout=_WIDE)
        self.batch_cancel = w.Button(description="Cancel")
        self.batch_confirm_box = w.VBox([self.batch_confirm_text, w.HBox([self.batch_confirm, self.batch_cancel])],
                                        layout=w.Layout(display="none"))
        self.batch_progress = w.IntProgress(value=0, min=0, max=1, description="Batch")
        self.batch_result = w.HTML()
        self._state = "editing"
        self._pending: _Pending | None = None
        self._repeat_acknowledged = False
        self._void_target: _VoidTarget | None = None
        self._batch_state = "idle"
        self._batch: _Batch | None = None
        self._batch_shown: list[dict[str, Any]] = []
        self.last_credit: Credit | None = None

        for widget in (*self.fields.values(), self.source_kind, self.indicator):
            widget.observe(self._on_change, names="value")
        self.credit_picker.observe(self._on_pick, names="value")
        self.batch_upload.observe(self._on_upload, names="value")
        self.issue_button.on_click(self.on_issue)
        self.confirm_button.on_click(self.on_confirm)
        self.cancel_button.on_click(self.on_cancel)
        self.lookup_button.on_click(self.on_lookup)
        self.fetch_button.on_click(self.on_fetch)
        self.void_button.on_click(self.on_void)
        self.void_confirm.on_click(self.on_void_confirmed)
        self.batch_button.on_click(self.on_batch)
        self.batch_confirm.on_click(self.on_batch_confirmed)
        self.batch_cancel.on_click(self.on_batch_cancel)

        form = w.VBox([w.HBox([widget, self.messages.get(name, w.HTML())])
                       for name, widget in [("kind", self.source_kind), *self.fields.items(),
                                            ("indicator", self.indicator)]])
        super().__init__([
            self.banner, w.HTML("<h3>Issue a test credit</h3>"), form, self.issue_button, self.confirm_box,
            self.error, self.result, self.raw_view,
            w.HTML("<h3>Credits issued (from the ledger)</h3>"), self.issued, self.lookup_button, self.lookup_result,
            w.HBox([self.credit_picker, self.fetch_button, self.void_button]), self.void_confirm,
            w.HTML("<h3>Batch: issue one credit per CSV row (amount, currency, instrument)</h3>"),
            w.HBox([self.batch_upload, self.batch_button, self.batch_progress]), self.batch_confirm_box,
            self.batch_result,
        ])
        if self.client.config.is_production:
            self._refuse_production()
        # A process killed between sending a credit and recording its answer left an intent: unknown.
        self.client.ledger.mark_abandoned_intents()
        self.validate()
        self.refresh_issued()

    # --- state ------------------------------------------------------------------------
    def _refuse_production(self) -> bool:
        """Disable every money-moving control when the host is production; True when refused."""
        if not self.client.config.is_production:
            return False
        for widget in (self.issue_button, self.confirm_button, self.batch_button, self.batch_confirm,
                       self.void_button, self.void_confirm):
            widget.disabled = True
        self.error.value = ("<div class='reconkit-error' style='color:#b00020'><b>Refused:</b> this notebook "
                            "issues test credits only, and the configured environment is PRODUCTION "
                            f"({escape(self.client.config.base_url)}).</div>")
        return True

    def _begin(self, *views: w.HTML) -> None:
        """Start an action: the previous error and the views this action replaces are cleared."""
        self.error.value = ""
        for view in views:
            view.value = ""

    def request_kwargs(self) -> dict[str, Any]:
        """The form as :meth:`Client.create_credit` arguments."""
        kind = self.source_kind.value
        value = self.source.value.strip()
        card = {"expiration_month": self.exp_month.value, "expiration_year": self.exp_year.value.strip(),
                "type": self.card_type.value}
        kwargs: dict[str, Any] = {"amount": self.amount.value.strip(), "currency": self.currency.value,
                                  "reference_code": self.reference.value.strip(),
                                  "commerce_indicator": self.indicator.value}
        if kind == "card":
            kwargs["card"] = {"number": value, **card}
        else:
            kwargs[kind] = value
            if kind == "instrument_identifier":
                kwargs["card"] = card
        return kwargs

    def validate(self) -> bool:
        """Check the form as the client would; messages beside each field; returns validity."""
        for message in self.messages.values():
            message.value = ""
        problems: dict[str, str] = {}
        try:
            self.client.build_credit_request(**self.request_kwargs())
        except InvalidRequestError as exc:
            for detail in exc.details:
                name = _FIELD_OF.get(str(detail.get("field")), "source")
                problems.setdefault(name, str(detail.get("reason")))
        except ValueError as exc:
            problems["amount"] = str(exc)
        earlier = self.client.ledger.credit(self.reference.value.strip())
        if earlier is not None:
            problems["reference"] = (f"already used for credit {earlier['credit_id'] or '(no id yet)'}; "
                                     "a reference code names one credit")
        for name, text in problems.items():
            self.messages[name].value = f"<span style='color:#b00020'>{escape(text)}</span>"
        valid = not problems
        self.issue_button.disabled = not valid or self.client.config.is_production or self._state == "sending"
        return valid

    def _on_change(self, change: dict[str, Any]) -> None:
        if self._state == "confirming":
            self.on_cancel()
        self.validate()

    # --- issuing ----------------------------------------------------------------------
    def _payee(self) -> str:
        value = self.source.value.strip()
        shown = f"…{value[-4:]}" if self.source_kind.value == "card" and len(value) > 4 else value
        return f"{self.source_kind.label.lower()} {shown}"

    @guarded
    def on_issue(self, _button: Any = None) -> None:
        """Show the confirmation step: normalized amount, currency, payee, environment, and a
        warning naming an earlier credit of the same amount to the same instrument."""
        if self._refuse_production() or not self.validate() or self._state != "editing":
            return
        self._begin(self.result, self.raw)  # the last credit's answer is not this confirmation's
        kwargs = self.request_kwargs()
        amount = format_amount(parse_amount(kwargs["amount"], kwargs["currency"]), kwargs["currency"])
        kwargs["amount"] = amount
        body = self.client.build_credit_request(**kwargs)
        earlier = self.client.ledger.recent_to_instrument(instrument_of(body), amount, kwargs["currency"],
                                                          self.client.clock() - REPEAT_WINDOW)
        self._pending = _Pending(kwargs, amount, kwargs["currency"], self._payee(), earlier[0] if earlier else None)
        self._repeat_acknowledged = False
        self._show_confirmation()
        self.confirm_box.layout.display = "flex"
        self._state = "confirming"

    def _show_confirmation(self) -> None:
        pending = self._pending
        assert pending is not None
        config = self.client.config
        what = f"<b>{pending.amount} {pending.currency}</b> to {escape(pending.payee)}"
        where = f"on <b>{config.environment_name}</b> ({escape(config.base_url)})"
        earlier = pending.repeat_of
        if earlier is None:
            self.confirm_text.value = f"Issue a credit of {what} {where}?"
            self.confirm_button.description = f"Issue {pending.amount} {pending.currency}"
            return
        named = (f"credit <code>{escape(earlier['credit_id'] or '(no id yet)')}</code> (reference "
                 f"<code>{escape(earlier['reference_code'])}</code>, {escape(earlier['outcome'])}, sent "
                 f"{escape(str(earlier['intent_at'])[:19])} UTC)")
        if not self._repeat_acknowledged:
            self.confirm_text.value = (
                f"<div style='border-left:4px solid #b8860b;padding:4px 8px'><b>Possible repeat.</b> "
                f"{earlier['amount']} {earlier['currency']} went to this {escape(pending.payee)} less than "
                f"{int(REPEAT_WINDOW.total_seconds() // 60)} minutes ago: {named}.</div>"
                f"Issue another credit of {what} {where}?")
            self.confirm_button.description = "Continue: it is not a repeat"
        else:
            self.confirm_text.value = (f"Issue a <b>second</b> credit of {what} {where}, after {named}?")
            self.confirm_button.description = f"Issue a second {pending.amount} {pending.currency}"

    @guarded
    def on_cancel(self, _button: Any = None) -> None:
        """Leave the confirmation step without sending."""
        self.confirm_box.layout.display = "none"
        if self._state == "confirming":
            self._state = "editing"
            self._pending = None

    @guarded
    def on_confirm(self, _button: Any = None) -> None:
        """Send the credit the confirmation names, once: repeated clicks while or after it is
        sent do nothing; a possible repeat needs a second, explicit confirmation first."""
        pending = self._pending
        if self._state != "confirming" or pending is None or self._refuse_production():
            return
        if pending.repeat_of is not None and not self._repeat_acknowledged:
            self._repeat_acknowledged = True
            self._show_confirmation()
            return
        self._state = "sending"
        self._pending = None
        self.confirm_button.disabled = self.issue_button.disabled = True
        try:
            self._send(pending.kwargs)
        finally:
            self.confirm_box.layout.display = "none"
            self.confirm_button.disabled = False
            self._state = "editing"
            self.reference.value = _reference()
            self.validate()
            self.refresh_issued()

    def _send(self, kwargs: dict[str, Any]) -> None:
        self._begin(self.result, self.raw, self.lookup_result)
        self.last_credit = None
        try:
            credit = self.client.create_credit(**kwargs)
        except DeclinedError as exc:
            self.show_credit(exc.credit, note=f"Declined: {exc.reason} — {exc.message}")
        except AmbiguousOutcomeError as exc:
            self.result.value = (
                "<div class='reconkit-error' style='border-left:4px solid #b8860b;padding:4px 8px'><b>Outcome "
                f"unknown.</b> The request was sent but no usable answer came back, so it was <b>not</b> resent. "
                f"Reference <code>{escape(str(exc.reference_code))}</code>, transaction id "
                f"<code>{escape(str(exc.transaction_id))}</code>. Look it up before issuing again.</div>")
        except (ApiError, ReconkitError) as exc:
            self.show_error(exc)
        else:
            self.show_credit(credit)

    def show_credit(self, credit: Credit, *, note: str = "", css: str = "reconkit-result") -> None:
        """Show one credit: status in colour, ids, raw JSON (replacing the previous one)."""
        self.last_credit = credit
        extra = f"<br>{escape(note)}" if note else ""
        self.result.value = (
            f"<div class='{css}'>Status {status_badge(credit.status)} · credit id "
            f"<code>{escape(credit.id)}</code> · reconciliation id "
            f"<code>{escape(credit.reconciliation_id or '—')}</code> · {credit.amount} {credit.currency} "
            f"· read from {'the credit response' if credit.source == 'create' else credit.source}{extra}</div>")
        self.raw.value = json_html(credit.raw)

    @guarded
    def on_lookup(self, _button: Any = None) -> None:
        """Resolve every unknown outcome (single credits, batch rows, intents of a killed process,
        voids without an answer) by searching for the reference code or reading the voided credit
        back, and write what was found to the ledger."""
        self._begin(self.lookup_result, self.result, self.raw)  # an "outcome unknown" shown there is now stale
        resolutions = self.client.resolve_unknown()
        rows = []
        for r in resolutions:
            credit_id = r.credit.id if r.credit else (r.credit_id or "")
            status = (r.credit.status or "") if r.credit else ("not found" if r.action == "void" else "")
            note = _LOOKUP_NOTES.get((r.action, r.outcome), "").format(id=credit_id, status=status or "without status")
            if r.matches > 1:
                note += f" ({r.matches} credits share this reference)"
            rows.append({"Looked up": r.action, "Reference": r.reference_code, "Now": r.outcome,
                         "Credit id": credit_id, "Status": status, "Note": note})
        self.lookup_result.value = table_html(pd.DataFrame(rows)) if rows else "<i>no unknown outcomes</i>"
        if len(resolutions) == 1 and resolutions[0].credit is not None:
            only = resolutions[0]
            note = (f"Found by reference {only.reference_code}: it was created." if only.action == "credit"
                    else f"Looked up after a void without an answer: {rows[0]['Note']}.")
            self.show_credit(only.credit, note=note)
        self.refresh_issued()
        self._render_batch()

    # --- the ledger table and per-credit actions ---------------------------------------
    def refresh_issued(self) -> None:
        """Reload the table of issued credits from the ledger (survives kernel restarts, keyed by
        the environment's stable identity, not the sandbox's port); a credit whose outcome or void
        is unknown shows that instead of a status, with "Look it up"."""
        config = self.client.config
        scope = {"environment": config.ledger_environment, "merchant_id": config.merchant_id}
        # The ledger frame holds <NA> where nothing is known yet, whose truth value raises: work on
        # plain objects with None there, so that every test of a value below is a plain one.
        frame = self.client.ledger.credits(**scope).astype(object)
        frame = frame.where(frame.notna(), None)
        unknown_voids = self.client.ledger.unknown_voids(**scope)
        void_unknown = {row["credit_id"] for row in unknown_voids}
        shown = frame.sort_values("intent_at", ascending=False).head(50).copy()
        shown["status"] = [shown_status(status, outcome, credit_id in void_unknown)
                           for status, outcome, credit_id in zip(shown["status"], shown["outcome"],
                                                                 shown["credit_id"], strict=True)]
        table = shown[list(_LEDGER_COLUMNS)].rename(columns=_LEDGER_COLUMNS)
        self.issued.value = table_html(table) if len(shown) else "<i>none yet</i>"
        unknown = int((frame["outcome"] == _ledger.UNKNOWN).sum()) + len(unknown_voids)
        self.lookup_button.layout.display = "flex" if unknown else "none"
        self.lookup_button.description = f"Look it up ({unknown} unknown)" if unknown > 1 else "Look it up"
        options = [(f"{row.credit_id} · {row.amount} {row.currency} · {row.status}", row.credit_id)
                   for row in shown.itertuples() if row.credit_id is not None]
        self.credit_picker.options = options
        ids = [value for _label, value in options]
        if self.last_credit is not None and self.last_credit.id in ids:
            self.credit_picker.value = self.last_credit.id

    def _on_pick(self, change: dict[str, Any]) -> None:
        # A void confirmation names one credit: any change of selection cancels it.
        self._void_target = None
        self.void_confirm.layout.display = "none"

    @guarded
    def on_fetch(self, _button: Any = None) -> None:
        """Fetch the selected credit again (its self link, else Transaction Details). One this app
        created that Transaction Details does not list yet is shown as "not indexed yet", with the
        state its create call answered."""
        self._begin(self.result, self.raw)
        if not self.credit_picker.value:
            return
        try:
            credit = self.client.get_credit(self.credit_picker.value)
        except NotIndexedYetError as exc:
            self.show_not_indexed(exc)
        else:
            self.show_credit(credit)

    def show_not_indexed(self, exc: NotIndexedYetError) -> None:
        """Say that a credit is not readable yet, showing its create response where the ledger has it."""
        note = (f"Not indexed yet: CyberSource's Transaction Details does not list credit {exc.credit_id} yet "
                f"(sent {exc.created_at or 'earlier'}; it can lag minutes). Shown: the state its create call "
                "answered. Fetch again later.")
        if exc.created is not None:
            self.show_credit(exc.created, note=note, css="reconkit-result reconkit-not-indexed")
        else:
            self.last_credit = None
            self.result.value = (f"<div class='reconkit-not-indexed'>{escape(note)} Ledger outcome: "
                                 f"{escape(exc.outcome)}.</div>")

    @guarded
    def on_void(self, _button: Any = None) -> None:
        """Ask for confirmation before voiding; the button names the credit, amount and currency."""
        self._void_target = None
        self.void_confirm.layout.display = "none"
        if self._refuse_production() or not self.credit_picker.value:
            return
        config = self.client.config
        scope = {"environment": config.ledger_environment, "merchant_id": config.merchant_id}
        self.client.ledger.refuse_unresolved_void(self.credit_picker.value, **scope)
        frame = self.client.ledger.credits(**scope)
        row = frame[frame["credit_id"] == self.credit_picker.value]
        if row.empty:
            return
        target = _VoidTarget(self.credit_picker.value, str(row["amount"].iloc[0]), str(row["currency"].iloc[0]))
        self._void_target = target
        self.void_confirm.description = f"Yes, void credit {target.credit_id} ({target.amount} {target.currency})"
        self.void_confirm.layout.display = "flex"

    @guarded
    def on_void_confirmed(self, _button: Any = None) -> None:
        """Void exactly the credit the confirmation named, once."""
        target, self._void_target = self._void_target, None
        self.void_confirm.layout.display = "none"
        if target is None or self._refuse_production():
            return
        self._begin(self.result, self.raw, self.lookup_result)
        try:
            void = self.client.void_credit(target.credit_id)
        except AmbiguousVoidError:
            self.result.value = (
                "<div class='reconkit-error' style='border-left:4px solid #b8860b;padding:4px 8px'><b>Void outcome "
                f"unknown</b> for credit <code>{escape(target.credit_id)}</code> ({target.amount} "
                f"{target.currency}). The void was sent but no usable answer came back, so it was <b>not</b> "
                "resent and the credit may or may not be voided. Look it up: the credit is read back.</div>")
            return
        finally:
            self.refresh_issued()
        self.result.value = (f"<div>Void of credit <code>{escape(target.credit_id)}</code> ({target.amount} "
                             f"{target.currency}): {status_badge(void.status)}</div>")
        self.raw.value = json_html(void.raw)

    # --- batch ------------------------------------------------------------------------
    def _read_batch(self) -> _Batch:
        if not self.batch_upload.value:
            raise ValueError("choose a CSV file first (columns: amount, currency, instrument)")
        upload = self.batch_upload.value[0]
        name = upload.get("name", "batch.csv")
        content = bytes(upload["content"])
        digest = hashlib.sha256(content).hexdigest()
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        reader = csv.DictReader(io.StringIO(text))
        missing = {"amount", "currency", "instrument"} - {h.strip().lower() for h in reader.fieldnames or []}
        if missing:
            raise ValueError(f"{name}: missing column(s) {', '.join(sorted(missing))}")
        rows, already, problems = [], [], []
        for record in reader:
            line = reader.line_num
            record = {k.strip().lower(): (v or "").strip() for k, v in record.items() if k}
            instrument = record["instrument"]
            kwargs: dict[str, Any] = {"amount": record["amount"], "currency": record["currency"].upper(),
                                      "reference_code": _batch_reference(digest, line)}
            if instrument.isdigit() and 12 <= len(instrument) <= 19 and luhn_ok(instrument):
                kwargs["card"] = {"number": instrument, "expiration_month": "12", "expiration_year": "2031"}
            else:
                kwargs["instrument_identifier"] = instrument
                kwargs["card"] = {"expiration_month": "12", "expiration_year": "2031", "type": "001"}
            try:
                self.client.build_credit_request(**kwargs)
            except (InvalidRequestError, ValueError) as exc:
                problems.append(f"{name} line {line}: {exc}")
            earlier = self.client.ledger.credit(kwargs["reference_code"])
            (already if earlier is not None else rows).append({"line": line, **kwargs})
        if problems:
            raise ValueError("nothing was sent; fix these rows first: " + "; ".join(problems))
        return _Batch(name, rows, already)

    def _on_upload(self, change: dict[str, Any]) -> None:
        if self._batch_state == "confirming":
            self.on_batch_cancel()

    @guarded
    def on_batch(self, _button: Any = None) -> None:
        """Read and check the whole file (a bad file sends nothing), then ask for confirmation
        naming how many credits of what total will be issued and which rows were issued before."""
        if self._refuse_production() or self._batch_state != "idle":
            return
        self._begin(self.batch_result)
        self._batch_shown = []
        batch = self._read_batch()
        totals: dict[str, Any] = {}
        for row in batch.rows:
            totals[row["currency"]] = totals.get(row["currency"], 0) + parse_amount(row["amount"], row["currency"])
        total = ", ".join(f"{format_amount(v, c)} {c}" for c, v in sorted(totals.items())) or "nothing"
        skipped = (f" {len(batch.already)} row(s) of this file were issued before (lines "
                   f"{', '.join(str(r['line']) for r in batch.already)}) and will not be sent again."
                   if batch.already else "")
        if not batch.rows:
            self._show_batch(batch, [])
            self.batch_result.value = ("<div>Every row of this file was issued before: nothing to send.</div>"
                                       + self.batch_result.value)
            return
        since = self.client.clock() - REPEAT_WINDOW
        repeats = [row["line"] for row in batch.rows if self.client.ledger.recent_to_instrument(
            instrument_of(self.client.build_credit_request(**{k: v for k, v in row.items() if k != "line"})),
            format_amount(parse_amount(row["amount"], row["currency"]), row["currency"]), row["currency"], since)]
        warning = (f"<div style='border-left:4px solid #b8860b;padding:4px 8px'><b>Possible repeats:</b> lines "
                   f"{', '.join(map(str, repeats))} send the same amount to the same instrument as a credit of the "
                   f"last {int(REPEAT_WINDOW.total_seconds() // 60)} minutes (another file, or this one edited)."
                   "</div>" if repeats else "")
        self._batch = batch
        self.batch_confirm_text.value = warning + (
            f"Issue <b>{len(batch.rows)}</b> credit(s) totalling <b>{total}</b> from "
            f"<code>{escape(batch.name)}</code> on <b>{self.client.config.environment_name}</b>?{skipped}")
        self.batch_confirm.description = f"Issue {len(batch.rows)} credit(s)"
        self.batch_confirm_box.layout.display = "flex"
        self._batch_state = "confirming"

    @guarded
    def on_batch_cancel(self, _button: Any = None) -> None:
        """Leave the batch confirmation without sending."""
        if self._batch_state == "confirming":
            self._batch_state = "idle"
            self._batch = None
            self.batch_confirm_box.layout.display = "none"

    @guarded
    def on_batch_confirmed(self, _button: Any = None) -> None:
        """Issue the confirmed batch, once: clicks while it runs, or after, do nothing."""
        batch = self._batch
        if self._batch_state != "confirming" or batch is None or self._refuse_production():
            return
        self._batch_state = "running"
        self._batch = None
        self.batch_confirm_box.layout.display = "none"
        self.batch_button.disabled = True
        self._begin(self.batch_result)
        self.batch_progress.max, self.batch_progress.value = max(len(batch.rows), 1), 0
        notes = []
        try:
            for row in batch.rows:
                kwargs = {k: v for k, v in row.items() if k != "line"}
                notes.append({"line": row["line"], "reference": row["reference_code"],
                              "note": self._issue_row(kwargs)})
                self.batch_progress.value += 1
        finally:
            self._batch_state = "idle"
            self.batch_button.disabled = self.client.config.is_production
            self.refresh_issued()
            self._show_batch(batch, notes)

    def _issue_row(self, kwargs: dict[str, Any]) -> str:
        try:
            self.client.create_credit(**kwargs)
        except DeclinedError as exc:
            return f"declined: {exc.reason}"
        except AmbiguousOutcomeError:
            return "outcome unknown: not resent; use Look it up"
        except (ApiError, ReconkitError) as exc:
            return str(exc)
        return "issued now"

    def _show_batch(self, batch: _Batch, notes: list[dict[str, Any]]) -> None:
        self._batch_shown = notes + [{"line": r["line"], "reference": r["reference_code"],
                                      "note": "issued before: not sent again"} for r in batch.already]
        self._render_batch()

    def _render_batch(self) -> None:
        """The last batch's rows with their current ledger state (lookups update it)."""
        if not self._batch_shown:
            return
        rows = []
        for shown in sorted(self._batch_shown, key=lambda r: r["line"]):
            entry = self.client.ledger.credit(shown["reference"]) or {}
            rows.append({"Line": shown["line"], "Credit id": entry.get("credit_id") or "",
                         "Amount": entry.get("amount", ""), "Currency": entry.get("currency", ""),
                         "Status": shown_status(entry.get("status"), entry["outcome"]) if entry else "",
                         "Outcome": entry.get("outcome", ""),
                         "This run": shown["note"], "Reference": shown["reference"]})
        self.batch_result.value = table_html(pd.DataFrame(rows))

