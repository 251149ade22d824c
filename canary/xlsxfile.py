"""Excel workbooks: read the list sheet in streaming mode, write a seeded copy the same way.

Values, types and sheet order are kept; canary rows go between the list's rows. Formatting
(fonts, widths, number formats) is not carried over; the data is.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from canary.errors import InputError

MAX_UNCOMPRESSED = 2 * 1024**3  # an XLSX expanding past this is refused (zip bomb guard)
MAX_RATIO = 200


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return (
            value.strftime("%Y/%m/%d")
            if value.time() == datetime.min.time()
            else value.isoformat(sep=" ")
        )
    if isinstance(value, date):
        return value.strftime("%Y/%m/%d")
    return str(value)


def is_xlsx(path: Path) -> bool:
    """An Excel workbook by its zip signature or its name (a broken one is still refused
    as a workbook, with the reason, rather than read as text)."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    return magic == b"PK\x03\x04" or path.suffix.lower() in (".xlsx", ".xlsm")


def _guard(path: Path) -> None:
    with zipfile.ZipFile(path) as z:
        total = sum(i.file_size for i in z.infolist())
        packed = sum(i.compress_size for i in z.infolist()) or 1
        if total > MAX_UNCOMPRESSED or (total / packed > MAX_RATIO and total > 100 * 1024**2):
            raise InputError(
                f"{path.name} would expand to {total / 1024**2:,.0f} MiB; refusing "
                "to open it (it may be a zip bomb). Save the list as CSV instead."
            )
        if "xl/workbook.xml" not in z.namelist():
            raise InputError(f"{path.name} is a zip file but not an Excel workbook.")


@dataclass(frozen=True)
class XlsxResult:
    rows_in: int
    positions: list[int]


class Book:
    def __init__(self, path: Path) -> None:
        from openpyxl import load_workbook  # imported here: it costs start-up time

        _guard(path)
        self.path = path
        self.wb = load_workbook(path, read_only=True, data_only=True)
        self.sheet = self.wb.worksheets[0]
        dims = self.sheet.max_row
        self.row_count = dims if isinstance(dims, int) else 0

    def __enter__(self) -> Book:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wb.close()

    def _rows(self) -> Iterator[tuple[Any, ...]]:
        yield from self.sheet.iter_rows(values_only=True)

    def head(self, n: int) -> list[list[str]]:
        out = []
        for i, row in enumerate(self._rows()):
            if i >= n:
                break
            out.append([cell_text(v) for v in row])
        while out and not any(out[-1]):
            out.pop()
        if not out:
            raise InputError(f"{self.path.name}: the first sheet is empty.")
        width = max(len(r) for r in out)
        # Drop trailing columns that are empty everywhere (Excel's used range is generous).
        while width and not any(len(r) >= width and r[width - 1] for r in out):
            width -= 1
        return [r[:width] for r in out]

    def column_types(self, header_index: int, n: int = 500) -> dict[int, type]:
        counts: dict[int, dict[type, int]] = {}
        for i, row in enumerate(self._rows()):
            if i <= header_index:
                continue
            if i > header_index + n:
                break
            for j, v in enumerate(row):
                if v is not None:
                    counts.setdefault(j, {}).setdefault(type(v), 0)
                    counts[j][type(v)] += 1
        return {j: max(c, key=lambda t: c[t]) for j, c in counts.items()}

    def find_values(self, column: int, header_index: int, wanted: set[str]) -> set[str]:
        found = set()
        for i, row in enumerate(self._rows()):
            if i > header_index and column < len(row):
                text = cell_text(row[column]).strip()
                if text in wanted:
                    found.add(text)
        return found

    def write_seeded(
        self,
        fh: IO[bytes],
        header_index: int,
        slots: Sequence[int],
        rows: Sequence[Sequence[str]],
        progress: Callable[[int, int], None] | None = None,
    ) -> XlsxResult:
        """Write the workbook with ``rows`` inserted before the data rows at ``slots``."""
        from openpyxl import Workbook

        types = self.column_types(header_index)
        out = Workbook(write_only=True)
        order = sorted(range(len(rows)), key=lambda k: slots[k])
        positions = [0] * len(rows)
        data_index = 0
        inserted = 0
        rows_in = 0
        for ws in self.wb.worksheets:
            target = out.create_sheet(title=ws.title)
            if ws is not self.sheet:
                for row in ws.iter_rows(values_only=True):
                    target.append(list(row))
                continue
            pending = list(order)
            buffered: tuple[Any, ...] | None = None
            for i, row in enumerate(ws.iter_rows(values_only=True)):
                if buffered is not None:
                    # Rows go in before a data row, and the last data row is held back so
                    # that no canary is ever appended after it.
                    while pending and slots[pending[0]] <= data_index:
                        k = pending.pop(0)
                        positions[k] = data_index + inserted
                        target.append(self._typed(rows[k], types))
                        inserted += 1
                    target.append(list(buffered))
                    data_index += 1
                    buffered = None
                if i <= header_index:
                    target.append(list(row))
                    continue
                if not any(v is not None for v in row):
                    target.append(list(row))
                    data_index += 1
                    continue
                buffered = row
                rows_in += 1
                if progress and rows_in % 10000 == 0:
                    progress(rows_in, max(self.row_count, rows_in))
            for k in pending:
                positions[k] = data_index + inserted
                target.append(self._typed(rows[k], types))
                inserted += 1
            if buffered is not None:
                target.append(list(buffered))
                data_index += 1
        out.save(fh)
        return XlsxResult(rows_in, positions)

    @staticmethod
    def _typed(row: Sequence[str], types: dict[int, type]) -> list[Any]:
        values: list[Any] = []
        for j, text in enumerate(row):
            kind = types.get(j)
            if text == "":
                values.append(None)
            elif kind is int and text.isdigit() and not text.startswith("0"):
                values.append(int(text))
            elif kind is datetime:
                try:
                    values.append(datetime.strptime(text.replace("-", "/"), "%Y/%m/%d"))
                except ValueError:
                    values.append(text)
            else:
                values.append(text)
        return values


def open_book(path: Path) -> Book:
    return Book(path)
