"""Canaries fitted to their list: the statistics a broker could compare come out like the
list's own (issue 4). Each test fixes its random seed, so its figures are repeatable."""

from __future__ import annotations

import bisect
import io
import random
import re
from collections import Counter
from pathlib import Path

from canary.csvfile import Dialect
from canary.nearby import PostcodeDraw, near_neighbours, postcodes_repeat
from canary.placement import GapOdds, SortedLines, place_new
from canary.reference import Gazetteer, NameBook
from canary.registry import Registry
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from tests.conftest import REPO
from tests.listgen import write_csv


def _mean(xs: list[int]) -> float:
    return sum(xs) / len(xs)


def test_a_canary_takes_a_number_freed_by_someone_who_left() -> None:
    """Member numbers issued in turn, with the numbers of members who left missing: a
    canary's two steps to its neighbours are as long as anyone's (the old odds, which
    favoured splits into two common steps, gave 1.18 against 1.52)."""
    rng = random.Random(7)
    ids, n = [], 10_000_000
    while len(ids) < 6000:
        n += 1
        if rng.random() < 0.6:
            ids.append(n)
    data = b"id,name\n" + b"".join(f"{i},x\n".encode() for i in ids)
    dialect = Dialect("utf-8", b"", ",", False, b"\n", 10)
    lines = SortedLines(io.BytesIO(data), dialect, 8, len(data), lambda r: int(r[0]))
    odds, taken = GapOdds(), set()
    span = len(data) - 8
    for i in range(300):
        region = (8 + span * i // 300, 8 + span * (i + 1) // 300)
        spot = place_new(lines, rng, lambda x: x in taken, region, odds)
        assert spot is not None and spot.id is not None
        taken.add(spot.id)
    merged = sorted([*ids, *taken])
    steps = {b: (b - a, c - b) for a, b, c in zip(merged, merged[1:], merged[2:], strict=False)}
    canary_steps = [s for x in taken if x in steps for s in steps[x]]
    people_steps = [s for x, pair in steps.items() if x not in taken for s in pair]
    assert abs(_mean(canary_steps) - _mean(people_steps)) < 0.12


def test_a_canarys_block_number_ranks_anywhere_in_its_town() -> None:
    """Towns of 3 to 12 rows numbered evenly up to 9, 300 or 3000, a quarter of each seen
    by the profile: a canary numbered from the neighbours seen is the town's lowest or
    highest about as often as a number drawn from the town's true range is."""
    rng = random.Random(3)
    for top in (9, 300, 3000):
        ours = truth = trials = 0
        for _ in range(4000):
            town = [rng.randint(1, top) for _ in range(rng.randint(3, 12))]
            seen = [x for x in town if rng.random() < 0.25]
            if not seen:
                continue
            canary = near_neighbours(seen, 0.25, rng)
            assert 1 <= canary <= max(top, 2 * max(seen))
            g = sorted(town)

            def extreme(x: int, g: list[int] = g) -> bool:
                return bisect.bisect_left(g, x) == 0 or bisect.bisect_right(g, x) == len(g)

            ours += extreme(canary)
            truth += extreme(rng.randint(1, top))
            trials += 1
        assert abs(ours - truth) / trials < 0.05, top


def test_a_canarys_block_number_gathers_at_no_end_of_the_range() -> None:
    """Every town numbers its houses' 号 from 1 to 30: a canary's 号, drawn near a
    neighbour's, is 1 or 30 as often as any other (draws past an end are reflected, not
    piled on it) and never above the list's highest. Clipped at a top guessed from the
    town alone, one in twenty passed 30 and 30 itself had half its share."""
    rng = random.Random(9)
    drawn: Counter[int] = Counter()
    for _ in range(20_000):
        seen = [rng.randint(1, 30) for _ in range(rng.randint(1, 4))]
        drawn[near_neighbours(seen, 0.2, rng, cap=30)] += 1
    assert max(drawn) <= 30
    for end in (1, 30):
        assert abs(drawn[end] / 20_000 - 1 / 30) < 0.01, (end, drawn[end])


def test_a_canarys_postcode_is_no_more_crowded_than_anyones() -> None:
    """People at 2,000 postcodes of a district, 6 to a postcode on average, a fifth of them
    sampled: the postcode a canary takes holds as many people (the canary among them) as
    a person's does. Drawn as often as the sample holds it, it held one more."""
    rng = random.Random(13)
    codes = [f"811{c:04d}" for c in range(2000)]
    people = Counter(rng.choice(codes) for _ in range(12_000))
    sample = Counter(c for c, n in people.items() for _ in range(n) if rng.random() < 0.2)
    draw = PostcodeDraw(sample)
    crowd = []
    for _ in range(4000):
        code, unseen = draw.draw(rng)
        if unseen:
            code = rng.choice([c for c in codes if c not in sample])
        crowd.append(people[code] + 1)
    anyones = sum(n * n for n in people.values()) / sum(people.values())
    assert abs(_mean(crowd) - anyones) < 0.25, (_mean(crowd), anyones)
    naive = [people[rng.choices(list(sample), list(sample.values()))[0]] + 1 for _ in range(4000)]
    assert _mean(naive) - anyones > 0.6


def test_postcodes_repeat_judged_for_the_whole_list_from_a_sample() -> None:
    rng = random.Random(5)
    six_each = [f"{c:07d}" for c in range(2000) for _ in range(6)]
    sample = Counter(x for x in six_each if rng.random() < 0.18)
    assert sum(c == 1 for c in sample.values()) > len(sample) / 2  # most look alone ...
    assert postcodes_repeat(sample, 0.18)  # ... yet each has five neighbours
    unique = Counter(f"{c:07d}" for c in range(2000) if rng.random() < 0.18)
    assert not postcodes_repeat(unique, 0.18)
    assert postcodes_repeat(Counter({f"{c:07d}": 3 for c in range(100)}), 1.0)


def _fukuoka_811(n: int, rng: random.Random, digits: list[int]) -> list[list[str]]:
    """People of 福岡県 at postcodes 811-xxxx (a district 長崎県壱岐市 shares), with mail
    addresses whose local parts hold a number of digits from ``digits``."""
    names = NameBook(REPO / "seeds")
    places = [p for p in Gazetteer().near("811") if p.prefecture == "福岡県"]
    rows = []
    for i in range(n):
        s, g = names.surnames.draw(rng), names.given_for("F", 1980).draw(rng)
        p = rng.choice(places)
        k = rng.choice(digits)
        local = "".join(rng.choices("abcdefghkmnprstuwy", k=rng.randint(4, 9)))
        local += "".join(rng.choices("0123456789", k=k))
        rows.append(
            [
                f"M{100000 + i:07d}",
                f"{s.kanji}　{g.kanji}",
                f"{s.kana}　{g.kana}",
                "女",
                "1980/04/01",
                f"{p.postcode[:3]}-{p.postcode[3:]}",
                f"{p.prefecture}{p.city}{p.town}{rng.randint(1, 40)}-{rng.randint(1, 20)}",
                f"090-0{rng.randint(100, 999)}-{rng.randint(0, 9999):04d}",
                f"{local}@example.com",
                "",
            ]
        )
    return rows


def test_canaries_stay_in_the_lists_prefecture_and_mail_shapes(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    """A postcode district shared across a prefecture line brings no canary from the
    other side; canaries' mail addresses hold as many digits as the list's do (none or
    five here, never the two or four a generator would otherwise favour)."""
    rng = random.Random(11)
    src = write_csv(tmp_path / "l.csv", _fukuoka_811(3000, rng, [0, 5]))
    addresses, mails = [], []
    for i in range(4):
        res = seed(
            registry,
            settings,
            SeedRequest(
                input=src,
                output=tmp_path / f"o{i}.csv",
                client="c",
                list_name="l",
                account=f"a{i}",
                canaries=40,
                rng_seed=i,
            ),
        )
        for c in registry.canaries_of(res.export.code):
            addresses.append(str(c.fields["住所"]))
            if c.fields.get("メールアドレス"):
                mails.append(str(c.fields["メールアドレス"]).split("@")[0])
    assert len(addresses) == 160 and all(a.startswith("福岡県") for a in addresses)
    digits = Counter(len(re.sub(r"\D", "", m)) for m in mails)
    assert len(mails) >= 100
    assert digits[0] > 0 and digits[5] > 0
    assert digits[0] + digits[5] >= 0.9 * len(mails), digits


def test_a_canary_is_of_the_age_of_the_people_who_joined_with_it(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    """Customers numbered in the order they joined, the oldest first: a canary given a
    free number between two neighbours is born when they were (within a year of the
    forty around it), with a given name of its generation, where a birth drawn from
    the whole list's mix would mostly fall decades away."""
    from tests.helpers import seed_rows
    from tests.listgen import people

    rows = sorted(people(3000, seed=41), key=lambda r: r[4])
    for i, r in enumerate(rows):
        r[0] = f"C{100000 + i * 3:07d}"
    res, written = seed_rows(registry, settings, rows, tmp_path, rng_seed=4)
    names = NameBook(REPO / "seeds")
    canaries = registry.canaries_of(res.export.code)
    near = 0
    for c in canaries:
        k = c.position
        around = [int(r[4][:4]) for r in written[max(0, k - 20) : k + 21] if r is not written[k]]
        year = int(str(c.birth_date)[:4])
        near += min(around) - 1 <= year <= max(around) + 1
        given = str(c.name).split("\u3000")[1]
        assert given in {g.kanji for g in names.given_for(str(c.sex), year).items}
    assert near >= 0.9 * len(canaries), (near, len(canaries))


def test_a_canary_at_a_postcode_not_seen_is_written_as_the_lists_addresses_of_its_kind() -> None:
    """The list writes every 丁目 address as 2丁目8-1 and, more often, 番地 ones as 1234-5:
    a canary at a 丁目 postcode the profile did not see is written with 丁目 too (taking
    the style of all addresses wrote most of them 2-8-1), numbered from the list's own."""
    from types import SimpleNamespace
    from typing import cast

    from canary.nearby import Streets
    from canary.profile import HostProfile, StreetShape
    from canary.reference import Place

    rng = random.Random(17)
    shapes = [StreetShape("chome", "chome_dash", (rng.randint(1, 4), 8, 1)) for _ in range(30)]
    shapes += [StreetShape("banchi", "dash", (rng.randint(1, 900), 5)) for _ in range(70)]
    profile = SimpleNamespace(
        streets={f"82{k:05d}": [s] for k, s in enumerate(shapes)}, sampled_share=0.2
    )
    streets = Streets(cast(HostProfile, profile), rng)
    place = Place("8100001", "福岡県", "福岡市中央区", "天神", "テンジン", True)
    written = [streets.draw(place, "dash") for _ in range(200)]
    assert all(re.fullmatch(r"[1-4]丁目8-1", w) for w in written), written[:5]


def test_the_separator_before_a_building_is_read_where_the_block_number_ends() -> None:
    """Buildings whose names hold a space (メゾン天神 201) written after the block number
    with a full-width space, a space or nothing, 6 : 3 : 1: the profile reads that mix
    (it took any space in the address for the separator, and saw 1 in 40 without one)."""
    from canary.profile import profile_host
    from canary.schema import infer_schema

    seps = ["\u3000"] * 6 + [" "] * 3 + [""]
    records = [["会員番号", "お名前", "住所", "電話番号"]] + [
        [
            str(10_000 + i),
            "山田\u3000花子",
            f"福岡県福岡市中央区天神1-2-{i % 9 + 1}{seps[i % 10]}メゾン天神 {i % 7 + 1}01",
            f"090-0{100 + i % 800}-{i % 10000:04d}",
        ]
        for i in range(400)
    ]
    schema = infer_schema(records, {})
    address = profile_host(schema, records[1:]).column("address")
    assert address is not None
    assert dict(address.building_seps) == {"\u3000": 0.6, " ": 0.3, "": 0.1}


def test_a_join_date_falls_between_the_neighbours() -> None:
    """A canary numbered between two members joined at a moment between theirs, written
    as the list writes dates: the days between theirs each about twice as likely as
    either end day (only part of those is after the first joined, or before the second
    did); it is not always last among those who joined on the first's day. The first of
    three free numbers joined early in the span, the last late."""
    from canary.ordering import date_between

    rng = random.Random(5)
    days = Counter(date_between("2019/04/29", "2019/05/02", rng) for _ in range(6000))
    assert set(days) == {"2019/04/29", "2019/04/30", "2019/05/01", "2019/05/02"}
    ends, middle = days["2019/04/29"] + days["2019/05/02"], days["2019/04/30"] + days["2019/05/01"]
    assert 1.7 < middle / ends < 2.3  # 1/6, 1/3, 1/3, 1/6 of the draws
    early = Counter(date_between("2019/04/01", "2019/04/30", rng, (1, 3)) for _ in range(2000))
    late = Counter(date_between("2019/04/01", "2019/04/30", rng, (3, 3)) for _ in range(2000))
    assert sum(n for d, n in early.items() if d < "2019/04/15") > 1500  # about 1,700
    assert sum(n for d, n in late.items() if d > "2019/04/15") > 1500
    assert date_between("2019-4-30", "2019-5-1", rng) in {"2019-4-30", "2019-5-1"}
    assert date_between("20190430", "20190430", rng) == "20190430"
    # Anything but two dates written alike keeps the first member's value.
    for before, after in (("2019/04/01", ""), ("2019/04/05", "2019/04/01"), ("A12", "A14")):
        assert date_between(before, after, rng) == before
    assert date_between("2019/04/01", "2019-04-03", rng) == "2019/04/01"
