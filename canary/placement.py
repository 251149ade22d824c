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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from canary.csvfile import Dialect
from canary.formats import IdStyle

TRIES = 200  # a try reads two lines; lists with few gaps need many
BLOCK_BYTES = 16384  # read at once when looking for a gap: a few hundred neighbours
SPLITS_TRIED = 8  # free IDs tried in one wide gap
NEARBY = 10  # lines on either side of a place that are the canary's neighbours


@dataclass(frozen=True)
class Line:
    start: int  # offset of the line's first byte
    end: int  # offset just past its terminator
    key: Any  # the line's sort key, None when it has none
    fields: tuple[str, ...] = ()


Key = Callable[[Sequence[str]], Any]  # a row's sort key, or None when it has none


def id_key(col: int, style: IdStyle) -> Key:
    """A row's ID as a number, the key of a list sorted by ID."""
    return lambda r: style.number(r[col]) if col < len(r) else None


class SortedLines:
    """Reads the sort keys of the lines around byte offsets of a sorted file."""

    def __init__(self, fh: BinaryIO, dialect: Dialect, start: int, size: int, key: Key) -> None:
        self.fh, self.dialect, self.key = fh, dialect, key
        self.start, self.size = start, size
        self.term = bytes([dialect.terminator])

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
        key = self.key(fields) if fields is not None else None
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

    def lines_in(self, offset: int, nbytes: int) -> list[Line]:
        """The whole lines inside ``nbytes`` from ``offset`` (the first partial one skipped,
        unless the block starts at the first line), consecutive in the file."""
        self.fh.seek(offset)
        data = self.fh.read(nbytes)
        first = 0 if offset == self.start else data.find(self.term) + 1
        if offset != self.start and first == 0:
            return []
        out: list[Line] = []
        while True:
            cut = data.find(self.term, first)
            if cut < 0:
                return out
            fields = self._fields(data[first:cut])
            key = self.key(fields) if fields is not None else None
            out.append(Line(offset + first, offset + cut + 1, key, tuple(fields or ())))
            first = cut + 1

    def _fields(self, raw: bytes) -> list[str] | None:
        text = raw.decode(self.dialect.encoding, errors="replace").rstrip("\r")
        if '"' in text and text.count('"') % 2:
            return None  # inside a quoted field that spans lines
        try:
            return next(csv.reader([text], delimiter=self.dialect.delimiter))
        except (csv.Error, StopIteration):
            return None


@dataclass
class Placement:
    target: int  # splice target: the terminator of the line the canary follows
    id: int | None  # the ID to write (None: keep the row's own)
    before: tuple[str, ...] = ()  # the fields of the line the canary follows
    after: tuple[str, ...] = ()  # the fields of the line that follows the canary
    # The fields of the lines read around the place (in memory only): the canary's
    # neighbours in the file, whose ages a list sorted by join order shares.
    nearby: tuple[tuple[str, ...], ...] = ()


class GapOdds:
    """How common each ID step between neighbours is in the list, learned from the blocks
    read while placing, and how much weight a canary's split of a step gets.

    A canary taking ID x between neighbours a and b turns one step b − a into two, x − a
    and b − x. For the canary's two steps to look like anyone's pair of steps (each drawn
    like the list's steps, independently), each free ID of a block is weighed by
    P(s)·P(t) / P(s + t): the product is how common the pair is among people, and
    dividing by P(s + t) undoes how often a step of that size is there to be split. In a
    list of consecutive numbers with members deleted at random, every free ID then weighs
    the same: the canary takes a deleted number, as a member who stayed would."""

    ENOUGH = 20000  # steps seen: the shares no longer move

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.total = 0
        self.heaviest = 0.0  # the largest sum of weights of one block's free IDs so far

    def learn(self, steps: Sequence[int]) -> None:
        if self.total < self.ENOUGH:
            self.counts.update(steps)
            self.total += len(steps)

    def share(self, step: int) -> float:
        """The share of the list's steps that are ``step`` (0 for a step not seen: an
        unseen step is not spread a little over every width, or every split of a wide
        gap would look plausible)."""
        return self.counts[step] / self.total if self.total else 0.0

    def weight(self, s: int, t: int) -> float:
        """P(s)·P(t) / (P(s + t) · the chance this split is among those tried); 1 for every
        split while too few steps are known to judge."""
        if self.total < 50:
            return 1.0
        whole = self.share(s + t)
        if whole == 0:
            return 0.0
        tried = min(1.0, SPLITS_TRIED / max(1, s + t - 1))
        return self.share(s) * self.share(t) / (whole * tried)


