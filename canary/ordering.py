"""Where canaries go in a sorted list and which IDs they take: the list's sort order
found once per seed, canaries kept in it, their IDs fitted to the list's range and
kept clear of the hosts' (see ``canary.placement`` for the reading of lines)."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from canary import csvfile
from canary.formats import IdStyle
from canary.generate import CanaryFactory, GeneratedCanary
from canary.registry.records import CanaryDraft
from canary.schema import Schema

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass
class Carried:
    """A stable canary carried again: the very row the group's earlier exports hold."""

    row: list[str]
    fields: dict[str, str]
    draft: CanaryDraft


@dataclass
class SortOrder:
    """How a list is sorted, found once per seed from its head and tail."""

    key: Callable[[Sequence[str]], Any]
    id_col: int | None = None  # sorted by this ID column: new canaries take IDs in gaps
    style: IdStyle | None = None
    following: list[int] = field(default_factory=list)  # columns that grow with the ID


def sort_order(
    schema: Schema, factory: CanaryFactory, body: list[list[str]], tail: list[list[str]]
) -> SortOrder | None:
    """The order the list is sorted in, if any: by ID, or else by postcode and reading,
    postcode, reading or birth date (see placement)."""
    from canary import placement

    id_col = schema.column_of("id")
    style = factory.profile.columns[id_col].style if id_col is not None else None
    if id_col is not None and isinstance(style, IdStyle):
        key = placement.id_key(id_col, style)
        if placement.sorted_by(body, tail, key, strict=True):
            return SortOrder(key, id_col, style, columns_following_order(schema, body))
    for key in sort_keys(schema):
        if placement.sorted_by(body, tail, key):
            return SortOrder(key)
    return None


