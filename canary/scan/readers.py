"""Read a broker list in bounded chunks of string columns, whatever its format.

CSV/TSV (any delimiter) in UTF-8 (with or without BOM), CP932 or EUC-JP, and XLSX (every
sheet). Text files are cut at record boundaries into blocks, CP932/EUC-JP blocks are
transcoded to UTF-8 on a producer thread, and polars parses each block; memory stays
bounded by the block size whatever the file size.
"""

from __future__ import annotations

import io
import queue
import threading
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl

from canary import csvfile
from canary.errors import InputError
from canary.scan import transcode
from canary.schema import Schema, infer_schema

# Blocks under 32 MiB: the C library's malloc then reuses their memory block after block
# (larger ones are mapped afresh each time, and every page faulted in again).
BLOCK_BYTES = 16 * 1024 * 1024
XLSX_ROWS = 100_000


@dataclass(frozen=True)
class Layout:
    """What was found about a file before its rows are read."""

    kind: str  # csv | xlsx
    encoding: str | None
    delimiter: str | None
    columns: tuple[str, ...]
    schema: Schema | None
    sample: list[list[str]]  # the first data rows, for planning keys (never stored)


@dataclass
class Chunk:
    frame: pl.DataFrame  # c0..cN as strings, plus _row (1-based data row in the file/sheet)
    sheet: str | None = None


@dataclass
class ReadStats:
    rows: int = 0
    replaced_bytes: int = 0  # undecodable bytes replaced (a truncated or damaged file)
    truncated: bool = False


def _schema_or_none(records: list[list[str]]) -> Schema | None:
    from canary.errors import SchemaError

    try:
        return infer_schema(records)
    except SchemaError:
        return None


def open_text(path: Path, encoding: str | None = None) -> tuple[Layout, int, csvfile.Head]:
    head = csvfile.read_head(path, encoding)
    schema = _schema_or_none(head.records)
    header_index = schema.header_index if schema else -1
    width = max(len(r) for r in head.records[max(header_index, 0) :][:500])
    if schema:
        columns = schema.columns + tuple(
            f"column {i + 1}" for i in range(len(schema.columns), width)
        )
    else:
        columns = tuple(f"column {i + 1}" for i in range(width))
    start = head.ends[header_index] if header_index >= 0 else len(head.dialect.bom)
    sample = [r for r in head.records[header_index + 1 :] if any(c.strip() for c in r)]
    layout = Layout("csv", head.dialect.label, head.dialect.delimiter, columns, schema, sample)
    return layout, start, head


@dataclass(frozen=True)
class Block:
    """Whole records, as slices of what was read: the record cut off at the end of the
    previous read, completed, and then the records of this read. Decoding converts the
    slices one after the other, so a 16 MiB read is never copied to join it to the few
    bytes before it; each slice starts at a record boundary, so no character is split."""

    pieces: tuple[transcode.Piece, ...]

    def joined(self) -> bytes:
        if len(self.pieces) == 1:
            data, start, end = self.pieces[0]
            if start == 0 and end == len(data):
                return data
        return b"".join(memoryview(data)[start:end] for data, start, end in self.pieces)

    @classmethod
    def of(cls, data: bytes) -> Block:
        return cls(((data, 0, len(data)),))


def _blocks(path: Path, start: int, terminator: int, stats: ReadStats) -> Iterator[Block]:
    with path.open("rb", buffering=0) as fh:
        fh.seek(start)
        yield from _blocks_of(fh, terminator, stats)


def _blocks_of(fh: BinaryIO, terminator: int, stats: ReadStats) -> Iterator[Block]:
    """Blocks of whole records from a stream, cut at a record boundary outside quotes."""
    term = bytes([terminator])
    carry = b""
    while True:
        data = fh.read(BLOCK_BYTES)
        if not data:
            if carry.strip():
                # The last record ends inside quotes: cut off mid-write, or a quote never
                # closed (even before a final line break). Close it: read as far as it goes.
                stats.truncated = _looks_cut(carry)
                if stats.truncated:
                    carry += b'"'
                yield Block.of(carry)
            return
        if carry.find(b'"') == -1 and data.find(b'"') == -1:
            # No quotes (most lists): records end at every terminator.
            cut = data.rfind(term) + 1
            if cut <= 0:
                carry += data
                continue
            first = data.find(term) + 1
            head = carry + data[:first] if carry else data[:first]
            yield Block(((head, 0, len(head)), (data, first, cut)))
            carry = data[cut:]
            continue
        buf = carry + data if carry else data
        ends = csvfile._record_ends(buf, terminator)
        cut = int(ends[-1]) if ends.size else 0
        if cut <= 0:
            carry = buf
            continue
        yield Block(((buf, 0, cut),))
        carry = buf[cut:]


