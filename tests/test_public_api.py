import reconkit

PUBLIC = {
    "AmbiguousOutcomeError", "AmbiguousVoidError", "ApiError", "AuthenticationError", "BookIntegrityError", "BreakBook", "BreakBookError", "BreakConflictError",
    "Client", "Config", "ConfigError", "Credit", "CreditShapeError", "CreditsFileError", "DeclinedError", "DuplicateReferenceError",
    "FetchResult", "IdentityError", "IncompleteReportError", "IntakeError", "InvalidRequestError", "Ledger", "MessageEncryptionError", "MleSettings", "NetworkError", "NoReportDataError",
    "NotFoundError", "NotIndexedYetError", "ProductionGuardError", "RateLimitError", "ReconResult", "ReconciliationError",
    "ReconkitError", "RedirectError", "ReportFailedError", "ReportNotReadyError", "ServerError", "SettlementFormatError", "UnresolvedVoidError", "Void", "credits_to_frame", "read_credits", "read_settlement",
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


def test_the_error_tree_drawn_in_the_errors_docstring_is_the_real_one():
    import re

    from reconkit import errors, reporting

    parents: dict[str, str] = {}
    stack: list[str] = []
    for line in errors.__doc__.splitlines():
        found = re.match(r"^ {4}((?:[│ ] {3})*)(?:[├└]── )?([A-Z][A-Za-z]+Error)\b", line)
        if found:
            depth = len(found.group(1)) // 4 + (1 if "──" in line else 0)
            del stack[depth:]
            if stack:
                parents[found.group(2)] = stack[-1]
            stack.append(found.group(2))
    drawn = set(parents) | {"ReconkitError"}
    assert drawn == set(errors.__all__)  # every class drawn, nothing drawn that is not one
    for name, parent in parents.items():
        assert getattr(errors, name).__bases__[0] is getattr(errors, parent), name
    # reporting's errors are the tree's (the import path from reconkit.reporting still works)
    assert reporting.ReportNotReadyError is errors.ReportNotReadyError
    assert reporting.NoReportDataError is errors.NoReportDataError
    assert reporting.ReportFailedError is errors.ReportFailedError
