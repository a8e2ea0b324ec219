import reconkit

PUBLIC = {
    "AmbiguousOutcomeError", "AmbiguousVoidError", "ApiError", "AuthenticationError", "BreakBook", "BreakBookError", "BreakConflictError",
    "Client", "Config", "ConfigError", "Credit", "CreditShapeError", "DeclinedError", "DuplicateReferenceError",
    "FetchResult", "InvalidRequestError", "Ledger", "NetworkError", "NoReportDataError",
    "NotFoundError", "ProductionGuardError", "RateLimitError", "ReconResult", "ReconciliationError",
    "ReconkitError", "ReportNotReadyError", "ServerError", "SettlementFormatError", "UnresolvedVoidError", "Void", "credits_to_frame", "read_settlement",
    "reconcile", "sign_request",
}


def test_all_is_sorted_and_pinned():
    assert reconkit.__all__ == sorted(reconkit.__all__)
    assert set(reconkit.__all__) == PUBLIC
    for name in reconkit.__all__:
        assert getattr(reconkit, name) is not None


def test_every_error_derives_from_reconkit_error():
    for name in reconkit.__all__:
        obj = getattr(reconkit, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, reconkit.ReconkitError)
