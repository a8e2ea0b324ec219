"""The engine on Spark: settlement histories too big for one machine, or already in a lakehouse.

Everything here is Spark SQL expressions and the narwhals engine core, with no Python UDF:
Spark's workers need no reconkit install, and the same calls work over Spark Connect.
"""

from .engine import MATERIALIZE, SparkReconResult, reconcile
from .local import local_session
from .readers import SparkSettlement, read_canonical, read_settlement
from .view import break_page, credits_frame, summary_cards

__all__ = ["MATERIALIZE", "SparkReconResult", "SparkSettlement", "break_page", "credits_frame", "local_session",
           "read_canonical", "read_settlement", "reconcile", "summary_cards"]
