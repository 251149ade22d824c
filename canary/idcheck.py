"""A host list read columnar and streaming, for the seed's one pass over the whole list.

The head sample is not enough to promise that no canary's ID or keys are a real person's
in a 10-million-row list, and decoding every row in Python would cost more than copying
the file, so polars scans the columns canary.hostpass needs (IDs, and the people near the
canaries). CP932 and EUC-JP are read as lossy UTF-8: IDs, postcodes, phones and emails are
ASCII, and the bytes that delimit fields never occur inside a multi-byte character in those
encodings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from canary.csvfile import Dialect


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
