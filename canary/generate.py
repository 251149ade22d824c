"""Canary people: whole, consistent fake persons fitted to a host list's columns.

A canary has a kanji name with its true reading, a sex and birth date that fit the name's
generation, a real postcode with its real prefecture, city and town, a pool phone number
written the way the list writes phones and, where the list has emails, an address on a pool
domain whose local part looks like the ones people choose.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from canary.formats import (
    DateStyle,
    IdStyle,
    KanaStyle,
    NameStyle,
    PhoneStyle,
    PostcodeStyle,
    RomajiStyle,
    SexStyle,
)
from canary.localparts import LocalParts
from canary.nearby import DistrictPlaces, PostcodeDraw, Streets, postcodes_repeat
from canary.normalize import kana_key, name_key, phone_e164
from canary.pools import PoolNumber
from canary.profile import ColumnProfile, HostProfile, StreetShape, year_of
from canary.reference import Gazetteer, NameBook, Place
from canary.romaji import to_romaji

if TYPE_CHECKING:
    from canary.domains import WebsiteTokens

_FW = str.maketrans("0123456789-", "０１２３４５６７８９－")
_TOKEN_ROLES = {"phone", "mobile", "email"}
_NAME_ROLES = {"name", "surname", "given", "kana", "kana_surname", "kana_given", "romaji"}


@dataclass
class Person:
    surname: str
    given: str
    surname_kana: str
    given_kana: str
    sex: str  # M | F
    birth: date
    place: Place
    street: str
    building: str
    phone: PoolNumber | None
    phone2: PoolNumber | None
    email: str | None
    id_number: int | None = None
    kana_script: str | None = None  # drawn once per canary when the reading is split
    hostname: str | None = None  # a hostname token, when the list has a URL column

    @property
    def name(self) -> str:
        return f"{self.surname}\u3000{self.given}"

    @property
    def kana(self) -> str:
        return f"{self.surname_kana}\u3000{self.given_kana}"

    @property
    def romaji(self) -> str:
        return f"{to_romaji(self.given_kana).title()} {to_romaji(self.surname_kana).title()}"

    @property
    def address(self) -> str:
        tail = f" {self.building}" if self.building else ""
        return f"{self.place.prefecture}{self.place.city}{self.place.town}{self.street}{tail}"


@dataclass
class GeneratedCanary:
    person: Person
    row: list[str]
    fields: dict[str, str] = field(default_factory=dict)


class CanaryFactory:
    """Makes canaries for one export of one host list."""

    def __init__(
        self,
        profile: HostProfile,
        names: NameBook,
        places: Gazetteer,
        numbers: Sequence[PoolNumber],
        domains: Sequence[str],
        rng: random.Random,
        emails_taken: Callable[[Sequence[str]], set[str]] = lambda _: set(),
        encodable: Callable[[str], bool] = lambda _: True,
        identity_taken: Callable[[str, str, str], bool] = lambda *_: False,
        today: date | None = None,
    ) -> None:
        self.profile = profile
        self.names = names
        self.places = places
        self.numbers = list(numbers)
        self.domains = list(domains)
        self.rng = rng
        self.emails_taken = emails_taken
        self.encodable = encodable
        # A canary's name (or reading) with its postcode must name it alone: a medium key
        # shared by two canaries would let one export's leak point at another.
        self.identity_taken = identity_taken
        self._identities: set[tuple[str, str]] = set()
        self._primary_phone_col: ColumnProfile | None = None  # set per canary by make()
        # Set by the seed when the list has a URL column and a DNS zone is configured.
        self.websites: WebsiteTokens | None = None
        self.today = today or date.today()
        self._used_emails: set[str] = set()
        self._locals = LocalParts(profile, names, rng)
        self._local_codes: PostcodeDraw | None = None  # _place
        self._districts: DistrictPlaces  # _place, with _local_codes
        self._unseen: dict[tuple[str, str], list[Place]] = {}  # _unseen_near
        self.streets = Streets(profile, rng, places)
        self._used_ids: set[int] = set()
        self._excluded_ids: set[int] = set()
        self._next_number = 0
        self._numbers_order = self.numbers[:]
        rng.shuffle(self._numbers_order)
        # The host list's people (see canary.hostkeys), as far as the seed has found them:
        # whether a name or reading is clear of theirs at a postcode, the pool-domain
        # addresses they hold.
        self.name_clear: Callable[[str, str, str, str, str], bool] = lambda *_: True
        self._held_emails: set[str] = set()

    def hold(self, numbers: set[str], emails: set[str]) -> None:
        """Pool ``numbers`` (E.164) and ``emails`` that people of the list hold: no canary
        takes them from here on (a canary sharing one would make them look a canary)."""
        self._numbers_order = [n for n in self._numbers_order if n.e164 not in numbers]
        self._held_emails |= emails

    def rename(self, canary: GeneratedCanary) -> bool:
        """Give a made canary another sex and name of its generation, at the same place, one
        ``name_clear`` accepts, and rewrite the cells that follow (its mail address among
        them). False when none is found: the canary must be made again."""
        p, r = canary.person, self.rng
        code = p.place.postcode
        for _ in range(100):
            sex = "M" if r.random() < self.profile.male_share else "F"
            surname = self.names.surnames.draw(r)
            given = self.names.given_for(sex, p.birth.year).draw(r)
            nk, kk = name_key(surname.kanji + given.kanji), kana_key(surname.kana + given.kana)
            if not self.encodable(surname.kanji + given.kanji) or (
                {(nk, code), (kk, code)} & self._identities or self.identity_taken(nk, kk, code)
            ):
                continue
            if not self.name_clear(code, surname.kanji, given.kanji, surname.kana, given.kana):
                continue
            self._identities |= {(nk, code), (kk, code)}
            p.sex, p.surname, p.given = sex, surname.kanji, given.kanji
            p.surname_kana, p.given_kana = surname.kana, given.kana
            if p.email is not None:
                p.email = self._email(p.surname_kana, p.given_kana, p.birth)
            self._rewrite(canary, _NAME_ROLES | {"sex", "email"})
            return True
        return False

    def renumber(self, canary: GeneratedCanary, held: Callable[[str], bool]) -> None:
        """Give a made canary other pool numbers for those ``held`` by people of the list
        (none, when every number of the export is held)."""
        p = canary.person
        old = (p.phone.e164 if p.phone else None, p.phone2.e164 if p.phone2 else None)
        if p.phone is not None and held(p.phone.e164):
            p.phone = self._number()
        if p.phone2 is not None and held(p.phone2.e164):
            p.phone2 = self._number()
            if p.phone2 == p.phone:
                p.phone2 = None
        for j, c in enumerate(self.profile.columns):
            if c.role not in ("phone", "mobile") or not canary.row[j]:
                continue
            written = phone_e164(canary.row[j])
            if written is None or written not in old:
                continue
            number = p.phone if written == old[0] else p.phone2
            style = c.style if isinstance(c.style, PhoneStyle) else PhoneStyle()
            canary.row[j] = style.render(number.e164) if number else ""
            canary.fields[c.name] = canary.row[j]

    def restreet(self, canary: GeneratedCanary, towns: Mapping[str, Sequence[StreetShape]]) -> None:
        """Number a made canary as one more of the people at its postcode, ``towns``
        holding the block numbers of everyone at each canary's postcode (see
        Streets.among); unchanged when none is found."""
        people = towns.get(canary.person.place.postcode, [])
        street = self.streets.among(people, towns)
        if street is not None:
            canary.person.street = street
            self._rewrite(canary, {"address", "address2", "street"})

    def reemail(self, canary: GeneratedCanary) -> None:
        """Give a made canary another mail address (see ``hold``)."""
        p = canary.person
        p.email = self._email(p.surname_kana, p.given_kana, p.birth)
        self._rewrite(canary, {"email"})

    def _rewrite(self, canary: GeneratedCanary, roles: set[str]) -> None:
        for j, c in enumerate(self.profile.columns):
            if c.role in roles:
                canary.row[j] = self._fill(c, canary.person)
                canary.fields[c.name] = canary.row[j]

    # -- drawing the person -------------------------------------------------------------

    def _birth(self, sex: str) -> date:
        years = self.profile.birth_years
        if years:
            year = self.rng.choice(years) + self.rng.randint(-2, 2)
        else:
            year = int(self.rng.triangular(1938, self.today.year - 20, 1972))
        year = min(max(year, 1920), self.today.year - 1)
        start = date(year, 1, 1)
        return start + timedelta(days=self.rng.randrange(365))

    def _place(self) -> Place:
        prof = self.profile
        # In a local list people share postcodes, and a canary is one more neighbour, at a
        # postcode drawn as the profile saw them, shifted so that it is no more crowded
        # than anyone's (see PostcodeDraw; at a postcode the profile saw, it is numbered
        # like its neighbours, see Streets); in a list where postcodes seldom repeat, a
        # canary sharing one would stand out, so it takes another postcode of the same
        # district, in a city as many of the district's people live in (DistrictPlaces).
        if self._local_codes is None:  # judged once per seed, not per canary
            repeat = postcodes_repeat(prof.postcodes, prof.sampled_share)
            self._local_codes = PostcodeDraw(prof.postcodes if repeat else Counter(), self._city_of)
            self._districts = DistrictPlaces(prof.postcodes, self.places, prof.prefectures)
        if self._local_codes.codes:
            code, unseen = self._local_codes.draw(self.rng)
            place = self.places.lookup(code)
            if place is not None and unseen:
                place = self._unseen_near(place) or place
            if place is not None:
                return place
        for _ in range(20):
            if prof.postcodes:
                found = self._districts.draw(self.rng)
                candidates = [found] if found is not None else []
            elif prof.prefectures:
                pref = self.rng.choices(
                    list(prof.prefectures), weights=list(prof.prefectures.values())
                )[0]
                candidates = self.places.in_area(pref)
            else:
                return self.places.anywhere(self.rng)
            if candidates:
                return self.rng.choice(candidates)
        return self.places.anywhere(self.rng)

    def _city_of(self, postcode: str) -> str | None:
        place = self.places.lookup(postcode)
        return place.city if place is not None else None

    def _unseen_near(self, place: Place) -> Place | None:
        """A place of the same city and district whose postcode the profile did not see."""
        key = (place.postcode[:3], place.city)
        if key not in self._unseen:
            self._unseen[key] = [
                p
                for p in self.places.near(key[0])
                if p.city == place.city
                and p.prefecture == place.prefecture
                and p.postcode not in self.profile.postcodes
            ]
        candidates = self._unseen[key]
        return self.rng.choice(candidates) if candidates else None

    def _building(self, place: Place) -> str:
        pattern = self.names.buildings.draw(self.rng)
        floor = self.rng.choices(
            [1, 2, 3, 4, 5, 6, 7, 8, 10, 12], weights=[26, 26, 16, 10, 8, 5, 3, 3, 2, 1]
        )[0]
        room = f"{floor}{self.rng.randint(1, 8):02d}"
        town = place.town.rstrip("町")
        return pattern.format(
            place=town,
            surname=self.names.surnames.draw(self.rng).kanji,
            word=self.rng.choice(self.names.building_words),
            n=room,
        )

    def _number(self) -> PoolNumber | None:
        if not self._numbers_order:
            return None
        number = self._numbers_order[self._next_number % len(self._numbers_order)]
        self._next_number += 1
        return number

    def _email(self, surname_kana: str, given_kana: str, birth: date) -> str:
        r = self.rng
        # The address takes the shape of one of the list's own addresses, drawn as often
        # as each shape is there (see canary.localparts); without a reading in the list, as many
        # hold the person's name as the list's do.
        for attempt in range(30):
            local = self._locals.draw(surname_kana, given_kana, birth)
            if attempt >= 3:
                local = f"{local}{r.randint(1, 9999)}"
            address = f"{local}@{r.choice(self.domains)}"
            if address in self._used_emails or self.emails_taken([address]):
                continue
            if address in self._held_emails:
                continue
            self._used_emails.add(address)
            return address
        raise RuntimeError("could not find a free email local part")  # pragma: no cover

    def person(self) -> Person:
        for _ in range(100):
            sex = "M" if self.rng.random() < self.profile.male_share else "F"
            birth = self._birth(sex)
            surname = self.names.surnames.draw(self.rng)
            given = self.names.given_for(sex, birth.year).draw(self.rng)
            place = self._place()
            address_col = (
                self.profile.column("address")
                or self.profile.column("address2")
                or self.profile.column("street")
            )
            style = address_col.street_style if address_col else "dash"
            street = self.streets.draw(place, style, address_col)
            building_share = address_col.building_share if address_col else 0.3
            building_col = self.profile.column("building")
            if building_col is not None:
                building_share = 1 - building_col.blank_share
            building = self._building(place) if self.rng.random() < building_share else ""
            text = f"{surname.kanji}{given.kanji}{place}{building}"
            if not self.encodable(text):
                continue
            nk, kk = name_key(surname.kanji + given.kanji), kana_key(surname.kana + given.kana)
            if {
                (nk, place.postcode),
                (kk, place.postcode),
            } & self._identities or self.identity_taken(nk, kk, place.postcode):
                continue
            if not self.name_clear(
                place.postcode, surname.kanji, given.kanji, surname.kana, given.kana
            ):
                continue
            self._identities |= {(nk, place.postcode), (kk, place.postcode)}
            return Person(
                surname.kanji,
                given.kanji,
                surname.kana,
                given.kana,
                sex,
                birth,
                place,
                street,
                building,
                None,
                None,
                None,
            )
        raise RuntimeError("no encodable person found")  # pragma: no cover

    def age_like(self, canary: GeneratedCanary, rows: Sequence[Sequence[str]]) -> None:
        """Give a made canary the birth year of one of ``rows`` (its neighbours in the
        file, not stored), a day of that year, a given name of that generation and a
        mail address to match, and rewrite the cells that follow from them. In a list
        whose order follows age (members in order of joining), a birth drawn from the
        whole list's mix stands out against the neighbours' and the join date."""
        col = self.profile.schema.column_of("birth_date")
        if col is None:
            return
        years = [y for r in rows if col < len(r) and (y := year_of(r[col])) and y > 1900]
        if len(years) < 10:
            return
        p, r = canary.person, self.rng
        for _ in range(20):
            year = min(max(r.choice(years), 1920), self.today.year - 1)
            given = self.names.given_for(p.sex, year).draw(r)
            nk = name_key(p.surname + given.kanji)
            kk = kana_key(p.surname_kana + given.kana)
            code = p.place.postcode
            if not self.encodable(given.kanji) or (
                {(nk, code), (kk, code)} & self._identities or self.identity_taken(nk, kk, code)
            ):
                continue
            if not self.name_clear(code, p.surname, given.kanji, p.surname_kana, given.kana):
                continue
            self._identities |= {(nk, code), (kk, code)}
            p.birth = date(year, 1, 1) + timedelta(days=r.randrange(365))
            p.given, p.given_kana = given.kanji, given.kana
            break
        else:
            return
        if p.email is not None:
            p.email = self._email(p.surname_kana, p.given_kana, p.birth)
        for j, c in enumerate(self.profile.columns):
            if c.role in _AGE_ROLES:
                canary.row[j] = self._fill(c, p)
                canary.fields[c.name] = canary.row[j]

    # -- writing the row -----------------------------------------------------------------

    def exclude_ids(self, ids: set[int]) -> None:
        """Host IDs known to exist; canaries will not take them."""
        self._excluded_ids |= ids

    def id_taken(self, n: int) -> bool:
        """Whether ID ``n`` is a host's (as far as known) or another canary's."""
        return n in self._used_ids or n in self._excluded_ids

    def set_id(self, canary: GeneratedCanary, col: int, n: int) -> None:
        """Give a made canary ID ``n`` (in its row, fields and person)."""
        style = self.profile.columns[col].style
        if not isinstance(style, IdStyle):
            return
        old = canary.person.id_number
        if old is not None:
            self._used_ids.discard(old)
        self._used_ids.add(n)
        canary.person.id_number = n
        canary.row[col] = style.render(n)
        canary.fields[self.profile.columns[col].name] = canary.row[col]

    def set_id_range(self, count: int, low: int, high: int) -> None:
        """The whole ID column's count and range (the sample only shows its start)."""
        self._id_span = (count, low, high)

    def _id(self, style: IdStyle) -> int:
        count, low, high = getattr(self, "_id_span", (0, style.low, style.high))
        dense = count > 0.9 * (high - low + 1)
        if not dense:
            for _ in range(200):
                n = self.rng.randint(low, high)
                if n not in self._used_ids and n not in self._excluded_ids:
                    self._used_ids.add(n)
                    return n
        # Every ID in the range is taken: continue the sequence past its end, as the
        # host's own next records would.
        n = high + 1 + self.rng.randrange(max(3, count // 1000 + 3))
        while n in self._used_ids or n in self._excluded_ids:
            n += 1
        self._used_ids.add(n)
        return n

    def _fill(self, col: ColumnProfile, p: Person) -> str:
        role, r = col.role, self.rng
        # Mostly blank columns stay mostly blank; a building and the free columns decide
        # their blanks themselves (blanking them here too blanked them twice). A website is
        # a token when a zone is configured, else a free column.
        if (
            role not in _TOKEN_ROLES | _NAME_ROLES | {"building", "other", "url"}
            and col.blank_share > 0.5
            and r.random() < col.blank_share
        ):
            return ""
        if role == "name":
            style = col.style if isinstance(col.style, NameStyle) else NameStyle()
            return style.render(p.surname, p.given, r)
        if role == "surname":
            return p.surname
        if role == "given":
            return p.given
        if role in ("kana", "kana_surname", "kana_given"):
            kstyle = col.style if isinstance(col.style, KanaStyle) else KanaStyle()
            if role == "kana":
                return kstyle.render(p.surname_kana, p.given_kana, r)
            if p.kana_script is None:  # one script for both halves of a split reading
                p.kana_script = kstyle.pick_script(r)
            kana = p.surname_kana if role == "kana_surname" else p.given_kana
            return kstyle.convert(kana, p.kana_script)
        if role == "romaji":
            rstyle = col.style if isinstance(col.style, RomajiStyle) else RomajiStyle()
            return rstyle.render(to_romaji(p.surname_kana).title(), to_romaji(p.given_kana).title())
        if role == "sex":
            sstyle = col.style if isinstance(col.style, SexStyle) else SexStyle()
            return sstyle.render(p.sex)
        if role == "birth_date":
            dstyle = col.style if isinstance(col.style, DateStyle) else DateStyle()
            return dstyle.render(p.birth.isoformat())
        if role == "age":
            b, t = p.birth, self.today
            return str(t.year - b.year - ((t.month, t.day) < (b.month, b.day)))
        if role == "postcode":
            pstyle = col.style if isinstance(col.style, PostcodeStyle) else PostcodeStyle()
            return pstyle.render(p.place.postcode)
        if role in ("phone", "mobile"):
            number = p.phone if col is self._primary_phone_col else p.phone2
            if number is None:
                return ""
            phstyle = col.style if isinstance(col.style, PhoneStyle) else PhoneStyle()
            return phstyle.render(number.e164)
        if role == "email":
            return p.email or ""
        if role == "url" and self.websites is not None:
            # As many canaries as people leave it blank (at most half): a website on every
            # canary of a mostly blank column would single them out.
            if p.hostname is None and r.random() < min(0.5, col.blank_share):
                return ""
            if p.hostname is None:
                p.hostname = self.websites.hostname(r)
            return self.websites.write(p.hostname, r)
        if role == "id":
            istyle = col.style if isinstance(col.style, IdStyle) else None
            if istyle is None:
                return ""
            if p.id_number is None:
                p.id_number = self._id(istyle)
            return istyle.render(p.id_number)
        return self._address_part(col, p) if role in _ADDRESS_ROLES else self._other(col)

    def _address_part(self, col: ColumnProfile, p: Person) -> str:
        pl = p.place
        fw = (lambda s: s.translate(_FW)) if col.fullwidth else (lambda s: s)
        pref = pl.prefecture if col.includes_prefecture else ""
        sep = "\u3000"
        if len(col.building_seps) > 1:
            sep = self.rng.choices(
                [k for k, _ in col.building_seps], weights=[w for _, w in col.building_seps]
            )[0]
        building = f"{sep}{p.building}" if p.building else ""
        has_building_col = self.profile.column("building") is not None
        if col.role == "prefecture":
            return pl.prefecture
        if col.role == "city":
            return pl.city
        if col.role == "town":
            return pl.town
        if col.role == "street":
            return fw(p.street) + ("" if has_building_col else building)
        if col.role == "building":
            return p.building
        if col.role == "address1":
            return f"{pref}{pl.city}{pl.town}"
        if col.role == "address2":
            return fw(p.street) + ("" if has_building_col else building)
        tail = "" if has_building_col else building
        if self.profile.column("prefecture") is not None:
            pref = ""
        return f"{pref}{pl.city}{pl.town}{fw(p.street)}{tail}"

    def _other(self, col: ColumnProfile) -> str:
        # Only values many host rows share are reused; free text is never copied.
        if not col.values or self.rng.random() < col.blank_share:
            return ""
        return self.rng.choices(list(col.values), weights=list(col.values.values()))[0]

    def make(self) -> GeneratedCanary:
        p = self.person()
        prof = self.profile
        phone_cols = [c for c in prof.columns if c.role in ("phone", "mobile")]
        p.phone = self._number()
        # As many canaries as people lack a phone (a canary without one still has its name
        # and address, found by scans and letters); never more than half.
        main = next((c for c in phone_cols if c.role == "phone"), None) or (
            phone_cols[0] if phone_cols else None
        )
        if main is not None and self.rng.random() < min(0.5, main.blank_share):
            p.phone = None
        self._primary_phone_col = None
        if phone_cols and p.phone is not None:
            by_role = {c.role: c for c in phone_cols}
            if p.phone.kind == "mobile" and "mobile" in by_role:
                self._primary_phone_col = by_role["mobile"]
            else:
                self._primary_phone_col = by_role.get("phone") or phone_cols[0]
            others = [c for c in phone_cols if c is not self._primary_phone_col]
            if others and others[0].blank_share < 0.5 and len(self.numbers) > 1:
                p.phone2 = self._number()
                if p.phone2 == p.phone:
                    p.phone2 = self._number()
        email_col = prof.column("email")
        wants_email = email_col is not None and self.domains and prof.email_share > 0.05
        if wants_email and self.rng.random() < max(prof.email_share, 0.3):
            p.email = self._email(p.surname_kana, p.given_kana, p.birth)
        row = [self._fill(col, p) for col in prof.columns]
        fields = dict(zip((c.name for c in prof.columns), row, strict=True))
        return GeneratedCanary(p, row, fields)


# The cells that follow from a canary's birth and given name.
_AGE_ROLES = {"name", "given", "kana", "kana_given", "romaji", "birth_date", "age", "email"}
_ADDRESS_ROLES = {
    "address",
    "address1",
    "address2",
    "prefecture",
    "city",
    "town",
    "street",
    "building",
}
