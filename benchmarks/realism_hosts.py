"""Fake host lists for the realism benchmark (see benchmarks/realism.py): shapes of
lists, how they are written, and reading seeded copies back."""

from __future__ import annotations

import csv
import io
import itertools
import random
import re
import string
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import jaconv  # noqa: E402

from canary.reference import Gazetteer, GivenName, NameBook, Place, Surname  # noqa: E402
from canary.romaji import to_romaji  # noqa: E402
from canary.schema import PREFECTURES  # noqa: E402

if TYPE_CHECKING:
    pass


NAN = float("nan")
TODAY = date.today()
POOL_DOMAIN = "canary-sim.example.jp"
POOL_NUMBERS = [f"050-3{n:03d}-{4000 + n:04d}" for n in range(100, 220)] + [
    f"090-7{n:03d}-{5000 + n:04d}" for n in range(100, 160)
]
# People per prefecture, 2020 census, in units of 10,000.
POPULATION = dict(
    zip(
        PREFECTURES,
        [
            522, 124, 121, 230, 96, 107, 183, 287, 193, 194, 734, 628, 1405, 924, 220, 103,
            113, 77, 81, 205, 198, 363, 754, 177, 141, 258, 884, 547, 132, 92, 55, 67, 189,
            280, 134, 72, 95, 133, 69, 514, 81, 131, 174, 112, 107, 159, 147,
        ],
        strict=True,
    )
)  # fmt: skip
HOST_DOMAINS = {
    "gmail.example.com": 38,
    "yahoo.example.com": 14,
    "icloud.example.com": 10,
    "docomo.example.com": 12,
    "ezweb.example.com": 8,
    "softbank.example.com": 5,
    "example.com": 13,
}
MAIL_WORDS = [
    *("sakura", "hikari", "sora", "umi", "hana", "yuki", "star", "moon", "happy", "smile"),
    *("blue", "green", "lucky", "dream", "peace", "music", "soccer", "tennis", "neko", "inu"),
    *("coffee", "candy", "angel", "rainbow", "sunny", "momo", "kuma", "pink", "cherry"),
]


# -- host lists ---------------------------------------------------------------------------


@dataclass
class Host:
    """One fake person of a host list, before it is written in a shape's columns."""

    sex: str  # M | F
    birth: date
    surname: Surname
    given: GivenName
    place: Place
    street: str
    building: str
    phone: str
    email: str = ""


@dataclass(frozen=True)
class Mess:
    """Shares of rows keyed differently from the list's usual way (hand-keyed data)."""

    name_nospace: float = 0.0
    name_halfspace: float = 0.0
    kana_hiragana: float = 0.0
    kana_nospace: float = 0.0


class Reference:
    """Names and places, loaded once."""

    def __init__(self) -> None:
        self.names = NameBook(REPO / "seeds")
        self.places = Gazetteer()

    def in_area(self, prefecture: str, city: str | None = None) -> list[Place]:
        return [
            p for p in self.places.in_area(prefecture) if city is None or p.city.startswith(city)
        ]


def _street(place: Place, rng: random.Random, style: str) -> str:
    """A block number within limits that belong to the town (a town has so many 丁目)."""
    town = random.Random(f"{place.postcode}{place.town}")
    chome_max, block_max = town.randint(2, 9), town.randint(8, 35)
    banchi_max = town.choice([60, 300, 1200, 3000])
    if place.chome:
        chome, block, go = rng.randint(1, chome_max), rng.randint(1, block_max), rng.randint(1, 30)
        if style == "kanji":
            return f"{chome}丁目{block}番{go}号"
        if style == "chome_dash":
            return f"{chome}丁目{block}-{go}"
        return f"{chome}-{block}-{go}"
    banchi = rng.randint(1, banchi_max)
    if rng.random() < 0.65:
        go = rng.randint(1, 20)
        return f"{banchi}番地{go}" if style == "kanji" else f"{banchi}-{go}"
    return f"{banchi}番地" if style == "kanji" else str(banchi)


def _building(place: Place, rng: random.Random, names: NameBook) -> str:
    pattern = names.buildings.draw(rng)
    floor = rng.choices(range(1, 11), weights=[24, 24, 16, 10, 8, 6, 4, 3, 3, 2])[0]
    return pattern.format(
        place=place.town.rstrip("町"),
        surname=names.surnames.draw(rng).kanji,
        word=rng.choice(names.building_words),
        n=f"{floor}{rng.randint(1, 10):02d}",
    )