def _looks_cut(last: bytes) -> bool:
    """A last record that ends inside quotes was cut off mid-write."""
    return last.count(b'"') % 2 == 1


_STATS_LOCK = threading.Lock()


def _in_order(
    blocks: Iterator[Block], parse: Callable[[Block], pl.DataFrame]
) -> Iterator[pl.DataFrame]:
    """``parse`` of each block, two at a time on worker threads, in the blocks' order."""
    with ThreadPoolExecutor(2, thread_name_prefix="canary-parse") as pool:
        pending: deque[Future[pl.DataFrame]] = deque()
        for block in blocks:
            pending.append(pool.submit(parse, block))
            if len(pending) > 2:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _decode(block: Block | bytes, encoding: str, stats: ReadStats) -> bytes:
    if isinstance(block, bytes):
        block = Block.of(block)
    converted = transcode.to_utf8(block.pieces, encoding)
    if converted is not None:
        return converted
    # UTF-8 blocks only come here when polars refused them, so they need the replacement.
    text = block.joined().decode(encoding, errors="replace")
    bad = text.count("\ufffd")
    if bad:
        with _STATS_LOCK:
            stats.replaced_bytes += bad
    return text.encode("utf-8")


def read_text(
    path: Path,
    layout: Layout,
    start: int,
    head: csvfile.Head,
    stats: ReadStats,
    columns: list[int] | None = None,
) -> Iterator[Chunk]:
    """Chunks of a delimited file (only ``columns``, when given: the others are never
    materialised). Reading, decoding and parsing (polars releases the GIL) run on a
    producer thread, so the next chunk is parsed while this one is matched.
    """
    width = len(layout.columns)
    schema = {f"c{i}": pl.String for i in range(width)}
    wanted = sorted(set(columns)) if columns else None
    encoding = head.dialect.encoding
    q: queue.Queue[pl.DataFrame | BaseException | None] = queue.Queue(maxsize=2)

    def parse(block: bytes) -> pl.DataFrame:
        return pl.read_csv(
            io.BytesIO(block),
            has_header=False,
            schema=schema,
            columns=wanted,
            separator=layout.delimiter or ",",
            quote_char='"',
            truncate_ragged_lines=True,
            missing_columns="insert",
            raise_if_empty=False,
            eol_char="\n" if head.dialect.terminator == 10 else "\r",
        )

    def utf8(block: Block) -> pl.DataFrame:
        # polars checks UTF-8 itself, in Rust and without the GIL; only a block it refuses
        # is decoded in Python, with replacement characters counted.
        try:
            return parse(block.joined())
        except pl.exceptions.ComputeError:
            return parse(_decode(block, encoding, stats))

    def produce() -> None:
        blocks = _blocks(path, start, head.dialect.terminator, stats)
        try:
            if encoding == "utf-8":
                for block in blocks:
                    q.put(utf8(block))
            else:
                # Blocks are transcoded (iconv, or Python's codec) and parsed two at a time.
                for frame in _in_order(blocks, lambda b: parse(_decode(b, encoding, stats))):
                    q.put(frame)
            q.put(None)
        except BaseException as exc:  # surfaced to the consumer
            q.put(exc)

    def parsed() -> Iterator[pl.DataFrame]:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    threading.Thread(target=produce, daemon=True, name="canary-read").start()
    yield from _chunks(parsed(), stats)


STREAM_ROWS = 250_000


