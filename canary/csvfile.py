"""Delimited text lists: dialect detection and byte-exact streaming insertion of rows.

The seeder never re-encodes or re-quotes a host row. It copies the input's bytes and
splices canary rows in at record boundaries, found with quote parity (a newline inside a
quoted field is not a boundary). This is safe in UTF-8, CP932 and EUC-JP alike: none of
them uses the bytes of ``"``, ``,``, tab, CR or LF inside a multi-byte character.
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from canary.errors import EmptyFileError, EncodingError, InputError, RaggedFileError
from canary.pipeline import (
    MappedSource,
    Readable,
    ReadSource,
    RecordCounter,
    Sink,
    Window,
    open_source,
)

HEAD_BYTES = 2 * 1024 * 1024
SAMPLE_RECORDS = 2000
ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8-sig",
    "cp932": "cp932",
    "windows-31j": "cp932",
    "sjis": "cp932",
    "shift_jis": "cp932",
    "ms932": "cp932",
    "euc-jp": "euc_jp",
    "euc_jp": "euc_jp",
    "eucjp": "euc_jp",
}


@dataclass(frozen=True)
class Dialect:
    """How one delimited file is written."""

    encoding: str  # codec for canary rows: utf-8, cp932 or euc_jp
    bom: bytes
    delimiter: str
    quote_all: bool
    newline: bytes  # b"\r\n", b"\n" or b"\r"
    terminator: int  # byte value ending a record (LF, or CR for CR-only files)

    @property
    def label(self) -> str:
        return "utf-8-sig" if self.bom else self.encoding

    def render_row(self, fields: Sequence[str]) -> bytes:
        """A canary row as the host writes rows: same delimiter, quoting and newline."""
        parts = []
        for value in fields:
            needs = any(ch in value for ch in (self.delimiter, '"', "\n", "\r"))
            if self.quote_all or needs:
                parts.append('"' + value.replace('"', '""') + '"')
            else:
                parts.append(value)
        text = self.delimiter.join(parts)
        return text.encode(self.encoding) + self.newline

    def encodable(self, text: str) -> bool:
        try:
            text.encode(self.encoding)
        except UnicodeEncodeError:
            return False
        return True


@dataclass(frozen=True)
class Head:
    """The start of a file, parsed: its dialect, first records and their byte ends."""

    dialect: Dialect
    records: list[list[str]]
    quoted: list[list[bool]]
    ends: list[int]  # byte offset just past each record's terminator
    size: int
    avg_record_bytes: float


def _record_ends(buf: bytes | memoryview, terminator: int, start: int = 0) -> np.ndarray:
    """Offsets just past each record terminator in ``buf`` (which starts outside quotes)."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    terms = np.flatnonzero(arr == terminator)
    if terms.size:
        quotes = np.flatnonzero(arr == 34)
        if quotes.size:
            terms = terms[(np.searchsorted(quotes, terms) & 1) == 0]
    return terms + 1 + start


def _pick_encoding(head: bytes, override: str | None) -> tuple[str, bytes]:
    if override:
        key = override.strip().lower()
        if key not in ENCODINGS:
            raise EncodingError(
                f"Unknown encoding {override!r}; use utf-8, utf-8-sig, cp932 or euc-jp."
            )
        enc = ENCODINGS[key]
        if enc == "utf-8-sig":
            return "utf-8", b"\xef\xbb\xbf" if head.startswith(b"\xef\xbb\xbf") else b""
        return enc, b"\xef\xbb\xbf" if enc == "utf-8" and head.startswith(b"\xef\xbb\xbf") else b""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8", b"\xef\xbb\xbf"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise EncodingError(
            "The file is UTF-16 (Excel's 'Unicode text'); save it as "
            "'CSV UTF-8' or 'CSV' and seed that."
        )
    candidates = []
    for enc in ("utf-8", "cp932", "euc_jp"):
        try:
            head.decode(enc)
            candidates.append(enc)
        except UnicodeDecodeError:
            continue
    if not candidates:
        raise EncodingError(
            "The file is not UTF-8, CP932 (Shift_JIS) or EUC-JP text; if you "
            "know its encoding, pass --encoding."
        )
    if len(candidates) == 1 or candidates[0] == "utf-8":
        return candidates[0], b""

    # Both CP932 and EUC-JP decode: prefer the one that reads as more Japanese text.
    def score(enc: str) -> int:
        text = head.decode(enc)
        return len(re.findall(r"[\u3041-\u30ff\u4e00-\u9fff]", text)) - 5 * len(
            re.findall(r"[\uff61-\uff9f\ue000-\uf8ff]", text)
        )

    return max(candidates, key=score), b""