def _email(h: Host, rng: random.Random, taken: set[str]) -> str:
    """Half the local parts are made of the name, the rest of words or letters and digits."""
    s, g = to_romaji(h.surname.kana), to_romaji(h.given.kana)
    yy = f"{h.birth.year % 100:02d}"
    r = rng.random()
    if r < 0.5:
        local = rng.choice(
            [
                f"{g}.{s}",
                f"{g}{s}",
                f"{s}.{g}",
                f"{g[:1]}.{s}",
                f"{s}{g[:1]}",
                f"{g}{yy}",
                f"{g}_{s}",
                f"{s}{yy}",
                f"{g}-{s}{rng.randint(1, 999)}",
            ]
        )
    elif r < 0.8:
        sep = rng.choice(["", ".", "_", "-"])
        tail = rng.choice(["", str(rng.randint(1, 9999)), yy])
        local = f"{rng.choice(MAIL_WORDS)}{sep}{rng.choice(MAIL_WORDS)}{tail}"
    else:
        letters = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 8)))
        local = f"{letters}{rng.randint(0, 99999)}"
    domain = rng.choices(list(HOST_DOMAINS), weights=list(HOST_DOMAINS.values()))[0]
    address = f"{local}@{domain}"
    while address in taken:
        address = f"{local}{rng.randint(1, 999)}@{domain}"
    taken.add(address)
    return address


def draw_hosts(
    n: int,
    rng: random.Random,
    ref: Reference,
    places: Sequence[Place],
    place_weights: Sequence[float] | None,
    age: tuple[int, int, int],
    *,
    styles: dict[str, float],
    building_share: float,
    phone_share: float,
    email_share: float,
    household_share: float = 0.0,
    births: Sequence[date] | None = None,
) -> list[Host]:
    """People of one list; ``household_share`` of them live with the one drawn before."""
    out: list[Host] = []
    taken: set[str] = set()
    cum = list(itertools.accumulate(place_weights or [1.0] * len(places)))
    for i in range(n):
        prev = out[-1] if out else None
        if prev is not None and rng.random() < household_share:
            sex = "F" if prev.sex == "M" else "M"
            birth = prev.birth + timedelta(days=rng.randint(-6 * 365, 6 * 365))
            given = ref.names.given_for(sex, birth.year).draw(rng)
            h = Host(
                sex, birth, prev.surname, given, prev.place, prev.street, prev.building, prev.phone
            )
        else:
            sex = "M" if rng.random() < 0.48 else "F"
            if births is not None:
                birth = births[i]
            else:
                years = int(rng.triangular(*age))
                birth = TODAY - timedelta(days=years * 365 + rng.randrange(365))
            place = rng.choices(places, cum_weights=cum)[0]
            style = rng.choices(list(styles), weights=list(styles.values()))[0]
            has_phone = rng.random() < phone_share
            h = Host(
                sex,
                birth,
                ref.names.surnames.draw(rng),
                ref.names.given_for(sex, birth.year).draw(rng),
                place,
                _street(place, rng, style),
                _building(place, rng, ref.names) if rng.random() < building_share else "",
                f"090-0{rng.randint(100, 999)}-{rng.randrange(10000):04d}" if has_phone else "",
            )
        if rng.random() < email_share:
            h.email = _email(h, rng, taken)
        out.append(h)
    return out


def _name(h: Host, mess: Mess, rng: random.Random) -> tuple[str, str]:
    """Name and reading as keyed: mostly with a full-width space, sometimes not."""
    r = rng.random()
    if r < mess.name_nospace:
        sep = ""
    elif r < mess.name_nospace + mess.name_halfspace:
        sep = " "
    else:
        sep = "\u3000"
    kana_sep = "" if rng.random() < mess.kana_nospace else "\u3000"
    kana = f"{h.surname.kana}{kana_sep}{h.given.kana}"
    if rng.random() < mess.kana_hiragana:
        kana = jaconv.kata2hira(kana)
    return f"{h.surname.kanji}{sep}{h.given.kanji}", kana


def _era(d: date) -> str:
    for letter, start in (
        ("R", date(2019, 5, 1)),
        ("H", date(1989, 1, 8)),
        ("S", date(1926, 12, 25)),
    ):
        if d >= start:
            return f"{letter}{d.year - start.year + 1:02d}.{d.month:02d}.{d.day:02d}"
    return f"T{d.year - 1911:02d}.{d.month:02d}.{d.day:02d}"


# What a broker reads off a list's header; ``date2`` is a date other than the birth date
# (入会日), ``category`` a column of a few shared values.
BROKER_ROLES = (
    *("id", "name", "kana", "sex", "birth", "postcode", "prefecture", "address", "building"),
    *("phone", "email", "category", "date2"),
)


