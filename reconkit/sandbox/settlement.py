"""The settlement-file generator: what the processor side says about the sandbox's credits,
with discrepancies injected on purpose and the ground truth a correct reconciliation must give.
"""

from __future__ import annotations

import csv
import io
import random
import string
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from ..money import format_amount, minor_units

if TYPE_CHECKING:
    import pandas as pd

    from .state import SandboxState

__all__ = ["DISCREPANCY_KINDS", "FORMATS", "SettlementBundle", "generate_settlement", "missing_outcome"]

FORMATS = ("pbdr_csv", "pbdr_xml", "psd_csv", "psd_classic_csv", "pbdr_new_csv", "processor_csv")
DISCREPANCY_KINDS = ("missing", "amount", "currency", "duplicate", "unexpected", "voided_settled", "next_day",
                     "debit_shared_id", "whitespace", "recon_id_missing")
_EXTENSIONS = {"pbdr_xml": "xml"}
_OTHER_CURRENCY = {"USD": "EUR", "EUR": "USD", "GBP": "USD", "JPY": "USD"}


def missing_outcome(submit_time: datetime, as_of: datetime, grace_days: int) -> str:
    """``MISSING_PENDING`` while a credit is within the grace period, ``MISSING_OVERDUE`` after."""
    return "MISSING_PENDING" if as_of - submit_time <= timedelta(days=grace_days) else "MISSING_OVERDUE"


@dataclass
class _Row:
    batch_id: str
    batch_date: date
    request_id: str
    merchant_ref: str
    recon_id: str
    payment_method: str
    currency: str
    amount: Decimal
    transaction_type: str  # ics_credit / ics_bill
    outcome: str
    credit_id: str | None
    kind: str
    line: int = 0


@dataclass(frozen=True)
class SettlementBundle:
    """What :func:`generate_settlement` wrote.

    Attributes
    ----------
    files : list of Path
    format : str
    credits_truth : DataFrame
        One row per sandbox credit: ``credit_id``, ``reconciliation_id``, ``outcome``, ``kind``.
    settlement_truth : DataFrame
        One row per settlement row written: ``source_file``, ``source_line``, ids, amount,
        ``outcome``, ``credit_id`` (the credit it belongs to, if any), ``kind`` and
        ``batch_date`` (``YYYY-MM-DD``, the day the file gives it).
    as_of, grace_days : the reconciliation parameters the truth assumes.
    injected : dict
        How many of each discrepancy kind were injected.
    """

    files: list[Path]
    format: str
    credits_truth: pd.DataFrame
    settlement_truth: pd.DataFrame
    as_of: datetime
    grace_days: int
    injected: dict[str, int] = field(default_factory=dict)

    @property
    def truth(self) -> pd.DataFrame:
        """Both sides stacked, with a ``side`` column (``credit`` / ``settlement``)."""
        import pandas as pd

        credits = self.credits_truth.assign(side="credit")
        rows = self.settlement_truth.assign(side="settlement")
        return pd.concat([credits, rows], ignore_index=True)

    def outcome_counts(self) -> dict[str, int]:
        """Outcomes over credits and settlement rows together."""
        return {str(k): int(v) for k, v in self.truth["outcome"].value_counts().sort_index().items()}

    def disagreements(self, result: Any) -> pd.DataFrame:
        """Where a :class:`reconkit.ReconResult` differs from this ground truth.

        Credits are keyed by id, settlement rows by (file name, line), in both directions: an
        outcome the truth gives that the result lacks or differs from, and a credit or row of the
        result the truth does not hold (``expected`` None), such as an extra
        ``UNEXPECTED_SETTLEMENT``. Returns one row per disagreement (``side``, ``key``,
        ``expected``, ``got``); empty when the engine agrees.
        """
        import pandas as pd

        got = dict(zip(result.credits["credit_id"].astype(str), result.credits["outcome"].astype(str), strict=True))
        rows = result.settlement
        names = rows["source_file"].astype(str).map(lambda p: Path(p).name)
        got_rows = dict(zip(zip(names, rows["source_line"].astype(int), strict=True), rows["outcome"].astype(str),
                            strict=True))
        truth = self.settlement_truth
        found = [("credit", k, str(v), got.get(k)) for k, v in
                 zip(self.credits_truth["credit_id"].astype(str), self.credits_truth["outcome"], strict=True)
                 if got.get(k) != v]
        found += [("settlement", k, str(v), got_rows.get(k)) for k, v in
                  zip(zip(truth["source_file"].astype(str), truth["source_line"].astype(int), strict=True),
                      truth["outcome"], strict=True) if got_rows.get(k) != v]
        known = set(self.credits_truth["credit_id"].astype(str))
        found += [("credit", k, None, v) for k, v in got.items() if k not in known]
        known_rows = set(zip(truth["source_file"].astype(str), truth["source_line"].astype(int), strict=True))
        found += [("settlement", k, None, v) for k, v in got_rows.items() if k not in known_rows]
        return pd.DataFrame(found, columns=["side", "key", "expected", "got"])

    def write_truth(self, path: str | Path) -> Path:
        """Write the ground truth as CSV (ids as text, ``source_line`` a whole number, blank for a credit)."""
        target = Path(path)
        truth = self.truth
        truth["source_line"] = truth["source_line"].astype("Int64")  # stacking with credits made it float
        truth.to_csv(target, index=False)
        return target


