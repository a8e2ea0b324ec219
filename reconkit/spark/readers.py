"""CyberSource's CSV settlement reports read by Spark into the canonical settlement schema.

The rules are the pandas readers' own (:mod:`reconkit.settlement.schema`): the header alias
table and required columns (:func:`map_headers`), the report-info line and format names, the
transaction-type and date vocabularies (applied once per distinct value on the driver, as the
pandas path does, and shipped to Spark as a literal map), the amount and id patterns. Only the
per-row work runs in Spark, as SQL expressions: no Python UDF, so workers need no reconkit.

Line numbers are exact without a sort: each row's position inside its file split
(``monotonically_increasing_id`` counts rows within a partition) plus the rows of the file's
earlier splits (``_metadata.file_block_start``). Records are split into cells and joined across
quoted line breaks as the csv module does it, by regular expressions and a window over each
file's lines (:func:`_records`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import SettlementFormatError
from ..money import CURRENCIES
from ..settlement.delimited import FIELD_LIMIT, TOO_LONG, Header, find_header, split_cells
from ..settlement.footer import Footer, find_footer, footer_mismatch
from ..settlement.schema import (
    _AMOUNT,
    _EXCEL_SCI,
    CANONICAL_COLUMNS,
    FAILURE_COLUMNS,
    REASONS,
    _parse_date,
    classify_type,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["SparkSettlement", "read_canonical", "read_settlement"]

_HEAD_LINES = 20
"""Lines per file searched for the report-info line and the header (the pandas reader's head)."""
_NOT_UTF8 = ("the line is not UTF-8 text; if the file is Latin-1 (Windows-1252), pass encoding='latin-1' "
             "(or 'cp1252')")
_NOT_CP1252 = "the line has a byte Windows-1252 does not define (0x81, 0x8D, 0x8F, 0x90 or 0x9D)"
AMOUNT_TYPE = "decimal(22,4)"
"""Canonical settlement amounts in Spark: 18 integer digits, up to 4 decimals (CLF, UYW)."""


@dataclass(frozen=True)
class SparkSettlement:
    """What :func:`read_settlement` read: canonical rows and failure cases, both Spark DataFrames.

    Attributes
    ----------
    rows : pyspark.sql.DataFrame
        :data:`reconkit.settlement.CANONICAL_COLUMNS`, ``amount`` as exact ``decimal(22,4)``
        (absolute), ``batch_date`` as a date, ``source_line`` 1-based.
    failures : pyspark.sql.DataFrame
        :data:`reconkit.settlement.FAILURE_COLUMNS`: one row per failing cell (file, line,
        column, value, reason); a failing row is in ``failures`` and not in ``rows``.
    """

    rows: DataFrame
    failures: DataFrame


def _functions() -> Any:
    from pyspark.sql import functions

    return functions


def _numbered_lines(spark: SparkSession, paths: list[str], charset: str | None) -> DataFrame:
    """Every line of every file with its file, exact 1-based line number, its text (decoded from
    ``charset``, UTF-8 when None) and whether its bytes are text in that encoding (``decodable``)."""
    F = _functions()  # noqa: N806 - Spark's conventional alias
    raw = (spark.read.text(paths)
           .select(F.col("value"), F.col("_metadata.file_path").alias("source_file"),
                   F.col("_metadata.file_block_start").alias("block"),
                   F.monotonically_increasing_id().alias("position")))
    blocks = raw.groupBy("source_file", "block").agg(F.min("position").alias("first"), F.count("*").alias("rows"))
    from pyspark.sql import Window

    earlier = Window.partitionBy("source_file").orderBy("block").rowsBetween(Window.unboundedPreceding, -1)
    blocks = blocks.withColumn("before", F.coalesce(F.sum("rows").over(earlier), F.lit(0)))
    text, decodable = _decoded(F.col("value"), charset)
    return (raw.join(F.broadcast(blocks), ["source_file", "block"])
            .select("source_file", (F.col("position") - F.col("first") + F.col("before") + 1).alias("source_line"),
                    # A BOM is not part of the first header name.
                    F.regexp_replace(text, "^\ufeff", "").alias("value"), decodable.alias("decodable")))


_CP1252_HIGH = bytes(range(0x80, 0xA0)).decode("cp1252", "replace")
"""Bytes 0x80-0x9F in Windows-1252 (U+FFFD where it defines none); elsewhere it is Latin-1."""
_CHARSETS = {"utf-8": None, "iso8859-1": "ISO-8859-1", "cp1252": "windows-1252"}
"""Python's codec name -> the Spark reader's charset; line-by-line decoding needs an ASCII-compatible one."""


def _charset(encoding: str | None) -> str | None:
    """The Spark reader's charset for the pandas reader's ``encoding`` (None: UTF-8)."""
    if encoding is None:
        return None
    import codecs

    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    if name not in _CHARSETS:
        raise ValueError(f"the Spark reader decodes UTF-8, Latin-1 or Windows-1252 (cp1252), not {encoding!r}; "
                         "convert the file to UTF-8 first")
    return _CHARSETS[name]


def _decoded(value: Column, charset: str | None) -> tuple[Column, Column]:
    """A line's text from its bytes, and whether the bytes are text in ``charset``.

    Spark's text source keeps a line's bytes as they are; string functions would replace a stray
    byte by U+FFFD, so each byte is judged here, before any of them runs.
    """
    F = _functions()  # noqa: N806
    if charset is None:
        return value, F.is_valid_utf8(value)
    raw = value.cast("binary")
    # A UTF-8 BOM is dropped whatever the encoding, as the pandas reader does.
    data = F.when(F.hex(F.substring(raw, 1, 3)) == "EFBBBF", F.substring(raw, 4, 1 << 30)).otherwise(raw)
    latin = F.decode(data, "ISO-8859-1")  # one character per byte, U+0000-U+00FF
    if charset == "ISO-8859-1":
        return latin, F.lit(True)
    undefined = "".join(chr(0x80 + i) for i, char in enumerate(_CP1252_HIGH) if char == "\ufffd")
    defined = [(chr(0x80 + i), char) for i, char in enumerate(_CP1252_HIGH) if char != "\ufffd"]
    text = F.translate(latin, "".join(a for a, _ in defined), "".join(b for _, b in defined))
    return text, ~latin.rlike(f"[{undefined}]")


def _literal_map(pairs: Mapping[str, Any]) -> Column:
    F = _functions()  # noqa: N806
    if not pairs:
        return F.create_map().cast("map<string,string>")
    return F.create_map(*[F.lit(part) for pair in pairs.items() for part in pair])


def _vocabulary(frame: DataFrame, *columns: str) -> list[list[str]]:
    """The distinct values of vocabulary columns (types, dates: a handful each), in one job."""
    F = _functions()  # noqa: N806
    row = frame.agg(*(F.collect_set(name) for name in columns)).first()
    return [list(row[index]) for index in range(len(columns))]


def _trim(column: Column) -> Column:
    F = _functions()  # noqa: N806
    # Spark's trim() removes spaces only; the pandas readers trim every kind of whitespace.
    return F.regexp_replace(column, r"^\s+|\s+$", "")


def _empty_to_null(column: Column) -> Column:
    F = _functions()  # noqa: N806
    return F.when(column != "", column)


def _clean_id(column: Column) -> Column:
    F = _functions()  # noqa: N806
    # Excel guards: ="0004…" and a leading apostrophe are wrappers, not part of the id.
    text = _trim(F.regexp_replace(_trim(column), r'^="(.*)"$', "$1"))
    return _empty_to_null(_trim(F.regexp_replace(text, r"^'", "")))


def _canonicalize(body: DataFrame, report_format: str) -> tuple[DataFrame, DataFrame]:
    """Text columns named by canonical field -> canonical rows and failures (the rules of
    :func:`reconkit.settlement.schema.canonicalize`, as Spark expressions)."""
    F = _functions()  # noqa: N806
    col = F.col
    for field in ("reconciliation_id", "request_id", "merchant_ref", "transaction_type", "amount", "currency",
                  "batch_id", "batch_date", "merchant_id", "payment_method"):
        if field not in body.columns:
            body = body.withColumn(field, F.lit(None).cast("string"))
    type_values, date_values = _vocabulary(body, "transaction_type", "batch_date")
    types = {value: classify_type(value) for value in type_values}
    dates = {value: _parse_date(value) for value in date_values}
    digits = {code: str(places) for code, places in CURRENCIES.items()}
    trimmed_amount = _trim(col("amount"))
    places = _literal_map(digits)[F.upper(_trim(col("currency")))].cast("int")
    fraction = F.regexp_replace(F.regexp_extract(trimmed_amount, r"\.(\d*)$", 1), "0+$", "")
    well_formed = F.coalesce(trimmed_amount.rlike(_AMOUNT), F.lit(False))
    date_text = _literal_map({k: v.isoformat() for k, v in dates.items() if v is not None})[col("batch_date")]
    prepared = body.select(
        "source_file", "source_line",
        *(col(name).alias(f"raw_{name}") for name in ("reconciliation_id", "request_id", "transaction_type",
                                                       "amount", "currency", "batch_date")),
        _clean_id(col("reconciliation_id")).alias("reconciliation_id"),
        _clean_id(col("request_id")).alias("request_id"),
        *(_empty_to_null(_trim(col(name))).alias(name)
          for name in ("merchant_ref", "batch_id", "merchant_id", "payment_method")),
        _trim(col("transaction_type")).alias("transaction_type"),
        _literal_map({k: v for k, v in types.items() if v is not None})[col("transaction_type")].alias("direction"),
        trimmed_amount.alias("amount_text"), well_formed.alias("well_formed"),
        F.upper(_trim(col("currency"))).alias("currency"), places.alias("places"),
        (well_formed & places.isNotNull() & (F.length(fraction) > places)).alias("too_fine"),
        F.to_date(date_text).alias("batch_date"),
        (F.length(_trim(F.coalesce(col("batch_date"), F.lit("")))) > 0).alias("has_date"),
    )

    def failure(condition: Column, column: str, raw: str, reason: Column | str) -> Column:
        return F.when(condition, F.struct(F.lit(column).alias("column"), col(raw).alias("value"),
                                          (reason if not isinstance(reason, str) else F.lit(reason)).alias("reason")))

    problems = F.array(
        failure(col("reconciliation_id").rlike(_EXCEL_SCI.pattern), "reconciliation_id", "raw_reconciliation_id",
                REASONS["excel_id"]),
        failure(col("request_id").rlike(_EXCEL_SCI.pattern), "request_id", "raw_request_id",
                REASONS["excel_id"]),
        failure(col("reconciliation_id").isNull() & col("request_id").isNull(), "reconciliation_id",
                "raw_reconciliation_id", REASONS["no_id"]),
        failure(col("places").isNull(), "currency", "raw_currency", REASONS["not_currency"]),
        failure(~col("well_formed"), "amount", "amount_text",
                REASONS["not_amount"]),
        failure(col("too_fine"), "amount", "amount_text",
                F.concat(F.lit("more decimal places than the currency allows ("), col("places").cast("string"),
                         F.lit(")"))),
        failure(col("direction").isNull(), "transaction_type", "raw_transaction_type",
                REASONS["not_type"]),
        failure(col("has_date") & col("batch_date").isNull(), "batch_date", "raw_batch_date",
                REASONS["not_date"]),
    )
    checked = prepared.withColumn("problems", F.filter(problems, lambda p: p.isNotNull()))
    failures = checked.where(F.size("problems") > 0).select(
        "source_file", "source_line", "reconciliation_id", "request_id", F.explode("problems").alias("problem")).select(
        "source_file", "source_line", "problem.column", "problem.value", "problem.reason", "reconciliation_id",
        "request_id")
    rows = checked.where(F.size("problems") == 0).select(
        "reconciliation_id", "request_id", "merchant_ref", "transaction_type", "direction",
        F.abs(col("amount_text").cast(AMOUNT_TYPE)).alias("amount"), "currency", "batch_id", "batch_date",
        "merchant_id", "payment_method", F.lit(report_format).alias("report_format"), "source_file", "source_line",
        # As written in the file: a footer's amount total is the signed sum.
        col("amount_text").cast(AMOUNT_TYPE).alias("signed_amount"),
        F.length(F.regexp_extract("amount_text", r"\.(\d*)$", 1)).alias("amount_places"))
    return rows, failures


def _footers(lines: DataFrame, layouts: Mapping[Header, list[str]]) -> dict[str, Footer]:
    """Each file's totals footer, judged by the pandas readers' rule on the last line of each
    file (one line per file reaches the driver)."""
    F = _functions()  # noqa: N806
    last = (lines.where(_trim(F.col("value")) != "").groupBy("source_file")
            .agg(F.max(F.struct("source_line", "value")).alias("last")).collect())
    layout_of = {file: layout for layout, files in layouts.items() for file in files}
    found = {}
    for row in last:
        layout = layout_of[row["source_file"]]
        line, value = row["last"]["source_line"], row["last"]["value"]
        footer = find_footer(split_cells(value, layout.delimiter), layout.names, dict(layout.chosen).get("amount"),
                             line, layout.delimiter) if line > layout.line else None
        if footer is not None:
            found[row["source_file"]] = footer
    return found


def _footer_failures(rows: DataFrame, failures: DataFrame, footers: Mapping[str, Footer]) -> DataFrame | None:
    """A failure at each footer whose control totals differ from what was read, by the pandas
    readers' rule (:func:`reconkit.settlement.footer.footer_mismatch`): records are the rows read
    plus the records that failed, the total is the signed sum of the rows read. Only one count
    and one sum per file reach the driver."""
    if not footers:
        return None
    F = _functions()  # noqa: N806
    files = list(footers)
    read = {r["source_file"]: (r["rows"], r["total"], r["places"]) for r in rows.where(F.col("source_file").isin(files))
            .groupBy("source_file").agg(F.count("*").alias("rows"), F.sum("signed_amount").alias("total"),
                                        F.max("amount_places").alias("places")).collect()}
    failed = {r["source_file"]: r["records"] for r in failures.where(F.col("source_file").isin(files))
              .groupBy("source_file").agg(F.countDistinct("source_line").alias("records")).collect()}
    found = []
    for file, footer in footers.items():
        good, total, places = read.get(file, (0, None, 0))
        unreadable = failed.get(file, 0)
        # Shown with the file's own decimals, as the pandas reader's sum is (3.00, not 3.0000).
        total = (total or Decimal(0)).quantize(Decimal(1).scaleb(-(places or 0)))
        mismatch = footer_mismatch(footer, good + unreadable, unreadable, total)
        if mismatch is not None:
            found.append((file, footer.line, mismatch[0], footer.text, mismatch[1], None, None))
    return _failure_frame(rows.sparkSession, found) if found else None


@dataclass(frozen=True)
class _Quoting:
    """The csv module's quoting as Java regular expressions, for one delimiter.

    Lenient (how the pandas reader splits a record): a field opened by a double quote runs to
    the next quote that is not doubled; text after that quote belongs to the field, and a quote
    inside an unquoted field is text. Strict (how it judges a record spanning lines): the closing
    quote is followed by a delimiter or the end.
    """

    opens: str
    """A line read from a record's start ends inside a quoted field."""
    stays_open: str
    """A line read from inside a quoted field ends inside one."""
    closed: str
    """A whole record closes every quote it opens (strictly)."""
    cell: str
    """Each field but the last, matched from the start, as group 1."""
    last_cell: str
    """The last field, as group 1."""

    @classmethod
    def of(cls, delimiter: str) -> _Quoting:
        d = re.escape(delimiter)
        quoted = '"(?:[^"]|"")*+'  # an opening quote and the quoted text after it
        field = f'(?:{quoted}"[^{d}]*+|[^"{d}][^{d}]*+|)'
        strict = f'(?:{quoted}"(?={d}|\\z)|[^"{d}][^{d}]*+|(?={d}|\\z))'
        return cls(opens=f"^(?:{field}{d})*+{quoted}\\z",
                   stays_open=f'^(?:[^"]|"")*+(?:"[^{d}]*+{d}(?:{field}{d})*+{quoted})?\\z',
                   closed=f"^(?:{strict}{d})*+{strict}\\z",
                   cell=f"\\G({field}){d}", last_cell=f"(?s)^(?:{field}{d})*+(.*)$")


def _cells(value: Column, delimiter: str) -> Column:
    """A record's cells as the csv module reads them leniently (``"a""b"c`` is ``a"bc``), as the
    pandas reader splits every record."""
    F = _functions()  # noqa: N806
    rules = _Quoting.of(delimiter)
    quoted = F.concat(F.regexp_extract_all(value, F.lit(rules.cell), 1),
                     F.array(F.regexp_extract(value, rules.last_cell, 1)))

    def unquoted(cell: Column) -> Column:
        text = F.regexp_replace(F.regexp_extract(cell, '(?s)^"((?:[^"]|"")*+)', 1), '""', '"')
        return F.when(cell.startswith('"'), F.concat(text, F.regexp_extract(cell, '(?s)^"(?:[^"]|"")*+"(.*)$', 1))
                      ).otherwise(cell)

    # Without a quote a line's cells are its delimited parts, found with far less work.
    return F.when(value.contains('"'), F.transform(quoted, unquoted)).otherwise(
        F.split(value, re.escape(delimiter), -1))


def _record_failures(lines: DataFrame, layout: Header, reason: Column) -> DataFrame:
    """Whole lines that are no record, as failures (column ``*``) showing their cells and carrying
    the ids the cells at the id columns' positions hold (trimmed, null when empty or when the
    record is too short to have them), as the pandas reader does."""
    F = _functions()  # noqa: N806
    cells = F.col("cells")

    def cell(field: str) -> Column:
        header = dict(layout.chosen).get(field)
        if header is None:
            return F.lit(None).cast("string").alias(field)
        return _empty_to_null(_trim(F.get(cells, layout.names.index(header)))).alias(field)

    return lines.select("source_file", "source_line", F.lit("*").alias("column"),
                        F.substring(F.array_join(cells, layout.delimiter), 1, 200).alias("value"),
                        reason.alias("reason"), cell("reconciliation_id"), cell("request_id"))


def _records(body: DataFrame, layout: Header, restarts: Mapping[str, list[int]]) -> DataFrame:
    """Physical lines (with each file's last line that is not blank, ``final``) joined into
    records as the csv module joins them: a line ending inside a quoted field continues on the
    next line. Reading starts afresh after each line in
    ``restarts`` (file -> lines), as the pandas reader does after a record opened by an
    unbalanced quote.

    Each line's effect on "inside a quoted field" is one of: keep, flip, set open, set closed.
    So the state after a line is the last setting line's value, flipped once per flipping line
    since: a running count over a window of each file's lines, with no line on the driver.

    Returns one row per record: its first line (``source_line``), last line, text (lines joined
    by ``\\n``), whether it ends the file inside a quoted field (``open_at_end``), its cells and
    their count (``fields``), and whether it is opened by an unbalanced quote (``unbalanced``: it
    spans lines, or is the last line of the file and holds a quote, and does not close every
    quote or has the wrong number of fields).
    """
    F = _functions()  # noqa: N806
    from pyspark.sql import Window

    col, rules = F.col, _Quoting.of(layout.delimiter)
    ordered = Window.partitionBy("source_file").orderBy("source_line")
    upto = ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    lines = body.select("source_file", "source_line", "value", col("value").rlike(rules.opens).alias("opens"),
                        col("value").rlike(rules.stays_open).alias("stays_open"),
                        F.lag("source_line", 1, 0).over(ordered).alias("previous"), "final")
    afresh = F.lit(False)
    for file, starts in restarts.items():
        for line in starts:
            afresh = afresh | ((col("source_file") == file) & (col("previous") < line) & (col("source_line") > line))
    setting = afresh | (col("opens") == col("stays_open"))
    lines = lines.withColumn("afresh", afresh).withColumn(
        "flips", F.sum((~setting & col("opens")).cast("int")).over(upto)).withColumn(
        "anchor", F.last(F.when(setting, F.struct(col("opens").alias("open"), col("flips").alias("at"))),
                         ignorenulls=True).over(upto))
    ends_open = (F.coalesce(col("anchor.open"), F.lit(False))
                 != ((col("flips") - F.coalesce(col("anchor.at"), F.lit(0))) % 2 == 1))
    lines = lines.withColumn("ends_open", ends_open).withColumn(
        "starts_open", ~col("afresh") & F.lag("ends_open", 1, False).over(ordered))
    single = lines.where(~col("starts_open") & ~col("ends_open")).select(
        "source_file", "source_line", col("source_line").alias("last_line"), "value",
        F.lit(False).alias("open_at_end"), "final")
    spanning = (lines.where(col("starts_open") | col("ends_open"))
                .withColumn("first", F.last(F.when(~col("starts_open"), col("source_line")), ignorenulls=True
                                            ).over(upto))
                .groupBy("source_file", "first").agg(
                    F.array_join(F.transform(F.array_sort(F.collect_list(F.struct("source_line", "value"))),
                                             lambda line: line["value"]), "\n").alias("value"),
                    F.max("source_line").alias("last_line"), F.max_by("ends_open", "source_line").alias("open_at_end"),
                    F.max("final").alias("final"))
                .withColumnRenamed("first", "source_line"))
    records = single.unionByName(spanning).withColumn("cells", _cells(col("value"), layout.delimiter))
    records = records.where(~F.forall("cells", lambda cell: _trim(cell) == ""))  # blank cells are no record
    spans = (col("last_line") > col("source_line")) | ((col("source_line") == col("final"))
                                                       & col("value").contains('"'))
    fields = F.size("cells")
    return records.select("source_file", "source_line", "last_line", "value", "open_at_end", "cells",
                          fields.alias("fields"),
                          (spans & ((fields != len(layout.names)) | ~col("value").rlike(rules.closed))
                           ).alias("unbalanced"))


def _ends_with_break(spark: SparkSession, file: str) -> bool:
    """Whether a file's last byte is a line break (the pandas reader then counts one more line).
    Asked only of a file that ends inside a quoted field."""
    F = _functions()  # noqa: N806
    last = spark.read.format("binaryFile").load(file).select(F.substring("content", -1, 1).alias("last")).first()
    return last is not None and bytes(last["last"]) in (b"\n", b"\r")


def _unbalanced_failure(spark: SparkSession, record: Any, layout: Header) -> tuple:
    """The failure of a record opened by an unbalanced quote, in the pandas reader's words; the
    ids are the cells of its first line (the last of them cut short)."""
    width, first_line = len(layout.names), record["value"].split("\n", 1)[0]
    last = record["last_line"]
    if record["open_at_end"] and _ends_with_break(spark, record["source_file"]):
        last += 1
    ends = "and never closes" if record["fields"] == width else f"leaving {record['fields']} fields instead of {width}"
    cells = split_cells(first_line, layout.delimiter)[:-1]

    def cell(field: str) -> str | None:
        header = dict(layout.chosen).get(field)
        index = layout.names.index(header) if header else len(cells)
        return (cells[index].strip() or None) if index < len(cells) else None

    reason = (f"an unbalanced double quote: a quoted field opened on this line runs to line {last} {ends}; "
              "the lines after this one are read on their own")
    return (record["source_file"], record["source_line"], "*", first_line[:200], reason,
            cell("reconciliation_id"), cell("request_id"))


def _failure_frame(spark: SparkSession, found: list[tuple]) -> DataFrame:
    schema = ", ".join(f"{name} {'bigint' if name == 'source_line' else 'string'}" for name in FAILURE_COLUMNS)
    return spark.createDataFrame(found, schema)


def _read_layout(lines: DataFrame, files: list[str], layout: Header, footers: Mapping[str, Footer], reason: str
                 ) -> tuple[DataFrame, DataFrame]:
    F = _functions()  # noqa: N806
    from pyspark.sql import Window

    col = F.col
    width = len(layout.names)
    body = lines.where(col("source_file").isin(files) & (col("source_line") > layout.line))
    # A line whose bytes are not text in the encoding would reach the canonical columns as
    # U+FFFD: it is a failure naming its file and line, not a row.
    undecodable = _record_failures(body.where(~col("decodable") & (_trim(col("value")) != ""))
                                   .withColumn("cells", _cells(col("value"), layout.delimiter)), layout, F.lit(reason))
    # The last line that is not blank, as the pandas reader judges it: before any line is set apart.
    body = body.where(col("decodable")).withColumn("final", F.max(F.when(_trim(col("value")) != "", col("source_line")))
                                                   .over(Window.partitionBy("source_file")))
    # A record opened by an unbalanced quote is a failure at its first line, and the pandas reader
    # reads on from the next line; each round finds the first such record of each file.
    unbalanced: list[tuple] = []
    restarts: dict[str, list[int]] = {}
    while True:
        kept = body
        for file, starts in restarts.items():
            kept = kept.where((col("source_file") != file) | ~col("source_line").isin(starts))
        records = _records(kept, layout, restarts)
        for file, footer in footers.items():
            if file in files:
                records = records.where((col("source_file") != file) | (col("source_line") != footer.line))
        found = (records.where("unbalanced").groupBy("source_file")
                 .agg(F.min_by(F.struct(*records.columns), "source_line").alias("record")).collect())
        if not found:
            break
        for row in found:
            record = row["record"]
            unbalanced.append(_unbalanced_failure(lines.sparkSession, record, layout))
            restarts.setdefault(record["source_file"], []).append(record["source_line"])
    unbalanced_failures = _failure_frame(lines.sparkSession, unbalanced) if unbalanced else None
    # A field the csv module would refuse is a failure on its record, as in the pandas reader.
    too_long = F.exists("cells", lambda cell: F.length(cell) > FIELD_LIMIT)
    oversized = _record_failures(records.where(too_long), layout, F.lit(TOO_LONG))
    records = records.where(~too_long)
    ragged = _record_failures(records.where(col("fields") != width), layout,
                              F.concat(F.lit(f"expected {width} fields, found "), col("fields").cast("string")))
    fields = records.where(col("fields") == width).select(
        "source_file", "source_line",
        *(F.get("cells", layout.names.index(header)).alias(field) for field, header in layout.chosen))
    rows, failures = _canonicalize(fields, layout.report_format)
    failures = failures.unionByName(ragged).unionByName(undecodable).unionByName(oversized)
    if unbalanced_failures is not None:
        failures = failures.select(*FAILURE_COLUMNS).unionByName(unbalanced_failures)
    return rows, failures


def read_settlement(spark: SparkSession, paths: str | Iterable[str], *, mapping: Mapping[str, str] | None = None,
                    report_format: str | None = None, encoding: str | None = None) -> SparkSettlement:
    """Read CyberSource CSV settlement reports (legacy and new PBDR, PSD, processor CSVs) with Spark.

    Parameters
    ----------
    spark : SparkSession
        A classic or Spark Connect session.
    paths : str or iterable of str
        Files, folders or globs Spark can read (local paths, ``s3://``, ``abfss://``, volumes).
    mapping : dict, optional
        Canonical field -> column name, for headers the alias table does not know.
    report_format : str, optional
        The ``report_format`` to record; by default named from the report-info line and header.
    encoding : str, optional
        UTF-8 (with or without BOM) by default; ``"latin-1"`` (ISO-8859-1) or ``"cp1252"``
        (Windows-1252) to say so, as the pandas reader's ``encoding``.

    Returns
    -------
    SparkSettlement
        Canonical rows and failure cases (file, line, column, value, reason) as Spark DataFrames;
        nothing is dropped: every body line is a row or a failure (blank lines and a closing
        totals line aside).

    Raises
    ------
    SettlementFormatError
        Naming the file and line when a file has no recognisable header.

    Notes
    -----
    A closing totals footer is not a row; its control totals (record count, amount total) are
    checked as the pandas reader checks them, a difference being a failure at the footer's line.
    A line whose bytes are not text in the encoding is a failure at that line (the pandas reader
    refuses the file). Encodings are decoded line by line, so only ASCII-compatible ones are
    taken: UTF-8, Latin-1 and Windows-1252 (a UTF-16 file is read by the pandas reader).
    A quoted field may hold line breaks, as in the pandas reader: its record is one row, at the
    line where it starts, with each break read as ``\n``. A record opened by an unbalanced quote
    (it spans lines without closing, or has the wrong number of fields) is a failure at its
    first line, and the lines after that one are read on their own; each such record costs one
    more Spark job.
    """
    F = _functions()  # noqa: N806
    charset = _charset(encoding)
    lines = _numbered_lines(spark, [paths] if isinstance(paths, str) else list(paths), charset)
    head = lines.where(F.col("source_line") <= _HEAD_LINES).collect()
    by_file: dict[str, list[str]] = {}
    for row in sorted(head, key=lambda r: (r["source_file"], r["source_line"])):
        by_file.setdefault(row["source_file"], []).append(row["value"])
    if not by_file:
        raise SettlementFormatError(f"no settlement file found at {paths!r}", file=str(paths))
    layouts: dict[Header, list[str]] = {}
    for file, head_lines in by_file.items():
        layouts.setdefault(find_header(head_lines, file, mapping=mapping, report_format=report_format),
                            []).append(file)
    footers = _footers(lines, layouts)
    reason = _NOT_CP1252 if charset == "windows-1252" else _NOT_UTF8
    parts = [_read_layout(lines, files, layout, footers, reason) for layout, files in layouts.items()]
    rows, failures = parts[0]
    for more_rows, more_failures in parts[1:]:
        rows, failures = rows.unionByName(more_rows), failures.unionByName(more_failures)
    footer_failures = _footer_failures(rows, failures, footers)
    if footer_failures is not None:
        failures = failures.select(*FAILURE_COLUMNS).unionByName(footer_failures)
    return SparkSettlement(rows.select(*CANONICAL_COLUMNS), failures.select(*FAILURE_COLUMNS))


def read_canonical(spark: SparkSession, path: str | Iterable[str]) -> DataFrame:
    """Parquet files already in the canonical settlement schema (e.g. a lakehouse table's files).

    Raises
    ------
    SettlementFormatError
        Naming the columns the files lack.
    """
    frame = spark.read.parquet(*([path] if isinstance(path, str) else list(path)))
    needed = ("reconciliation_id", "request_id", "direction", "amount", "currency")
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise SettlementFormatError(f"the Parquet data lacks {', '.join(missing)}; it has {', '.join(frame.columns)}",
                                    file=str(path), expected="the canonical settlement columns")
    return frame