@dataclass(frozen=True)
class Shape:
    name: str
    description: str
    header: list[str]
    roles: dict[str, str]  # broker's role -> column name (what a broker reads off the header)
    build: Callable[[int, random.Random, Reference], list[list[str]]]
    family: str  # shapes of one family are drawn with the same random stream (same people)


def city_checkup(n: int, rng: random.Random, ref: Reference) -> list[list[str]]:
    places = ref.in_area("長野県", "松本市")
    hosts = draw_hosts(
        n,
        rng,
        ref,
        places,
        None,
        (40, 90, 72),
        styles={"chome_dash": 0.85, "dash": 0.15},
        building_share=0.12,
        phone_share=0.9,
        email_share=0.0,
        household_share=0.18,
    )
    ids = rng.sample(range(10**9, 10**9 + 10**8), n)
    rows = []
    for h, id_ in zip(hosts, ids, strict=True):
        name, kana = _name(h, Mess(), rng)
        p = h.place
        building = f"\u3000{h.building}" if h.building else ""
        rows.append(
            [
                str(id_),
                name,
                kana,
                "男" if h.sex == "M" else "女",
                _era(h.birth),
                f"{p.postcode[:3]}-{p.postcode[3:]}",
                f"{p.city}{p.town}{h.street}{building}",
                h.phone,
                rng.choices(["集団", "個別", "施設"], weights=[55, 40, 5])[0],
            ]
        )
    rows.sort(key=lambda r: (r[5], r[2]))  # 地区順: postcode, then reading
    return rows


def nationwide(n: int, rng: random.Random, ref: Reference) -> list[list[str]]:
    prefs = list(POPULATION)
    by_pref = {p: ref.in_area(p) for p in prefs}
    places = [pl for p in prefs for pl in by_pref[p]]
    weights = [POPULATION[p] / len(by_pref[p]) for p in prefs for _ in by_pref[p]]
    first, last = date(2008, 4, 1), TODAY - timedelta(days=30)
    # Customer numbers are issued in turn as people join; a few customers were deleted
    # since, with their numbers. A deleted customer had joined on a day like the others, so
    # the numbers missing are people missing from their days (skipping numbers at random
    # between the people kept would make a gap no one's: then a canary given a free number
    # is one more person on a day than anyone of that list ever was).
    numbers, number = [], 0
    for _ in range(n):
        number += 1 if rng.random() < 0.97 else rng.randint(2, 4)  # the ones skipped: deleted
        numbers.append(number)
    span = (last - first).days
    issued = sorted(first + timedelta(days=rng.randrange(span)) for _ in range(number))
    joined = [issued[k - 1] for k in numbers]
    births = [
        j - timedelta(days=int(rng.triangular(18, 80, 40)) * 365 + rng.randrange(365))
        for j in joined
    ]
    hosts = draw_hosts(
        n,
        rng,
        ref,
        places,
        weights,
        (20, 85, 48),
        styles={"dash": 0.8, "chome_dash": 0.2},
        building_share=0.35,
        phone_share=0.97,
        email_share=0.45,
        household_share=0.03,
        births=births,
    )
    mess = Mess(name_nospace=0.03, kana_nospace=0.02)
    rows = []
    for h, join, number in zip(hosts, joined, numbers, strict=True):
        name, kana = _name(h, mess, rng)
        p = h.place
        rows.append(
            [
                f"C{number:07d}",
                name,
                kana,
                "男" if h.sex == "M" else "女",
                h.birth.strftime("%Y/%m/%d"),
                p.postcode,
                p.prefecture,
                f"{p.city}{p.town}{h.street}",
                h.building,
                h.phone,
                h.email,
                rng.choices(["一般", "シルバー", "ゴールド"], weights=[70, 20, 10])[0],
                join.strftime("%Y/%m/%d"),
            ]
        )
    return rows


def _next_member(number: int, age: float, rng: random.Random) -> int:
    """The next member number still on the list: numbers are issued one after another as
    people join, and a member who leaves takes theirs away, the oldest members more often
    (about half of the first still hold their card, nine in ten of the newest). ``age`` is
    how far down the list the number is, 0 (oldest) to 1."""
    stays = 0.45 + 0.45 * age
    number += 1
    while rng.random() > stays:
        number += 1
    return number


