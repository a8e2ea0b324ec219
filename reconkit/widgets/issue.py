"""``IssueCreditApp``: issue test credits from a form, safely (validation, confirmation, one
credit per confirmation, ambiguous outcomes looked up, never production)."""

from __future__ import annotations

import csv
import html
import io
import uuid
from typing import Any

import ipywidgets as w
import pandas as pd

from ..cards import luhn_ok
from ..client import Client
from ..credit import Credit
from ..errors import AmbiguousOutcomeError, ApiError, DeclinedError, InvalidRequestError
from ..money import CURRENCIES
from ..session import connect
from .common import App, ConnectionBanner, guarded, json_html, status_badge, table_html

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
_STYLE = {"description_width": "130px"}


def _reference() -> str:
    return f"test-refund-{uuid.uuid4().hex[:12]}"


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
        layout = w.Layout(width="420px")
        self.source_kind = w.Dropdown(options=_SOURCES, value="card", description="Pay to", style=_STYLE,
                                      layout=layout)
        self.source = w.Text(value="4111111111111111", description="Card number / token", style=_STYLE,
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
        self.confirm_button = w.Button(description="Confirm", button_style="danger")
        self.cancel_button = w.Button(description="Cancel")
        self.confirm_box = w.VBox([self.confirm_text, w.HBox([self.confirm_button, self.cancel_button])],
                                  layout=w.Layout(display="none"))
        self.result = w.HTML()
        self.raw = w.HTML()
        self.raw_view = w.Accordion(children=[self.raw], titles=("Raw JSON response",), selected_index=None)
        self.lookup_button = w.Button(description="Look it up", icon="search", layout=w.Layout(display="none"))
        self.error = w.HTML()
        self.issued = w.HTML()
        self.credit_picker = w.Dropdown(description="Credit", style=_STYLE, layout=layout)
        self.fetch_button = w.Button(description="Fetch again", icon="refresh")
        self.void_button = w.Button(description="Void", icon="ban")
        self.void_confirm = w.Button(description="Yes, void it", button_style="danger",
                                     layout=w.Layout(display="none"))
        self.batch_upload = w.FileUpload(accept=".csv", multiple=False, description="Batch CSV")
        self.batch_button = w.Button(description="Issue batch", icon="list")
        self.batch_progress = w.IntProgress(value=0, min=0, max=1, description="Batch")
        self.batch_result = w.HTML()
        self._state = "editing"
        self._issued_references: set[str] = set()
        self._pending_lookup: str | None = None
        self.last_credit: Credit | None = None

        for widget in (*self.fields.values(), self.source_kind):
            widget.observe(self._on_change, names="value")
        self.issue_button.on_click(self.on_issue)
        self.confirm_button.on_click(self.on_confirm)
        self.cancel_button.on_click(self.on_cancel)
        self.lookup_button.on_click(self.on_lookup)
        self.fetch_button.on_click(self.on_fetch)
        self.void_button.on_click(self.on_void)
        self.void_confirm.on_click(self.on_void_confirmed)
        self.batch_button.on_click(self.on_batch)

        form = w.VBox([w.HBox([widget, self.messages.get(name, w.HTML())])
                       for name, widget in [("kind", self.source_kind), *self.fields.items(),
                                            ("indicator", self.indicator)]])
        super().__init__([
            self.banner, w.HTML("<h3>Issue a test credit</h3>"), form, self.issue_button, self.confirm_box,
            self.error, self.result, self.lookup_button, self.raw_view,
            w.HTML("<h3>Credits issued (from the ledger)</h3>"), self.issued,
            w.HBox([self.credit_picker, self.fetch_button, self.void_button, self.void_confirm]),
            w.HTML("<h3>Batch: issue one credit per CSV row (amount, currency, instrument)</h3>"),
            w.HBox([self.batch_upload, self.batch_button, self.batch_progress]), self.batch_result,
        ])
        if self.client.config.is_production:
            self._refuse_production()
        self.validate()
        self.refresh_issued()

    # --- state ------------------------------------------------------------------------
    def _refuse_production(self) -> None:
        for widget in (self.issue_button, self.confirm_button, self.batch_button, self.void_button):
            widget.disabled = True
        self.error.value = ("<div class='reconkit-error' style='color:#b00020'><b>Refused:</b> this notebook "
                            "issues test credits only, and the configured environment is PRODUCTION.</div>")

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
        if self.reference.value.strip() in self._issued_references:
            problems["reference"] = "already used for a credit; a reference identifies one credit"
        for name, text in problems.items():
            self.messages[name].value = f"<span style='color:#b00020'>{html.escape(text)}</span>"
        valid = not problems
        self.issue_button.disabled = not valid or self.client.config.is_production or self._state == "sending"
        return valid

    def _on_change(self, change: dict[str, Any]) -> None:
        if self._state == "confirming":
            self.on_cancel()
        self.validate()

    # --- issuing ----------------------------------------------------------------------
    @guarded
    def on_issue(self, _button: Any = None) -> None:
        """Show the confirmation step (amount, currency, environment)."""
        if self.client.config.is_production:
            self._refuse_production()
            return
        if not self.validate() or self._state != "editing":
            return
        self.error.value = ""
        config = self.client.config
        self.confirm_text.value = (
            f"Issue a credit of <b>{html.escape(self.amount.value.strip())} {self.currency.value}</b> to "
            f"{html.escape(self.source_kind.label.lower())} <code>{html.escape(self._masked())}</code> on "
            f"<b>{config.environment_name}</b> ({html.escape(config.base_url)})?")
        self.confirm_box.layout.display = "flex"
        self._state = "confirming"

    def _masked(self) -> str:
        value = self.source.value.strip()
        return f"…{value[-4:]}" if self.source_kind.value == "card" and len(value) > 4 else value

    @guarded
    def on_cancel(self, _button: Any = None) -> None:
        """Leave the confirmation step without sending."""
        self.confirm_box.layout.display = "none"
        if self._state == "confirming":
            self._state = "editing"

    @guarded
    def on_confirm(self, _button: Any = None) -> None:
        """Send the credit, once: repeated clicks while or after it is sent do nothing."""
        if self._state != "confirming" or self.client.config.is_production:
            return
        kwargs = self.request_kwargs()
        if kwargs["reference_code"] in self._issued_references:
            return
        self._state = "sending"
        self.confirm_button.disabled = self.issue_button.disabled = True
        self._issued_references.add(kwargs["reference_code"])
        try:
            self._send(kwargs)
        finally:
            self.confirm_box.layout.display = "none"
            self.confirm_button.disabled = False
            self._state = "editing"
            self.reference.value = _reference()
            self.validate()
            self.refresh_issued()

    def _send(self, kwargs: dict[str, Any]) -> None:
        self.lookup_button.layout.display = "none"
        self.error.value = ""
        try:
            credit = self.client.create_credit(**kwargs)
        except DeclinedError as exc:
            credit = exc.credit
            self.show_credit(credit, note=f"Declined: {exc.reason} — {exc.message}")
        except AmbiguousOutcomeError as exc:
            self._pending_lookup = exc.reference_code
            self.result.value = (
                "<div class='reconkit-error' style='border-left:4px solid #b8860b;padding:4px 8px'><b>Outcome "
                f"unknown.</b> The request was sent but no answer came back, so it was <b>not</b> resent. "
                f"Reference <code>{html.escape(str(exc.reference_code))}</code>, transaction id "
                f"<code>{html.escape(str(exc.transaction_id))}</code>. Look it up before issuing again.</div>")
            self.lookup_button.layout.display = "flex"
        except ApiError as exc:
            self.result.value = ""
            self.show_error(exc)
        else:
            self.show_credit(credit)

    def show_credit(self, credit: Credit, *, note: str = "") -> None:
        """Show one credit: status in colour, ids, raw JSON."""
        self.last_credit = credit
        extra = f"<br>{html.escape(note)}" if note else ""
        self.result.value = (
            f"<div class='reconkit-result'>Status {status_badge(credit.status)} · credit id "
            f"<code>{html.escape(credit.id)}</code> · reconciliation id "
            f"<code>{html.escape(credit.reconciliation_id or '—')}</code> · {credit.amount} {credit.currency} "
            f"· source {credit.source}{extra}</div>")
        self.raw.value = json_html(credit.raw)

    @guarded
    def on_lookup(self, _button: Any = None) -> None:
        """Resolve an ambiguous outcome: search by the reference code."""
        if not self._pending_lookup:
            return
        found = self.client.find_credits_by_reference(self._pending_lookup)
        if found:
            self.show_credit(found[0], note=f"Found by reference {self._pending_lookup}: it was created.")
            self.lookup_button.layout.display = "none"
            self._pending_lookup = None
        else:
            self.result.value += (f"<div>No credit with reference <code>{html.escape(self._pending_lookup)}</code> "
                                  "was found (yet). Try again in a few minutes before issuing it again.</div>")

    # --- the ledger table and per-credit actions ---------------------------------------
    def refresh_issued(self) -> None:
        """Reload the table of issued credits from the ledger (survives kernel restarts)."""
        frame = self.client.ledger.credits()
        environment = self.client.config.base_url
        frame = frame[frame["environment"] == environment] if len(frame) else frame
        shown = frame.sort_values("intent_at", ascending=False).head(50)
        columns = ["intent_at", "reference_code", "credit_id", "status", "amount", "currency", "outcome"]
        self.issued.value = table_html(shown[columns]) if len(shown) else "<i>none yet</i>"
        ids = [i for i in shown["credit_id"].dropna().tolist()]
        self.credit_picker.options = ids
        if self.last_credit is not None and self.last_credit.id in ids:
            self.credit_picker.value = self.last_credit.id

    @guarded
    def on_fetch(self, _button: Any = None) -> None:
        """Fetch the selected credit again through its self link."""
        if self.credit_picker.value:
            self.show_credit(self.client.get_credit(self.credit_picker.value))

    @guarded
    def on_void(self, _button: Any = None) -> None:
        """Ask for confirmation before voiding."""
        if self.credit_picker.value and not self.client.config.is_production:
            self.void_confirm.description = f"Yes, void …{self.credit_picker.value[-6:]}"
            self.void_confirm.layout.display = "flex"

    @guarded
    def on_void_confirmed(self, _button: Any = None) -> None:
        """Void the selected credit."""
        self.void_confirm.layout.display = "none"
        credit_id = self.credit_picker.value
        if not credit_id:
            return
        void = self.client.void_credit(credit_id)
        self.result.value = f"<div>Void of <code>{html.escape(credit_id)}</code>: {status_badge(void.status)}</div>"
        self.raw.value = json_html(void.raw)
        self.refresh_issued()

    # --- batch ------------------------------------------------------------------------
    def _batch_rows(self) -> list[dict[str, Any]]:
        if not self.batch_upload.value:
            raise ValueError("choose a CSV file first (columns: amount, currency, instrument)")
        upload = self.batch_upload.value[0]
        name = upload.get("name", "batch.csv")
        text = bytes(upload["content"]).decode("utf-8-sig")
        reader = csv.DictReader(io.StringIO(text))
        missing = {"amount", "currency", "instrument"} - {h.strip().lower() for h in reader.fieldnames or []}
        if missing:
            raise ValueError(f"{name}: missing column(s) {', '.join(sorted(missing))}")
        rows, problems = [], []
        for line, record in enumerate(reader, start=2):
            record = {k.strip().lower(): (v or "").strip() for k, v in record.items() if k}
            instrument = record["instrument"]
            kwargs: dict[str, Any] = {"amount": record["amount"], "currency": record["currency"].upper(),
                                      "reference_code": _reference()}
            if instrument.isdigit() and 12 <= len(instrument) <= 19 and luhn_ok(instrument):
                kwargs["card"] = {"number": instrument, "expiration_month": "12", "expiration_year": "2031"}
            else:
                kwargs["instrument_identifier"] = instrument
                kwargs["card"] = {"expiration_month": "12", "expiration_year": "2031", "type": "001"}
            try:
                self.client.build_credit_request(**kwargs)
            except (InvalidRequestError, ValueError) as exc:
                problems.append(f"{name} line {line}: {exc}")
            rows.append({"line": line, **kwargs})
        if problems:
            raise ValueError("nothing was sent; fix these rows first: " + "; ".join(problems))
        return rows

    @guarded
    def on_batch(self, _button: Any = None) -> None:
        """Issue one credit per CSV row (every row validated first: a bad file sends nothing)."""
        if self.client.config.is_production:
            self._refuse_production()
            return
        rows = self._batch_rows()
        self.batch_button.disabled = True
        self.batch_progress.max, self.batch_progress.value = max(len(rows), 1), 0
        outcomes = []
        try:
            for row in rows:
                line = row.pop("line")
                try:
                    credit = self.client.create_credit(**row)
                    outcomes.append({"line": line, "reference": row["reference_code"], "credit_id": credit.id,
                                     "status": credit.status, "problem": ""})
                except DeclinedError as exc:
                    outcomes.append({"line": line, "reference": row["reference_code"], "credit_id": exc.credit.id,
                                     "status": "DECLINED", "problem": f"{exc.reason}: {exc.message}"})
                except (ApiError, AmbiguousOutcomeError) as exc:
                    outcomes.append({"line": line, "reference": row["reference_code"], "credit_id": "",
                                     "status": "ERROR", "problem": str(exc)})
                self.batch_progress.value += 1
        finally:
            self.batch_button.disabled = False
            self.batch_upload.value = ()
            self.refresh_issued()
        self.batch_result.value = table_html(pd.DataFrame(outcomes))