def place_new(
    order: SortedLines,
    rng: random.Random,
    taken: Callable[[int], bool],
    region: tuple[int, int],
    odds: GapOdds | None = None,
) -> Placement | None:
    """A place for a new canary inside ``region`` (byte offsets), with a free ID between
    its neighbours', or None when no gap turned up. A block of lines is read at a random
    offset, and one of its free IDs is drawn with the weights of GapOdds (drawing among
    all of them, not taking the first that passes a test, is what makes a wide gap as
    likely to be used as it has free IDs)."""
    odds = odds if odds is not None else GapOdds()
    lo, hi = region
    fallback: tuple[float, Placement] | None = None
    for attempt in range(TRIES // 4):
        if attempt == TRIES // 8:
            lo, hi = order.start, order.size  # anywhere, if this stretch is dense
        block = order.lines_in(rng.randrange(lo, max(lo + 1, hi)), BLOCK_BYTES)
        pairs = [
            (k, p, n)
            for k, (p, n) in enumerate(itertools.pairwise(block))
            if p.key is not None and n.key is not None
        ]
        odds.learn([n.key - p.key for _, p, n in pairs if n.key > p.key])
        spots, weights, at = [], [], []
        for k, prev, nxt in pairs:
            if nxt.key - prev.key < 2:
                continue
            for n in _sample_gap(prev.key, nxt.key, rng):
                if not taken(n):
                    spots.append(Placement(prev.end - 1, n, prev.fields))
                    weights.append(odds.weight(n - prev.key, nxt.key - n))
                    at.append(k)
        if not spots:
            continue
        # Every step of the list alike (IDs three apart): no split looks like two steps
        # of the list, and any free ID is as good as another.
        total = sum(weights)
        i = rng.choices(range(len(spots)), weights=weights if total > 0 else None)[0]
        k = at[i]
        spot = replace(
            spots[i],
            after=block[k + 1].fields,
            nearby=tuple(line.fields for line in block[max(0, k - NEARBY) : k + NEARBY + 1]),
        )
        # A block is kept with a chance of its weight against the heaviest block seen, so
        # that a block holding one odd gap (in a list of dense IDs) is not taken for lack
        # of choice: over blocks, each free ID is then drawn by its own weight.
        odds.heaviest = max(odds.heaviest, total)
        if total <= 0 or rng.random() * odds.heaviest <= total:
            return spot
        if fallback is None or total > fallback[0]:
            fallback = (total, spot)
    return fallback[1] if fallback is not None else None


def _sample_gap(a: int, b: int, rng: random.Random) -> list[int]:
    if b - a - 1 <= SPLITS_TRIED:
        gap = list(range(a + 1, b))
        rng.shuffle(gap)
        return gap
    return [rng.randint(a + 1, b - 1) for _ in range(SPLITS_TRIED)]


def sorted_by(
    head: Sequence[Sequence[str]], tail: Sequence[Sequence[str]], key: Key, strict: bool = False
) -> bool:
    """Whether a list is in ascending order of ``key``: its head and its tail both are, the
    tail after the head, with many distinct keys (``strict``: no key twice, as IDs)."""
    head_keys = [key(r) for r in head if any(c.strip() for c in r)]
    tail_keys = [key(r) for r in tail if any(c.strip() for c in r)][-200:]
    if len(head_keys) < 20 or not tail_keys or None in head_keys or None in tail_keys:
        return False
    run: list[Any] = head_keys + [k for k in tail_keys if k > head_keys[-1]]
    if strict:
        ordered = all(a < b for a, b in itertools.pairwise(run))
    else:
        ordered = all(a <= b for a, b in itertools.pairwise(run))
    return ordered and tail_keys == sorted(tail_keys) and len(set(head_keys)) > len(head_keys) // 4


def place_fixed(order: SortedLines, n: Any, strict: bool = True) -> Placement | None:
    """Where a row with key ``n`` belongs: after the last line with a smaller key (with
    ``strict``, refused when a line holds the same key: IDs are unique)."""
    lo, hi = order.start, order.size
    while hi - lo > 16384:
        mid = (lo + hi) // 2
        line = order.line_at(mid)
        if line is None or line.key is None:
            return None
        if line.key < n:
            lo = line.end
        else:
            hi = line.start
    prev = order.line_at(lo - 1) if lo > order.start else None
    line = order.line_from(lo)
    while line is not None and line.start < order.size:
        if line.key is None:
            return None
        if line.key == n and strict:
            return None  # the ID is taken in this list
        if line.key > n:
            return Placement(prev.end - 1, None, prev.fields) if prev is not None else None
        prev = line
        line = order.line_from(line.end)
    return None
