"""Payment Batch Detail XML: the v1.0/v1.4 layout (Batches/Batch/Requests/Request) and the new
layout (Requests/Request with PaymentData/PaymentInfo and BATCH). Namespace-agnostic, element
text trimmed, every row tied to the line its element starts on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.parsers import expat

import pyarrow as pa

from ..errors import SettlementFormatError
from .schema import Canonical, canonicalize

__all__ = ["read_xml"]


@dataclass
class _Node:
    tag: str
    attrs: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)
    text: str = ""

    def child(self, tag: str) -> _Node | None:
        return next((c for c in self.children if c.tag == tag), None)

    def value(self, tag: str) -> str | None:
        node = self.child(tag)
        return node.text.strip() if node is not None else None

    def iter(self, tag: str) -> list[_Node]:
        found, stack = [], [self]
        while stack:
            node = stack.pop()
            if node.tag == tag:
                found.append(node)
            stack.extend(reversed(node.children))
        return found


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def _parse(data: bytes, name: str, utf8: bool) -> _Node:
    # A file converted to UTF-8 may still declare its original encoding: the conversion wins.
    parser = expat.ParserCreate("UTF-8" if utf8 else None)
    root = _Node("#document", {}, 0)
    stack = [root]
    texts: list[list[str]] = [[]]

    def start(tag: str, attrs: dict[str, str]) -> None:
        node = _Node(_local(tag), {_local(k): v for k, v in attrs.items()}, parser.CurrentLineNumber)
        stack[-1].children.append(node)
        stack.append(node)
        texts.append([])

    def end(tag: str) -> None:
        node = stack.pop()
        node.text = "".join(texts.pop())

    def chars(data: str) -> None:
        texts[-1].append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise SettlementFormatError(f"malformed XML: {expat.ErrorString(exc.code)}", file=name, line=exc.lineno,
                                    column=f"character {exc.offset + 1}", expected="well-formed XML") from None
    if not root.children:
        raise SettlementFormatError("the XML has no root element", file=name, line=1)
    return root.children[0]


def read_xml(data: bytes, name: str, *, utf8: bool = False) -> Canonical:
    """Read a PBDR XML file (either layout) into canonical rows and failure cases.

    ``utf8``: the bytes are UTF-8 whatever the XML declaration says (they were converted).
    """
    report = _parse(data, name, utf8)
    merchant = report.attrs.get("MerchantID") or report.attrs.get("OrganizationID")
    rows: dict[str, list[str | None]] = {k: [] for k in (
        "reconciliation_id", "request_id", "merchant_ref", "transaction_type", "amount", "currency", "batch_id",
        "batch_date", "merchant_id", "payment_method")}
    lines: list[int] = []

    def add(line: int, **values: str | None) -> None:
        for key in rows:
            rows[key].append(values.get(key))
        lines.append(line)

    batches = report.iter("Batch")
    if batches:
        layout = "pbdr_xml"
        # Every Request is a row, even one outside any Batch (then it has no batch id or date).
        owner = {id(request): batch for batch in batches for request in batch.iter("Request")}
        nobatch = _Node("Batch", {}, 0)
        for request in report.iter("Request"):
            batch = owner.get(id(request), nobatch)
            add(request.line, reconciliation_id=request.value("TransactionReferenceNumber") or "",
                request_id=request.attrs.get("RequestID", ""),
                merchant_ref=request.attrs.get("MerchantReferenceNumber"),
                transaction_type=request.value("Application") or "", amount=request.value("Amount") or "",
                currency=request.value("CurrencyCode") or "", batch_id=batch.attrs.get("BatchID"),
                batch_date=batch.attrs.get("BatchDate"), merchant_id=merchant,
                payment_method=request.value("PaymentMethod"))
    else:
        layout = "pbdr_xml_new"
        requests = report.iter("Request")
        if not requests:
            raise SettlementFormatError("no Batch or Request elements: not a Payment Batch Detail report",
                                        file=name, line=report.line, expected="<Batches><Batch> or <Requests>")
        for request in requests:
            replies = [r.attrs.get("Name", "") for r in request.iter("ApplicationReply")]
            batch = request.child("BATCH")
            method = request.child("PaymentMethod")
            infos = request.iter("PaymentInfo") or [request]
            for index, info in enumerate(infos):
                add(info.line, reconciliation_id=info.value("TransactionReferenceNumber") or "",
                    request_id=request.attrs.get("RequestID", ""),
                    merchant_ref=request.attrs.get("MerchantReferenceNumber"),
                    transaction_type=(replies[index] if index < len(replies) else ",".join(replies)) or "",
                    amount=info.value("Amount") or "", currency=info.value("CurrencyCode") or "",
                    batch_id=batch.value("BatchID") if batch else None,
                    batch_date=batch.value("BatchDate") if batch else None,
                    merchant_id=request.attrs.get("MerchantID") or merchant,
                    payment_method=(method.value("Type") or method.text.strip() or None) if method else None)
    columns = {key: pa.array(values, pa.string()) for key, values in rows.items()}
    return canonicalize(columns, pa.array(lines, pa.int64()), source_file=name, report_format=layout)
