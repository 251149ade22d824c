"""Per-row features a data broker could compute over a list, for the realism benchmark
(see benchmarks/realism.py)."""

from __future__ import annotations

import bisect
import itertools
import math
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import jaconv  # noqa: E402

from canary.reference import Gazetteer, Place  # noqa: E402
from canary.romaji import to_romaji  # noqa: E402
from canary.schema import PREFECTURES  # noqa: E402

if TYPE_CHECKING:
    import numpy as np


from benchmarks.realism_hosts import (  # noqa: E402
    _ASCII_DIGITS,
    _ERA_KANJI,
    _ERA_START,
    _FEMALE,
    _MALE,
    _STREET_RE,
    BROKER_ROLES,
    FEATURES,
    NAN,
)


def _nfkc(v: str) -> str:
    return unicodedata.normalize("NFKC", v).strip()


def parse_date(value: str) -> date | None:
    v = _nfkc(value)
    for kanji, letter in _ERA_KANJI.items():
        v = v.replace(kanji, letter)
    m = re.match(r"^([MTSHR])\s*(\d{1,2})[./\-年](\d{1,2})[./\-月](\d{1,2})", v)
    if m:
        y = _ERA_START[m.group(1)] + int(m.group(2))
        mo, d = int(m.group(3)), int(m.group(4))
    else:
        m = re.match(r"^(\d{4})[./\-年]?(\d{1,2})[./\-月]?(\d{1,2})", v)
        if not m:
            return None
        y, mo, d = (int(x) for x in m.groups())
    try:
        return date(y, mo, d)
    except ValueError:
        return None


def _shares(keys: Sequence[object | None]) -> list[float]:
    counts = Counter(k for k in keys if k is not None)
    total = sum(counts.values()) or 1
    return [counts[k] / total if k is not None else NAN for k in keys]


def _sep_code(v: str) -> float:
    return 2.0 if "\u3000" in v else 1.0 if " " in v else 0.0


def _num(x: object | None) -> float:
    return NAN if x is None else float(x)  # type: ignore[arg-type]


def order_features(values: Sequence[float | str | None], prefix: str) -> dict[str, list[float]]:
    """How far each value sits from where a list sorted on it would put it."""
    from scipy.stats import rankdata

    idx = [i for i, v in enumerate(values) if v is not None]
    displacement = [NAN] * len(values)
    disorder = [NAN] * len(values)
    if len(idx) > 2:
        present = [values[i] for i in idx]
        if isinstance(present[0], str):
            order = {s: k for k, s in enumerate(sorted(set(map(str, present))))}
            keys = [float(order[str(v)]) for v in present]
        else:
            keys = [float(v) for v in present]  # type: ignore[arg-type]
        ranks = rankdata(keys)
        m = len(keys) - 1
        for j, i in enumerate(idx):
            displacement[i] = abs(ranks[j] - 1 - j) / m
            if 0 < j < m:
                a, b, c = keys[j - 1], keys[j], keys[j + 1]
                disorder[i] = float(a <= c and not (a <= b <= c))
    return {f"{prefix}_displacement": displacement, f"{prefix}_out_of_order": disorder}


@dataclass
class Parsed:
    """Per-row values a broker extracts before computing list-relative features."""

    surname: list[str | None] = field(default_factory=list)
    given: list[str | None] = field(default_factory=list)
    sex: list[float] = field(default_factory=list)
    birth: list[date | None] = field(default_factory=list)
    postcode: list[str | None] = field(default_factory=list)
    phone: list[str | None] = field(default_factory=list)


def _column(rows: list[list[str]], header: list[str], name: str | None) -> list[str] | None:
    if name is None or name not in header:
        return None
    i = header.index(name)
    return [r[i] if i < len(r) else "" for r in rows]


