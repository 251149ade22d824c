"""A canary's block number ranks among everyone at its postcode as one more neighbour's
would, and is no one's: the seed's pass over the list reads the block numbers of the
people at the canaries' postcodes (canary.hostkeys), and each canary is numbered among all
of them (canary.nearby.in_gap), not only among the share of them the profile saw."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from canary import csvfile, hostcheck, hostkeys
from canary.generate import CanaryFactory, GeneratedCanary
from canary.hostpass import find_hosts
from canary.nearby import Streets, in_gap, near_neighbours
from canary.profile import profile_host, street_shape
from canary.reference import Gazetteer, name_book
from canary.schema import infer_schema
from tests.conftest import REPO, TEST_DOMAIN
from tests.listgen import write_csv

HEADER = ["氏名", "フリガナ", "性別", "生年月日", "郵便番号", "住所", "電話番号", "メールアドレス"]


def _mid_rank(people: list[int], x: int) -> float:
    """The share of ``people`` below ``x``, ties counted half: 0.5 on average for a
    number drawn as theirs are, whatever their distribution."""
    below = sum(p < x for p in people)
    return (below + 0.5 * sum(p == x for p in people)) / len(people)


def _at_or_above(people: list[int], x: int) -> float:
    """The share of ``people`` whose number is ``x`` or higher (what a broker may compare
    across the people of one postcode)."""
    return sum(p >= x for p in people) / len(people)


def test_a_number_in_a_gap_ranks_as_a_further_neighbours_would() -> None:
    """Towns of 丁目 1 to 3 (many ties): a number drawn in a gap among every neighbour's
    ranks as a further neighbour's does; a neighbour's number nudged (near_neighbours,
    made for a sample of the town) copies one where numbers are this close, and so has
    one neighbour more at or above it than a further neighbour has."""
    rng = random.Random(3)
    gap, nudged, fresh = [], [], []
    for _ in range(6000):
        top = rng.randint(2, 3)
        town = [rng.randint(1, top) for _ in range(5)]
        gap.append(_at_or_above(town, in_gap(town, rng, cap=9)))
        nudged.append(_at_or_above(town, near_neighbours(town, 1.0, rng, cap=9)))
        fresh.append(_at_or_above(town, rng.randint(1, top)))
    mean = sum(fresh) / len(fresh)
    assert abs(sum(gap) / len(gap) - mean) < 0.015
    assert sum(nudged) / len(nudged) - mean > 0.03  # the test can fail


def _banchi_town(n: int, rng: random.Random) -> tuple[list[list[str]], dict[str, int]]:
    """``n`` people of 筑後市 (district 833 holds this city only), at every one of its
    postcodes, each postcode's 番地 ranging up to 30 or to 3000 (a town's own range, which
    a profile that sees few of its people cannot know)."""
    names = name_book(str(REPO / "seeds"))
    places = [p for p in Gazetteer().near("833") if p.city == "筑後市"]
    tops = {p.postcode: (30, 3000)[i % 2] for i, p in enumerate(places)}
    rows = []
    for i in range(n):
        p = places[i % len(places)]
        sex = "M" if rng.random() < 0.5 else "F"
        year = rng.randint(1940, 2000)
        surname, given = names.surnames.draw(rng), names.given_for(sex, year).draw(rng)
        banchi = rng.randint(1, tops[p.postcode])
        street = f"{banchi}-{rng.randint(1, 9)}" if rng.random() < 0.6 else str(banchi)
        rows.append(
            [
                f"{surname.kanji}\u3000{given.kanji}",
                f"{surname.kana}\u3000{given.kana}",
                "男" if sex == "M" else "女",
                f"{year}/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}",
                f"{p.postcode[:3]}-{p.postcode[3:]}",
                f"{p.prefecture}{p.city}{p.town}{street}",
                f"090-0{rng.randint(100, 999)}-{i:04d}",
                "",
            ]
        )
    return rows, tops


def test_a_canary_is_numbered_among_everyone_at_its_postcode() -> None:
    """The profile sees one row in twenty-five, so most of the canaries' postcodes show it
    no one's number; after the check, each canary's 番地 ranks among the people at its
    postcode as a person's does (in the middle on average, seldom at an end), and no
    canary holds a person's block number there. Numbered from the list's mix instead, a
    canary of a town ranging to 30 ranks above everyone there, and one of a town ranging
    to 3000 mostly below."""
    rng = random.Random(5)
    rows, _ = _banchi_town(41 * 25, rng)
    schema = infer_schema([HEADER, *rows])
    seen = rng.sample(rows, len(rows) // 25)
    profile = profile_host(schema, seen)
    profile.sampled_share = len(seen) / len(rows)
    factory = CanaryFactory(
        profile, name_book(str(REPO / "seeds")), Gazetteer(), [], [TEST_DOMAIN], rng
    )
    made: hostcheck.Made = [factory.make() for _ in range(200)]
    cols = hostkeys.Columns.of(schema)

    def search(probe: hostkeys.Probe, found: hostkeys.Found) -> None:
        hostkeys.python_found(rows, cols, probe, found)

    hostcheck.check(made, factory, schema, [], hostkeys.Found(), "utf-8", search)
    people: dict[str, list[tuple[int, ...]]] = {}
    for r in rows:
        shape = street_shape(r[5])
        assert shape is not None
        people.setdefault(r[4].replace("-", ""), []).append(shape.numbers)
    ranks = []
    for c in made:
        assert isinstance(c, GeneratedCanary)
        here = people[c.person.place.postcode]
        shape = street_shape(c.row[5])
        assert shape is not None and shape.numbers not in here
        ranks.append(_mid_rank([n[0] for n in here], shape.numbers[0]))
    ends = sum(u < 0.1 or u > 0.9 for u in ranks) / len(ranks)
    assert abs(sum(ranks) / len(ranks) - 0.5) < 0.05
    assert ends < 0.3, ends  # a person: about 0.2


@pytest.mark.parametrize("encoding", ["cp932", "utf-8"])
def test_the_pass_reads_the_block_numbers_at_the_postcodes(tmp_path: Path, encoding: str) -> None:
    """Every person's block number at a postcode looked for (two people at one address
    count twice), written in full width or with 丁目, and none of anyone elsewhere."""
    rows, _ = _banchi_town(82, random.Random(1))
    code = rows[0][4]
    rows[0][5] = rows[0][5].rstrip("0123456789-") + "１２３－４"
    rows[41][5] = rows[0][5]
    rows[82 - 41 - 1][4] = code  # one more there, written with 丁目
    rows[82 - 41 - 1][5] = "福岡県筑後市羽犬塚2丁目7-3"
    src = write_csv(tmp_path / "l.csv", rows, header=HEADER, encoding=encoding)
    head = csvfile.read_head(src, None)
    schema = infer_schema(head.records)
    found = hostkeys.Found()
    key = code.replace("-", "")
    find_hosts(src, head.dialect, schema, 1, hostkeys.Probe(postcodes=frozenset({key})), found)
    assert set(found.streets) == {key}
    assert sorted(s.numbers for s in found.streets[key]) == [(2, 7, 3), (123, 4), (123, 4)]


def test_a_block_number_is_read_after_a_town_whose_name_holds_digits() -> None:
    """旭川市秋月１条 and サンシャイン６０ hold digits: the pass reads a person's block number
    after the canary's town, and the list's own mix leaves out what the profile read at
    such a postcode (the town's 60 run into the 番地 that follows: 602610), which a canary
    drew now and then and wrote after its own town."""
    found = hostkeys.Found(towns={"0798401": "旭川市秋月1条"})
    found.add_street("0798401", "北海道旭川市秋月１条６０２－１０")
    found.add_street("0700000", "旭川市秋月１条６０２－１０")  # no town known: as before
    assert [s.numbers for s in found.streets["0798401"]] == [(602, 10)]
    assert [s.numbers for s in found.streets["0700000"]] == [(1,)]
    places = Gazetteer()
    sunshine = next(p for p in places.in_area("東京都") if "サンシャイン" in p.town)
    person = ["佐藤\u3000太郎", "サトウ\u3000タロウ", "男", "1970/01/01", "100-0001"]
    rows = [[*person, f"千代田区千代田{n}-1", "", ""] for n in range(1, 40)]
    code = f"{sunshine.postcode[:3]}-{sunshine.postcode[3:]}"
    rows.append([*person[:4], code, f"豊島区{sunshine.town}2610", "", ""])
    profile = profile_host(infer_schema([HEADER, *rows]), rows)
    assert (602610,) in [s.numbers for s in profile.streets[sunshine.postcode]]
    streets = Streets(profile, random.Random(1), places)
    assert max(streets._numbers("banchi", 0)) == 39
    assert streets.like_neighbours(sunshine) is None


def test_a_canary_writes_its_block_number_in_the_forms_of_its_neighbours() -> None:
    """At a postcode where a third of the people write 番地 alone (most numbers up to 40
    taken) and the rest 番地-号, canaries write 番地 alone about as often: when a drawn number
    is someone's, the number is drawn again in the same form, not the form too (one number
    is someone's far more often than two are, which made the short form rare)."""
    rng = random.Random(7)
    alone = [street_shape(str(n)) for n in rng.sample(range(1, 41), 30)]
    pairs = [street_shape(f"{rng.randint(1, 40)}-{rng.randint(1, 20)}") for _ in range(60)]
    people = [s for s in [*alone, *pairs] if s is not None]
    profile = profile_host(infer_schema([HEADER]), [])
    streets = Streets(profile, random.Random(3))
    written = [streets.among(people, {"3900811": people}) for _ in range(600)]
    assert None not in written
    short = sum("-" not in w for w in written if w) / len(written)
    assert 0.27 < short < 0.40  # the people: 30 of 90
    taken = {s.numbers for s in people}
    assert not any(street_shape(w).numbers in taken for w in written if w)  # type: ignore[union-attr]