def _counts(spec: Mapping[str, float] | None, pool: int, rng: random.Random) -> dict[str, int]:
    result = {}
    for kind, value in (spec or {}).items():
        if kind not in DISCREPANCY_KINDS:
            raise ValueError(f"unknown discrepancy {kind!r}; expected one of {', '.join(DISCREPANCY_KINDS)}")
        if isinstance(value, float) and 0 <= value < 1:
            result[kind] = round(value * pool)
        elif float(value) >= 0 and float(value) == int(value):
            result[kind] = int(value)
        else:
            raise ValueError(f"discrepancy {kind}={value!r} must be a count (int) or a rate in [0, 1)")
    return result


def generate_settlement(state: SandboxState, date_range: tuple[date, date] | None = None, *,
                        format: str = "pbdr_csv", discrepancies: Mapping[str, float] | None = None,
                        seed: int = 0, out_dir: str | Path | None = None, as_of: datetime | None = None,
                        grace_days: int = 3, captures: int = 3, filename: str | None = None) -> SettlementBundle:
    """Write the settlement side of the sandbox's credits in one of :data:`FORMATS`.

    Parameters
    ----------
    state : SandboxState
    date_range : (date, date), optional
        Batch dates to include (inclusive); default every batch the sandbox ran.
    format : str
        ``pbdr_csv`` (legacy v1.0: report-info line, CRLF, credits negative), ``pbdr_xml``
        (v1.0 layout, credits positive), ``psd_classic_csv`` (every value quoted,
        ``ics_applications``, unsigned), ``pbdr_new_csv`` (SOAPI-style headers, unsigned) or
        ``processor_csv`` (a generic acquirer file with a totals footer).
    discrepancies : mapping
        ``{kind: count}`` or ``{kind: rate}`` with kinds from :data:`DISCREPANCY_KINDS`. Each
        credit gets at most one.
    seed : int
    out_dir : path, optional
        Defaults to a new temporary directory.
    as_of, grace_days
        The reconciliation parameters the ground truth assumes (``as_of``: the sandbox clock).
    captures : int
        Unrelated capture (``ics_bill``) rows added as noise; they are ``OUT_OF_SCOPE``.

    Returns
    -------
    SettlementBundle
    """
    import pandas as pd

    if format not in FORMATS:
        raise ValueError(f"unknown settlement format {format!r}; expected one of {', '.join(FORMATS)}")
    rng = random.Random(f"settlement:{seed}")
    as_of = as_of or state.now()
    credits = state.credits()
    batch_dates = sorted({date.fromisoformat(c["batch_date"]) for c in credits if c["batch_date"]})
    if date_range is None:
        first = batch_dates[0] if batch_dates else as_of.date()
        last = batch_dates[-1] if batch_dates else as_of.date()
    else:
        first, last = date_range
    truth: dict[str, tuple[str, str]] = {}
    rows: list[_Row] = []
    settled, voided = [], []
    for credit in credits:
        submit = datetime.fromisoformat(credit["created_at"])
        if credit["status"] in ("DECLINED", "VOIDED", "FAILED"):
            truth[credit["id"]] = ("NO_SETTLEMENT_EXPECTED", credit["status"].lower())
            if credit["status"] == "VOIDED":
                voided.append(credit)
        elif credit["batch_date"] and first <= date.fromisoformat(credit["batch_date"]) <= last:
            settled.append(credit)
        else:
            truth[credit["id"]] = (missing_outcome(submit, as_of, grace_days), "not_in_range")
    counts = _counts(discrepancies, len(settled), rng)
    injected = dict.fromkeys(counts, 0)
    order = list(settled)
    rng.shuffle(order)
    plan: dict[str, str] = {}
    for kind in ("missing", "amount", "currency", "duplicate", "next_day", "debit_shared_id", "whitespace",
                 "recon_id_missing"):
        for _ in range(counts.get(kind, 0)):
            if not order:
                break
            plan[order.pop()["id"]] = kind
            injected[kind] += 1

    def base_row(credit: dict[str, Any], outcome: str, kind: str) -> _Row:
        return _Row(batch_id=credit["batch_id"] or f"{first:%y%m%d}0001",
                    batch_date=date.fromisoformat(credit["batch_date"]) if credit["batch_date"] else first,
                    request_id=credit["id"], merchant_ref=credit["reference_code"] or "",
                    recon_id=credit["reconciliation_id"], payment_method=credit["payment_method"] or "Visa",
                    currency=credit["currency"], amount=Decimal(credit["amount"]), transaction_type="ics_credit",
                    outcome=outcome, credit_id=credit["id"], kind=kind)

    for credit in settled:
        kind = plan.get(credit["id"], "none")
        submit = datetime.fromisoformat(credit["created_at"])
        if kind == "missing":
            truth[credit["id"]] = (missing_outcome(submit, as_of, grace_days), kind)
            continue
        outcome = {"none": "MATCHED", "amount": "AMOUNT_MISMATCH", "currency": "CURRENCY_MISMATCH",
                   "duplicate": "DUPLICATE_SETTLEMENT", "next_day": "MATCHED", "whitespace": "MATCHED",
                   "debit_shared_id": "DIRECTION_MISMATCH", "recon_id_missing": "MATCHED_BY_REQUEST_ID"}[kind]
        truth[credit["id"]] = (outcome, kind)
        row = base_row(credit, outcome, kind)
        if kind == "amount":
            step = Decimal(1).scaleb(-minor_units(row.currency))
            delta = step * rng.randint(1, 500)
            row.amount = row.amount - delta if row.amount - delta > 0 else row.amount + delta
        elif kind == "currency":
            row.currency = _OTHER_CURRENCY.get(row.currency, "USD")
            row.amount = Decimal(format_amount(row.amount, row.currency)) if minor_units(row.currency) >= \
                minor_units(credit["currency"]) else row.amount.quantize(Decimal(1))
        elif kind == "next_day":
            row.batch_date += timedelta(days=1)
        elif kind == "debit_shared_id":
            row.transaction_type = "ics_bill"
            row.request_id = "".join(rng.choice(string.digits) for _ in range(22))
        elif kind == "recon_id_missing":
            row.recon_id = ""
        rows.append(row)
        if kind == "duplicate":
            rows.append(base_row(credit, outcome, kind))
    for credit in voided[: counts.get("voided_settled", 0)]:
        truth[credit["id"]] = ("VOIDED_BUT_SETTLED", "voided_settled")
        row = base_row(credit, "VOIDED_BUT_SETTLED", "voided_settled")
        row.batch_date = max(first, min(last, datetime.fromisoformat(credit["created_at"]).date()))
        rows.append(row)
        injected["voided_settled"] += 1

    def random_row(transaction_type: str, outcome: str, kind: str) -> _Row:
        when = first + timedelta(days=rng.randint(0, max((last - first).days, 0)))
        currency = rng.choice(["USD", "USD", "EUR", "GBP"])
        return _Row(batch_id=f"{when:%y%m%d}0001", batch_date=when,
                    request_id="".join(rng.choice(string.digits) for _ in range(22)),
                    merchant_ref=f"ext-{rng.randrange(10**8):08d}",
                    recon_id="".join(rng.choice(string.digits) for _ in range(8))
                    + "".join(rng.choice(string.ascii_uppercase) for _ in range(8)),
                    payment_method="Visa", currency=currency,
                    amount=Decimal(rng.randint(100, 99999)).scaleb(-2), transaction_type=transaction_type,
                    outcome=outcome, credit_id=None, kind=kind)

    for _ in range(counts.get("unexpected", 0)):
        rows.append(random_row("ics_credit", "UNEXPECTED_SETTLEMENT", "unexpected"))
        injected["unexpected"] += 1
    for _ in range(captures):
        rows.append(random_row("ics_bill", "OUT_OF_SCOPE", "capture"))
    rows.sort(key=lambda r: (r.batch_date, r.batch_id, r.request_id))
    directory = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="reconkit-settlement-"))
    directory.mkdir(parents=True, exist_ok=True)
    name = filename or f"{format}_{first:%Y%m%d}_{last:%Y%m%d}.{_EXTENSIONS.get(format, 'csv')}"
    path = directory / name
    whitespace = {c_id for c_id, k in plan.items() if k == "whitespace"}
    writer = {"pbdr_csv": _write_pbdr_csv, "pbdr_xml": _write_pbdr_xml, "psd_csv": _write_psd,
              "psd_classic_csv": _write_psd_classic,
              "pbdr_new_csv": _write_pbdr_new, "processor_csv": _write_processor}[format]
    path.write_bytes(writer(rows, first, last, state.merchant_id, whitespace, rng))
    credit_truth = pd.DataFrame(
        [{"credit_id": c["id"], "reconciliation_id": c["reconciliation_id"], "outcome": truth[c["id"]][0],
          "kind": truth[c["id"]][1]} for c in credits],
        columns=["credit_id", "reconciliation_id", "outcome", "kind"], dtype="string")
    settlement_truth = pd.DataFrame(
        [{"source_file": path.name, "source_line": r.line, "reconciliation_id": r.recon_id or None,
          "request_id": r.request_id, "transaction_type": r.transaction_type, "amount": str(r.amount),
          "currency": r.currency, "outcome": r.outcome, "credit_id": r.credit_id, "kind": r.kind,
          "batch_date": r.batch_date.isoformat()} for r in rows],
        columns=["source_file", "source_line", "reconciliation_id", "request_id", "transaction_type", "amount",
                 "currency", "outcome", "credit_id", "kind", "batch_date"])
    settlement_truth = settlement_truth.astype({c: "string" for c in settlement_truth.columns if c != "source_line"})
    settlement_truth["source_line"] = settlement_truth["source_line"].astype("int64")
    return SettlementBundle([path], format, credit_truth, settlement_truth, as_of, grace_days, injected)