def _name_features(
    names: list[str], kanas: list[str] | None, p: Parsed, f: dict[str, list[float]]
) -> None:
    known: Counter[str] = Counter()
    split: list[tuple[str, str | None, float]] = []
    for v in names:
        v = v.strip()
        sep = _sep_code(v)
        if sep:
            sur, _, giv = v.replace("\u3000", " ").partition(" ")
            split.append((sur.strip(), giv.strip(), sep))
            known[sur.strip()] += 1
        else:
            split.append((v, None, 0.0))
    for k, (whole, none, sep) in enumerate(split):
        if none is None:  # no space: split at the longest surname the list writes with one
            for cut in range(min(4, len(whole) - 1), 0, -1):
                if known[whole[:cut]] >= 2:
                    split[k] = (whole[:cut], whole[cut:], sep)
                    break
    p.surname = [s if g is not None else None for s, g, _ in split]
    p.given = [g for _, g, _ in split]
    f["name_len"] = [float(len(v.replace(" ", "").replace("\u3000", "").strip())) for v in names]
    f["name_sep"] = [sep for _, _, sep in split]
    f["surname_len"] = [_num(len(s)) if s else NAN for s in p.surname]
    f["given_len"] = [_num(len(g)) if g else NAN for g in p.given]
    f["surname_share"] = _shares(p.surname)
    f["given_share"] = _shares(p.given)
    if kanas is None:
        return
    f["kana_len"] = [float(len(re.sub(r"[\s\u3000]", "", v))) for v in kanas]
    f["kana_sep"] = [_sep_code(v.strip()) for v in kanas]
    f["kana_script"] = [
        2.0 if re.search("[\uff66-\uff9f]", v) else 1.0 if re.search("[\u3041-\u3096]", v) else 0.0
        for v in kanas
    ]
    f["kana_per_kanji"] = [
        k / n if n else NAN for k, n in zip(f["kana_len"], f["name_len"], strict=True)
    ]
    readings = [
        jaconv.hira2kata(_nfkc(v)).replace("\u3000", " ").partition(" ")[0]
        if _sep_code(v.strip())
        else None
        for v in kanas
    ]
    f["kana_surname_share"] = _shares(readings)


