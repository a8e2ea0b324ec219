"""reconkit: issue CyberSource standalone credits, read them back, and reconcile them against
settlement files, from Python and Jupyter."""

from .auth import sign_request
from .client import Client
from .config import Config
from .credit import Credit, Void
from .errors import (
    AmbiguousOutcomeError,
    ApiError,
    AuthenticationError,
    ConfigError,
    DeclinedError,
    InvalidRequestError,
    NetworkError,
    NotFoundError,
    ProductionGuardError,
    RateLimitError,
    ReconciliationError,
    ReconkitError,
    ServerError,
    SettlementFormatError,
)
from .ledger import Ledger

__version__ = "0.1.0"

__all__ = [
    "AmbiguousOutcomeError",
    "ApiError",
    "AuthenticationError",
    "Client",
    "Config",
    "ConfigError",
    "Credit",
    "DeclinedError",
    "InvalidRequestError",
    "Ledger",
    "NetworkError",
    "NotFoundError",
    "ProductionGuardError",
    "RateLimitError",
    "ReconciliationError",
    "ReconkitError",
    "ServerError",
    "SettlementFormatError",
    "Void",
    "sign_request",
]