def _ids(row: _Row, whitespace: set[str], rng: random.Random) -> tuple[str, str]:
    if row.credit_id in whitespace:
        pads = [" ", "  ", "\t", " \t"]
        return f"{rng.choice(pads)}{row.request_id} ", f" {row.recon_id}{rng.choice(pads)}"
    return row.request_id, row.recon_id


def _amount(row: _Row) -> str:
    return format_amount(row.amount, row.currency)


def _csv_bytes(lines: list[list[str]], *, quote_all: bool = False, delimiter: str = ",",
               info: str | None = None) -> tuple[bytes, int]:
    buffer = io.StringIO()
    if info is not None:
        buffer.write(info + "\r\n")
    writer = csv.writer(buffer, lineterminator="\r\n", delimiter=delimiter,
                        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerows(lines)
    return buffer.getvalue().encode("utf-8"), (2 if info is not None else 1)


def _pbdr_lines(rows: list[_Row], merchant: str, ws: set[str], rng: random.Random) -> list[list[str]]:
    """The classic PBDR's header and one line per row (credits negative, as in the documented sample)."""
    lines = [["batch_id", "merchant_id", "batch_date", "request_id", "merchant_ref_number", "trans_ref_no",
              "payment_method", "currency", "amount", "transaction_type"]]
    for number, row in enumerate(rows, start=3):
        row.line = number
        request_id, recon = _ids(row, ws, rng)
        amount = _amount(row)
        lines.append([row.batch_id, merchant, row.batch_date.isoformat(), request_id, row.merchant_ref, recon,
                      row.payment_method, row.currency, f"-{amount}" if row.transaction_type == "ics_credit"
                      else amount, row.transaction_type])
    return lines


def _write_pbdr_csv(rows: list[_Row], first: date, last: date, merchant: str, ws: set[str],
                    rng: random.Random) -> bytes:
    lines = _pbdr_lines(rows, merchant, ws, rng)
    info = "Payment Batch Detail Report,1.0," + f"{first} to {last}" + "," * (len(lines[0]) - 3)
    return _csv_bytes(lines, info=info)[0]


def _write_psd(rows: list[_Row], first: date, last: date, merchant: str, ws: set[str], rng: random.Random) -> bytes:
    """The Payment Submission Detail Report as documented: the PBDR's columns and a trailing
    ``payment_processor``, every value quoted."""
    lines = _pbdr_lines(rows, merchant, ws, rng)
    lines = [[*lines[0], "payment_processor"]] + [[*line, "smartfdc"] for line in lines[1:]]
    info = "Payment Submission Detail Report,1.0," + f"{first} to {last}" + "," * (len(lines[0]) - 3)
    return _csv_bytes(lines, quote_all=True, info=info)[0]


def _write_psd_classic(rows: list[_Row], first: date, last: date, merchant: str, ws: set[str],
                       rng: random.Random) -> bytes:
    header = ["batch_id", "merchant_id", "batch_date", "request_id", "merchant_ref_number", "trans_ref_no",
              "payment_type", "currency", "amount", "ics_applications", "payment_processor"]
    lines = [header]
    for number, row in enumerate(rows, start=3):
        row.line = number
        request_id, recon = _ids(row, ws, rng)
        apps = "ics_credit" if row.transaction_type == "ics_credit" else rng.choice(
            ["ics_bill", "ics_auth,ics_bill", "ics_bill, ics_auth"])
        lines.append([row.batch_id, merchant, f"{row.batch_date}T08:00:00Z", request_id, row.merchant_ref, recon,
                      "credit card", row.currency, _amount(row), apps, "smartfdc"])
    info = "Payment Submission Detail Report,1.0," + f"{first} to {last}"
    return _csv_bytes(lines, quote_all=True, info=info)[0]


PBDR_NEW_HEADER = ("RequestID", "MerchantID", "LocalizedRequestDate", "TransactionDate", "BatchID", "BatchDate",
                   "Status", "MerchantReferenceNumber", "TransactionReferenceNumber", "Application", "PaymentMethod",
                   "CurrencyCode", "Amount")
"""The standard (new) Payment Batch Detail CSV's columns as ``pbdr_new_csv`` writes them: the
documented standard fields (batch and request) and the custom ones reconciliation needs, in SOAP
style names; the documentation publishes no default order, so the order is the sandbox's."""


def _write_pbdr_new(rows: list[_Row], first: date, last: date, merchant: str, ws: set[str],
                    rng: random.Random) -> bytes:
    lines = [list(PBDR_NEW_HEADER)]
    for number, row in enumerate(rows, start=3):
        row.line = number
        request_id, recon = _ids(row, ws, rng)
        stamp = f"{row.batch_date}T12:00:00Z"
        lines.append([request_id, merchant, stamp, stamp, row.batch_id, f"{row.batch_date}T23:59:59Z", "Success",
                      row.merchant_ref, recon, row.transaction_type, row.payment_method, row.currency,
                      _amount(row)])
    info = f"Payment Batch Detail Report,1.0,{first} to {last},{merchant}"
    return _csv_bytes(lines, info=info)[0]


def _write_processor(rows: list[_Row], first: date, last: date, merchant: str, ws: set[str],
                     rng: random.Random) -> bytes:
    header = ["Settlement Date", "Batch Number", "Merchant Order #", "Reconciliation ID", "Request ID",
              "Transaction Type", "Card Brand", "Currency", "Amount"]
    lines = [header]
    for number, row in enumerate(rows, start=2):
        row.line = number
        request_id, recon = _ids(row, ws, rng)
        lines.append([row.batch_date.strftime("%Y%m%d"), row.batch_id, row.merchant_ref, recon, request_id,
                      "REFUND" if row.transaction_type == "ics_credit" else "SALE", row.payment_method.upper(),
                      row.currency, _amount(row)])
    lines.append(["TOTAL", str(len(rows)), "", "", "", "", "", "", ""])
    return _csv_bytes(lines, delimiter=";")[0]


def _write_pbdr_xml(rows: list[_Row], first: date, last: date, merchant: str, ws: set[str],
                    rng: random.Random) -> bytes:
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           f'<Report Name="Payment Batch Detail" Version="1.0" '
           f'xmlns="https://ebc.cybersource.com/ebc/reports/dtd/pbdr.dtd" MerchantID={quoteattr(merchant)} '
           f'ReportStartDate="{first}T00:00:00-00:00" ReportEndDate="{last}T23:59:59-00:00">',
           "  <Batches>"]
    batches: dict[tuple[str, date], list[_Row]] = {}
    for row in rows:
        batches.setdefault((row.batch_id, row.batch_date), []).append(row)
    for (batch_id, batch_date), members in batches.items():
        out.append(f'    <Batch BatchID="{batch_id}" BatchDate="{batch_date}">')
        out.append("      <Requests>")
        for row in members:
            request_id, recon = _ids(row, ws, rng)
            row.line = len(out) + 1
            out.append(f"        <Request RequestID={quoteattr(request_id)} "
                       f"MerchantReferenceNumber={quoteattr(row.merchant_ref)}>")
            out.append(f"          <TransactionReferenceNumber>\n            {xml_escape(recon)}\n"
                       "          </TransactionReferenceNumber>")
            out.append(f"          <PaymentMethod>{xml_escape(row.payment_method)}</PaymentMethod>")
            out.append(f"          <CurrencyCode>{row.currency}</CurrencyCode>")
            out.append(f"          <Amount>{_amount(row)}</Amount>")
            out.append(f"          <Application>{row.transaction_type}</Application>")
            out.append("        </Request>")
        out.append("      </Requests>")
        out.append("    </Batch>")
    out += ["  </Batches>", "</Report>", ""]
    # Line numbers above count list entries; entries holding "\n" shift later lines.
    text, line = [], 1
    fixed: dict[int, int] = {}
    for index, entry in enumerate(out, start=1):
        fixed[index] = line
        text.append(entry)
        line += entry.count("\n") + 1
    for row in rows:
        row.line = fixed[row.line]
    return ("\n".join(text)).encode("utf-8")