def _chunks(frames: Iterable[pl.DataFrame], stats: ReadStats) -> Iterator[Chunk]:
    """Frames gathered into chunks of about STREAM_ROWS rows, numbered: matching a chunk
    costs a fixed number of polars calls, so chunks must not be small. Each chunk's
    columns are copied into one buffer: matching chained ones (a streamed chunk has
    about 16) measured a third slower than the copy costs."""
    row = 0
    pending: list[pl.DataFrame] = []
    size = 0

    def chunk() -> Chunk:
        nonlocal row, pending, size
        part = pl.concat(pending, rechunk=True)
        pending, size = [], 0
        n = part.height
        part = part.with_columns(pl.int_range(row + 1, row + n + 1, eager=False).alias("_row"))
        row += n
        stats.rows += n
        return Chunk(part)

    for frame in frames:
        pending.append(frame)
        size += frame.height
        if size >= STREAM_ROWS:
            yield chunk()
    if pending:
        yield chunk()


def stream_utf8(
    path: Path,
    layout: Layout,
    start: int,
    head: csvfile.Head,
    stats: ReadStats,
    columns: list[int],
) -> Iterator[Chunk]:
    """Chunks of a UTF-8 file read by polars' streaming engine: its own threads, no Python
    block splitting, about three times faster than read_text. polars refuses a file with
    an undecodable byte or one that ends inside a quoted field (a PolarsError): the
    caller then reads it again with read_text, which replaces and counts such bytes,
    reads a cut-off record as far as it goes, and says so."""
    with path.open("rb") as fh:
        before = fh.read(start)
    skip = before.count(bytes([head.dialect.terminator]))
    if b'"' in before and csvfile._record_ends(before, head.dialect.terminator).size != skip:
        raise pl.exceptions.ComputeError("a quoted header spans lines")
    width = len(layout.columns)
    frame = pl.scan_csv(
        path,
        has_header=False,
        skip_lines=skip,
        schema={f"c{i}": pl.String for i in range(width)},
        separator=layout.delimiter or ",",
        quote_char='"',
        truncate_ragged_lines=True,
        missing_columns="insert",
        raise_if_empty=False,
        encoding="utf8",
        eol_char="\n" if head.dialect.terminator == 10 else "\r",
    ).select([f"c{i}" for i in sorted(set(columns))])
    yield from _chunks(frame.collect_batches(), stats)


def open_xlsx(path: Path) -> list[tuple[str, Layout, list[list[str]]]]:
    """Every non-empty sheet: its name, layout and rows as strings (XLSX holds ≤ 1 M rows)."""
    from python_calamine import CalamineWorkbook

    from canary.xlsxfile import _guard, cell_text

    try:
        _guard(path)
        book = CalamineWorkbook.from_path(str(path))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"{path.name} is not a readable Excel workbook ({exc}).") from exc
    except Exception as exc:  # calamine raises its own error types for damaged books
        raise InputError(f"{path.name} is not a readable Excel workbook ({exc}).") from exc
    sheets = []
    for name in book.sheet_names:
        rows = [[cell_text(v) for v in r] for r in book.get_sheet_by_name(name).to_python()]
        rows = [r for r in rows if any(c.strip() for c in r)]
        if not rows:
            continue
        schema = _schema_or_none(rows[:2000])
        header_index = schema.header_index if schema else -1
        width = max(len(r) for r in rows)
        columns = tuple(
            (schema.columns[i] if schema and i < len(schema.columns) else f"column {i + 1}")
            for i in range(width)
        )
        body = rows[header_index + 1 :]
        sheets.append((name, Layout("xlsx", None, None, columns, schema, body[:2000]), body))
    return sheets


def xlsx_chunks(body: list[list[str]], width: int, sheet: str, stats: ReadStats) -> Iterator[Chunk]:
    for start in range(0, len(body), XLSX_ROWS):
        part = body[start : start + XLSX_ROWS]
        cols = {f"c{i}": [r[i] if i < len(r) else "" for r in part] for i in range(width)}
        frame = pl.DataFrame(cols, schema={k: pl.String for k in cols})
        frame = frame.with_columns(pl.Series("_row", np.arange(start + 1, start + len(part) + 1)))
        stats.rows += len(part)
        yield Chunk(frame, sheet)
