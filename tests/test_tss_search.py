"""Transaction Search (``POST /tss/v2/searches``) over HTTP against the sandbox: the documented
query syntax, date math, ranges, sort and paging, and the client's reference-code lookup.

Expected answers are computed here from what the credits' creation answers said (id, reference
code, reconciliation id, submit time, amount), with plain Python filters and datetime arithmetic,
never with the sandbox's parser.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconkit.auth import http_date, sign_request
from reconkit.errors import FieldError
from reconkit.sandbox import Sandbox

from .conftest import CARD

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# Hours after START at which each credit is created, and its amount and currency: two weeks
# back from the final clock, so that the 7-day window of the official sample cuts through them.
PLAN = [(0, "10.00", "USD"), (30, "25.50", "EUR"), (100, "700", "JPY"), (170, "10.00", "USD"),
        (171, "99.99", "GBP"), (200, "3.00", "EUR"), (250, "10.00", "USD"), (251, "42.00", "USD"),
        (300, "8.25", "EUR"), (320, "1.00", "JPY"), (335, "10.00", "GBP")]
CODES = ["ref-0", "ref 1", 'ref "2"', "ref:3", "AND", "ref-5", "ref-6", "ref-7", "ref-8", "ref-9", "ref-10"]
END = START + timedelta(hours=340)  # the clock when the searches run: 2026-11-16 13:00 UTC


@pytest.fixture(scope="module")
def world():
    """A sandbox holding the credits of PLAN and, for each, what its creation answer said."""
    with Sandbox(start=START, seed=11) as sb:
        client = sb.client()
        made = []
        for (hours, amount, currency), code in zip(PLAN, CODES, strict=True):
            sb.advance(START + timedelta(hours=hours) - sb.now())
            credit = client.create_credit(amount, currency, card=CARD, reference_code=code)
            made.append({"id": credit.id, "code": code, "recon": credit.reconciliation_id,
                         "time": datetime.strptime(credit.raw["submitTimeUtc"], "%Y-%m-%dT%H:%M:%SZ").replace(
                             tzinfo=UTC),
                         "amount": Decimal(amount), "currency": currency})
        sb.advance(END - sb.now())
        yield sb, client, made
        client.close()


def search(sb: Sandbox, **body) -> requests.Response:
    raw = json.dumps(body).encode()
    headers = sign_request(sb.config, "POST", "/tss/v2/searches", raw, http_date())
    return requests.post(sb.url + "/tss/v2/searches", data=raw, timeout=10,
                         headers=headers | {"Content-Type": "application/json"})


def found(answer: requests.Response) -> list[str]:
    assert answer.status_code == 201, answer.text
    return [s["id"] for s in answer.json()["_embedded"]["transactionSummaries"]]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_official_samples_date_math_is_the_last_seven_days_to_the_end_of_today(world):
    sb, _, made = world
    today = datetime(END.year, END.month, END.day, tzinfo=UTC)
    expected = {m["id"] for m in made if today - timedelta(days=7) <= m["time"] < today + timedelta(days=1)}
    assert 0 < len(expected) < len(made)
    answer = search(sb, query="submitTimeUtc:[NOW/DAY-7DAYS TO NOW/DAY+1DAY}", limit=100)
    assert set(found(answer)) == expected
    body = answer.json()
    assert body["totalCount"] == body["count"] == len(expected)


def test_day_rounding_follows_the_searchs_timezone(world):
    sb, _, made = world
    zone = ZoneInfo("Pacific/Kiritimati")  # UTC+14: its "today" began at 10:00 UTC the day before
    local = END.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    expected = {m["id"] for m in made if midnight - timedelta(days=2) <= m["time"] < midnight}
    answer = search(sb, query="submitTimeUtc:[NOW/DAY-2DAYS TO NOW/DAY}", timezone="Pacific/Kiritimati", limit=100)
    assert set(found(answer)) == expected and expected


def test_hours_and_minutes_date_math(world):
    sb, _, made = world
    expected = {m["id"] for m in made if END - timedelta(hours=40, minutes=30) <= m["time"] <= END}
    assert set(found(search(sb, query="submitTimeUtc:[NOW-40HOURS-30MINUTES TO NOW]", limit=100))) == expected


def test_range_bounds_are_inclusive_with_a_square_bracket_and_exclusive_with_a_brace(world):
    sb, _, made = world
    pivot = made[4]["time"]
    later = {m["id"] for m in made if m["time"] > pivot}
    assert set(found(search(sb, query=f"submitTimeUtc:[{iso(pivot)} TO *]", limit=100))) == later | {made[4]["id"]}
    assert set(found(search(sb, query=f"submitTimeUtc:{{{iso(pivot)} TO *]", limit=100))) == later
    millis = int(pivot.timestamp() * 1000)
    assert set(found(search(sb, query=f"submitTimeUtc:[* TO {millis}}}", limit=100))) == \
        {m["id"] for m in made if m["time"] < pivot}
    assert set(found(search(sb, query="orderInformation.amountDetails.totalAmount:[10 TO 42.00]", limit=100))) == \
        {m["id"] for m in made if Decimal(10) <= m["amount"] <= Decimal(42)}


def test_quoted_values_or_and_parentheses(world):
    sb, _, made = world
    by_code = {m["code"]: m["id"] for m in made}
    query = ('clientReferenceInformation.code:"ref 1" OR clientReferenceInformation.code:"ref \\"2\\"" OR '
             'clientReferenceInformation.code:ref:3 OR clientReferenceInformation.code:"AND"')
    assert set(found(search(sb, query=query))) == {by_code["ref 1"], by_code['ref "2"'], by_code["ref:3"],
                                                   by_code["AND"]}
    query = ("(orderInformation.amountDetails.currency:USD OR orderInformation.amountDetails.currency:GBP) "
             "AND orderInformation.amountDetails.totalAmount:10.00")
    assert set(found(search(sb, query=query))) == {m["id"] for m in made if m["currency"] in ("USD", "GBP")
                                                   and m["amount"] == Decimal("10.00")}
    recon = made[5]["recon"]
    assert found(search(sb, query=f"applicationInformation.applications.reconciliationId:{recon}")) == [made[5]["id"]]


def test_and_binds_tighter_than_or(world):
    sb, _, made = world
    a, b = made[0], made[1]
    query = (f"id:{a['id']} OR id:{b['id']} AND orderInformation.amountDetails.currency:"
             f"{'XXX' if b['currency'] != 'XXX' else 'YYY'}")
    assert found(search(sb, query=query)) == [a["id"]]  # a OR (b AND false), not (a OR b) AND false


def test_sort_by_several_keys_each_its_own_direction(world):
    sb, _, made = world
    answer = search(sb, query="id:*", sort="orderInformation.amountDetails.currency:asc, submitTimeUtc:desc",
                    limit=100)
    expected = sorted(sorted(made, key=lambda m: m["time"], reverse=True), key=lambda m: m["currency"])
    assert found(answer) == [m["id"] for m in expected]
    assert found(search(sb, query="id:*", sort="id:asc", limit=100)) == sorted(m["id"] for m in made)
    # no sort: newest first
    assert found(search(sb, query="id:*", limit=100)) == [m["id"] for m in sorted(made, key=lambda m: m["time"],
                                                                                   reverse=True)]


def test_offset_paging_adds_up_to_the_whole_answer(world):
    sb, _, made = world
    pages, offset = [], 0
    while True:
        body = search(sb, query="id:*", sort="submitTimeUtc:asc", offset=offset, limit=3).json()
        assert body["totalCount"] == len(made) and body["offset"] == offset and body["limit"] == 3
        ids = [s["id"] for s in body["_embedded"]["transactionSummaries"]]
        assert body["count"] == len(ids)
        if not ids:
            break
        pages.append(ids)
        offset += 3
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    assert [i for p in pages for i in p] == [m["id"] for m in sorted(made, key=lambda m: m["time"])]


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"query": "colour:red"}, "query", ["unknown field 'colour'", "position 1"]),
    ({"query": "id:1 AND nope:2"}, "query", ["unknown field 'nope'", "position 10"]),
    ({"query": 'clientReferenceInformation.code:"open'}, "query", ["unterminated", "position 33"]),
    ({"query": "submitTimeUtc:[NOW/DAY-7FORTNIGHTS TO NOW]"}, "query", ["date math", "position 23"]),
    ({"query": "submitTimeUtc:[NOW UNTIL NOW]"}, "query", ["expected TO", "position 20"]),
    ({"query": "submitTimeUtc:[NOW TO NOW"}, "query", ["end of the query", "position 26"]),
    ({"query": "submitTimeUtc:yesterday"}, "query", ["not a time", "position 15"]),
    ({"query": "id:1 id:2"}, "query", ["expected AND or OR", "position 6"]),
    ({"query": "(id:1"}, "query", ["expected ')'", "position 6"]),
    ({"query": ""}, "query", ["empty"]),
    ({"query": " OR ".join(["id:1"] * 21)}, "query", ["more than 20 terms"]),
    ({"query": "(" * 11 + "id:1" + ")" * 11}, "query", ["nested deeper"]),
    ({"query": "submitTimeUtc:[NOW+99999999DAYS TO *]"}, "query", ["leaves the calendar", "position 19"]),
    ({"query": "submitTimeUtc:[NOW-1000000MONTHS TO *]"}, "query", ["leaves the calendar", "position 19"]),
    ({"query": "submitTimeUtc:[99999999999999999999999 TO *]"}, "query", ["epoch milliseconds", "position 16"]),
    ({"query": "submitTimeUtc:[999999999999999 TO *]"}, "query", ["epoch milliseconds", "position 16"]),
    ({"query": "orderInformation.amountDetails.totalAmount:NaN"}, "query", ["not an amount", "position 44"]),
    ({"query": "id:1", "limit": 2501}, "limit", ["2500"]),
    ({"query": "id:1", "limit": 0}, "limit", ["2500"]),
    ({"query": "id:1", "offset": -1}, "offset", ["offset"]),
    ({"query": "id:1", "sort": "id:sideways"}, "sort", ["asc or desc", "position 1"]),
    ({"query": "id:1", "sort": "id:asc, shoeSize:desc"}, "sort", ["unknown sort field 'shoeSize'", "position 9"]),
    ({"query": "id:1", "timezone": "Mars/Olympus"}, "timezone", ["Mars/Olympus"]),
])
def test_a_bad_search_is_400_naming_the_field_and_position(world, body, field, words):
    sb, _, _ = world
    answer = search(sb, **body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["details"] == [{"field": field, "reason": "INVALID_DATA"}]
    for word in words:
        assert word in error["message"], (word, error["message"])


def test_limit_2500_is_allowed(world):
    sb, _, made = world
    assert len(found(search(sb, query="id:*", limit=2500))) == len(made)


def test_the_clients_reference_lookup_is_bounded_by_date_and_quotes_the_code(world):
    _, client, made = world
    for m in made:
        # the window opens at midnight UTC `days` days before today's
        days_back = (END.date() - m["time"].date()).days
        # inside the window: found, however odd the code
        assert [c.id for c in client.find_credits_by_reference(m["code"], days=max(days_back, 1))] == [m["id"]]
        if days_back > 1:  # older than the window: the bounded search does not see it
            assert client.find_credits_by_reference(m["code"], days=days_back - 1) == []
    with pytest.raises(FieldError) as caught:
        client.find_credits_by_reference("ref-0", days=0)
    assert caught.value.field == "days"


# --- the parser against a direct filter -------------------------------------------------------

TEXT_FIELDS = {"id": "id", "reconciliationId": "recon", "clientReferenceInformation.code": "code",
               "orderInformation.amountDetails.currency": "currency"}


@st.composite
def terms(draw, made):
    """One term as (query text, the same condition as a Python function over a PLAN record)."""
    kind = draw(st.sampled_from(["text", "time", "amount"]))
    if kind == "text":
        field = draw(st.sampled_from(sorted(TEXT_FIELDS)))
        key = TEXT_FIELDS[field]
        value = draw(st.sampled_from([m[key] for m in made] + ["absent"]))
        quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{field}:{quoted}", lambda m: m[key] == value
    low_in, high_in = draw(st.booleans()), draw(st.booleans())
    if kind == "time":
        low_h, high_h = sorted(draw(st.lists(st.integers(-400, 10), min_size=2, max_size=2)))
        low, high = END + timedelta(hours=low_h), END + timedelta(hours=high_h)
        text = (f"submitTimeUtc:{'[' if low_in else '{'}NOW{low_h:+d}HOURS TO NOW{high_h:+d}HOURS"
                f"{']' if high_in else '}'}")
        key = "time"
    else:
        low, high = sorted(draw(st.lists(st.sampled_from([m["amount"] for m in made] + [Decimal("0.5")]),
                                         min_size=2, max_size=2)))
        text = f"orderInformation.amountDetails.totalAmount:{'[' if low_in else '{'}{low} TO {high}{']' if high_in else '}'}"
        key = "amount"
    return text, lambda m: ((m[key] >= low) if low_in else (m[key] > low)) and \
        ((m[key] <= high) if high_in else (m[key] < high))


@st.composite
def queries(draw, made, depth=0):
    if depth >= 2 or draw(st.booleans()):
        return draw(terms(made))
    parts = [draw(queries(made, depth + 1)) for _ in range(draw(st.integers(2, 3)))]
    joiner = draw(st.sampled_from(["AND", "OR"]))
    text = f" {joiner} ".join(f"({t})" for t, _ in parts)
    tests = [f for _, f in parts]
    if joiner == "AND":
        return text, lambda m: all(f(m) for f in tests)
    return text, lambda m: any(f(m) for f in tests)


def test_generated_queries_select_what_a_direct_filter_selects(world):
    sb, _, made = world

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data):
        text, matches = data.draw(queries(made))
        assert set(found(search(sb, query=text, limit=100))) == {m["id"] for m in made if matches(m)}, text

    check()


def test_an_unknown_outcome_older_than_the_default_window_is_still_found(sandbox, client):
    from reconkit import AmbiguousOutcomeError
    from reconkit.client import SEARCH_DAYS

    with pytest.raises(AmbiguousOutcomeError):  # 5040.00: the credit is created, the answer is a 502
        client.create_credit("5040.00", "USD", card=CARD, reference_code="old-unknown")
    [held] = [c["id"] for c in sandbox.credits() if c["reference_code"] == "old-unknown"]
    sandbox.advance(timedelta(days=SEARCH_DAYS + 10))
    assert client.find_credits_by_reference("old-unknown") == []  # outside the default window
    [resolution] = client.resolve_unknown()
    assert (resolution.outcome, resolution.credit.id) == ("created", held)  # not "not_created"
