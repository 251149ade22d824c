"""Where a canary lives and how its address is numbered, drawn like the list's own people
from what the profile saw of them (in memory only): the postcode of a new neighbour, and a
block number ranged as the neighbours' are; once the host pass has found every person at
the canary's postcode, a block number ranked among all of theirs."""

from __future__ import annotations

import itertools
import math
import random
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence

from canary.profile import ColumnProfile, HostProfile, StreetShape
from canary.reference import Gazetteer, Place

SHIFT_CLASS = 5  # postcodes that share a count, for PostcodeDraw to shift a canary to them
SHIFT_NEAR = 3  # of them in the same district, to stay there


class PostcodeDraw:
    """The postcode of one more person of a list whose people share postcodes, from the
    counts ``seen`` in a sample of it.

    A person at a postcode shared by m people of the list sees m − 1 others there; a
    canary put at a postcode drawn as often as the sample holds it would see one more
    (the m people, then itself): its postcode would be the more crowded by one person.
    Good and Turing's estimate undoes this: the postcodes seen n times stand for people
    as often as those seen n + 1 times, and those seen once for the postcodes not seen.
    So a sampled person's postcode is drawn, seen n + 1 times, and the canary takes a
    postcode seen n times of the same district and city (about n times, when few of
    them are seen exactly n times), which keeps the list's geography: districts and
    cities whose postcodes are crowded keep their share; for n = 0, one not seen near it.
    A district's cities differ in crowding (a city's postcodes hold more people than its
    suburbs'), so a postcode seen n times anywhere in the district was more often a
    suburb's, and taking one moved canaries out of the city: in a prefecture's members
    list 福岡市 held 20.6 % of the sampled people and 18.7 % of the postcodes drawn.
    Where postcodes are
    crowded (a city's list, dozens of people to a postcode) few postcodes share a count,
    the shift would pile canaries on them, and one person more is lost among the
    dozens: there postcodes are drawn as often as the sample holds them."""

    def __init__(
        self, seen: Counter[str], city_of: Callable[[str], str | None] = lambda _: None
    ) -> None:
        self.seen = seen
        self.codes = list(seen)
        self.cum = list(itertools.accumulate(seen.values()))
        self.by_count: dict[int, list[str]] = {}
        for code, n in seen.items():
            self.by_count.setdefault(n, []).append(code)
        shared = sum(len(c) for n, c in self.by_count.items() if len(c) >= SHIFT_CLASS)
        self.shift = shared >= 0.8 * len(self.codes)
        # (district, city) of each postcode, only when canaries are shifted
        self.area: dict[str, tuple[str, str | None]] = {}
        self.by_area: dict[tuple[int, str, str | None], list[str]] = {}
        if self.shift:
            for code, n in seen.items():
                self.area[code] = (code[:3], city_of(code))
                self.by_area.setdefault((n, *self.area[code]), []).append(code)
        self._wide: dict[tuple[int, str, str | None], list[str]] = {}

    def draw(self, rng: random.Random) -> tuple[str, bool]:
        """(postcode, whether the canary goes to an unseen postcode near it instead)."""
        code = rng.choices(self.codes, cum_weights=self.cum)[0]
        if not self.shift:
            return code, False
        n = self.seen[code] - 1
        if n == 0:
            return code, True
        district, city = self.area[code]
        near = self.by_area.get((n, district, city), [])
        if len(near) < SHIFT_NEAR:
            near = self._widened(district, city, n)
        return (rng.choice(near) if near else code), False

    def _widened(self, district: str, city: str | None, n: int) -> list[str]:
        """Postcodes of ``district`` and ``city`` seen about n times, the range of counts
        widened until a few share it; of the whole district when the city has too few.
        Taking one of any district (every postcode seen n times alike) moved canaries from
        districts of few postcodes to those of many: in a prefecture's list, its biggest
        district held 15 % of canaries and 12.8 % of people."""
        key = (n, district, city)
        if key not in self._wide:
            self._wide[key] = []
            for same_city in (True, False):
                pool = [
                    (k, c)
                    for c, k in self.seen.items()
                    if self.area[c][0] == district and (not same_city or self.area[c][1] == city)
                ]
                for w in range(1, n + 1):
                    near = [c for k, c in pool if abs(k - n) <= w]
                    if len(near) >= SHIFT_NEAR:
                        self._wide[key] = near
                        break
                if self._wide[key]:
                    break
        return self._wide[key]