def keep_order(
    path: Path,
    dialect: csvfile.Dialect,
    sort: SortOrder | None,
    factory: CanaryFactory,
    header_end: int,
    size: int,
    made: list[GeneratedCanary | Carried],
    targets: list[int],
    only: set[int] | None = None,
) -> list[Any]:
    """In a sorted list, put each canary (of ``only``, if given) where it belongs (see
    placement): in a list sorted by ID a new canary takes a free ID between two
    neighbours; otherwise, and for a carried canary, it goes where its own key fits. A new
    canary whose key falls outside the list's (a postcode past the last) is made again, a
    few times. ``targets`` and rows change in place; a canary no place was found for keeps
    its random place. Returns each canary's key, to order canaries sharing a place."""
    from canary import placement

    if sort is None:
        return [(True, 0)] * len(made)
    used: set[int] = set()
    odds = placement.GapOdds()  # the list's ID steps, learned while placing
    misses = 0
    count, span = len(made), max(1, size - header_end)
    with path.open("rb") as fh:
        lines = placement.SortedLines(fh, dialect, header_end, size, sort.key)
        for i, c in enumerate(made):
            if only is not None and i not in only:
                continue
            if sort.id_col is not None and isinstance(c, GeneratedCanary):
                if misses >= 3 and not used:
                    continue  # no gap anywhere so far: the IDs are dense, stop looking
                region = (header_end + span * i // count, header_end + span * (i + 1) // count)
                spot = placement.place_new(
                    lines, factory.rng, lambda n: n in used or factory.id_taken(n), region, odds
                )
                misses += spot is None
                if spot is None or spot.id is None:
                    continue
                factory.set_id(c, sort.id_col, spot.id)
                used.add(spot.id)
                # People who joined about the same time are of about the same age (a
                # list of 入会日 order, or of members who joined young): the canary is
                # born as one of its neighbours might have been.
                factory.age_like(c, spot.nearby)
                # A join date that grows with the ID: the canary joined between the
                # members before and after it, as a member numbered there did.
                within = _within_gap(spot.before, spot.after, sort, spot.id)
                for j in sort.following:
                    if j < len(spot.before) and spot.before[j].strip():
                        after = spot.after[j] if j < len(spot.after) else ""
                        c.row[j] = date_between(spot.before[j], after, factory.rng, within)
                        c.fields[factory.profile.columns[j].name] = c.row[j]
                targets[i] = spot.target
                continue
            strict = sort.id_col is not None  # IDs are unique; postcodes are shared
            for _ in range(1 if isinstance(c, Carried) else 10):
                own = sort.key(c.row)
                spot = placement.place_fixed(lines, own, strict) if own is not None else None
                if spot is not None:
                    targets[i] = spot.target
                    break
                if isinstance(c, GeneratedCanary):
                    c = made[i] = factory.make()
    keys = [sort.key(c.row) for c in made]
    return [(k is None, k if k is not None else 0) for k in keys]


_DATE = re.compile(r"^(\d{4})([/-]?)(\d{1,2})\2(\d{1,2})$")


def _within_gap(
    before: Sequence[str], after: Sequence[str], sort: SortOrder, number: int
) -> tuple[int, int]:
    """Which of the free numbers between two neighbours ``number`` is: (j, of g)."""
    col, style = sort.id_col, sort.style
    if col is None or style is None or col >= len(before) or col >= len(after):
        return 1, 1
    low, high = style.number(before[col]), style.number(after[col])
    if low is None or high is None or not low < number < high:
        return 1, 1
    return number - low, high - low - 1


def date_between(
    before: str, after: str, rng: random.Random, within: tuple[int, int] = (1, 1)
) -> str:
    """A day from ``before`` to ``after`` (both included), written as ``before`` is.

    A member numbered between two others joined at a moment between theirs. Each of the
    two joined at some time of their day, and the member numbered j-th of the g numbers
    between them (``within``) joined as the j-th of g moments drawn evenly between those
    times: the days at the ends are half as likely as those between them, since only
    part of each is after the first's joining (or before the second's). Each day as
    likely (until 2026-11-27) made canaries share a neighbour's join day more
    often than members do (nationwide customers: 93 % against 88 %), which a broker's
    model of the order learnt. Anything but two dates written alike (2019/04/01,
    2019-4-1, 20190401) keeps ``before``."""
    a, b = _DATE.match(before.strip()), _DATE.match(after.strip())
    if not a or not b or a.group(2) != b.group(2):
        return before
    if not a.group(2) and len(before.strip()) != 8:
        return before  # 2019041: no separator, no padding, no telling month from day
    try:
        first = date(int(a.group(1)), int(a.group(3)), int(a.group(4)))
        last = date(int(b.group(1)), int(b.group(3)), int(b.group(4)))
    except ValueError:
        return before
    if last <= first:
        return before
    j, g = within
    start, end = rng.random(), (last - first).days + rng.random()
    moment = start + (end - start) * rng.betavariate(j, g - j + 1)
    day = first + timedelta(days=min(int(moment), (last - first).days))
    sep = a.group(2)
    month = f"{day.month:02d}" if len(a.group(3)) == 2 else str(day.month)
    dom = f"{day.day:02d}" if len(a.group(4)) == 2 else str(day.day)
    written = f"{day.year}{sep}{month}{sep}{dom}"
    return before.replace(before.strip(), written)


def columns_following_order(schema: Schema, body: list[list[str]]) -> list[int]:
    """Free columns (a join or registration date) whose values never decrease down a list
    sorted by ID, with many distinct values."""
    out = []
    for j, role in enumerate(schema.roles):
        if role != "other":
            continue
        values = [r[j] for r in body if j < len(r) and r[j].strip()]
        if len(values) < 20 or len(set(values)) < len(values) // 10:
            continue
        if all(a <= b for a, b in itertools.pairwise(values)):
            out.append(j)
    return out


def sort_keys(schema: Schema) -> list[Callable[[Sequence[str]], object]]:
    """Orders a list is often sorted in, other than by ID: by postcode (地区順) then
    reading, by postcode, by reading (五十音順), by birth date."""
    from canary.normalize import kana_key, postcode_key

    pc, kana, birth = (schema.column_of(r) for r in ("postcode", "kana", "birth_date"))

    def cell(r: Sequence[str], i: int | None) -> str | None:
        return r[i] if i is not None and i < len(r) and r[i].strip() else None

    def by_postcode(r: Sequence[str]) -> object:
        v = cell(r, pc)
        return postcode_key(v) if v else None

    def by_kana(r: Sequence[str]) -> object:
        v = cell(r, kana)
        return kana_key(v) if v else None

    def by_postcode_kana(r: Sequence[str]) -> object:
        a, b = by_postcode(r), by_kana(r)
        return (a, b) if a and b else None

    def by_birth(r: Sequence[str]) -> object:
        v = cell(r, birth)
        return re.sub(r"\D", "", v) if v else None

    # Systems sort the text as written (a space sorts before any kana), people sort by
    # sound: both are tried, as written first.
    def by_postcode_kana_raw(r: Sequence[str]) -> object:
        a, b = cell(r, pc), cell(r, kana)
        return (a, b) if a and b else None

    def by_kana_raw(r: Sequence[str]) -> object:
        return cell(r, kana)

    keys: list[Callable[[Sequence[str]], object]] = []
    if pc is not None and kana is not None:
        keys += [by_postcode_kana_raw, by_postcode_kana]
    if pc is not None:
        keys.append(by_postcode)
    if kana is not None:
        keys += [by_kana_raw, by_kana]
    if birth is not None:
        keys.append(by_birth)
    return keys


def fit_id_range(
    tail: list[list[str]], schema: Schema, factory: CanaryFactory, est_rows: int
) -> None:
    """Widen the ID range seen in the head with the IDs at the end of the file: lists are
    usually sorted by ID, so the tail holds the highest. Collisions anywhere in the file are
    still ruled out afterwards by one columnar pass (``canary.hostcheck``)."""
    id_col = schema.column_of("id")
    style = factory.profile.columns[id_col].style if id_col is not None else None
    if id_col is None or not isinstance(style, IdStyle):
        return
    numbers = [style.low, style.high]
    for record in tail:
        if id_col < len(record) and (n := style.number(record[id_col])) is not None:
            numbers.append(n)
    factory.set_id_range(est_rows, min(numbers), max(numbers))


def lines_before(path: Path, offset: int, terminator: int) -> int:
    with path.open("rb") as fh:
        return fh.read(offset).count(bytes([terminator]))
