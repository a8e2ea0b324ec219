"""Flattening credit JSON into typed frames."""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconkit import CreditShapeError, credits_to_frame
from reconkit.frames import CURATED_COLUMNS, flatten_json, leaf_column

SEED = {
    "_links": {"void": {"method": "POST", "href": "/pts/v2/credits/6760635718126158603955/voids"},
               "self": {"method": "GET", "href": "/pts/v2/credits/6760635718126158603955"}},
    "clientReferenceInformation": {"code": "RTS-Auth"},
    "creditAmountDetails": {"currency": "USD", "creditAmount": "1.00"},
    "id": "6760635718126158603955",
    "orderInformation": {"amountDetails": {"currency": "USD"}},
    "paymentAccountInformation": {"card": {"type": "001"}},
    "paymentInformation": {"tokenizedCard": {"type": "001"},
                           "instrumentIdentifier": {"id": "7010000000016241111", "state": "ACTIVE"},
                           "card": {"type": "001"}},
    "processorInformation": {"paymentAccountReferenceNumber": "V0010013019326121174070050420",
                             "approvalCode": "888888", "responseCode": "100"},
    "reconciliationId": "69605700EDTK9EXS",
    "status": "PENDING",
    "submitTimeUtc": "2023-02-10T21:12:52Z",
}
SEED_LEAVES = {
    "_links.void.method": "POST", "_links.void.href": "/pts/v2/credits/6760635718126158603955/voids",
    "_links.self.method": "GET", "_links.self.href": "/pts/v2/credits/6760635718126158603955",
    "clientReferenceInformation.code": "RTS-Auth", "creditAmountDetails.currency": "USD",
    "creditAmountDetails.creditAmount": "1.00", "id": "6760635718126158603955",
    "orderInformation.amountDetails.currency": "USD", "paymentAccountInformation.card.type": "001",
    "paymentInformation.tokenizedCard.type": "001", "paymentInformation.instrumentIdentifier.id": "7010000000016241111",
    "paymentInformation.instrumentIdentifier.state": "ACTIVE", "paymentInformation.card.type": "001",
    "processorInformation.paymentAccountReferenceNumber": "V0010013019326121174070050420",
    "processorInformation.approvalCode": "888888", "processorInformation.responseCode": "100",
    "reconciliationId": "69605700EDTK9EXS", "status": "PENDING", "submitTimeUtc": "2023-02-10T21:12:52Z",
}
TSS = {
    "id": "6760635718126158603955", "rootId": "6760635718126158603955", "merchantId": "reconkit_test",
    "submitTimeUTC": "2023-02-10T21:12:52Z",
    "applicationInformation": {"reasonCode": "100", "applications": [
        {"name": "ics_credit", "reconciliationId": "69605700EDTK9EXS", "status": "PENDING", "rCode": "1"}]},
    "clientReferenceInformation": {"code": "RTS-Auth"},
    "orderInformation": {"amountDetails": {"totalAmount": "1.00", "currency": "USD"}},
    "paymentInformation": {"card": {"type": "001"}, "instrumentIdentifier": {"id": "7010000000016241111"}},
    "processorInformation": {"approvalCode": "888888", "responseCode": "100",
                             "paymentAccountReferenceNumber": "V0010013019326121174070050420"},
}
CURATED = {"credit_id": "6760635718126158603955", "reconciliation_id": "69605700EDTK9EXS", "status": "PENDING",
           "submit_time_utc": pd.Timestamp("2023-02-10 21:12:52+00:00"), "amount": Decimal("1.00"),
           "currency": "USD", "reference_code": "RTS-Auth", "instrument_identifier_id": "7010000000016241111",
           "card_type": "001", "approval_code": "888888", "response_code": "100",
           "payment_account_reference": "V0010013019326121174070050420"}


def test_seed_response_curated_values_and_all_20_leaves():
    frame = credits_to_frame([SEED])
    assert list(frame.columns[: len(CURATED_COLUMNS)]) == list(CURATED_COLUMNS)
    row = frame.iloc[0]
    for name, value in CURATED.items():
        assert row[name] == value, name
    assert isinstance(row["amount"], Decimal) and str(row["amount"]) == "1.00"
    assert str(frame["submit_time_utc"].dtype).startswith("datetime64") and str(frame["submit_time_utc"].dt.tz) \
        == "UTC"
    assert row["source"] == "self_link"
    assert pd.isna(row["transaction_id"]) and pd.isna(row["error_reason"])
    for path, value in SEED_LEAVES.items():
        assert row[leaf_column(path)] == value, path
    assert len(SEED_LEAVES) == 20
    assert len(frame.columns) == len(CURATED_COLUMNS) + 19  # `status` is the curated column itself