def _members(n: int, rng: random.Random, ref: Reference, with_email: bool) -> list[list[str]]:
    pref = ref.in_area("福岡県")
    places = [p for p in pref if p.city.startswith("福岡市")] + pref
    hosts = draw_hosts(
        n,
        rng,
        ref,
        places,
        None,
        (18, 75, 35),
        styles={"dash": 0.75, "chome_dash": 0.25},
        building_share=0.4,
        phone_share=0.98,
        email_share=0.85,
    )
    mess = Mess(name_nospace=0.15, name_halfspace=0.08, kana_hiragana=0.1, kana_nospace=0.05)
    rows = []
    number = 10_000_000
    for i, h in enumerate(hosts):
        number = _next_member(number, i / n, rng)
        name, kana = _name(h, mess, rng)
        p = h.place
        sep = rng.choices(["\u3000", " ", ""], weights=[60, 30, 10])[0]
        building = f"{sep}{h.building}" if h.building else ""
        row = [
            str(number),
            name,
            kana,
            "男性" if h.sex == "M" else "女性",
            h.birth.isoformat(),
            f"{p.postcode[:3]}-{p.postcode[3:]}",
            f"{p.prefecture}{p.city}{p.town}{h.street}{building}",
            h.phone,
        ]
        rows.append([*row, h.email] if with_email else row)
    return rows


_CITY_HEADER = [
    "宛名番号",
    "氏名",
    "カナ氏名",
    "性別",
    "生年月日",
    "郵便番号",
    "住所",
    "電話番号",
    "受診方法",
]
_NATION_HEADER = [
    "顧客ID",
    "氏名",
    "フリガナ",
    "性別",
    "生年月日",
    "郵便番号",
    "都道府県",
    "住所",
    "建物名",
    "電話番号",
    "メールアドレス",
    "会員ランク",
    "入会日",
]
_MEMBER_HEADER = [
    "会員番号",
    "お名前",
    "フリガナ",
    "性別",
    "生年月日",
    "郵便番号",
    "住所",
    "電話番号",
]
_BASE_ROLES = {"id": 0, "name": 1, "kana": 2, "sex": 3, "birth": 4, "postcode": 5}


def _roles(header: list[str], **extra: str) -> dict[str, str]:
    roles = {role: header[i] for role, i in _BASE_ROLES.items()}
    roles.update(extra)
    return roles


SHAPES = {
    s.name: s
    for s in [
        Shape(
            "city-checkup",
            "a city's health-check list: one municipality, ages 40-89, no email, 地区順",
            _CITY_HEADER,
            _roles(_CITY_HEADER, address="住所", phone="電話番号", category="受診方法"),
            city_checkup,
            "city",
        ),
        Shape(
            "nationwide",
            "a nationwide customer list: all prefectures, sequential IDs, join dates, email",
            _NATION_HEADER,
            _roles(
                _NATION_HEADER,
                prefecture="都道府県",
                address="住所",
                building="建物名",
                phone="電話番号",
                email="メールアドレス",
                category="会員ランク",
                date2="入会日",
            ),
            nationwide,
            "nation",
        ),
        Shape(
            "members-email",
            "a regional store's members, self-typed, 85% with email",
            [*_MEMBER_HEADER, "メールアドレス"],
            _roles(_MEMBER_HEADER, address="住所", phone="電話番号", email="メールアドレス"),
            lambda n, rng, ref: _members(n, rng, ref, with_email=True),
            "members",
        ),
        Shape(
            "members-noemail",
            "the same members exported without the email column",
            _MEMBER_HEADER,
            _roles(_MEMBER_HEADER, address="住所", phone="電話番号"),
            lambda n, rng, ref: _members(n, rng, ref, with_email=False),
            "members",
        ),
    ]
}


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode("cp932"))
    return path