class DistrictPlaces:
    """The place of one more person of a list whose people seldom share a postcode, from
    the postcodes ``seen`` in a sample of it: a district (the first three digits) drawn as
    often as the sample holds it, a city of the district drawn as often as the sample's
    people there live in it, and a postcode of that city.

    A postcode drawn at random in the district put as many canaries in a village of many
    postcodes as in the town where most of the district's people live. The sample's people
    of the district count for their cities; ``PRIOR`` people more are spread over the
    district's postcodes, so a city nobody sampled lives in keeps a share, as a city
    people seldom live in does in the list (and the people at postcodes the gazetteer
    lacks count there too). Only counts by city are kept, in memory.

    A canary shares a postcode with the list's people only as strangers do, not as the
    list's households do (3 % of a nationwide list's rows are a spouse entered beside
    the other, at the same address). A canary may not copy a household's address
    (block, building, room: a real person's), and one put at a household's postcode with
    an address of its own stood out more, not less: it ranks among a pair whose block
    numbers tie, which it may not tie (street_*_town_ge), and it made its postcode one
    more crowded than a pair's (nationwide, seeds 1-5, AUC without pool features 0.545
    on average against 0.527 without it)."""

    PRIOR = 2.0

    def __init__(
        self, seen: Counter[str], places: Gazetteer, prefectures: Collection[str] = ()
    ) -> None:
        self.places, self.prefectures = places, set(prefectures)
        self.seen: dict[str, Counter[str]] = {}  # the sample's postcodes of each district
        for code, n in seen.items():
            self.seen.setdefault(code[:3], Counter())[code] += n
        self.districts = list(self.seen)
        self.cum = list(itertools.accumulate(c.total() for c in self.seen.values()))
        self._cities: dict[str, tuple[list[list[Place]], list[float]]] = {}

    def draw(self, rng: random.Random) -> Place | None:
        """A place, or None when the drawn district holds no place of the list's
        prefectures."""
        if not self.districts:
            return None
        district = rng.choices(self.districts, cum_weights=self.cum)[0]
        cities, cum = self._of(district)
        return rng.choice(rng.choices(cities, cum_weights=cum)[0]) if cities else None

    def _of(self, district: str) -> tuple[list[list[Place]], list[float]]:
        """The district's cities (their places) with cumulative weights, counted once."""
        if district not in self._cities:
            candidates = self.places.near(district)
            if self.prefectures:  # postcode areas cross prefecture lines (811: 壱岐)
                candidates = [c for c in candidates if c.prefecture in self.prefectures]
            by_city: dict[tuple[str, str], list[Place]] = {}
            for p in candidates:
                by_city.setdefault((p.prefecture, p.city), []).append(p)
            city_of = {p.postcode: key for key, ps in by_city.items() for p in ps}
            people: Counter[tuple[str, str]] = Counter()
            unplaced = 0
            for code, n in self.seen[district].items():
                if code in city_of:
                    people[city_of[code]] += n
                else:
                    unplaced += n
            spread = (self.PRIOR + unplaced) / max(1, len(candidates))
            cities = list(by_city.values())
            weights = [people[key] + spread * len(ps) for key, ps in by_city.items()]
            self._cities[district] = (cities, list(itertools.accumulate(weights)))
        return self._cities[district]


