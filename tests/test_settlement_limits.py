"""A field longer than the csv module's limit (128 KiB) is a failure on its record, named by file and
line, in both reading paths: never a raw ``_csv.Error``. A table over where such a field can sit."""

from __future__ import annotations

import pytest

from reconkit import SettlementFormatError, read_settlement
from reconkit.settlement.delimited import FIELD_LIMIT, read_delimited

HEADER = "request_id,merchant_ref_number,amount,currency,transaction_type\n"
GOOD = "1234567890123456789012,R1,10.00,USD,ics_credit\n"
BIG = "x" * (FIELD_LIMIT + 1)

# (case, body after the header and one good row, the line of the long field, the other good lines)
ROWS = [
    ("unquoted", f"1234567890123456789013,{BIG},10.00,USD,ics_credit\n" + GOOD, 3, [2, 4]),
    ("quoted", f'1234567890123456789013,"{BIG}",10.00,USD,ics_credit\n' + GOOD, 3, [2, 4]),
    ("after a blank line (the careful path)", f"\n1234567890123456789013,{BIG},10.00,USD,ics_credit\n" + GOOD,
     4, [2, 5]),
    ("opened by an unbalanced quote", f'1234567890123456789013,"{BIG},10.00,USD,ics_credit\n' + GOOD, 3, [2, 4]),
    ("the last record, quoted", f'1234567890123456789013,R2,10.00,USD,"{BIG}"\n', 3, [2]),
]


@pytest.mark.parametrize(("case", "body", "line", "good"), ROWS, ids=[r[0] for r in ROWS])
def test_a_field_beyond_the_limit_is_a_failure_on_its_line(case, body, line, good):
    data = (HEADER + GOOD + body).encode()
    with pytest.raises(SettlementFormatError) as raised:
        read_settlement(data, name="long.csv")
    assert (raised.value.file, raised.value.line) == ("long.csv", line)
    assert f"longer than {FIELD_LIMIT} characters" in str(raised.value)
    frame, failures = read_settlement(data, name="long.csv", errors="collect")
    assert frame["source_line"].tolist() == good
    assert failures["source_line"].tolist() == [line] and failures["source_file"].tolist() == ["long.csv"]
    assert failures["request_id"].tolist() == ["1234567890123456789013"]
    assert len(failures["value"].iloc[0]) <= 200  # the record is quoted, not copied


@pytest.mark.parametrize(("case", "body", "line", "good"), ROWS, ids=[r[0] for r in ROWS])
def test_both_paths_agree_on_a_field_beyond_the_limit(case, body, line, good):
    data = (HEADER + GOOD + body).encode()
    fast, careful = read_delimited(data, "f.csv"), read_delimited(data, "f.csv", careful=True)
    assert fast.table.equals(careful.table) and fast.failures.equals(careful.failures)


def test_a_field_at_the_limit_is_read():
    at = "y" * FIELD_LIMIT
    frame = read_settlement((HEADER + f"1234567890123456789013,{at},10.00,USD,ics_credit\n").encode(), name="f.csv")
    assert frame["source_line"].tolist() == [2]