def read_seeded(path: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, data rows and the raw text lines of the data rows (for quoting)."""
    text = path.read_bytes().decode("cp932")
    records = list(csv.reader(io.StringIO(text)))
    lines = text.split("\r\n")
    if lines and lines[-1] == "":
        lines.pop()
    raw = lines[1:] if len(lines) == len(records) else []
    return records[0], records[1:], raw


# -- what a broker computes per row ------------------------------------------------------

FEATURES: dict[str, str] = {
    "position": "row index / rows: where in the file the row is",
    "row_blank_fields": "number of blank fields in the row",
    "raw_quotes": "double quotes in the row's raw line (quoting style)",
    "name_len": "characters of the kanji name, spaces removed",
    "name_sep": "separator between surname and given name: 0 none, 1 ASCII, 2 full-width",
    "surname_len": "characters of the surname (split at the space, else at a known surname)",
    "given_len": "characters of the given name",
    "surname_share": "share of the list's rows with the same surname",
    "given_share": "share of the list's rows with the same given name",
    "given_sex_agree": "share of rows with the same given name that have the same sex",
    "given_decade_share": "share of this given name's rows born in the same decade (era fit)",
    "decade_given_share": "share of this decade's rows that have this given name",
    "kana_len": "characters of the reading, spaces removed",
    "kana_sep": "separator in the reading: 0 none, 1 ASCII, 2 full-width",
    "kana_script": "script of the reading: 0 katakana, 1 hiragana, 2 half-width",
    "kana_per_kanji": "reading length / name length",
    "kana_surname_share": "share of the list's rows with the same surname reading",
    "sex": "1 male, 0 female",
    "birth_year": "year of birth (Western or Japanese era dates parsed)",
    "birth_month": "month of birth",
    "birth_day": "day of birth",
    "birth_year_pct": "percentile of the birth year in the list",
    "birth_year_share": "share of the list's rows born in the same year",
    "date2_year": "year of the list's other date column (e.g. 入会日)",
    "date2_minus_birth": "years from birth to the other date (age at joining)",
    "postcode_hyphen": "postcode written with a hyphen",
    "postcode3_share": "share of the list's rows with the same first 3 postcode digits",
    "postcode7_share": "share of the list's rows with the same postcode",
    "pref_share": "share of the list's rows in the same prefecture",
    "pref_is_top": "prefecture is the list's most common one",
    "city_share": "share of the list's rows in the same city (from the postcode)",
    "city_is_top": "city is the list's most common one",
    "addr_matches_postcode": "address starts with the city and town of its postcode",
    "street_groups": "number groups in the block number (1-2-3 -> 3)",
    "street_chome": "block number written with 丁目",
    "street_kanji": "block number written with 番地/番/号",
    "street_fullwidth": "full-width digits in the address",
    "street_first": "first number of the block number (丁目 or 番地)",
    "street_second": "second number of the block number",
    "street_last": "last number of the block number",
    "street_first_town_ge": "share of other rows of the same postcode with a first number >= this",
    "street_second_town_ge": "same for the second number",
    "has_building": "a building name is given",
    "building_len": "characters of the building name",
    "building_sep": "separator before the building in the address: 0 none, 1 ASCII, 2 full-width",
    "building_room_suffix": "building ends in 号室",
    "building_room_digits": "digits of the room number at the end of the building",
    "has_phone": "a phone number is given",
    "phone_len": "digits of the phone number",
    "phone_hyphens": "hyphens in the phone number",
    "phone_paren": "parenthesis in the phone number",
    "has_email": "an email is given (missing when the list has no email column)",
    "email_local_len": "characters of the email's local part",
    "email_local_dot": "the local part has a dot",
    "email_local_sep": "the local part has an underscore or hyphen",
    "email_local_digits": "digits in the local part",
    "email_local_name": "the local part holds the romanised surname or given name",
    "email_local_birth_yy": "the local part holds the 2-digit birth year",
    "category_share": "share of the list's rows with the same value in the category column",
    "phone_prefix": "POOL: first 3 digits of the phone (50, 70, 80, 90, landline area)",
    "phone_block4_share": "POOL: share of rows whose phone starts with the same 4 digits",
    "phone_block7_share": "POOL: share of rows whose phone is in the same number block (7 digits)",
    "phone_dup": "POOL: other rows with the same phone number",
    "phone_dup_other_surname": "POOL: other rows with the same phone number and another surname",
    "email_domain_share": "POOL: share of rows with email whose domain is the same",
    "email_domain_rank": "POOL: rank of the domain among the list's domains (1 most common)",
}
for _col in ("id", "kana", "postcode", "birth", "date2"):
    FEATURES[f"{_col}_displacement"] = (
        f"|rank of the {_col} value in the list - rank of the row's position| / rows: "
        "large when a sorted list's row is out of place"
    )
    FEATURES[f"{_col}_out_of_order"] = (
        f"the {_col} value is outside the range of its two neighbours, which are in order"
    )
FEATURES["id_gap_prev"] = "ID minus the previous row's ID, over the median step"
FEATURES["id_gap_next"] = "next row's ID minus this ID, over the median step"
FEATURES["id_len"] = "characters of the ID"
POOL_FEATURES = {k for k, v in FEATURES.items() if v.startswith("POOL:")}

_MALE = {"男", "男性", "m", "male", "1"}
_FEMALE = {"女", "女性", "f", "female", "2"}
_ERA_START = {"M": 1867, "T": 1911, "S": 1925, "H": 1988, "R": 2018}
_ERA_KANJI = {"明治": "M", "大正": "T", "昭和": "S", "平成": "H", "令和": "R"}
_ASCII_DIGITS = str.maketrans("０１２３４５６７８９－‐−", "0123456789---")
_STREET_RE = re.compile(r"^(?:\d+(?:丁目|番地|番|号|-)?)+")
