"""A canary's district follows the list's people, and each export profiles its own sample."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from canary import csvfile, sample
from canary.generate import CanaryFactory
from canary.nearby import PostcodeDraw, postcodes_repeat
from canary.profile import profile_host
from canary.reference import Gazetteer, NameBook, Place
from canary.schema import infer_schema
from tests.conftest import REPO
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


def test_a_canary_stays_in_a_city_whose_postcodes_are_crowded() -> None:
    """District 811 holds a city whose postcodes are crowded (seen 3 to 6 times) and a
    suburb whose are not (1 to 3 times). A canary drawn from the city at a postcode seen
    m times takes one seen m - 1 times of the city: taking one of the district moved it
    to the suburb, where most postcodes seen once or twice are (the city held 69 % of
    people and 50 % of canaries)."""
    seen: Counter[str] = Counter()
    city: dict[str, str] = {}
    for i in range(60):
        seen[f"811{i:04d}"], city[f"811{i:04d}"] = 3 + i % 4, "city"
        seen[f"811{100 + i:04d}"], city[f"811{100 + i:04d}"] = 1 + i % 3, "suburb"
    draw = PostcodeDraw(seen, city.get)
    assert draw.shift
    rng = random.Random(1)
    codes = [draw.draw(rng)[0] for _ in range(6000)]
    people_share = sum(n for c, n in seen.items() if city[c] == "city") / seen.total()
    canary_share = sum(city[c] == "city" for c in codes) / len(codes)
    assert abs(canary_share - people_share) < 0.02, (canary_share, people_share)


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


def _hokkaido_towns(n: int, rng: random.Random) -> tuple[list[list[str]], set[tuple[str, str]]]:
    """People of 北海道's districts of several cities, and those cities: seven in ten of a
    district's live in its "home" city, its city of fewest postcodes (25 or more, so that
    people seldom share one), as most of a rural district live in its one town; the rest
    anywhere else in the district."""
    names = NameBook(REPO / "seeds")
    districts: dict[str, dict[str, list[Place]]] = {}
    for p in Gazetteer().in_area("北海道"):
        districts.setdefault(p.postcode[:3], {}).setdefault(p.city, []).append(p)
    districts = {d: c for d, c in districts.items() if len(c) > 1}
    homes = {
        d: min(c, key=lambda city: (len(c[city]) < 25, len(c[city]))) for d, c in districts.items()
    }
    sizes = [sum(len(ps) for ps in c.values()) for c in districts.values()]
    rows = []
    for i in range(n):
        d = rng.choices(list(districts), weights=sizes)[0]
        cities = districts[d]
        if rng.random() < 0.7:
            p = rng.choice(cities[homes[d]])
        else:
            p = rng.choice([q for city, ps in cities.items() if city != homes[d] for q in ps])
        s, g = names.surnames.draw(rng), names.given_for("M", 1970).draw(rng)
        rows.append(
            [
                f"C{100000 + i:07d}",
                f"{s.kanji}　{g.kanji}",
                f"{s.kana}　{g.kana}",
                "男",
                "1970/05/01",
                f"{p.postcode[:3]}-{p.postcode[3:]}",
                f"{p.prefecture}{p.city}{p.town}{rng.randint(1, 900)}",
                f"090-0{rng.randint(100, 999)}-{rng.randint(0, 9999):04d}",
                "",
                "",
            ]
        )
    return rows, {("北海道", c) for c in homes.values()}


def test_a_canary_lives_in_a_city_as_often_as_the_districts_people_do(tmp_path: Path) -> None:
    """People seldom share a postcode, and most of a district's live in one town of few
    postcodes: canaries live there about as often as people do (their city drawn as the
    profile saw the district's people), not as often as the town has postcodes (a postcode
    drawn at random in the district put 28 % of canaries there, against 72 % of people)."""
    rng = random.Random(3)
    rows, homes = _hokkaido_towns(1000, rng)
    path = write_csv(tmp_path / "l.csv", rows)
    head = csvfile.read_head(path, None)
    schema = infer_schema(head.records)
    profile = profile_host(schema, head.records[schema.header_index + 1 :])
    assert profile.rows_sampled == 1000 and not postcodes_repeat(profile.postcodes, 1.0)
    places = Gazetteer()
    factory = CanaryFactory(profile, NameBook(REPO / "seeds"), places, [], ["example.org"], rng)
    city_of = {p.postcode: (p.prefecture, p.city) for p in places.in_area("北海道")}
    people_home = sum(city_of[r[5].replace("-", "")] in homes for r in rows) / len(rows)
    made = [factory.person().place for _ in range(1500)]
    canaries_home = sum((p.prefecture, p.city) in homes for p in made) / len(made)
    assert abs(canaries_home - people_home) < 0.06, (canaries_home, people_home)
