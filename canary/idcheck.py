"""Check candidate canary IDs (and the host people near canaries, see canary.hostkeys)
against a host list's whole columns, columnar and streaming.

The head sample is not enough to promise "no collision" on a 10-million-row list, and
decoding every row in Python would cost more than copying the file, so polars scans the one
column. CP932 and EUC-JP are read as lossy UTF-8: IDs are ASCII, and the bytes that
delimit fields never occur inside a multi-byte character in those encodings.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from canary.csvfile import Dialect
from canary.hostkeys import Columns, Found, Probe, lossy, national, python_found
from canary.normalize import email_key
from canary.schema import Schema


def _scan(path: Path, dialect: Dialect, width: int, skip_lines: int) -> Any:
    """A lazy polars scan of the data rows, every column a string."""
    import polars as pl  # columnar work only where needed: it costs start-up time

    return pl.scan_csv(
        path,
        has_header=False,
        separator=dialect.delimiter,
        quote_char='"',
        skip_lines=skip_lines,
        schema={f"c{i}": pl.String for i in range(width)},
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
        missing_columns="insert",
        eol_char="\n" if dialect.terminator == 10 else "\r",
    )


def find_existing_ids(
    path: Path, dialect: Dialect, schema: Schema, column: int, wanted: set[str], skip_lines: int
) -> set[str]:
    """The values of ``wanted`` that already occur in the ID column of the list.

    ``skip_lines`` is the number of physical lines up to and including the header.
    """
    if not wanted:
        return set()
    import polars as pl

    try:
        frame = (
            _scan(path, dialect, len(schema.columns), skip_lines)
            .select(pl.col(f"c{column}").str.strip_chars().alias("id"))
            .filter(pl.col("id").is_in(sorted(wanted)))
            .unique()
            .collect(engine="streaming")
        )
        return set(frame["id"].to_list())
    except (pl.exceptions.PolarsError, OSError):
        return _python_scan(path, dialect, schema, column, wanted)


def _python_scan(
    path: Path, dialect: Dialect, schema: Schema, column: int, wanted: set[str]
) -> set[str]:
    found: set[str] = set()
    with path.open("rb") as fh:
        text = io.TextIOWrapper(fh, encoding=dialect.encoding, errors="replace", newline="")
        for i, rec in enumerate(csv.reader(text, delimiter=dialect.delimiter)):
            if i > schema.header_index and column < len(rec) and rec[column].strip() in wanted:
                found.add(rec[column].strip())
    return found


def find_hosts(
    path: Path,
    dialect: Dialect,
    schema: Schema,
    skip_lines: int,
    probe: Probe,
    found: Found,
) -> None:
    """Add to ``found`` what the list holds of ``probe``, in one streaming pass: the IDs
    looked for, and the few rows at the postcodes looked for, holding a pool number or
    an address on a pool domain (their keys only, in memory; see canary.hostkeys)."""
    import polars as pl

    cols = Columns.of(schema)
    try:
        frame = _probe_frame(path, dialect, schema, skip_lines, probe, cols)
    except (pl.exceptions.PolarsError, OSError):
        if found.lossy:  # read exactly from here on: what was found lossy is read again
            found.lossy = False
            found.names.clear()
            found.kanas.clear()
            found.looked_for(probe)
            probe, found.seen = found.seen, Probe()
        python_found(_python_rows(path, dialect, schema), cols, probe, found)
        return
    for row in frame.iter_rows(named=True):
        if row.get("id") is not None:
            found.ids.add(row["id"])
        for j in range(len(cols.phones)):
            if (digits := row[f"ph{j}"]) is not None:
                found.phones.add(national(digits))
        for k in range(len(cols.emails)):
            if (address := row[f"em{k}"]) is not None:
                found.emails.add(email_key(address))
        for i in range(len(cols.postcodes)):
            name = "".join(row[f"n{j}"] or "" for j in range(len(cols.names)))
            kana = "".join(row[f"k{j}"] or "" for j in range(len(cols.kanas)))
            found.add_row(row[f"pc{i}"], name, kana)
    found.looked_for(probe)


def _probe_frame(
    path: Path, dialect: Dialect, schema: Schema, skip_lines: int, probe: Probe, cols: Columns
) -> Any:
    import polars as pl

    fold = _digit_fold(dialect.encoding)

    def digits(i: int) -> Any:
        text = pl.col(f"c{i}")
        if fold:
            text = text.str.replace_many(fold)
        return text.str.replace_all(r"[^0-9]", "")

    found: dict[str, Any] = {}  # the values a row is kept for, null where it is not
    conds: list[Any] = []
    if cols.id is not None and probe.ids:
        ident = pl.col(f"c{cols.id}").str.strip_chars()
        conds.append(ident.is_in(sorted(probe.ids)))
        found["id"] = pl.when(conds[-1]).then(ident)
    at_code = []
    for i, c in enumerate(cols.postcodes):
        code = digits(c)
        at_code.append(code.is_in(sorted(probe.postcodes)))
        found[f"pc{i}"] = pl.when(at_code[-1]).then(code)
    if probe.postcodes:
        conds += at_code
    any_code = pl.any_horizontal(at_code) if at_code else pl.lit(False)
    for j, c in enumerate(cols.names):
        found[f"n{j}"] = pl.when(any_code).then(pl.col(f"c{c}"))
    for j, c in enumerate(cols.kanas):
        found[f"k{j}"] = pl.when(any_code).then(pl.col(f"c{c}"))
    for j, c in enumerate(cols.phones):
        number = digits(c)
        held = number.is_in(sorted(probe.phones))
        found[f"ph{j}"] = pl.when(held).then(number)
        if probe.phones:
            conds.append(held)
    pattern = "|".join(re.escape(d) for d in probe.domains)
    for k, c in enumerate(cols.emails):
        if not pattern:
            found[f"em{k}"] = pl.lit(None, pl.String)
            continue
        on_pool = pl.col(f"c{c}").str.contains(rf"(?i)@(?:{pattern})\s*$")
        found[f"em{k}"] = pl.when(on_pool).then(pl.col(f"c{c}"))
        conds.append(on_pool)
    if not conds:
        return pl.DataFrame(schema={k: pl.String for k in found})
    return (
        _scan(path, dialect, len(schema.columns), skip_lines)
        .filter(pl.any_horizontal(conds))
        .select(**found)
        .unique()
        .collect(engine="streaming")
    )


def _digit_fold(encoding: str) -> dict[str, str]:
    """Full-width digits as the pass reads them in ``encoding``, to ASCII digits: exact in
    UTF-8, a replacement character and a letter in CP932, lost in EUC-JP (both bytes are
    outside ASCII): none then."""
    forms = lossy([chr(0xFF10 + d) for d in range(10)], encoding)
    if len(set(forms)) < 10 or any(not f for f in forms):
        return {}
    return {f: str(d) for d, f in enumerate(forms)}


def _python_rows(path: Path, dialect: Dialect, schema: Schema) -> Any:
    with path.open("rb") as fh:
        text = io.TextIOWrapper(fh, encoding=dialect.encoding, errors="replace", newline="")
        for i, rec in enumerate(csv.reader(text, delimiter=dialect.delimiter)):
            if i > schema.header_index:
                yield rec
