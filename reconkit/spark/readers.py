"""CyberSource's CSV settlement reports read by Spark into the canonical settlement schema.

The rules are the pandas readers' own (:mod:`reconkit.settlement.schema`): the header alias
table and required columns (:func:`map_headers`), the report-info line and format names, the
transaction-type and date vocabularies (applied once per distinct value on the driver, as the
pandas path does, and shipped to Spark as a literal map), the amount and id patterns. Only the
per-row work runs in Spark, as SQL expressions: no Python UDF, so workers need no reconkit.

Line numbers are exact without a sort: each row's position inside its file split
(``monotonically_increasing_id`` counts rows within a partition) plus the rows of the file's
earlier splits (``_metadata.file_block_start``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import SettlementFormatError
from ..money import CURRENCIES
from ..settlement.delimited import Header, _split, find_header
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
_NOT_UTF8 = ("the line is not UTF-8 text; if the file is Latin-1 (Windows-1252), convert it to UTF-8 "
             "(the pandas reader takes encoding='latin-1')")
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


def _numbered_lines(spark: SparkSession, paths: list[str]) -> DataFrame:
    """Every line of every file with its file, exact 1-based line number and whether its bytes
    are UTF-8 (``utf8``)."""
    F = _functions()  # noqa: N806 - Spark's conventional alias
    raw = (spark.read.text(paths)
           .select(F.col("value"), F.col("_metadata.file_path").alias("source_file"),
                   F.col("_metadata.file_block_start").alias("block"),
                   F.monotonically_increasing_id().alias("position"),
                   # Judged on the bytes read: string functions replace a stray byte by U+FFFD.
                   F.is_valid_utf8("value").alias("utf8")))
    blocks = raw.groupBy("source_file", "block").agg(F.min("position").alias("first"), F.count("*").alias("rows"))
    from pyspark.sql import Window

    earlier = Window.partitionBy("source_file").orderBy("block").rowsBetween(Window.unboundedPreceding, -1)
    blocks = blocks.withColumn("before", F.coalesce(F.sum("rows").over(earlier), F.lit(0)))
    return (raw.join(F.broadcast(blocks), ["source_file", "block"])
            .select("source_file", (F.col("position") - F.col("first") + F.col("before") + 1).alias("source_line"),
                    # A BOM is not part of the first header name.
                    F.regexp_replace("value", "^\ufeff", "").alias("value"), "utf8"))


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
        footer = find_footer(_split(value, layout.delimiter), layout.names, dict(layout.chosen).get("amount"),
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
    schema = ", ".join(f"{name} {'bigint' if name == 'source_line' else 'string'}" for name in FAILURE_COLUMNS)
    return rows.sparkSession.createDataFrame(found, schema) if found else None


def _ragged_id(layout: Header, field: str) -> Column:
    """A ragged record's id as the pandas reader reads it: the cell at the id column's position,
    trimmed, null when empty or when the record is too short to have it."""
    F = _functions()  # noqa: N806
    header = dict(layout.chosen).get(field)
    if header is None:
        return F.lit(None).cast("string").alias(field)
    cell = F.get(F.split("value", re.escape(layout.delimiter), -1), layout.names.index(header))
    return _empty_to_null(_trim(cell)).alias(field)


def _record_failures(lines: DataFrame, layout: Header, reason: Column) -> DataFrame:
    """Whole lines that are no record, as failures (column ``*``) carrying the ids their cells hold."""
    F = _functions()  # noqa: N806
    return lines.select("source_file", "source_line", F.lit("*").alias("column"),
                        F.substring("value", 1, 200).alias("value"), reason.alias("reason"),
                        *(_ragged_id(layout, field) for field in ("reconciliation_id", "request_id")))


def _read_layout(lines: DataFrame, files: list[str], layout: Header, footers: Mapping[str, Footer]
                 ) -> tuple[DataFrame, DataFrame]:
    F = _functions()  # noqa: N806
    col = F.col
    width = len(layout.names)
    names = [f"f{i}" for i in range(width)]
    schema = ", ".join(f"{name} string" for name in names)
    body = lines.where(col("source_file").isin(files) & (col("source_line") > layout.line)
                       & (_trim(col("value")) != ""))
    for file, footer in footers.items():
        if file in files:
            body = body.where((col("source_file") != file) | (col("source_line") != footer.line))
    # Spark keeps a line's bytes as they are: a byte that is not UTF-8 would reach the canonical
    # columns as U+FFFD, so such a line is a failure naming its file and line, not a row.
    undecodable = _record_failures(body.where(~col("utf8")), layout, F.lit(_NOT_UTF8))
    body = body.where(col("utf8"))
    # Fields are counted outside quoted values (a quoted delimiter is text); from_csv reads
    # an unquoted empty field as null, so the parsed row cannot tell its own width.
    unquoted = F.regexp_replace("value", r'"(?:[^"]|"")*"', "")
    parsed = body.select("source_file", "source_line", "value",
                         F.size(F.split(unquoted, re.escape(layout.delimiter), -1)).alias("fields"),
                         F.from_csv("value", schema, {"sep": layout.delimiter, "mode": "PERMISSIVE"}).alias("r"))
    ragged = _record_failures(parsed.where(col("fields") != width), layout,
                              F.concat(F.lit(f"expected {width} fields, found "), col("fields").cast("string")))
    fields = parsed.where(col("fields") == width).select(
        "source_file", "source_line",
        *(col(f"r.f{layout.names.index(header)}").alias(field) for field, header in layout.chosen))
    rows, failures = _canonicalize(fields, layout.report_format)
    return rows, failures.unionByName(ragged).unionByName(undecodable)


def read_settlement(spark: SparkSession, paths: str | Iterable[str], *, mapping: Mapping[str, str] | None = None,
                    report_format: str | None = None) -> SparkSettlement:
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
    UTF-8 only: a line with a byte that is not UTF-8 is a failure (the pandas reader takes an
    ``encoding``). One record per line: a quoted line break makes both halves ragged failures
    (the pandas reader joins them into one record).
    """
    F = _functions()  # noqa: N806
    lines = _numbered_lines(spark, [paths] if isinstance(paths, str) else list(paths))
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
    parts = [_read_layout(lines, files, layout, footers) for layout, files in layouts.items()]
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
