"""The break table's amounts at risk against the generator's ground truth, the summary and the
exports against the break table, and unreadable settlement rows."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconkit import ReconciliationError, read_settlement, reconcile
from reconkit.breaks import settlement_keys
from reconkit.money import CURRENCIES
from reconkit.sandbox.settlement import DISCREPANCY_KINDS, FORMATS

from .conftest import ALL_KINDS, examples
from .oracle import truth_breaks


def oracle(credits: pd.DataFrame, bundle) -> tuple[dict[tuple[str, str], Decimal], Counter]:
    """Amount at risk and number of breaks per (outcome, currency), from the ground truth alone
    (:func:`tests.oracle.truth_breaks`)."""
    risk: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    count: Counter = Counter()
    for outcome, currency, value in truth_breaks(credits, bundle)[["outcome", "currency", "amount_at_risk"]].itertuples(
            index=False):
        risk[(outcome, currency)] += value
        count[(outcome, currency)] += 1
    return dict(risk), count


def break_table_totals(result) -> tuple[dict[tuple[str, str], Decimal], Counter]:
    table = result.break_table
    risk: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    count: Counter = Counter()
    for outcome, currency, minor in zip(table.column("outcome").to_pylist(), table.column("currency").to_pylist(),
                                        table.column("amount_at_risk_minor").to_pylist(), strict=True):
        risk[(outcome, currency)] += Decimal(minor).scaleb(-CURRENCIES[currency])
        count[(outcome, currency)] += 1
    return dict(risk), count


def assert_in_break_order(result) -> None:
    """The break table's order, defined here once: by currency; within it the largest amount at
    risk first (unknown last); ties by credit, then by settlement row (none last)."""
    rows = result.break_table.select(["currency", "amount_at_risk_minor", "credit_index", "row_index"]).to_pylist()
    last = float("inf")

    def key(row):
        risk = row["amount_at_risk_minor"]
        return (row["currency"] is None, row["currency"] or "", risk is None, -(risk or 0),
                last if row["credit_index"] is None else row["credit_index"],
                last if row["row_index"] is None else row["row_index"])

    assert rows == sorted(rows, key=key)


def counts_from_truth(credits: pd.DataFrame, bundle) -> dict[tuple[str, str], tuple[int, int]]:
    """Credits and settlement rows per (outcome, currency) from the ground truth alone: a credit
    under its currency, a row that belongs to a credit under that credit's currency (where its
    break is), any other row under its own."""
    currency = dict(zip(credits["credit_id"].astype(str), credits["currency"].astype(str), strict=True))
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for credit_id, outcome in zip(bundle.credits_truth["credit_id"].astype(str), bundle.credits_truth["outcome"],
                                  strict=True):
        counts[(outcome, currency[credit_id])][0] += 1
    rows = bundle.settlement_truth
    for credit_id, outcome, own in zip(rows["credit_id"], rows["outcome"], rows["currency"], strict=True):
        paired = None if pd.isna(credit_id) else currency.get(str(credit_id))
        counts[(outcome, paired or own)][1] += 1
    return {key: (n, m) for key, (n, m) in counts.items()}


def assert_summary_equals_break_table(result) -> None:
    risk, count = break_table_totals(result)
    summary = result.summary
    shown = summary[summary["breaks"] > 0]
    assert {(o, c): a for o, c, a in zip(shown["outcome"], shown["currency"], shown["amount_at_risk"], strict=True)} \
        == risk
    assert {(o, c): n for o, c, n in zip(shown["outcome"], shown["currency"], shown["breaks"], strict=True)} \
        == dict(count)
    assert (summary.loc[summary["breaks"] == 0, "amount_at_risk"] == 0).all()
    per_currency: dict[str, Decimal] = defaultdict(Decimal)
    for (_, currency), value in risk.items():
        per_currency[currency] += value
    totals = result.totals()
    assert dict(zip(totals["currency"], totals["amount_at_risk"], strict=True)) == dict(per_currency)
    frame = result.breaks
    assert len(frame) == result.break_table.num_rows == sum(count.values())
    assert {c: sum(g, Decimal(0)) for c, g in frame.groupby("currency")["amount_at_risk"]} == dict(per_currency)


@settings(max_examples=examples(20), deadline=None,  # each example generates and reconciles a scenario
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(mix=st.dictionaries(st.sampled_from(DISCREPANCY_KINDS), st.integers(0, 4), max_size=len(DISCREPANCY_KINDS)),
       fmt=st.sampled_from(FORMATS), seed=st.integers(0, 10_000), grace=st.integers(0, 5),
       late=st.integers(0, 96))
def test_amount_at_risk_per_outcome_and_currency_equals_the_ground_truth(world, tmp_path_factory, mix, fmt, seed,
                                                                         grace, late):
    sb, _, credits = world
    as_of = sb.now() + timedelta(hours=late)
    bundle = sb.settlement(format=fmt, discrepancies=mix, out_dir=tmp_path_factory.mktemp("mix"), seed=seed,
                           as_of=as_of, grace_days=grace)
    result = reconcile(credits, read_settlement(bundle.files[0]), as_of=as_of, grace_days=grace)
    assert bundle.disagreements(result).empty
    want_risk, want_count = oracle(credits, bundle)
    got_risk, got_count = break_table_totals(result)
    assert got_risk == want_risk
    assert got_count == want_count
    summary = result.summary
    assert {(o, c): (n, m) for o, c, n, m in zip(summary["outcome"], summary["currency"], summary["credits"],
                                                 summary["settlement_rows"], strict=True)} == \
        counts_from_truth(credits, bundle)
    assert_summary_equals_break_table(result)
    assert_in_break_order(result)


def test_every_export_sums_to_the_summary(world, tmp_path):
    sb, _, credits = world
    bundle = sb.settlement(format="pbdr_csv", discrepancies=ALL_KINDS, out_dir=tmp_path, seed=11)
    result = reconcile(credits, read_settlement(bundle.files[0]), as_of=bundle.as_of)
    want_risk, _ = oracle(credits, bundle)
    per_currency: dict[str, Decimal] = defaultdict(Decimal)
    for (_, currency), value in want_risk.items():
        per_currency[currency] += value
    # Every paired break carries its own amount (the old break list showed 0.00 for them).
    paired = result.breaks[result.breaks["outcome"].isin(["AMOUNT_MISMATCH", "CURRENCY_MISMATCH",
                                                          "DUPLICATE_SETTLEMENT", "VOIDED_BUT_SETTLED",
                                                          "DIRECTION_MISMATCH"])]
    assert len(paired) and (paired["amount_at_risk"] > 0).all()
    with open(result.to_csv(tmp_path / "breaks.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    from_csv: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        from_csv[row["currency"]] += Decimal(row["amount_at_risk"])
        places = -Decimal(row["amount_at_risk"]).as_tuple().exponent
        assert places == CURRENCIES[row["currency"]]  # JPY 0 decimals, USD 2
        assert row["source_line"] == "" or row["source_line"].isdigit()  # integer line numbers
    assert dict(from_csv) == dict(per_currency)
    from openpyxl import load_workbook
    book = load_workbook(result.to_excel(tmp_path / "breaks.xlsx"), read_only=True)
    sheet = book["Breaks"].iter_rows(values_only=True)
    header = next(sheet)
    from_excel: dict[str, Decimal] = defaultdict(Decimal)
    for values in sheet:
        record = dict(zip(header, values, strict=True))
        from_excel[record["Currency"]] += Decimal(str(record["Amount at risk"]))
    assert {c: v.quantize(Decimal(1).scaleb(-CURRENCIES[c])) for c, v in from_excel.items()} == dict(per_currency)
    page = result.to_html(figures=False)
    for currency, value in per_currency.items():
        assert f"<td>{currency}</td><td class=\"number\">" in page and f">{value}</td>" in page


def _credits(rows):
    return pd.DataFrame({
        "credit_id": pd.Series([r[0] for r in rows], dtype="string"),
        "reconciliation_id": pd.Series([r[1] for r in rows], dtype="string"),
        "status": pd.Series(["PENDING"] * len(rows), dtype="string"),
        "submit_time_utc": pd.to_datetime(["2026-11-01T00:00:00Z"] * len(rows), utc=True),
        "amount": pd.Series([Decimal(r[2]) for r in rows], dtype=object),
        "currency": pd.Series([r[3] for r in rows], dtype="string"),
    })


def _settlement(rows):
    return pd.DataFrame({
        "reconciliation_id": pd.Series([r[0] for r in rows], dtype="string"),
        "request_id": pd.Series([None] * len(rows), dtype="string"),
        "direction": pd.Series(["credit"] * len(rows), dtype="string"),
        "amount": pd.Series([Decimal(r[1]) for r in rows], dtype=object),
        "currency": pd.Series([r[2] for r in rows], dtype="string"),
        "transaction_type": pd.Series(["ics_credit"] * len(rows), dtype="string"),
        "source_file": pd.Series(["/data/pbdr.csv"] * len(rows), dtype="string"),
        "source_line": pd.Series(range(3, len(rows) + 3), dtype="int64"),
    })


@pytest.mark.parametrize("ids_known", [True, False])
def test_a_credit_whose_row_failed_to_read_is_unreadable_settlement_naming_file_and_line(ids_known):
    credits = _credits([("1", "A", "10.00", "USD"), ("2", "B", "5.00", "USD"), ("3", "C", "7.00", "USD")])
    settlement = _settlement([("A", "10.00", "USD")]).assign(batch_date=pd.to_datetime(["2026-11-01"]))
    failures = pd.DataFrame({"source_file": ["/data/pbdr.csv", "/data/pbdr.csv", "/data/pbdr.csv"],
                             "source_line": [9, 9, 12], "column": ["amount", "currency", "amount"],
                             "value": ["1O.00", "US", "x"], "reason": ["not an amount", "not ISO 4217", "not an amount"]})
    if ids_known:  # the readers' contract: the ids as far as they could be read
        failures["reconciliation_id"] = pd.Series([" B ", "B", None], dtype="string")
        failures["request_id"] = pd.Series([None, None, "3"], dtype="string")
    result = reconcile(credits, settlement, as_of="2026-11-02T00:00:00Z", failures=failures)
    outcomes = dict(zip(result.credits["credit_id"], result.credits["outcome"], strict=True))
    if not ids_known:  # without the ids nothing can be tied to a credit: they stay missing
        assert outcomes == {"1": "MATCHED", "2": "MISSING_PENDING", "3": "MISSING_PENDING"}
        return
    assert outcomes == {"1": "MATCHED", "2": "UNREADABLE_SETTLEMENT", "3": "UNREADABLE_SETTLEMENT"}
    breaks = result.breaks.set_index("credit_id")
    assert breaks.loc["2", "detail"] == ("no readable settlement row; pbdr.csv line 9 carries its id but could not "
                                         "be read (amount: not an amount)")
    assert breaks.loc["2", "source_line"] == 9 and breaks.loc["3", "source_line"] == 12
    assert breaks["batch_date"].isna().all()  # a record that failed to read has no batch date
    assert breaks.loc["2", "amount_at_risk"] == Decimal("5.00") and breaks.loc["3", "amount_at_risk"] == Decimal("7.00")
    assert result.unreadable.num_rows == 2  # one record per (file, line)
    assert_summary_equals_break_table(result)


def test_break_table_is_arrow_sorted_by_currency_then_largest_risk_first():
    credits = _credits([("1", "A", "10.00", "USD"), ("2", "B", "500", "JPY"), ("3", "C", "1.250", "KWD"),
                        ("4", "D", "90.00", "USD"), ("5", "E", "3.00", "USD")])
    settlement = _settlement([("A", "9.00", "USD"), ("E", "3.00", "USD"), ("E", "3.00", "USD"),
                              ("Z", "2.000", "KWD")])
    result = reconcile(credits, settlement, as_of="2026-11-02T00:00:00Z")
    assert isinstance(result.break_table, pa.Table)
    got = list(zip(result.breaks["currency"], result.breaks["outcome"], result.breaks["amount_at_risk"], strict=True))
    assert got == [("JPY", "MISSING_PENDING", Decimal("500")),
                   ("KWD", "UNEXPECTED_SETTLEMENT", Decimal("2.000")), ("KWD", "MISSING_PENDING", Decimal("1.250")),
                   ("USD", "MISSING_PENDING", Decimal("90.00")), ("USD", "DUPLICATE_SETTLEMENT", Decimal("3.00")),
                   ("USD", "AMOUNT_MISMATCH", Decimal("1.00"))]
    assert result.breaks["settlement_rows"].tolist() == [0, 1, 0, 0, 2, 1]
    fx = result.totals({"JPY": "0.0067", "KWD": "3.25"}, base="USD")
    assert fx["currency"].tolist() == ["JPY", "KWD", "USD", "USD (converted)"]
    assert fx["converted"].tolist() == [Decimal("3.35"), Decimal("10.56"), Decimal("94.00"), Decimal("107.91")]
    with pytest.raises(ValueError, match="no rate for KWD"):
        result.totals({"JPY": "0.0067"}, base="USD")


@settings(max_examples=examples(200), deadline=None)  # cheap examples over mixed currencies and sizes
@given(breaks=st.lists(st.tuples(st.sampled_from(["USD", "EUR", "JPY", None]),
                                 st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([2**40, -(2**62), 2**62])),
                                 st.one_of(st.none(), st.integers(0, 5)),
                                 st.one_of(st.none(), st.integers(0, 50), st.just(2**30))),
                       max_size=60, unique_by=lambda b: (b[2], b[3])))
def test_break_order_packed_key_agrees_with_the_four_key_sort(breaks):
    # Many ties and nulls; amounts and rows small enough for one key, too wide for it (ties sorted
    # again), and too far apart to pack at all (the four-key fallback).
    import numpy as np
    import pyarrow.compute as pc

    from reconkit.result import _break_order, _codes

    currency = pc.dictionary_encode(pa.array([b[0] for b in breaks], pa.string()))
    risk = pa.array([b[1] for b in breaks], pa.int64())
    credit = np.array([-1 if b[2] is None else b[2] for b in breaks], dtype=np.int64)
    row = np.array([-1 if b[3] is None else b[3] for b in breaks], dtype=np.int64)
    order = _break_order(currency, _codes(currency), risk, credit, row)
    table = pa.table({"currency": [b[0] for b in breaks], "risk": risk, "credit": [b[2] for b in breaks],
                      "row": [b[3] for b in breaks]})
    want = pc.sort_indices(table, [(name, direction, "at_end") for name, direction in (
        ("currency", "ascending"), ("risk", "descending"), ("credit", "ascending"), ("row", "ascending"))])
    assert order.tolist() == want.to_pylist()


def test_the_at_risk_expression_gives_the_same_figures_on_every_backend():
    import duckdb
    import narwhals as nw

    from reconkit.outcomes import BREAK_ON_CREDIT, BREAK_ON_ROW, Outcome, at_risk

    outcomes = [o.value for o in Outcome]
    table = pa.table({
        "outcome": [*outcomes, "DIRECTION_MISMATCH"],
        "break_on": [BREAK_ON_ROW if o in ("UNEXPECTED_SETTLEMENT", "OUT_OF_SCOPE") else BREAK_ON_CREDIT
                     for o in outcomes] + [BREAK_ON_ROW],
        "credit_amount_minor": pa.array([1000] * len(outcomes) + [None], pa.int64()),
        "settled_amount_minor": pa.array([1250] * len(outcomes) + [None], pa.int64()),
    })
    want = {"MATCHED": 0, "AMOUNT_MISMATCH": 250, "CURRENCY_MISMATCH": 1000, "DUPLICATE_SETTLEMENT": 250,
            "DUPLICATE_CREDIT": 1000, "MISSING_PENDING": 1000, "MISSING_OVERDUE": 1000, "UNREADABLE_SETTLEMENT": 1000,
            "UNEXPECTED_SETTLEMENT": 1250, "VOIDED_BUT_SETTLED": 1250, "DIRECTION_MISMATCH": 1000,
            "MATCHED_BY_REQUEST_ID": 250, "NO_SETTLEMENT_EXPECTED": 0, "OUT_OF_SCOPE": 0}
    on_arrow = nw.from_native(table).with_columns(risk=at_risk())["risk"].to_list()
    on_pandas = nw.from_native(table.to_pandas()).with_columns(risk=at_risk())["risk"].to_list()
    connection = duckdb.connect()
    on_duckdb = nw.from_native(connection.from_arrow(table)).with_columns(risk=at_risk()).collect(
        backend="pyarrow")["risk"].to_list()
    assert on_arrow == on_pandas == on_duckdb == [want[o] for o in outcomes] + [0]  # a stray non-credit row: 0


def test_chunked_arrow_columns_as_parquet_gives_them_reconcile_like_plain_ones(tmp_path):
    credits = _credits([("1", "A", "10.00", "USD"), ("2", "B", "5.00", "EUR"), ("3", "C", "7", "JPY")])
    settlement = _settlement([("A", "10.00", "USD"), ("B", "4.00", "EUR"), ("Z", "1.00", "USD")])

    def chunked(frame):
        table = pa.Table.from_pandas(frame, preserve_index=False)
        halves = pa.concat_tables([table.slice(0, 1), table.slice(1)])  # two chunks per column
        return halves.to_pandas(types_mapper=pd.ArrowDtype)

    plain = reconcile(credits, settlement, as_of="2026-11-02T00:00:00Z")
    got = reconcile(chunked(credits), chunked(settlement), as_of="2026-11-02T00:00:00Z")
    assert got.break_table.equals(plain.break_table)
    assert got.summary.equals(plain.summary)


@settings(max_examples=examples(300), deadline=None)  # cheap examples over awkward whitespace
@given(values=st.lists(st.one_of(st.none(), st.text(alphabet=st.sampled_from(
    ["a", "Z", "7", "-", " ", "\t", "\n", "\x1f", "\u00a0", "\u2003", "\u3000", "é", "😀"]), max_size=4)),
    max_size=12), start=st.integers(0, 3))
def test_trimmed_text_skips_the_trim_only_when_it_would_change_nothing(values, start):
    import pyarrow.compute as pc

    from reconkit.result import trimmed_text

    series = pd.Series(values, dtype="string[pyarrow]").iloc[start:]  # a slice: an offset into the buffers
    full = pc.utf8_trim_whitespace(pa.array(series.array).cast(pa.string()))
    want = pc.if_else(pc.equal(full, ""), pa.scalar(None, pa.string()), full)
    got = trimmed_text(series)
    assert got.to_pylist() == want.to_pylist()

    # Skipped means no copy: the result's characters are the very buffer the column holds. Values
    # that start and end with a visible ASCII character never need the trim; the check may trim
    # others (a non-ASCII end) to be safe, so only the plain case must share.
    present = [v for v in series if v is not pd.NA]
    plain = all(v and " " < v[0] < "\x7f" and " " < v[-1] < "\x7f" for v in present)

    def characters(array):
        chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
        return [chunk.buffers()[2].address for chunk in chunks if len(chunk)]

    if any(present):
        assert (characters(got) == characters(pa.array(series.array))) == plain


def test_detail_sentences_state_the_generators_amounts(world, tmp_path):
    # Each paired credit's sentence written out here from the ground truth alone (Decimal sums
    # of the generator's rows, each amount with its currency's decimals), not from the engine.
    sb, _, credits = world
    bundle = sb.settlement(format="pbdr_csv", discrepancies=ALL_KINDS, out_dir=tmp_path, seed=11)
    result = reconcile(credits, read_settlement(bundle.files[0]), as_of=bundle.as_of, grace_days=bundle.grace_days)

    def money(value: Decimal, currency: str) -> str:
        return str(value.quantize(Decimal(1).scaleb(-CURRENCIES[currency])))

    by_id = credits.assign(credit_id=credits["credit_id"].astype(str)).set_index("credit_id")
    rows = bundle.settlement_truth[bundle.settlement_truth["transaction_type"] == "ics_credit"]
    want = {}
    for credit_id, outcome in zip(bundle.credits_truth["credit_id"].astype(str), bundle.credits_truth["outcome"],
                                  strict=True):
        mine = rows[rows["credit_id"] == credit_id]
        every = bundle.settlement_truth[bundle.settlement_truth["credit_id"] == credit_id]
        lines = ("line " if len(every) == 1 else "lines ") + ", ".join(
            str(n) for n in sorted(every["source_line"].astype(int)))
        if outcome == "DIRECTION_MISMATCH":
            want[credit_id] = (f"its id matches {len(every)} settlement row(s) that are not credits ({lines}), "
                               "and no credit row")
        if not len(mine):
            continue
        currency, credited = str(by_id.loc[credit_id, "currency"]), Decimal(str(by_id.loc[credit_id, "amount"]))
        total = sum((Decimal(str(a)) for a in mine["amount"]), Decimal(0))
        credit_text = f"{money(credited, currency)} {currency}"
        settled_text = f"{money(total, currency)} {currency}"
        difference = total - credited
        sign = "+" if difference > 0 else "\u2212" if difference < 0 else ""
        want[credit_id] = {
            "MATCHED": f"settled {credit_text} once, as credited",
            "AMOUNT_MISMATCH": f"settled {settled_text}, credited {credit_text}, difference "
                               f"{sign}{money(abs(difference), currency)}",
            "CURRENCY_MISMATCH": f"settled {money(total, str(mine['currency'].iloc[0]))} "
                                 f"{mine['currency'].iloc[0]}, credited {credit_text}",
            "DUPLICATE_SETTLEMENT": f"settled {len(mine)} times ({lines}), {settled_text} in all, for one "
                                    f"credit of {credit_text}",
            "VOIDED_BUT_SETTLED": f"the credit is {by_id.loc[credit_id, 'status']} yet settled {settled_text}",
            "MATCHED_BY_REQUEST_ID": f"settled {settled_text} for a credit of {credit_text}; matched on the request "
                                     "id, the settlement row's reconciliation id was missing or different",
        }.get(outcome)
    got = dict(zip(result.credits["credit_id"].astype(str), result.credits["detail"].astype(str), strict=True))
    checked = {k: v for k, v in want.items() if v is not None}
    assert len({bundle.credits_truth.set_index("credit_id").loc[k, "outcome"] for k in checked}) >= 6
    assert {k: got[k] for k in checked} == checked


def test_each_break_carries_its_credits_status_submit_time_and_age(world, tmp_path):
    # Age defined here once: days from submission to as_of, to two places; a row's own break has none.
    sb, _, credits = world
    bundle = sb.settlement(format="pbdr_csv", discrepancies=ALL_KINDS, out_dir=tmp_path, seed=3)
    result = reconcile(credits, read_settlement(bundle.files[0]), as_of=bundle.as_of, grace_days=bundle.grace_days)
    as_of = pd.Timestamp(bundle.as_of)
    by_id = credits.assign(credit_id=credits["credit_id"].astype(str)).set_index("credit_id")
    breaks = result.breaks
    assert breaks["credit_id"].notna().any() and breaks["credit_id"].isna().any()
    for row in breaks.itertuples():
        if pd.isna(row.credit_id):
            assert pd.isna(row.status) and pd.isna(row.submit_time_utc) and pd.isna(row.age_days)
            continue
        credit = by_id.loc[row.credit_id]
        submitted = pd.Timestamp(credit["submit_time_utc"])
        assert row.status == str(credit["status"]).strip()
        assert row.submit_time_utc == submitted
        assert row.age_days == round((as_of - submitted).total_seconds() / 86400, 2)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_break_carries_its_settlement_rows_batch_date_from_the_ground_truth(world, tmp_path, fmt):
    # A row's own break: that row's batch date in the generator's truth; a credit's break: that of
    # its first row in the file (the one whose file and line it names); no row: none.
    sb, _, credits = world
    bundle = sb.settlement(format=fmt, discrepancies=ALL_KINDS, out_dir=tmp_path, seed=7)
    result = reconcile(credits, read_settlement(bundle.files[0]), as_of=bundle.as_of, grace_days=bundle.grace_days)
    truth = bundle.settlement_truth
    by_line = {int(line): (day, request) for line, day, request in zip(truth["source_line"], truth["batch_date"],
                                                                        truth["request_id"], strict=True)}
    first_of = {str(credit): by_line[int(line)][0] for credit, line in
                truth.dropna(subset=["credit_id"]).groupby("credit_id")["source_line"].min().items()}
    breaks = result.breaks
    assert breaks["batch_date"].dtype == "datetime64[s]"
    assert len(set(truth["batch_date"])) > 1  # the days differ, so a wrong row would show
    shown = [None if pd.isna(d) else d.date().isoformat() for d in breaks["batch_date"]]
    want = []
    for row in breaks.itertuples():
        if row.break_on == "credit":
            want.append(first_of.get(row.credit_id))
        else:
            day, request = by_line[int(row.source_line)]
            assert row.request_id == request.strip()
            want.append(day)
    assert shown == want
    assert {"credit", "settlement row"} <= set(breaks["break_on"]) and None in want and len(set(want) - {None}) > 1
    table = result.break_table.column("batch_date")
    assert table.type == pa.date32() and [None if d is None else d.isoformat() for d in table.to_pylist()] == want


@pytest.mark.parametrize(("batch_date", "want"), [
    (None, [None, None]),  # no batch_date column at all
    (pd.Series(["2026-11-03", None], dtype="string"), ["2026-11-03", None]),
    (pd.Series([" 2026-11-03T23:30:00Z", ""], dtype=object), ["2026-11-03", None]),
    (pd.Series([date(2026, 11, 3), None], dtype=object), ["2026-11-03", None]),
    (pd.Series(pd.to_datetime(["2026-11-03T23:30:00", None]), dtype="datetime64[ns]"), ["2026-11-03", None]),
    # A zoned time counts by its own day, as the break book's key reads it.
    (pd.Series(pd.to_datetime(["2026-11-03T23:30:00-05:00", None], utc=True).tz_convert("America/New_York")),
     ["2026-11-03", None]),
])
def test_a_rows_batch_date_is_its_day_whatever_the_column_holds(batch_date, want):
    settlement = _settlement([("X", "1.00", "USD"), ("Y", "2.00", "USD")])
    if batch_date is not None:
        settlement["batch_date"] = batch_date.to_numpy() if batch_date.dtype == object else batch_date.array
    result = reconcile(_credits([]), settlement, as_of="2026-11-05T00:00:00Z")
    by_id = dict(zip(result.break_table.column("reconciliation_id").to_pylist(),
                     result.break_table.column("batch_date").to_pylist(), strict=True))
    assert {k: None if v is None else v.isoformat() for k, v in by_id.items()} == dict(zip("XY", want, strict=True))
    keys = settlement_keys(settlement["request_id"], settlement["reconciliation_id"], settlement["amount"],
                           settlement["currency"], settlement.get("batch_date", pd.Series([None, None])))
    assert [k.rpartition("|")[2] for k in keys] == [w or "?" for w in want]  # the break book reads the same day


def test_a_batch_date_that_is_not_a_date_is_named():
    settlement = _settlement([("X", "1.00", "USD"), ("Y", "2.00", "USD")])
    settlement["batch_date"] = pd.Series(["2026-11-03", "soon"], dtype="string")
    with pytest.raises(ValueError, match=r"settlement row 1: batch_date 'soon' is not a date"):
        reconcile(_credits([]), settlement, as_of="2026-11-05T00:00:00Z")


def test_amounts_read_from_a_plain_csv_reconcile_as_the_decimals_do_and_floats_are_refused(tmp_path):
    # An analyst's pd.read_csv(dtype=str) frame holds amounts as text; they are read digit for
    # digit. Floats are a binary fraction: refused naming the row, never rounded into money.
    rows = [("1", "A", "10.00", "USD"), ("2", "B", "1500", "JPY"), ("3", "C", "1.250", "KWD"), ("4", "D", "0.10", "USD")]
    exact = _credits(rows)
    settlement = _settlement([("A", "9.99", "USD"), ("B", "1500", "JPY"), ("D", "0.10", "USD")])
    path = tmp_path / "credits.csv"
    exact.to_csv(path, index=False)
    text = pd.read_csv(path, dtype=str)
    as_of = "2026-11-02T00:00:00Z"
    want, got = reconcile(exact, settlement, as_of=as_of), reconcile(text, settlement, as_of=as_of)
    assert got.break_table.select(["outcome", "currency", "amount_at_risk_minor"]).equals(
        want.break_table.select(["outcome", "currency", "amount_at_risk_minor"]))
    assert got.breaks["amount_at_risk"].tolist() == [Decimal("1.250"), Decimal("0.01")]
    with pytest.raises(ReconciliationError, match=r"credits row 3: amount 0.1 is not an exact amount.*float"):
        reconcile(exact.assign(amount=[Decimal("10.00"), Decimal("1500"), Decimal("1.250"), 0.1]), settlement,
                  as_of=as_of)
    with pytest.raises(ReconciliationError, match=r"settlement row 1: amount '1.5E3' is not an exact amount"):
        reconcile(exact, settlement.assign(amount=["9.99", "1.5E3", "0.10"]), as_of=as_of)
