"""Check candidate canary IDs against a host list's whole ID column, columnar and streaming
(canary.hostpass checks the people near canaries in the same kind of pass).

The head sample is not enough to promise "no collision" on a 10-million-row list, and
decoding every row in Python would cost more than copying the file, so polars scans the one
column. CP932 and EUC-JP are read as lossy UTF-8: IDs are ASCII, and the bytes that
delimit fields never occur inside a multi-byte character in those encodings.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from canary.csvfile import Dialect
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