def test_tss_shape_gives_the_same_curated_values():
    frame = credits_to_frame([TSS, SEED])
    for name, value in CURATED.items():
        assert frame.loc[0, name] == value == frame.loc[1, name], name
    assert frame["source"].tolist() == ["tss", "self_link"]
    assert json.loads(frame.loc[0, "applicationInformation.applications"])[0]["name"] == "ics_credit"
    assert pd.isna(frame.loc[1, "rootId"]) and frame.loc[0, "rootId"] == TSS["id"]


def test_ids_and_codes_stay_text():
    raw = SEED | {"id": "0004173790000167905139", "reconciliationId": "5629152830",
                  "processorInformation": {"responseCode": "001"}}
    frame = credits_to_frame([raw])
    assert frame.loc[0, "credit_id"] == "0004173790000167905139"
    assert frame.loc[0, "reconciliation_id"] == "5629152830" and frame.loc[0, "response_code"] == "001"
    assert frame["credit_id"].dtype == "string"


def test_missing_fields_are_missing_not_errors():
    frame = credits_to_frame([{"id": "1"}, SEED])
    assert frame.loc[0, "credit_id"] == "1"
    assert pd.isna(frame.loc[0, "amount"]) and pd.isna(frame.loc[0, "submit_time_utc"])
    assert pd.isna(frame.loc[0, "_links.self.href"])


@pytest.mark.parametrize("bad", [{"response": {"rmsg": "Authentication Failed"}}, ["not", "a", "dict"],
                                 {"status": "INVALID_REQUEST", "reason": "MISSING_FIELD"}])
def test_not_a_credit_is_named(bad):
    with pytest.raises(CreditShapeError, match="item 1"):
        credits_to_frame([SEED, bad])


def test_credit_to_frame_and_series(client):
    from .conftest import CARD
    credit = client.create_credit("3.10", "EUR", card=CARD)
    assert credit.to_series()["amount"] == Decimal("3.10")
    assert credit.to_frame().loc[0, "credit_id"] == credit.id


def test_the_frame_keeps_the_fields_the_sdk_drops():
    frame = credits_to_frame([SEED])
    for dropped in ("paymentInformation.card.type", "paymentInformation.tokenizedCard.type",
                    "orderInformation.amountDetails.currency", "processorInformation.paymentAccountReferenceNumber"):
        assert frame.loc[0, dropped] is not pd.NA


_keys = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="."), min_size=1, max_size=8)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10),
                     st.floats(allow_nan=False, allow_infinity=False))
_trees = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(_keys, inner, max_size=4)), max_leaves=15)


def _leaves(node, prefix=""):
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from _leaves(value, path)  # an empty object holds no value: no leaf
        else:
            yield path, value


@settings(max_examples=200, deadline=None)
@given(extras=st.lists(st.dictionaries(st.one_of(_keys, st.sampled_from(["status", "amount", "source"])), _trees,
                                       max_size=6), min_size=1, max_size=3),
       engine=st.sampled_from(["auto", "python"]))
def test_any_json_tree_flattens_without_loss(extras, engine):
    raws = [{**extra, "id": f"{676063571812615860395 + i}"} for i, extra in enumerate(extras)]
    frame = credits_to_frame(raws, engine=engine)
    assert len(frame) == len(raws)
    if engine == "auto":
        pd.testing.assert_frame_equal(frame, credits_to_frame(raws, engine="python"))
    for row, raw in enumerate(raws):
        _check_row(frame, row, raw)


def _check_row(frame, row, raw):
    for path, value in _leaves(raw):
        cell = frame.loc[row, leaf_column(path)]
        if value is None:
            assert pd.isna(cell)
        elif isinstance(value, list):
            assert json.loads(cell) == value
        elif isinstance(value, bool):
            assert cell == ("true" if value else "false")
        elif isinstance(value, float):
            assert float(cell) == value
        else:
            assert cell == str(value)
    assert set(flatten_json(raw)) == {p for p, _ in _leaves(raw)}


def test_arrow_and_python_engines_agree_on_sandbox_data(sandbox):
    from reconkit.sandbox.scenario import populate
    client = sandbox.client()
    scenario = populate(sandbox, client, 40, seed=3, days=2)
    sandbox.advance(minutes=10)
    raws = [client.get_credit(i).raw for i in scenario.credit_ids]
    sandbox.self_link_status = 405
    raws += [client.get_credit(i).raw for i in scenario.credit_ids[:10]]
    fast = credits_to_frame(raws)
    slow = credits_to_frame(raws, engine="python")
    pd.testing.assert_frame_equal(fast, slow)
    assert fast["source"].value_counts().to_dict() == {"self_link": 40, "tss": 10}
