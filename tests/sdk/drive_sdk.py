"""Drive the unmodified official CyberSource SDK against a sandbox; runs inside the SDK's own venv.

Reads one JSON object on stdin: ``host`` (``127.0.0.1:port``), ``merchant_id``, ``key_id``,
``secret_key``, and ``mle_config``: the SDK configuration for JWT with a P12 key and message-level
encryption both ways (the sandbox's ``sdk_config()``). Prints one JSON object: what each step
returned, as the SDK parsed it.
Nothing of the SDK is patched; TLS verification is switched off through its own ``ssl_verify``
setting because the sandbox presents a throwaway self-signed certificate.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import CyberSource  # noqa: F401 - imported before authenticationsdk (the SDK's circular import)
from CyberSource import (
    CreditApi,
    PurchaseAndRefundDetailsApi,
    ReportDefinitionsApi,
    ReportDownloadsApi,
    ReportsApi,
    SearchTransactionsApi,
    TransactionDetailsApi,
    VoidApi,
)
from CyberSource.rest import ApiException


def _config(given: dict[str, str], auth: str, secret: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"authentication_type": auth, "merchantid": given["merchant_id"],
                              "merchant_keyid": given["key_id"],
                              "merchant_secretkey": secret or given["secret_key"],
                              # 0, not False: the SDK round-trips its config through json.dumps and
                              # ast.literal_eval, which cannot read "false" back (a known SDK quirk).
                              "run_environment": given["host"], "ssl_verify": 0}
    if auth == "JWT":
        config["jwt_key_type"] = "SHARED_SECRET"
    return config


def _credit_body(code: str, number: str = "4111111111111111") -> str:
    # snake_case keys, as the SDK's samples produce with json.dumps(model.__dict__)
    return json.dumps({"client_reference_information": {"code": code},
                       "order_information": {"amount_details": {"total_amount": "12.34", "currency": "USD"}},
                       "payment_information": {"card": {"number": number, "expiration_month": "12",
                                                        "expiration_year": "2031", "type": "001"}}})


def _create(config: dict[str, Any], code: str, number: str = "4111111111111111") -> dict[str, Any]:
    try:
        model, status, _ = CreditApi(config).create_credit(_credit_body(code, number))
    except ApiException as error:
        return {"http_status": error.status, "body": json.loads(error.body)}
    return {"http_status": status, "model": type(model).__name__, "id": model.id, "status": model.status,
            "reconciliation_id": model.reconciliation_id,
            "code": model.client_reference_information.code,
            "amount": model.credit_amount_details.credit_amount,
            "currency": model.credit_amount_details.currency}


def _mle(config: dict[str, Any]) -> dict[str, Any]:
    """JWT (P12) with MLE both ways: create a credit, void it, read its details."""
    # 1/0 for booleans: the SDK round-trips its config through json.dumps and ast.literal_eval.
    config = {key: int(value) if isinstance(value, bool) else value for key, value in config.items()}
    report: dict[str, Any] = {"create": _create(config, "sdk-mle")}
    credit_id = report["create"].get("id")
    if credit_id:
        model, status, _ = VoidApi(config).void_credit(json.dumps({"client_reference_information":
                                                                   {"code": "sdk-mle-void"}}), credit_id)
        report["void"] = {"http_status": status, "model": type(model).__name__, "status": model.status}
        model, status, _ = TransactionDetailsApi(config).get_transaction(credit_id)
        report["details"] = {"http_status": status, "model": type(model).__name__, "id": model.id,
                             "amount": model.order_information.amount_details.total_amount}
    report["search"] = _search(config, "sdk-mle")
    return report


def _search(config: dict[str, Any], code: str) -> dict[str, Any]:
    """The official sample's search: a reference code within the last seven days, date math and all."""
    body = json.dumps({"save": False, "name": "MRN", "timezone": "America/Chicago",
                       "query": f"clientReferenceInformation.code:{code} AND "
                                "submitTimeUtc:[NOW/DAY-7DAYS TO NOW/DAY+1DAY}",
                       "offset": 0, "limit": 100, "sort": "id:asc,submitTimeUtc:asc"})
    model, status, _ = SearchTransactionsApi(config).create_search(body)
    return {"http_status": status, "model": type(model).__name__, "total_count": model.total_count,
            "ids": [s.id for s in model.embedded.transaction_summaries]}


def main() -> None:
    given = json.load(sys.stdin)
    signature, jwt = _config(given, "http_signature"), _config(given, "JWT")
    report: dict[str, Any] = {"create_signature": _create(signature, "sdk-signature"),
                              "create_jwt": _create(jwt, "sdk-jwt")}
    void_body = json.dumps({"client_reference_information": {"code": "sdk-void"}})
    model, status, _ = VoidApi(jwt).void_credit(void_body, report["create_jwt"]["id"])
    report["void"] = {"http_status": status, "model": type(model).__name__, "id": model.id, "status": model.status,
                      "amount": model.void_amount_details.void_amount}
    model, status, _ = TransactionDetailsApi(signature).get_transaction(report["create_signature"]["id"])
    report["details"] = {"http_status": status, "model": type(model).__name__, "id": model.id,
                         "reconciliation_id": model.reconciliation_id,
                         "amount": model.order_information.amount_details.total_amount,
                         "applications": [app.name for app in model.application_information.applications]}
    report["invalid_card"] = _create(signature, "sdk-bad-card", number="4111111111111112")
    report["wrong_secret"] = _create(_config(given, "JWT", secret="QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="),
                                     "sdk-wrong-secret")
    report["reporting"] = {auth: _reporting(config, given) for auth, config in (("signature", signature),
                                                                                   ("jwt", jwt))}
    if given.get("mle_config"):
        report["mle"] = _mle(given["mle_config"])
    json.dump(report, sys.stdout)


def _reporting(config: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    """A report download and the first page of purchase-and-refund details, as the SDK parses them."""
    _, status, _ = ReportDownloadsApi(config).download_report(given["report_date"], given["report_name"])
    # Times as text: the SDK signs str(datetime) ("2026-11-02 00:00:00+00:00") but sends its
    # isoformat, so a datetime argument makes its own signature fail.
    page, page_status, _ = PurchaseAndRefundDetailsApi(config).get_purchase_and_refund_details(
        given["start_time"], given["end_time"], limit=1)
    listing, listing_status, _ = ReportsApi(config).search_reports(given["start_time"], given["end_time"],
                                                                    "executedTime")
    definitions, definitions_status, _ = ReportDefinitionsApi(config).get_resource_v2_info()
    definition, _, _ = ReportDefinitionsApi(config).get_resource_info_by_report_definition(
        definitions.report_definitions[0].report_defintion_name)
    return {"download_status": status, "page_status": page_status, "model": type(page).__name__,
            "search": _search(config, "sdk-signature"),
            "reports": [listing_status, type(listing).__name__,
                        [[r.report_name, r.status] for r in listing.report_search_results]],
            "definitions": [definitions_status, type(definitions).__name__,
                            [d.report_defintion_name for d in definitions.report_definitions],
                            type(definition).__name__, [a.id for a in definition.attributes]],
            "page_results": page.page_results,
            "settlements": [[s.request_id, s.amount, s.currency_code, s.cybersource_batch_id]
                            for s in page.settlements],
            "references": [d.transaction_reference_number for d in page.request_details]}


if __name__ == "__main__":
    main()