def _check_windows(
    path: Path, size: int, encoding: str, terminator: int, rng: random.Random, windows: int = 32
) -> None:
    """Decode windows spread through the file so that a list joined from files saved in
    different encodings is refused, without decoding the whole file."""
    if size <= HEAD_BYTES:
        return
    with path.open("rb") as fh:
        for i in range(windows):
            offset = HEAD_BYTES + (size - HEAD_BYTES) * i // windows
            offset += rng.randrange(max(1, (size - HEAD_BYTES) // windows))
            fh.seek(max(0, offset))
            data = fh.read(65536)
            first = data.find(bytes([terminator]))
            last = data.rfind(bytes([terminator]))
            if first < 0 or last <= first:
                continue
            try:
                data[first + 1 : last + 1].decode(encoding)
            except UnicodeDecodeError as exc:
                raise EncodingError(
                    f"The file mixes encodings: bytes near offset {offset + first + exc.start} "
                    f"are not {encoding} like its start; it may join lists saved in different "
                    "encodings. Save it again in one encoding."
                ) from exc


def read_head(
    path: Path, encoding: str | None = None, sample_records: int = SAMPLE_RECORDS
) -> Head:
    """Detect the dialect of a delimited file and parse its first records."""
    size = path.stat().st_size
    if size == 0:
        raise EmptyFileError(f"{path.name} is empty.")
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    if b"\x00" in head[:65536]:
        raise InputError(
            f"{path.name} is not a text list (it holds binary data); if it is an "
            "Excel file, give it an .xlsx name."
        )
    terminator = 10 if b"\n" in head else 13
    cut = head.rfind(bytes([terminator])) + 1 if size > len(head) else len(head)
    body = head[:cut] if cut > 0 else head
    enc, bom = _pick_encoding(body, encoding)
    try:
        text = body[len(bom) :].decode(enc)
    except UnicodeDecodeError as exc:
        raise EncodingError(
            f"{path.name} is not valid {enc} at byte {exc.start}; pass the right --encoding."
        ) from exc
    _check_windows(path, size, enc, terminator, random.Random(size))

    crlf, lf = body.count(b"\r\n"), body.count(b"\n")
    newline = b"\r\n" if crlf and crlf >= lf - crlf else (b"\n" if lf else b"\r")
    sample_text = text[:200_000]
    try:
        sniffed = csv.Sniffer().sniff(sample_text, delimiters=",\t;|")
        delimiter = sniffed.delimiter
    except csv.Error:
        counts = {d: sample_text.count(d) for d in ",\t;|"}
        delimiter = max(counts, key=lambda d: counts[d])
        if counts[delimiter] == 0:
            delimiter = ","
    all_ends = [int(e) for e in _record_ends(body, terminator)]
    if not all_ends or (cut == len(head) and all_ends[-1] < len(body)):
        all_ends.append(len(body))  # last record without a final newline
    # The average record size comes from every record of the head; only the sample is parsed.
    avg = (all_ends[-1] - len(bom)) / max(1, len(all_ends))
    ends = all_ends[: sample_records + 40]
    records: list[list[str]] = []
    quoted: list[list[bool]] = []
    start = len(bom)
    for end in ends:
        raw = body[start:end].decode(enc)
        start = end
        parsed = next(csv.reader(io.StringIO(raw), delimiter=delimiter), [])
        records.append(parsed)
        quoted.append(_quoted_flags(raw, delimiter, len(parsed)))
    data_records = [r for r in records if any(c.strip() for c in r)]
    if not data_records:
        raise EmptyFileError(f"{path.name} holds no rows.")
    single = all(len(r) <= 1 for r in data_records)
    if single:
        raise InputError(
            f"{path.name} has a single column; a list of people needs separate "
            "name and contact columns (check the delimiter)."
        )
    flat = [q for qs, r in zip(quoted, records, strict=True) if len(r) > 1 for q in qs]
    quote_all = bool(flat) and sum(flat) / len(flat) > 0.98
    dialect = Dialect(enc, bom, delimiter, quote_all, newline, terminator)
    return Head(dialect, records, quoted, ends, size, avg)


def _quoted_flags(raw: str, delimiter: str, n: int) -> list[bool]:
    flags = []
    in_quotes = False
    at_start = True
    for ch in raw:
        if at_start:
            flags.append(ch == '"')
            at_start = False
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == delimiter and not in_quotes:
            at_start = True
    return (flags + [False] * n)[:n]


def read_tail(path: Path, dialect: Dialect, nbytes: int = 65536) -> list[list[str]]:
    """The last complete records of a file (those wholly inside its last ``nbytes``)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - nbytes))
        data = fh.read()
    term = bytes([dialect.terminator])
    first = data.find(term) + 1 if size > nbytes else 0
    text = data[first:].decode(dialect.encoding, errors="replace")
    # Quotes could make the first line a continuation; only quote-free lines are trusted.
    lines = [ln for ln in text.splitlines() if ln and '"' not in ln]
    return [next(csv.reader([ln], delimiter=dialect.delimiter)) for ln in lines]


def check_ragged(records: Sequence[Sequence[str]], header_index: int, name: str) -> None:
    """Refuse a file whose rows do not all have the header's number of fields."""
    rows = records[header_index + 1 :] if header_index >= 0 else records
    width = len(records[header_index]) if header_index >= 0 else None
    for offset, rec in enumerate(rows):
        if not any(c.strip() for c in rec):
            continue
        if width is None:
            width = len(rec)
            continue
        if len(rec) != width and not (len(rec) < width and not any(rec[len(rec) :])):
            line = header_index + 2 + offset
            raise RaggedFileError(
                f"{name}: record {line} has {len(rec)} fields but the header has {width}; "
                "fix the file (or its delimiter) and seed again."
            )


@dataclass(frozen=True)
class Insertion:
    target: int  # byte offset in the input; the row goes at the next record boundary
    row: bytes


@dataclass(frozen=True)
class CopyResult:
    rows_in: int  # data records after the header
    positions: list[int]  # data-row index of each canary in the output, in insertion order
    bytes_out: int


def splice(
    src: Readable,
    dst: BinaryIO,
    header_end: int,
    insertions: Sequence[Insertion],
    terminator: int,
    on_bytes: Callable[[int], None] | None = None,
    digests: Iterable[object] = (),
) -> CopyResult:
    """Copy ``src`` (at its start) to ``dst`` byte for byte, splicing rows in at record
    boundaries.

    A row whose target lies in or after the last record goes before the last record, so
    canaries are never appended. ``digests`` are hash objects updated with the output.
    Writing, hashing and counting records run on worker threads; a file is mapped and
    copied by the kernel (see ``pipeline``).
    """
    source = open_source(src, header_end)
    counter = RecordCounter(terminator)
    sink = Sink(dst, list(digests), counter, source=source)
    try:
        _splice(source, sink, counter, insertions, terminator, on_bytes)
    finally:
        sink.close()
        source.close()
    return CopyResult(counter.total, counter.positions(), sink.written)


def _splice(
    source: ReadSource | MappedSource,
    sink: Sink,
    counter: RecordCounter,
    insertions: Sequence[Insertion],
    terminator: int,
    on_bytes: Callable[[int], None] | None,
) -> None:
    term = bytes([terminator])
    pending = sorted(insertions, key=lambda i: i.target)

    def data(w: Window, start: int, stop: int, plain: bool, records: int = 0) -> None:
        # Plain pieces are counted by the counter thread; quoted ones were counted here.
        piece = w.piece(start, stop)
        sink.put(piece, count=plain, at=w.offset(start))
        if not plain and records:
            counter.add(records)

    def canary(row: bytes) -> None:
        counter.mark()
        sink.put(row, count=False)

    header, at = source.header()
    sink.put(header, count=False, at=at)
    if on_bytes:
        on_bytes(len(header))
    while True:
        w = source.window()
        base, n, eof = source.base, w.n, w.eof
        if on_bytes and w.got:
            on_bytes(w.got)
        if not n:
            break
        plain = w.find(b'"', 0, n) == -1
        ends: np.ndarray | None = None
        if plain:
            last = w.rfind(term, 0, n)
            second = w.rfind(term, 0, last) if last > 0 else -1
        else:
            ends = _record_ends(w.piece(0, n), terminator)
            last = int(ends[-1]) - 1 if ends.size else -1
            second = int(ends[-2]) - 1 if ends.size > 1 else -1
        # Hold back the last complete record (and anything after it) until EOF, so that a
        # canary that would fall after it can still go before it.
        if eof:
            limit = second + 1 if last == n - 1 else last + 1
        else:
            limit = second + 1
        if limit <= 0 and not eof:
            source.advance(w, 0)
            continue
        cursor = 0
        while pending and (pending[0].target - base < limit or eof):
            ins = pending.pop(0)
            if cursor and ins.target - base < cursor:
                # Same place as the row before (canaries sharing a gap in a sorted list).
                canary(ins.row)
                continue
            rel = max(ins.target - base, cursor)
            if plain:
                cut = w.find(term, rel, n) + 1 if rel < limit else limit
                if cut <= 0 or cut > limit:
                    cut = limit
                records = 0
            else:
                assert ends is not None
                k = int(np.searchsorted(ends, rel + 1, side="left"))
                cut = min(int(ends[k]) if k < ends.size else limit, limit)
                records = _ends_between(ends, cursor, cut)
            cut = max(cut, cursor)
            data(w, cursor, cut, plain, records)
            canary(ins.row)
            cursor = cut
        stop = n if eof else limit
        records = 0 if plain else _ends_between(ends, cursor, stop)  # type: ignore[arg-type]
        data(w, cursor, stop, plain, records)
        if eof:
            # A final record without a terminator is still a record.
            if w.byte(n - 1) != terminator:
                counter.add(1)
            break
        source.advance(w, limit)


def _ends_between(ends: np.ndarray, start: int, stop: int) -> int:
    return int(
        np.searchsorted(ends, stop, side="right") - np.searchsorted(ends, start, side="right")
    )


def fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
