"""Where canaries go in a list sorted by its ID column, and which IDs they take there.

Most lists leave the system sorted by customer number. A canary spliced in at a random
place with a random ID breaks that order, and a broker (or a script) sees it at once. In
a list sorted by ID, a new canary is therefore put between two neighbours whose IDs leave
a gap and takes an unused ID inside that gap, as a member who joined in between would; a
stable canary, whose row (and ID) is fixed, is put where its ID belongs. Records are read
around a few hundred offsets (and found by bisection), never the whole file.

Lines are taken as records here: a list whose quoted fields hold line breaks, or whose
lines do not parse to IDs, is left to random placement.
"""

from __future__ import annotations

import csv
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from canary.csvfile import Dialect, read_tail
from canary.formats import IdStyle

TRIES = 200  # a try reads two lines; lists with few gaps need many


@dataclass(frozen=True)
class Line:
    start: int  # offset of the line's first byte
    end: int  # offset just past its terminator
    id: Any  # the line's sort key (its ID by default), None when it has none
    fields: tuple[str, ...] = ()


Key = Callable[[Sequence[str]], Any]  # a row's sort key, or None when it has none


class IdOrder:
    """Reads the sort keys (IDs, by default) of the lines around byte offsets of a file."""

    def __init__(
        self,
        fh: BinaryIO,
        dialect: Dialect,
        id_col: int,
        style: IdStyle | None,
        start: int,
        size: int,
        key: Key | None = None,
    ) -> None:
        self.fh, self.dialect, self.id_col, self.style = fh, dialect, id_col, style
        self.start, self.size = start, size
        self.term = bytes([dialect.terminator])
        self.key = key

    def line_from(self, offset: int) -> Line | None:
        """The line starting at ``offset`` (a line start)."""
        if offset >= self.size:
            return None
        self.fh.seek(offset)
        data = b""
        while True:
            chunk = self.fh.read(4096)
            data += chunk
            cut = data.find(self.term)
            if cut >= 0 or not chunk:
                break
        if cut < 0:
            return None  # the last line, without a terminator: never a neighbour here
        fields = self._fields(data[:cut])
        key = self._key(fields) if fields is not None else None
        return Line(offset, offset + cut + 1, key, tuple(fields or ()))

    def line_at(self, offset: int) -> Line | None:
        """The line holding byte ``offset``."""
        lo = max(self.start, offset - 4096)
        self.fh.seek(lo)
        data = self.fh.read(offset - lo + 1)
        back = data.rfind(self.term, 0, offset - lo)
        begin = lo + back + 1 if back >= 0 else self.start
        if back < 0 and lo > self.start:
            return None  # a line longer than 4 KiB: not a list of people
        return self.line_from(begin)

    def _fields(self, raw: bytes) -> list[str] | None:
        text = raw.decode(self.dialect.encoding, errors="replace").rstrip("\r")
        if '"' in text and text.count('"') % 2:
            return None  # inside a quoted field that spans lines
        try:
            return next(csv.reader([text], delimiter=self.dialect.delimiter))
        except (csv.Error, StopIteration):
            return None

    def _key(self, fields: list[str]) -> Any:
        if self.key is not None:
            return self.key(fields)
        if self.id_col >= len(fields) or self.style is None:
            return None
        return self.style.number(fields[self.id_col])


def sorted_by_id(
    path: Path, dialect: Dialect, id_col: int, style: IdStyle, body: Sequence[Sequence[str]]
) -> bool:
    """Whether the list is sorted by ascending ID: its head and its tail both are, and the
    tail comes after the head."""

    def ids(rows: Sequence[Sequence[str]]) -> list[int] | None:
        out = []
        for r in rows:
            n = style.number(r[id_col]) if id_col < len(r) else None
            if n is None:
                return None
            out.append(n)
        return out

    head = ids([r for r in body if any(c.strip() for c in r)])
    tail = ids([r for r in read_tail(path, dialect) if any(c.strip() for c in r)][-200:])
    if not head or len(head) < 20 or not tail:
        return False
    run = head + ([n for n in tail if n > head[-1]] if tail[0] > head[-1] else [])
    return all(a < b for a, b in itertools.pairwise(run)) and tail == sorted(tail)


@dataclass
class Placement:
    target: int  # splice target: the terminator of the line the canary follows
    id: int | None  # the ID to write (None: keep the row's own)
    before: tuple[str, ...] = ()  # the fields of the line the canary follows


def place_new(
    order: IdOrder, rng: random.Random, taken: Callable[[int], bool], region: tuple[int, int]
) -> Placement | None:
    """A place for a new canary inside ``region`` (byte offsets), with a free ID between
    its neighbours', or None when no gap turned up."""
    lo, hi = region
    for attempt in range(TRIES):
        if attempt == TRIES // 2:
            lo, hi = order.start, order.size  # anywhere, if this stretch is dense
        prev = order.line_at(rng.randrange(lo, max(lo + 1, hi)))
        if prev is None or prev.id is None:
            continue
        nxt = order.line_from(prev.end)
        if nxt is None or nxt.id is None or nxt.id - prev.id < 2:
            continue
        free = [n for n in _sample_gap(prev.id, nxt.id, rng) if not taken(n)]
        if free:
            return Placement(prev.end - 1, free[0], prev.fields)
    return None


def _sample_gap(a: int, b: int, rng: random.Random) -> list[int]:
    if b - a - 1 <= 8:
        gap = list(range(a + 1, b))
        rng.shuffle(gap)
        return gap
    return [rng.randint(a + 1, b - 1) for _ in range(8)]


def sorted_by(rows: Sequence[Sequence[str]], tail: Sequence[Sequence[str]], key: Key) -> bool:
    """Whether rows are in ascending order of ``key`` in the head and in the tail, the
    tail after the head, with more than one distinct key."""
    head_keys = [key(r) for r in rows if any(c.strip() for c in r)]
    tail_keys = [key(r) for r in tail if any(c.strip() for c in r)][-200:]
    if len(head_keys) < 20 or not tail_keys or None in head_keys or None in tail_keys:
        return False
    keys: list[Any] = head_keys
    run = keys + [k for k in tail_keys if k >= keys[-1]]
    ordered = all(a <= b for a, b in itertools.pairwise(run))
    return ordered and tail_keys == sorted(tail_keys) and len(set(head_keys)) > len(head_keys) // 4


def place_fixed(order: IdOrder, n: Any, strict: bool = True) -> Placement | None:
    """Where a row with key ``n`` (an ID by default) belongs: after the last line with a
    smaller key (with ``strict``, refused when a line holds the same key: IDs are unique)."""
    lo, hi = order.start, order.size
    while hi - lo > 16384:
        mid = (lo + hi) // 2
        line = order.line_at(mid)
        if line is None or line.id is None:
            return None
        if line.id < n:
            lo = line.end
        else:
            hi = line.start
    prev = order.line_at(lo - 1) if lo > order.start else None
    line = order.line_from(lo)
    while line is not None and line.start < order.size:
        if line.id is None:
            return None
        if line.id == n and strict:
            return None  # the ID is taken in this list
        if line.id > n:
            return Placement(prev.end - 1, None, prev.fields) if prev is not None else None
        prev = line
        line = order.line_from(line.end)
    return None