class Streets:
    """Block numbers for one export's canaries, written and ranged as the list's own."""

    def __init__(
        self, profile: HostProfile, rng: random.Random, places: Gazetteer | None = None
    ) -> None:
        self.profile, self.rng, self.places = profile, rng, places
        self._read: dict[str, bool] = {}  # see _read_well
        self._kinds: dict[str, list[StreetShape]] | None = None  # every sampled address
        self._at: dict[tuple[str, int], list[int]] = {}  # their numbers at each place
        self._tops: dict[tuple[str, int], int] = {}  # the highest of them
        self._rho: dict[tuple[str, int, int], float] = {}  # see _alike

    def _of_kind(self, kind: str) -> list[StreetShape]:
        if self._kinds is None:
            self._kinds = {}
            for code, shapes in self.profile.streets.items():
                if self._read_well(code):
                    for shape in shapes:
                        self._kinds.setdefault(shape.kind, []).append(shape)
        return self._kinds.get(kind, [])

    def _read_well(self, postcode: str) -> bool:
        """Whether the profile's block numbers at ``postcode`` are the addresses' own: it
        reads the first numbers of the address, and a town whose name holds digits (旭川市
        秋月１条, 豊島区東池袋サンシャイン６０) gives its own (1, or 60 run into the 番地 that
        follows: 602610), which no canary may take."""
        if postcode not in self._read:
            for p in self.places.near(postcode[:3]) if self.places is not None else []:
                town = unicodedata.normalize("NFKC", p.city + p.town)  # a district at once
                self._read.setdefault(p.postcode, not any(ch.isdigit() for ch in town))
            self._read.setdefault(postcode, True)  # a postcode the gazetteer lacks
        return self._read[postcode]

    def _numbers(self, kind: str, i: int) -> list[int]:
        key = (kind, i)
        if key not in self._at:
            self._at[key] = [s.numbers[i] for s in self._of_kind(kind) if len(s.numbers) > i]
        return self._at[key]

    def _top(self, kind: str, i: int) -> int | None:
        if (kind, i) not in self._tops:
            self._tops[kind, i] = max(self._numbers(kind, i), default=0)
        return self._tops[kind, i] or None

    def like_neighbours(self, place: Place) -> str | None:
        """A block number written and ranged as the list's own addresses at the canary's
        postcode: the style of one neighbour, each number near another neighbour's (see
        near_neighbours)."""
        shapes = self.profile.streets.get(place.postcode, [])
        if not shapes or not self._read_well(place.postcode):
            return None
        share = self.profile.sampled_share
        return self._one_more(
            shapes, lambda kind, i, town: near_neighbours(town, share, self.rng, self._top(kind, i))
        )

    def among(
        self, people: Sequence[StreetShape], towns: Mapping[str, Sequence[StreetShape]]
    ) -> str | None:
        """A block number for one more neighbour of ``people``, every person at the
        canary's postcode (found by the host pass, see canary.hostkeys; ``towns``: every
        person at each canary's postcode): the style of one of them, each number drawn
        as _among does, and no one's numbers (None after ten draws that all were
        someone's)."""
        return self._one_more(people, lambda kind, i, town: self._among(kind, i, town, towns))

    def _one_more(
        self, shapes: Sequence[StreetShape], number: Callable[[str, int, list[int]], int]
    ) -> str | None:
        """A block number of one more neighbour of ``shapes`` (the numbers of the people at
        a postcode): the style of one of them, its number i drawn by ``number`` from
        theirs, and no one's numbers (None after thirty draws that all were someone's).

        The numbers are drawn again for the same style, ten times, before another style is
        taken: drawing the style again too made a short form (番地 alone, 1,234) rarer than
        among the people, since one number is someone's far more often than two are (a
        city's canaries wrote 番地-号 for 77 % of their 番地 addresses, its people 68 %)."""
        if not shapes:
            return None
        own = {s.numbers for s in shapes}
        for attempt in range(30):
            if attempt % 10 == 0:
                model = self.rng.choice(shapes)
                same = [s for s in shapes if s.kind == model.kind]
                theirs = [
                    [s.numbers[i] for s in same if len(s.numbers) > i]
                    for i in range(len(model.numbers))
                ]
            numbers = tuple(number(model.kind, i, theirs[i]) for i in range(len(model.numbers)))
            if numbers not in own:
                return write_street(model.kind, model.style, numbers)
        return None

    def _among(
        self, kind: str, i: int, town: list[int], towns: Mapping[str, Sequence[StreetShape]]
    ) -> int:
        """Number i of one more neighbour of ``town``'s k: one of the list's own numbers
        there with the chance (1 − ρ) / (1 − ρ + kρ), else in a gap among theirs (see
        in_gap). ρ is the share of the numbers' spread that lies between towns rather than
        within them (_alike): where towns share one range (号, 1 to 20 everywhere), the
        neighbours tell nothing of a further one's number and the list's mix is drawn;
        where each town has its own (番地 to 60 here, to 3000 there), the more
        neighbours, the more the gaps among theirs. Drawn only in gaps, a number among
        one or two neighbours is low where theirs happen to be low: the list's numbers
        themselves gave canaries away (a members list's 号 and 番 alone, 1,500 canaries:
        AUC 0.549 and 0.544), though their ranks in their towns did not."""
        mix = self._numbers(kind, i)
        rho = self._alike(kind, i, towns)
        k = len(town)
        if mix and (not k or self.rng.random() * (1 - rho + k * rho) < 1 - rho):
            return self.rng.choice(mix)
        return in_gap(town, self.rng, self._top(kind, i))

    def _alike(self, kind: str, i: int, towns: Mapping[str, Sequence[StreetShape]]) -> float:
        """The intraclass correlation of the towns' numbers i (of ``kind``), each number
        as its rank among the list's (0 to 1, ties halved): 1 − the mean variance within
        a town of two or more / the variance of all; 0.5 (a further neighbour's number
        from the list's mix once in k + 1) with fewer than ten such towns."""
        key = (kind, i, len(towns))
        if key not in self._rho:
            import numpy as np  # ranks of every person at the canaries' postcodes at once

            mix = np.sort(np.asarray(self._numbers(kind, i), dtype=np.int64))
            groups = []
            for shapes in towns.values() if len(mix) >= 20 else ():
                at = [s.numbers[i] for s in shapes if s.kind == kind and len(s.numbers) > i]
                if len(at) >= 2:
                    x = np.asarray(at, dtype=np.int64)
                    ranks = np.searchsorted(mix, x, "left") + np.searchsorted(mix, x, "right")
                    groups.append(ranks / (2 * len(mix)))
            rho = 0.5
            if len(mix) >= 20 and len(groups) >= 10:
                total = float(np.var(np.concatenate(groups)))
                within = sum(float(np.var(g, ddof=1)) for g in groups) / len(groups)
                rho = min(1.0, max(0.0, 1 - within / total)) if total > 0 else 0.5
            self._rho[key] = rho
        return self._rho[key]

    def draw(self, place: Place, style: str, col: ColumnProfile | None = None) -> str:
        """A block number at ``place``: like its neighbours' when the profile saw some,
        else in the list's own style and numbering."""
        local = self.like_neighbours(place)
        if local is not None:
            return local
        r = self.rng
        # A postcode the profile did not see: written as one of the list's addresses of
        # the place's kind (丁目 or 番地) is, each number from the list's own at its place.
        kind = "chome" if place.chome else "banchi"
        models = self._of_kind(kind)
        if len(models) >= 20:
            model = r.choice(models)
            numbers = tuple(r.choice(self._numbers(kind, i)) for i in range(len(model.numbers)))
            return write_street(kind, model.style, numbers)
        if col is not None and len(col.street_styles) > 1:
            style = r.choices(
                [k for k, _ in col.street_styles], weights=[w for _, w in col.street_styles]
            )[0]
        block, go = r.randint(1, 28), r.randint(1, 24)
        if place.chome:
            chome = r.choices([1, 2, 3, 4, 5, 6], weights=[30, 28, 22, 12, 6, 2])[0]
            seen = col.chome_numbers if col is not None else []
            if len(seen) >= 20:  # the list's own numbering: each number from its own mix
                chome = r.choice(seen)[0]
                block = r.choice([n for n in seen if len(n) > 1] or [(0, block)])[1]
                go = r.choice([n for n in seen if len(n) > 2] or [(0, 0, go)])[2]
            if style == "kanji":
                return f"{chome}丁目{block}番{go}号"
            if style == "chome_dash":
                return f"{chome}丁目{block}-{go}"
            return f"{chome}-{block}-{go}"
        seen = col.banchi_numbers if col is not None else []
        if len(seen) >= 20:
            numbers = r.choice(seen)
            banchi = numbers[0]
            if len(numbers) > 1:
                go = r.choice([n for n in seen if len(n) > 1])[1]
                return f"{banchi}番地{go}" if style == "kanji" else f"{banchi}-{go}"
            return f"{banchi}番地" if style == "kanji" else str(banchi)
        if style == "kanji":
            return f"{r.randint(1, 1800)}番地"
        return f"{r.randint(1, 1800)}-{go}" if r.random() < 0.6 else f"{r.randint(1, 3500)}"


