"""What the Business Center would export for the sandbox's credits: a transaction-search CSV.

Written from the sandbox's own records (never from reconkit's readers or frames), in the layout of
CyberSource's "exported search results" (reference/settlement-formats.md 4.12): no report-info
line, ``Date and Time`` like ``Nov 02 2026 06:26:15 PM``, credits negative, ``Applications`` a
human-readable list, no reconciliation id.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from ..money import format_amount
from .state import SandboxState

__all__ = ["SEARCH_HEADER", "write_transaction_search"]

SEARCH_HEADER = ("Merchant ID", "Date and Time", "Request ID", "Merchant Reference Number", "Last Name",
                 "First Name", "Email Address", "Amount", "Currency", "Account Suffix", "Applications")
_APPLICATIONS = {"DECLINED": "Credit Card Credit (Reject)", "FAILED": "Credit Card Credit (Error)",
                 "VOIDED": "Credit Card Credit (Accept),Void (Accept)"}


def write_transaction_search(state: SandboxState, path: str | Path) -> Path:
    """Write every credit the sandbox holds as a Business Center transaction-search export.

    Returns
    -------
    Path
        ``path``; its rows are in the order the credits were issued.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SEARCH_HEADER)
    for credit in state.credits():
        moment = datetime.fromisoformat(credit["created_at"])
        amount = format_amount(-Decimal(credit["amount"]), credit["currency"])
        writer.writerow([state.merchant_id, moment.strftime("%b %d %Y %I:%M:%S %p"), credit["id"],
                         credit["reference_code"] or "", "", "", "", amount, credit["currency"],
                         credit["card_suffix"] or "",
                         _APPLICATIONS.get(credit["status"], "Credit Card Credit (Accept)")])
    target = Path(path)
    target.write_bytes(out.getvalue().encode("utf-8"))
    return target
