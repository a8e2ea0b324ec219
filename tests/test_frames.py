"""Flattening credit JSON into typed frames."""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconkit import CreditShapeError, credits_to_frame
from reconkit.frames import CURATED_COLUMNS, flatten_json, leaf_column

from .conftest import examples

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
    assert len(frame.columns) == len(CURATED_COLUMNS) + 20  # the `status` leaf is kept as `json:status`
    assert leaf_column("status") == "json:status" and row["json:status"] == "PENDING"


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


@settings(max_examples=examples(200), deadline=None)  # cheap examples over a wide space of JSON shapes
@example(extras=[{"0": None}, {"0": {}}], engine="auto")  # null beside {}: pyarrow infers struct<>, no column
@example(extras=[{"0": None}, {"0": {"0": None}}], engine="auto")  # null beside an object: a leaf of its own
@example(extras=[{"[]": []}], engine="auto")  # a key with brackets is a key, not a list selector
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


# --- one source of truth: Credit and credits_to_frame read every field the same way ---------------

_PROPERTIES = {"credit_id": "id", "submit_time_utc": "submit_time"}
"""Credit's property for a curated column, where it is not named like the column."""
_TRICKY = st.one_of(
    st.sampled_from(["12.50", " 12.50 ", "-3.10", "1E+3", "0.000", "NaN", "-Infinity", "12,50", "", "   ", "abc",
                     "PENDING", " voided ", "usd", "0004173790000167905139", "2023-02-10T21:12:52Z",
                     "2023-02-10 21:12:52", "2023-02-10T21:12:52.123456Z", "2023-02-10T23:12:52+02:00"]),
    st.text(max_size=5), st.integers(-10**20, 10**20), st.booleans(), st.none(),
    st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(0, 9), max_size=2), st.just({}))


def _put(tree, path, value):
    *parents, leaf = path.split(".")
    for key in parents:
        if key.endswith("]"):
            key, _, name = key[:-1].partition("[")
            apps = tree.setdefault(key, [])
            tree = next((a for a in apps if a.get("name") == name), None) or (apps.append({"name": name}) or apps[-1])
        else:
            tree = tree.setdefault(key, {})
    tree[leaf] = value


@st.composite
def _credit_bodies(draw):
    from reconkit.credit import FIELD_PATHS

    paths = sorted({p for ps in FIELD_PATHS.values() for p in ps})
    raw = {}
    if draw(st.booleans()):  # Transaction Details: a void application may come first
        raw["applicationInformation"] = {"applications": draw(st.sampled_from([[], [{"name": "ics_void",
                                                                                    "status": "VOIDED"}]]))}
    for path, value in draw(st.dictionaries(st.sampled_from(paths), _TRICKY, max_size=8)).items():
        _put(raw, path, value)
    raw["id"] = draw(st.sampled_from(["6760635718126158603955", " 0004173790000167905139 "]))
    return raw


def _frame_or_error(raws):
    try:
        return credits_to_frame(raws), None
    except CreditShapeError as exc:
        return None, exc


def _same(a, b):
    if a is None or (not isinstance(a, str | Decimal) and pd.isna(a)):
        return b is None or pd.isna(b)
    return a == b


@settings(max_examples=examples(300), deadline=None)  # cheap examples over every credit shape
@given(raw=_credit_bodies(), engine=st.sampled_from(["auto", "python"]))
def test_credit_and_frame_agree_on_every_field_of_every_shape(raw, engine):
    from reconkit import Credit
    from reconkit.credit import FIELD_PATHS, read_field

    credit = Credit(raw, source="tss" if "applicationInformation" in raw else "self_link")
    try:
        credits_to_frame([raw], engine=engine)
    except CreditShapeError as exc:
        assert "amount" in str(exc)
        with pytest.raises(CreditShapeError, match="amount"):
            credit.amount  # noqa: B018 (the property raises)
        return
    for item in (raw, credit):
        row = credits_to_frame([item], engine=engine).iloc[0]
        for name in FIELD_PATHS:
            prop = _PROPERTIES.get(name, name)
            expected = getattr(credit, prop) if hasattr(credit, prop) else read_field(raw, name)
            got = row[name]
            if name == "submit_time_utc":
                got = None if pd.isna(got) else got.to_pydatetime()
            assert _same(expected, got), (name, expected, got)


@pytest.mark.parametrize(("shape", "expected"), [
    # Transaction Details with the id in the ics_credit application and in processingInformation.
    ({"id": "1", "submitTimeUTC": "2023-02-10T21:12:52Z", "processingInformation": {"reconciliationId": "REQ"},
      "applicationInformation": {"applications": [{"name": "ics_void", "reconciliationId": "VOID", "status": "VOIDED"},
                                                  {"name": "ics_credit", "reconciliationId": "CRED",
                                                   "status": "TRANSMITTED"}]}},
     {"reconciliation_id": "CRED", "status": "TRANSMITTED"}),
    ({"id": "1", "reconciliationId": " TOP ", "applicationInformation": {"applications": [
        {"name": "ics_credit", "reconciliationId": "APP"}]}}, {"reconciliation_id": "TOP"}),
    ({"id": "1", "reconciliationId": "", "status": "  ", "applicationInformation": {"applications": [
        {"name": "ics_credit", "reconciliationId": "APP", "status": "PENDING"}]}},
     {"reconciliation_id": "APP", "status": "PENDING"}),
    ({"id": "1", "creditAmountDetails": {"creditAmount": " 7.5 ", "currency": " eur "}},
     {"amount": Decimal("7.5"), "currency": "EUR"}),
    ({"id": "1", "creditAmountDetails": {"creditAmount": ""}, "orderInformation": {"amountDetails": {
        "totalAmount": "3.00", "currency": "JPY"}}}, {"amount": Decimal("3.00"), "currency": "JPY"}),
])
def test_credit_and_frame_read_the_documented_shapes_alike(shape, expected):
    from reconkit import Credit

    row = credits_to_frame([shape]).iloc[0]
    credit = Credit(shape, source="tss")
    for name, value in expected.items():
        assert getattr(credit, name) == value == row[name], name


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-inf", "12,50", "1.2.3"])
def test_an_amount_that_is_no_finite_number_is_refused_by_both(amount):
    from reconkit import Credit

    raw = SEED | {"creditAmountDetails": {"currency": "USD", "creditAmount": amount}}
    with pytest.raises(CreditShapeError, match=r"item 0 \(credit 6760635718126158603955\): amount"):
        credits_to_frame([raw])
    with pytest.raises(CreditShapeError, match="amount"):
        Credit(raw).amount  # noqa: B018 (the property raises)