def postcodes_repeat(codes: Counter[str], share: float) -> bool:
    """Whether the people of a list typically share their postcode with someone else in
    it, judged from a profile that saw the share ``share`` of its rows: a row whose
    postcode is shared by m − 1 others in the list is alone in the sample with a chance
    of (1 − share)^(m − 1), so the share of the sample's rows alone at their postcode
    tells m."""
    seen = sum(codes.values())
    if seen < 20:
        return False
    alone = sum(1 for c in codes.values() if c == 1) / seen
    if share >= 0.99 or alone == 0:
        return alone < 0.5
    others = math.log(max(alone, 1e-9)) / math.log(1 - share)  # m − 1, about
    return others >= 1


def near_neighbours(
    seen: Sequence[int], share: float, rng: random.Random, cap: int | None = None
) -> int:
    """A number of a town's range known from some neighbours' numbers ``seen`` (the share
    ``share`` of the town the profile saw): one neighbour's number moved by up to one and
    a half times the usual distance between the town's numbers, kept inside the range
    (its top guessed from the highest seen, never past ``cap``, the highest the list
    holds anywhere) by reflection at its ends, so that no end gathers the draws that
    would fall past it. A kernel estimate of the town's numbers: the canary ranks among
    the whole town about as evenly as anyone there, lands on a neighbour's number about
    as often as numbers that close together are shared, and copies no one's address."""
    v = sorted(seen)
    k, top = len(v), v[-1]
    high = max(top, round(top * (1 + 1 / k) - 1))  # the least-biased guess at the range's top
    if cap is not None:
        high = max(top, min(high, cap))
    town = max(k, k / max(share, 1e-6))  # rows of the town in the whole list, about
    reach = int(1.5 * high / town)
    x = rng.choice(v) + rng.randint(-reach, reach)
    if x < 1:
        x = 1 - x
    if x > high:
        x = 2 * high + 1 - x
    return min(max(x, 1), high)


