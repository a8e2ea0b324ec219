"""reconkit: issue CyberSource standalone credits, read them back, and reconcile them against
settlement files, from Python and Jupyter."""

# The sandbox and the session are reachable as attributes after `import reconkit` (reconkit.sandbox.Sandbox()).
from . import sandbox as sandbox
from . import session as session
from .auth import sign_request
from .breaks import BreakBook
from .client import Client
from .config import Config
from .credit import Credit, Void
from .credits_file import read_credits
from .errors import (
    AmbiguousOutcomeError,
    AmbiguousVoidError,
    ApiError,
    AuthenticationError,
    BookIntegrityError,
    BreakBookError,
    BreakConflictError,
    ConfigError,
    CreditsFileError,
    CreditShapeError,
    DeclinedError,
    DuplicateReferenceError,
    IdentityError,
    IncompleteReportError,
    IntakeError,
    InvalidRequestError,
    MessageEncryptionError,
    NetworkError,
    NoReportDataError,
    NotFoundError,
    NotIndexedYetError,
    ProductionGuardError,
    RateLimitError,
    ReconciliationError,
    ReconkitError,
    RedirectError,
    ReportFailedError,
    ReportNotReadyError,
    ServerError,
    SettlementFormatError,
    UnresolvedVoidError,
)
from .fetch import FetchResult
from .frames import credits_to_frame
from .ledger import Ledger
from .match import reconcile
from .mle import MleSettings
from .result import ReconResult
from .settlement import read_settlement

__version__ = "0.1.0"

__all__ = [
    "AmbiguousOutcomeError",
    "AmbiguousVoidError",
    "ApiError",
    "AuthenticationError",
    "BookIntegrityError",
    "BreakBook",
    "BreakBookError",
    "BreakConflictError",
    "Client",
    "Config",
    "ConfigError",
    "Credit",
    "CreditShapeError",
    "CreditsFileError",
    "DeclinedError",
    "DuplicateReferenceError",
    "FetchResult",
    "IdentityError",
    "IncompleteReportError",
    "IntakeError",
    "InvalidRequestError",
    "Ledger",
    "MessageEncryptionError",
    "MleSettings",
    "NetworkError",
    "NoReportDataError",
    "NotFoundError",
    "NotIndexedYetError",
    "ProductionGuardError",
    "RateLimitError",
    "ReconResult",
    "ReconciliationError",
    "ReconkitError",
    "RedirectError",
    "ReportFailedError",
    "ReportNotReadyError",
    "ServerError",
    "SettlementFormatError",
    "UnresolvedVoidError",
    "Void",
    "credits_to_frame",
    "read_credits",
    "read_settlement",
    "reconcile",
    "sign_request",
]
