"""A canary's district follows the list's people, and each export profiles its own sample."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from canary import csvfile, sample
from canary.nearby import PostcodeDraw
from tests.listgen import people, write_csv


def test_a_canary_stays_in_a_district_of_few_postcodes() -> None:
    """District 900 has four postcodes, each seen a different number of times; district
    810 has ninety. A canary drawn from 900 whose count no other 900 postcode shares stays
    in 900 (at a postcode of about that count): taking any postcode of that count moved it
    to 810, where most postcodes are."""
    seen: Counter[str] = Counter({f"900{i:04d}": n for i, n in enumerate((5, 6, 7, 9))})
    for i in range(90):
        seen[f"810{i:04d}"] = 5 + i % 3
    draw = PostcodeDraw(seen)
    assert draw.shift
    rng = random.Random(1)
    codes = [draw.draw(rng)[0] for _ in range(6000)]
    people_share = sum(n for c, n in seen.items() if c.startswith("900")) / seen.total()
    canary_share = sum(c.startswith("900") for c in codes) / len(codes)
    assert abs(canary_share - people_share) < 0.015, (canary_share, people_share)


def test_each_export_profiles_windows_of_its_own(tmp_path: Path) -> None:
    """Two exports' samples differ (the error of one is not repeated by the next), and
    each still reaches from the head of the list to its end."""
    rows = people(6000, seed=2)
    path = write_csv(tmp_path / "l.csv", rows)
    head = csvfile.read_head(path, None)
    start = head.ends[-1]
    samples = [
        sample.spread(path, head.dialect, start, len(rows[0]), random.Random(k), 32, 2048)
        for k in (1, 2)
    ]
    ids = [{r[0] for r in s} for s in samples]
    assert len(ids[0] & ids[1]) < len(ids[0]) / 2
    order = {r[0]: i for i, r in enumerate(rows)}
    after = len(head.records) - 1  # the windows start after the head
    tenth = (len(rows) - after) / 10
    for s in ids:
        at = sorted(order[i] for i in s)
        assert at[0] < after + tenth and at[-1] > len(rows) - tenth
    body = [[str(i)] for i in range(100)]
    thin = [sample.thinned(body, 10, random.Random(k)) for k in range(5)]
    assert all(len(t) == 10 for t in thin) and len({tuple(map(tuple, t)) for t in thin}) > 1
