"""A profile of a host list, learned from a sample of its rows and never stored.

It keeps only what the generator needs to fit canaries to the list (styles, blank shares,
geography and age mix, frequent categorical values); no row of a real person survives it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import NamedTuple

import jaconv

from canary.formats import (
    DateStyle,
    IdStyle,
    KanaStyle,
    NameStyle,
    PhoneStyle,
    PostcodeStyle,
    RomajiStyle,
    SexStyle,
    has_fullwidth_digits,
)
from canary.normalize import postcode_key
from canary.schema import PREFECTURES, Schema

# A categorical value is copied only when this many host rows share it, so that nothing
# particular to one person (a note, a rare value) can be reproduced.
MIN_SHARED = 3


@dataclass
class ColumnProfile:
    name: str
    role: str
    blank_share: float
    values: Counter[str] = field(default_factory=Counter)  # frequent values only
    style: object | None = None
    fullwidth: bool = False
    includes_prefecture: bool = True
    building_share: float = 0.0
    street_style: str = "dash"  # dash | chome_dash | kanji
    street_styles: tuple[tuple[str, float], ...] = ()  # every style the list uses, by share
    building_seps: tuple[tuple[str, float], ...] = ()  # what comes before a building name
    # How the list numbers its addresses (in memory only): the numbers of addresses written
    # with 丁目 (or as three numbers, 2-8-1) and of addresses by 番地 (1234 or 1234-5).
    chome_numbers: list[tuple[int, ...]] = field(default_factory=list)
    banchi_numbers: list[tuple[int, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class StreetShape:
    """How one address is numbered: ``kind`` chome (丁目, or three numbers) or banchi,
    ``style`` as the generator writes it, and its numbers."""

    kind: str
    style: str  # chome: kanji | chome_dash | dash; banchi: kanji | dash | plain
    numbers: tuple[int, ...]


@dataclass
class HostProfile:
    schema: Schema
    columns: list[ColumnProfile]
    rows_sampled: int
    prefectures: Counter[str]
    birth_years: list[int]
    male_share: float
    email_share: float
    # Of the list's email addresses, the share whose local part holds the person's own name
    # in romaji (from the reading); the rest are nicknames, words, random letters.
    email_name_share: float = 0.6
    # The shapes of the list's email local parts (see EmailShape), counted in memory
    # only: canaries' addresses are drawn in that mix.
    email_shapes: Counter[EmailShape] = field(default_factory=Counter)
    email_shapes_named: bool = False  # whether the list has a reading to tell names by
    # The list's own postcodes (seven digits) with their counts, from the head and windows
    # through the file: canaries live where the list's people live, as often as they do.
    postcodes: Counter[str] = field(default_factory=Counter)
    # How the addresses at each of the list's postcodes are numbered (in memory only): the
    # style and numbers of each sampled address, so that a canary at that postcode is
    # numbered as its neighbours are (丁目 or 番地, within the town's own range).
    streets: dict[str, list[StreetShape]] = field(default_factory=dict)
    # The share of the list's rows the profile saw (set by the seed, which knows the size).
    sampled_share: float = 1.0

    def column(self, role: str) -> ColumnProfile | None:
        for c in self.columns:
            if c.role == role:
                return c
        return None


def year_of(value: str) -> int | None:
    """The year of a date as lists write it (2001/4/1, 20010401, S60.03.12, 昭和60年...)."""
    v = unicodedata.normalize("NFKC", value).strip()
    m = re.match(r"^((?:19|20)\d{2})", v)
    if m:
        return int(m.group(1))
    m = re.match(r"^([MTSHR]|明治|大正|昭和|平成|令和)\s*(\d{1,2})", v)
    if m:
        base = {
            "M": 1867,
            "明治": 1867,
            "T": 1911,
            "大正": 1911,
            "S": 1925,
            "昭和": 1925,
            "H": 1988,
            "平成": 1988,
            "R": 2018,
            "令和": 2018,
        }[m.group(1)]
        return base + int(m.group(2))
    return None


def _street_labels(values: Sequence[str]) -> list[str]:
    labels = []
    for raw in values[:500]:
        v = unicodedata.normalize("NFKC", raw)
        if re.search(r"\d+丁目\d+番(?:地)?\d+号?", v):
            labels.append("kanji")
        elif re.search(r"\d+丁目\d+-\d+", v):
            labels.append("chome_dash")
        elif re.search(r"\d+-\d+", v):
            labels.append("dash")
    return labels


def street_shape(value: str) -> StreetShape | None:
    """The numbering of one address (see StreetShape), or None without a block number."""
    v = unicodedata.normalize("NFKC", value)
    m = _NUMBERS_RE.search(v)
    if not m:
        return None
    nums = tuple(int(g) for g in (m.group(1), m.group(3), m.group(4)) if g)
    if m.group(2) == "丁目" or len(nums) == 3:
        tail = v[m.start() :]
        style = "kanji" if "番" in tail else "chome_dash" if "丁目" in tail else "dash"
        return StreetShape("chome", style, nums)
    tail = v[m.start() : m.end()]
    style = "kanji" if "番" in tail else "dash" if len(nums) > 1 else "plain"
    return StreetShape("banchi", style, nums)


def _streets_by_postcode(
    schema: Schema, body: Sequence[Sequence[str]]
) -> dict[str, list[StreetShape]]:
    pc = schema.column_of("postcode")
    addr = next(
        (schema.column_of(r) for r in ("address", "address2", "street") if schema.column_of(r)),
        None,
    )
    out: dict[str, list[StreetShape]] = {}
    if pc is None or addr is None:
        return out
    for r in body:
        if max(pc, addr) >= len(r):
            continue
        code = postcode_key(r[pc])
        shape = street_shape(r[addr]) if code else None
        if code and shape is not None:
            out.setdefault(code, []).append(shape)
    return out


def _street_style(values: Sequence[str]) -> str:
    labels = _street_labels(values)
    return Counter(labels).most_common(1)[0][0] if labels else "dash"


_NUMBERS_RE = re.compile(r"(\d+)(丁目|番地?|号|-)?(?:(\d+)(?:番地?|号|-)?)?(?:(\d+)号?)?")


def _street_numbers(values: Sequence[str]) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """The block numbers of the list's addresses, split into 丁目-style (three numbers,
    or 丁目 written) and 番地-style (one or two numbers)."""
    chome: list[tuple[int, ...]] = []
    banchi: list[tuple[int, ...]] = []
    for raw in values[:2000]:
        v = unicodedata.normalize("NFKC", raw)
        m = _NUMBERS_RE.search(v)
        if not m:
            continue
        nums = tuple(int(g) for g in (m.group(1), m.group(3), m.group(4)) if g)
        if m.group(2) == "丁目" or len(nums) == 3:
            chome.append(nums)
        else:
            banchi.append(nums)
    return chome, banchi


def _whole_mix(style: NameStyle | KanaStyle, filled: Sequence[str]) -> NameStyle | KanaStyle:
    """``style`` with its mixes (separators, scripts) counted over every sampled value:
    learnt from the first 500, their share was off by two points or more (a typed list's
    full-width spaces 81 % against 77 %), the same for every export of the list."""
    seps = _shares(["\u3000" if "\u3000" in v else " " if " " in v else "" for v in filled])
    if not seps:
        return style
    if isinstance(style, NameStyle):
        return replace(style, separator=seps[0][0], mix=seps)
    scripts = _shares(
        [
            "halfwidth"
            if re.search("[\uff66-\uff9f]", v)
            else "hiragana"
            if re.search("[\u3041-\u3096]", v)
            else "katakana"
            for v in filled
        ]
    )
    return replace(
        style, script=scripts[0][0], separator=seps[0][0], scripts=scripts, separators=seps
    )


def _shares(labels: Sequence[str]) -> tuple[tuple[str, float], ...]:
    counts = Counter(labels)
    return tuple((k, c / len(labels)) for k, c in counts.most_common())


_BUILDING_RE = re.compile(
    r"[ァ-ヶー]{2,}|号室|[A-Za-zＡ-Ｚａ-ｚ]{3,}|\d+[-‐－]\d+[-‐－]\d+\s*\S*\d{3,4}$"
)
# What follows the block number (1丁目2-3, 1234番地5) when more follows: a space, a full-width
# space or nothing before the building, which may hold spaces of its own (メゾン天神 201).
_BUILDING_SEP_RE = re.compile(
    r"[0-9０-９](?:[0-9０-９]|丁目|番地|番|号|[-‐－−])*([\u3000 ]?)(?=\S)"
)
_STYLE_BY_ROLE = {
    "phone": PhoneStyle,
    "mobile": PhoneStyle,
    "postcode": PostcodeStyle,
    "birth_date": DateStyle,
    "sex": SexStyle,
    "name": NameStyle,
    "kana": KanaStyle,
    "kana_surname": KanaStyle,
    "kana_given": KanaStyle,
    "romaji": RomajiStyle,
    "id": IdStyle,
}


def profile_host(schema: Schema, body: Sequence[Sequence[str]]) -> HostProfile:
    """Learn a HostProfile from the data rows that follow the header."""
    width = len(schema.columns)
    n = max(1, len(body))
    columns: list[ColumnProfile] = []
    for i, (name, role) in enumerate(zip(schema.columns, schema.roles, strict=True)):
        values = [r[i] if i < len(r) else "" for r in body]
        filled = [v for v in values if v.strip()]
        counts = Counter(filled)
        col = ColumnProfile(name=name, role=role, blank_share=1 - len(filled) / n)
        col.values = Counter({v: c for v, c in counts.items() if c >= MIN_SHARED})
        style_cls = _STYLE_BY_ROLE.get(role)
        if style_cls is not None:
            col.style = style_cls.learn(values)  # type: ignore[attr-defined]
        if isinstance(col.style, NameStyle | KanaStyle):
            col.style = _whole_mix(col.style, filled)
        col.fullwidth = has_fullwidth_digits(filled)
        if role in ("address", "address1", "address2", "street"):
            col.includes_prefecture = (
                sum(1 for v in filled if v[:4] in PREFECTURES or v[:3] in PREFECTURES)
                > len(filled) / 2
            )
            col.street_style = _street_style(filled)
            col.street_styles = _shares(_street_labels(filled))
            col.chome_numbers, col.banchi_numbers = _street_numbers(filled)
            seps = [
                m.group(1)
                for v in filled[:1000]
                if _BUILDING_RE.search(v) and (m := _BUILDING_SEP_RE.search(v.strip()))
            ]
            col.building_seps = _shares(seps)
        if role in ("address", "address2", "street", "building"):
            col.building_share = (
                sum(1 for v in filled if _BUILDING_RE.search(v)) / n
                if role != "building"
                else len(filled) / n
            )
        columns.append(col)
    assert len(columns) == width

    codes: Counter[str] = Counter()
    prefectures: Counter[str] = Counter()
    years: list[int] = []
    males = females = 0
    for col_index, role in enumerate(schema.roles):
        values = [r[col_index] for r in body if col_index < len(r) and r[col_index].strip()]
        if role == "postcode":
            keys = [k for v in values if (k := postcode_key(v))]
            codes.update(keys)
        elif role in ("address", "address1", "prefecture"):
            for v in values:
                text = unicodedata.normalize("NFKC", v).strip()
                for p in (text[:3], text[:4]):
                    if p in PREFECTURES:
                        prefectures[p] += 1
        elif role == "birth_date":
            years.extend(y for v in values if (y := year_of(v)) and 1900 < y <= date.today().year)
        elif role == "age":
            years.extend(
                date.today().year - int(v) for v in values if v.strip().isdigit() and int(v) < 120
            )
        elif role == "sex":
            style = columns[col_index].style
            assert isinstance(style, SexStyle)
            males += sum(1 for v in values if v.strip() == style.male)
            females += sum(1 for v in values if v.strip() == style.female)
    email_col = next((c for c in columns if c.role == "email"), None)
    return HostProfile(
        schema=schema,
        columns=columns,
        rows_sampled=len(body),
        prefectures=prefectures,
        birth_years=years,
        male_share=males / (males + females) if males + females else 0.5,
        email_share=(1 - email_col.blank_share) if email_col else 0.0,
        email_name_share=_email_name_share(schema, body),
        email_shapes=_email_shapes(schema, body),
        email_shapes_named=schema.column_of("kana") is not None,
        postcodes=codes,
        streets=_streets_by_postcode(schema, body),
    )


class EmailShape(NamedTuple):
    """What a broker sees of an address's local part: its length (in steps of three
    characters, 18 and more as one), how many digits it holds (6 and more as one), its
    separators (none, dots, - or _, both), and whether it holds the person's name (a word
    of the reading in romaji, three letters or more) or the two digits of their birth
    year."""

    length: int
    digits: int
    separators: int
    named: bool
    birth_yy: bool


def email_shape(local: str, kana: str = "", birth_year: int | None = None) -> EmailShape:
    digits = sum(c.isdigit() for c in local)
    return EmailShape(
        min(len(local) // 3, 6),
        min(digits, 6),
        ("." in local) + 2 * ("-" in local or "_" in local),
        holds_name(local, kana) if kana else False,
        birth_year is not None and f"{birth_year % 100:02d}" in local,
    )


def holds_name(local: str, kana: str) -> bool:
    """Whether an address's local part holds the person's name: a word of the reading,
    in romaji, of three letters or more (what a broker can check)."""
    from canary.romaji import to_romaji

    parts = unicodedata.normalize("NFKC", kana).replace("\u3000", " ").split()
    names = [to_romaji(jaconv.hira2kata(p)) for p in parts if p]
    return any(len(n) >= 3 and n in local for n in names)


def _email_shapes(schema: Schema, body: Sequence[Sequence[str]]) -> Counter[EmailShape]:
    """Counts of the shapes of the list's addresses; without a reading column no address
    holds the name, without a birth date none holds its year."""
    col, kana, birth = (schema.column_of(r) for r in ("email", "kana", "birth_date"))
    shapes: Counter[EmailShape] = Counter()
    if col is None:
        return shapes
    for r in body:
        if col < len(r) and "@" in r[col]:
            local = unicodedata.normalize("NFKC", r[col]).strip().lower().split("@")[0]
            if local:
                reading = r[kana] if kana is not None and kana < len(r) else ""
                year = year_of(r[birth]) if birth is not None and birth < len(r) else None
                shapes[email_shape(local, reading, year)] += 1
    return shapes


def _email_name_share(schema: Schema, body: Sequence[Sequence[str]]) -> float:
    """How many of the list's addresses are made of the person's name (see HostProfile)."""
    from canary.romaji import to_romaji

    email, kana = schema.column_of("email"), schema.column_of("kana")
    if email is None or kana is None:
        return 0.6
    named = seen = 0
    for r in body[:2000]:
        if max(email, kana) >= len(r) or "@" not in r[email] or not r[kana].strip():
            continue
        local = r[email].split("@")[0].lower()
        parts = unicodedata.normalize("NFKC", r[kana]).replace("\u3000", " ").split()
        names = [to_romaji(jaconv.hira2kata(p)) for p in parts if p]
        seen += 1
        named += any(len(n) >= 3 and n in local for n in names)
    return named / seen if seen >= 20 else 0.6