def _person_features(
    sexes: list[str] | None, births: list[str] | None, p: Parsed, f: dict[str, list[float]]
) -> None:
    n = len(p.given)
    p.sex = [
        1.0 if _nfkc(v).lower() in _MALE else 0.0 if _nfkc(v).lower() in _FEMALE else NAN
        for v in (sexes or [""] * n)
    ]
    p.birth = [parse_date(v) for v in births] if births else [None] * n
    years = [b.year if b else None for b in p.birth]
    f["sex"] = p.sex
    f["birth_year"] = [_num(y) for y in years]
    f["birth_month"] = [_num(b.month) if b else NAN for b in p.birth]
    f["birth_day"] = [_num(b.day) if b else NAN for b in p.birth]
    known = sorted(y for y in years if y is not None)
    f["birth_year_pct"] = [
        bisect.bisect_left(known, y) / max(1, len(known)) if y is not None else NAN for y in years
    ]
    f["birth_year_share"] = _shares(years)
    f.update(order_features([b.toordinal() if b else None for b in p.birth], "birth"))
    by_name_sex: dict[str, Counter[float]] = defaultdict(Counter)
    by_name_decade: Counter[tuple[str, int]] = Counter()
    decades: Counter[int] = Counter()
    given_counts: Counter[str] = Counter()
    for g, s, y in zip(p.given, p.sex, years, strict=True):
        if g is None:
            continue
        given_counts[g] += 1
        if not math.isnan(s):
            by_name_sex[g][s] += 1
        if y is not None:
            by_name_decade[g, y // 10] += 1
            decades[y // 10] += 1
    agree, era, decade_share = [], [], []
    for g, s, y in zip(p.given, p.sex, years, strict=True):
        sexes_of = by_name_sex.get(g) if g else None
        agree.append(
            sexes_of[s] / sum(sexes_of.values()) if sexes_of and not math.isnan(s) else NAN
        )
        if g is None or y is None:
            era.append(NAN)
            decade_share.append(NAN)
        else:
            era.append(by_name_decade[g, y // 10] / given_counts[g])
            decade_share.append(by_name_decade[g, y // 10] / decades[y // 10])
    f["given_sex_agree"] = agree
    f["given_decade_share"] = era
    f["decade_given_share"] = decade_share


def _date2_features(values: list[str] | None, p: Parsed, f: dict[str, list[float]]) -> None:
    if values is None:
        return
    dates = [parse_date(v) for v in values]
    f["date2_year"] = [_num(d.year) if d else NAN for d in dates]
    f["date2_minus_birth"] = [
        (d - b).days / 365.25 if d and b else NAN for d, b in zip(dates, p.birth, strict=True)
    ]
    f.update(order_features([d.toordinal() if d else None for d in dates], "date2"))


def _town_ge(keys: list[str | None], numbers: list[float]) -> list[float]:
    """Share of the other rows of the same town whose number is >= this row's."""
    groups: dict[str, list[float]] = defaultdict(list)
    for k, x in zip(keys, numbers, strict=True):
        if k is not None and not math.isnan(x):
            groups[k].append(x)
    for v in groups.values():
        v.sort()
    out = []
    for k, x in zip(keys, numbers, strict=True):
        if k is None or math.isnan(x) or len(groups[k]) < 2:
            out.append(NAN)
            continue
        g = groups[k]
        out.append((len(g) - bisect.bisect_left(g, x) - 1) / (len(g) - 1))
    return out


def _split_address(raw: str, place: Place | None) -> tuple[str | None, bool, str, str, float]:
    """Prefecture, whether the address starts with its postcode's city and town, block
    number, building, and the separator before the building (NaN without one)."""
    text = raw.strip().translate(_ASCII_DIGITS)  # NFKC would turn U+3000 into a space
    pref = next((x for x in PREFECTURES if text.startswith(x)), None)
    if pref:
        text = text[len(pref) :]
    head = f"{place.city}{place.town}".translate(_ASCII_DIGITS) if place else ""
    matched = place is not None and text.startswith(head)
    if matched:
        rest = text[len(head) :]
    else:
        rest = text[next((k for k, c in enumerate(text) if c.isdigit()), len(text)) :]
    m = _STREET_RE.match(rest)
    street = m.group(0) if m else ""
    tail = rest[len(street) :]
    building = tail.strip(" \u3000")
    return pref, matched, street, building, _sep_code(tail[:1]) if building else NAN


def _address_features(
    cols: dict[str, list[str] | None],
    p: Parsed,
    gaz: Gazetteer,
    cache: dict[str, Place | None],
    f: dict[str, list[float]],
) -> None:
    n = len(p.given)
    postcodes = cols["postcode"] or [""] * n
    p.postcode = [re.sub(r"\D", "", _nfkc(v)) or None for v in postcodes]
    f["postcode_hyphen"] = [float("-" in _nfkc(v)) if v.strip() else NAN for v in postcodes]
    f["postcode3_share"] = _shares([c[:3] if c else None for c in p.postcode])
    f["postcode7_share"] = _shares(p.postcode)
    f.update(order_features([int(c) if c else None for c in p.postcode], "postcode"))
    addresses = cols["address"] or [""] * n
    prefs_col = cols["prefecture"]
    prefs, cities, matches, streets, buildings, seps = [], [], [], [], [], []
    for i, raw in enumerate(addresses):
        code = p.postcode[i]
        if code and code not in cache:
            cache[code] = gaz.lookup(code)
        place = cache.get(code) if code else None
        pref, matched, street, building, sep = _split_address(raw, place)
        if prefs_col is not None:
            pref = _nfkc(prefs_col[i]) or pref
        prefs.append(pref or (place.prefecture if place else None))
        cities.append(place.city if place else None)
        matches.append(float(matched) if place else NAN)
        streets.append(street)
        buildings.append(building)
        seps.append(sep)
    top_pref = Counter(x for x in prefs if x).most_common(1)
    top_city = Counter(x for x in cities if x).most_common(1)
    f["pref_share"] = _shares(prefs)
    f["pref_is_top"] = [float(x == top_pref[0][0]) if x and top_pref else NAN for x in prefs]
    f["city_share"] = _shares(cities)
    f["city_is_top"] = [float(x == top_city[0][0]) if x and top_city else NAN for x in cities]
    f["addr_matches_postcode"] = matches
    nums = [[float(x) for x in re.findall(r"\d+", s)] for s in streets]
    f["street_groups"] = [float(len(x)) for x in nums]
    f["street_chome"] = [float("丁目" in s) for s in streets]
    f["street_kanji"] = [float(bool(re.search("番|号", s))) for s in streets]
    f["street_fullwidth"] = [float(bool(re.search("[０-９]", a))) for a in addresses]
    f["street_first"] = [x[0] if x else NAN for x in nums]
    f["street_second"] = [x[1] if len(x) > 1 else NAN for x in nums]
    f["street_last"] = [x[-1] if x else NAN for x in nums]
    f["street_first_town_ge"] = _town_ge(p.postcode, f["street_first"])
    f["street_second_town_ge"] = _town_ge(p.postcode, f["street_second"])
    if cols["building"] is not None:
        buildings = [v.strip() for v in cols["building"]]
        seps = [NAN] * n
    f["has_building"] = [float(bool(b)) for b in buildings]
    f["building_len"] = [float(len(b)) if b else NAN for b in buildings]
    f["building_sep"] = seps
    f["building_room_suffix"] = [float(b.endswith("号室")) if b else NAN for b in buildings]
    f["building_room_digits"] = [
        float(len(m.group(1))) if b and (m := re.search(r"(\d+)(?:号室)?$", _nfkc(b))) else NAN
        for b in buildings
    ]


def _contact_features(
    cols: dict[str, list[str] | None], p: Parsed, f: dict[str, list[float]]
) -> None:
    n = len(p.given)
    phones = cols["phone"]
    if phones is not None:
        p.phone = [re.sub(r"\D", "", _nfkc(v)) or None for v in phones]
        f["has_phone"] = [float(d is not None) for d in p.phone]
        f["phone_len"] = [float(len(d)) if d else NAN for d in p.phone]
        f["phone_hyphens"] = [float(_nfkc(v).count("-")) if v.strip() else NAN for v in phones]
        f["phone_paren"] = [float("(" in _nfkc(v)) if v.strip() else NAN for v in phones]
        f["phone_prefix"] = [float(d[:3]) if d else NAN for d in p.phone]
        f["phone_block4_share"] = _shares([d[:4] if d else None for d in p.phone])
        f["phone_block7_share"] = _shares([d[:7] if d else None for d in p.phone])
        counts = Counter(d for d in p.phone if d)
        surnames: dict[str, Counter[str | None]] = defaultdict(Counter)
        for d, s in zip(p.phone, p.surname, strict=True):
            if d:
                surnames[d][s] += 1
        f["phone_dup"] = [float(counts[d] - 1) if d else NAN for d in p.phone]
        f["phone_dup_other_surname"] = [
            float(counts[d] - surnames[d][s]) if d else NAN
            for d, s in zip(p.phone, p.surname, strict=True)
        ]
    emails = cols["email"]
    if emails is None:
        return
    parts = [_nfkc(v).lower().partition("@") if "@" in v else None for v in emails]
    locals_ = [x[0] if x else None for x in parts]
    domains = [x[2] if x else None for x in parts]
    f["has_email"] = [float(x is not None) for x in parts]
    f["email_local_len"] = [float(len(x)) if x else NAN for x in locals_]
    f["email_local_dot"] = [float("." in x) if x else NAN for x in locals_]
    f["email_local_sep"] = [float(bool(re.search("[_-]", x))) if x else NAN for x in locals_]
    f["email_local_digits"] = [float(sum(c.isdigit() for c in x)) if x else NAN for x in locals_]
    kanas = cols["kana"] or [""] * n
    name_hit, yy_hit = [], []
    for local, kana, birth in zip(locals_, kanas, p.birth, strict=True):
        if not local:
            name_hit.append(NAN)
            yy_hit.append(NAN)
            continue
        words = jaconv.hira2kata(_nfkc(kana)).replace("\u3000", " ").split()
        roman = [to_romaji(w) for w in words if len(to_romaji(w)) >= 3]
        name_hit.append(float(any(r in local for r in roman)) if roman else NAN)
        yy_hit.append(float(f"{birth.year % 100:02d}" in local) if birth else NAN)
    f["email_local_name"] = name_hit
    f["email_local_birth_yy"] = yy_hit
    f["email_domain_share"] = _shares(domains)
    ranked = {d: k + 1 for k, (d, _) in enumerate(Counter(x for x in domains if x).most_common())}
    f["email_domain_rank"] = [float(ranked[d]) if d else NAN for d in domains]


def _id_features(ids: list[str] | None, f: dict[str, list[float]]) -> None:
    if ids is None:
        return
    nums = []
    for v in ids:
        m = re.search(r"\d+", _nfkc(v))
        nums.append(int(m.group(0)) if m else None)
    f["id_len"] = [float(len(v.strip())) for v in ids]
    f.update(order_features(nums, "id"))
    pairs = list(itertools.pairwise(nums))
    steps = [abs(b - a) for a, b in pairs if a is not None and b is not None]
    step = max(1.0, float(sorted(steps)[len(steps) // 2])) if steps else 1.0
    prev = [NAN] + [(b - a) / step if a is not None and b is not None else NAN for a, b in pairs]
    f["id_gap_prev"] = prev
    f["id_gap_next"] = [*prev[1:], NAN]


def broker_features(
    header: list[str],
    rows: list[list[str]],
    raw: list[str],
    roles: dict[str, str],
    gaz: Gazetteer,
    cache: dict[str, Place | None],
) -> np.ndarray:
    """One row of features per data row, in the order of FEATURES (NaN where not computable)."""
    import numpy as np

    n = len(rows)
    cols = {r: _column(rows, header, roles.get(r)) for r in BROKER_ROLES}
    f: dict[str, list[float]] = {
        "position": [i / max(1, n - 1) for i in range(n)],
        "row_blank_fields": [float(sum(1 for c in r if not c.strip())) for r in rows],
        "raw_quotes": [float(line.count('"')) for line in raw] if raw else [NAN] * n,
    }
    p = Parsed()
    _name_features(cols["name"] or [""] * n, cols["kana"], p, f)
    _person_features(cols["sex"], cols["birth"], p, f)
    _date2_features(cols["date2"], p, f)
    _address_features(cols, p, gaz, cache, f)
    _contact_features(cols, p, f)
    _id_features(cols["id"], f)
    if cols["kana"] is not None:
        f.update(order_features([_nfkc(jaconv.hira2kata(v)) or None for v in cols["kana"]], "kana"))
    if cols["category"] is not None:
        f["category_share"] = _shares([v.strip() for v in cols["category"]])
    unknown = set(f) - set(FEATURES)
    assert not unknown, f"undocumented features: {unknown}"
    out = np.full((n, len(FEATURES)), np.nan)
    for j, name in enumerate(FEATURES):
        if name in f:
            out[:, j] = np.asarray(f[name], dtype=float)
    return out


# -- seeding ------------------------------------------------------------------------------