def in_gap(town: Sequence[int], rng: random.Random, cap: int | None = None) -> int:
    """A number of a town whose every neighbour's number ``town`` holds, ranked among
    them as one more neighbour would be: k numbers leave k + 1 gaps (below the lowest,
    between two, above the highest), a further neighbour falls in each as often, and
    anywhere inside it. Its rank among the town is then any neighbour's: near_neighbours,
    meant for a sample of the town, copies a neighbour's number where numbers are close
    (丁目 1 to 3), and a copy ranks with its neighbour's ties, below a further neighbour.
    A gap holds its upper end, not its lower, so a tie ranks as the gap does; the gap
    above the highest reaches as far as the town's gaps do on average (never past
    ``cap``, the highest the list holds anywhere)."""
    v = sorted(town)
    k, top = len(v), v[-1]
    high = max(top, top + round((top - 1) / k))
    if cap is not None:
        high = max(top, min(high, cap))
    j = rng.randint(0, k)
    lo = 1 if j == 0 else v[j - 1] + 1
    hi = high if j == k else v[j]
    return rng.randint(lo, hi) if lo <= hi else v[min(j, k - 1)]


def write_street(kind: str, style: str, n: tuple[int, ...]) -> str:
    """A block number of the given kind and style (see profile.StreetShape)."""
    if kind == "chome":
        chome, rest = n[0], n[1:]
        if style == "kanji":
            return f"{chome}丁目" + "".join(
                f"{x}{u}" for x, u in zip(rest, ("番", "号"), strict=False)
            )
        if style == "chome_dash":
            return f"{chome}丁目" + "-".join(str(x) for x in rest)
        return "-".join(str(x) for x in n)
    if style == "kanji":
        return f"{n[0]}番地" + (str(n[1]) if len(n) > 1 else "")
    return "-".join(str(x) for x in n)
