"""The host list's people a seed's canaries must stay clear of: found after the canaries are
made, by the one columnar pass over the list that checks their IDs (canary.hostpass).

A canary is told apart from the people of its list by its keys: name or reading with the
postcode, phone number, email address (see DESIGN.md, Attribution). A canary that shared
one with a real person of the same list would make that person look like a canary at scan
time. The registry only knows canaries (invariant 3: no real person is stored), so the
pass keeps, in memory for the length of one seed and never written anywhere, only the keys
that could collide: the names and readings at the canaries' postcodes, the pool numbers
and the pool-domain addresses the list's people hold. It keeps too the block numbers of
the people at the canaries' postcodes (numbers only, no name, building or room), so that a
canary is numbered as one more neighbour among all of them (see canary.nearby.in_gap).

Names and readings are read exactly and compared by ``canary.normalize``. Only when the
pass could not find the people's own lines (see canary.hostpass) are those of a CP932 or
EUC-JP list read lossy; a canary's name and reading are then written every way the list
might write them (spaces, widths, scripts, variant kanji), encoded and decoded the same
lossy way, and any equal to a person's at the same postcode counts as a collision: a
false one (lossy forms of different names can be equal) only costs a redraw.
"""

from __future__ import annotations

import io
import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import jaconv

from canary.normalize import _KANJI_VARIANTS, email_key, kana_key, name_key, postcode_key
from canary.profile import StreetShape, street_shape

if TYPE_CHECKING:
    from canary.schema import Schema

PHONE_ROLES = ("phone", "mobile")
_SPACES = ("", " ", "\u3000")
_ASCII_SPACE = re.compile(r"[ \t\r\n]+")
_FOLDED_FROM: dict[str, list[str]] = {}
for _k, _v in _KANJI_VARIANTS.items():
    _FOLDED_FROM.setdefault(str(_v), []).append(chr(_k))
MAX_SPELLINGS = 32  # variant-kanji spellings of one name part, at most


@dataclass(frozen=True)
class Columns:
    """The columns (indices) of each kind of key in a list's schema."""

    id: int | None
    postcodes: tuple[int, ...]
    phones: tuple[int, ...]
    emails: tuple[int, ...]
    names: tuple[int, ...]  # the whole name, or surname then given name
    kanas: tuple[int, ...]  # the same for the reading
    street: int | None = None  # the column holding the block number (address, address2, street)

    @property
    def split_name(self) -> bool:
        return len(self.names) > 1

    @property
    def split_kana(self) -> bool:
        return len(self.kanas) > 1

    @classmethod
    def of(cls, schema: Schema) -> Columns:
        roles = list(schema.roles)

        def cols(*wanted: str) -> tuple[int, ...]:
            return tuple(i for i, r in enumerate(roles) if r in wanted)

        def person(whole: str, first: str, second: str) -> tuple[int, ...]:
            if whole in roles:
                return (roles.index(whole),)
            parts = [roles.index(r) for r in (first, second) if r in roles]
            return tuple(parts)

        return cls(
            schema.column_of("id"),
            cols("postcode"),
            cols(*PHONE_ROLES),
            cols("email"),
            person("name", "surname", "given"),
            person("kana", "kana_surname", "kana_given"),
            next(
                (
                    i
                    for r in ("address", "address2", "street")
                    if (i := schema.column_of(r)) is not None
                ),
                None,
            ),
        )


@dataclass(frozen=True)
class Probe:
    """What one pass looks for: these IDs, every row at these postcodes (seven digits),
    holding these phone numbers (national digits, and as 81...) or an email address on
    these domains."""

    ids: frozenset[str] = frozenset()
    postcodes: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ids or self.postcodes or self.phones or self.domains)


def national_forms(e164s: Iterable[str]) -> frozenset[str]:
    """The digits a list may hold for each +81 number: 0... and 81..."""
    out: set[str] = set()
    for e in e164s:
        if e.startswith("+81"):
            out |= {"0" + e[3:], e[1:]}
    return frozenset(out)


def national(digits: str) -> str:
    """A phone cell's digits as national digits (81... to 0...)."""
    if digits.startswith("81") and len(digits) in (11, 12):
        return "0" + digits[2:]
    return digits


@dataclass
class Found:
    """What the passes so far found in the list (in memory, for one seed only)."""

    ids: set[str] = field(default_factory=set)  # of the IDs looked for, those held
    phones: set[str] = field(default_factory=set)  # pool numbers held, national digits
    emails: set[str] = field(default_factory=set)  # pool-domain addresses held, folded
    names: dict[str, set[str]] = field(default_factory=dict)  # postcode → name keys there
    kanas: dict[str, set[str]] = field(default_factory=dict)  # postcode → reading keys
    # Names and readings only the lossy pass read (see the module docstring).
    lossy_names: dict[str, set[str]] = field(default_factory=dict)
    lossy_kanas: dict[str, set[str]] = field(default_factory=dict)
    # postcode → the block numbers of the people there, one per person (read exactly only)
    streets: dict[str, list[StreetShape]] = field(default_factory=dict)
    # postcode → its city and town as the canaries' places write them (NFKC), set by the
    # check: the block number is read after them (a town's name may hold digits: 秋月１条)
    towns: dict[str, str] = field(default_factory=dict)
    seen: Probe = field(default_factory=Probe)  # everything looked for so far
    _keys: dict[tuple[str, bool], str] = field(default_factory=dict, repr=False)
    _streets_read: dict[tuple[str, str], StreetShape | None] = field(
        default_factory=dict, repr=False
    )

    def add_row(self, postcode: str | None, name: str, kana: str, lossy: bool = False) -> None:
        """One person at a postcode looked for (``name``, ``kana``: its cells joined, as
        decoded exactly, or ``lossy``)."""
        if postcode is None:
            return
        if lossy:
            name, kana = _ASCII_SPACE.sub("", name), _ASCII_SPACE.sub("", kana)
            names, kanas = self.lossy_names, self.lossy_kanas
        else:  # people's names repeat: each key is made once
            name = self._keys.get((name, False)) or self._keys.setdefault(
                (name, False), name_key(name)
            )
            kana = self._keys.get((kana, True)) or self._keys.setdefault(
                (kana, True), kana_key(kana)
            )
            names, kanas = self.names, self.kanas
        if name:
            names.setdefault(postcode, set()).add(name)
        if kana:
            kanas.setdefault(postcode, set()).add(kana)

    def add_street(self, postcode: str | None, address: str | None, people: int = 1) -> None:
        """The block number of ``people`` at a postcode looked for, from their address
        cell as decoded exactly (nothing without one)."""
        if postcode is None or not address:
            return
        town = self.towns.get(postcode, "")
        key = (town, address)  # a list repeats addresses (households, one person twice)
        if key not in self._streets_read:
            text = unicodedata.normalize("NFKC", address)
            if town and (at := text.find(town)) >= 0:
                text = text[at + len(town) :]
            self._streets_read[key] = street_shape(text)
        shape = self._streets_read[key]
        if shape is not None:
            self.streets.setdefault(postcode, []).extend([shape] * people)

    def looked_for(self, probe: Probe) -> None:
        s = self.seen
        self.seen = Probe(
            s.ids | probe.ids,
            s.postcodes | probe.postcodes,
            s.phones | probe.phones,
            tuple(dict.fromkeys((*s.domains, *probe.domains))),
        )


def python_found(rows: Iterable[Sequence[str]], cols: Columns, probe: Probe, found: Found) -> None:
    """Add to ``found`` what ``rows`` (decoded exactly) hold of ``probe``: for an Excel
    list, or a text list polars would not parse."""

    def cell(r: Sequence[str], i: int) -> str:
        return r[i] if i < len(r) and r[i] is not None else ""

    domains = tuple("@" + d.lower() for d in probe.domains)
    for r in rows:
        if cols.id is not None and (v := cell(r, cols.id).strip()) in probe.ids:
            found.ids.add(v)
        for i in cols.phones:
            digits = national(re.sub(r"\D", "", jaconv.z2h(cell(r, i), digit=True)))
            if digits in probe.phones:
                found.phones.add(digits)
        for i in cols.emails:
            if (address := email_key(cell(r, i))).endswith(domains) and domains:
                found.emails.add(address)
        for i in cols.postcodes:
            code = postcode_key(cell(r, i))
            if code in probe.postcodes:
                name = "".join(cell(r, j) for j in cols.names)
                found.add_row(code, name, "".join(cell(r, j) for j in cols.kanas))
                if cols.street is not None:
                    found.add_street(code, cell(r, cols.street))
    found.looked_for(probe)


def lossy(texts: Sequence[str], encoding: str) -> list[str]:
    """``texts`` as the pass reads them from a list in ``encoding``: encoded, then decoded
    by polars as lossy UTF-8 with the pass's own reader (a tiny in-memory CSV)."""
    import polars as pl

    if not texts:
        return []
    data = b"".join(b"x" + t.encode(encoding) + b"\n" for t in texts)
    frame = pl.read_csv(
        io.BytesIO(data),
        has_header=False,
        separator="\x1f",
        quote_char=None,
        encoding="utf8-lossy",
        schema={"t": pl.String},
    )
    # A leading x keeps every line non-empty; ASCII ends any multi-byte sequence, so it
    # does not change how the text after it decodes.
    return [v[1:] for v in frame["t"].to_list()]


def spellings(part: str) -> list[str]:
    """``part`` with each variant kanji folded and unfolded (as far as MAX_SPELLINGS)."""
    options = []
    for ch in part:
        folded = ch.translate(_KANJI_VARIANTS)
        options.append(list(dict.fromkeys([ch, folded, *_FOLDED_FROM.get(folded, [])])))
    return ["".join(p) for p in itertools.islice(itertools.product(*options), MAX_SPELLINGS)]


def _scripts(kana: str) -> list[str]:
    kata = jaconv.hira2kata(kana)
    return [kata, jaconv.kata2hira(kata), jaconv.z2h(kata, kana=True, ascii=False, digit=False)]


class Checker:
    """Whether a canary's name or reading is a person's at its postcode, by what the
    passes found; ``encoding`` is the list's (ignored when found exactly)."""

    def __init__(self, found: Found, cols: Columns, encoding: str) -> None:
        self.found, self.cols, self.encoding = found, cols, encoding

    def _written(self, forms: list[list[str]], split: bool) -> set[str]:
        """Lossy forms of a name (or reading) of two ``parts`` as the list may write it:
        ``forms`` are each part's spellings; split: the parts in two cells."""
        enc = self.encoding
        first = [f for f in forms[0] if _encodable(f, enc)]
        second = [f for f in forms[1] if _encodable(f, enc)]
        if split:  # each cell decodes alone (delimiters are ASCII)
            a, b = lossy(first, enc), lossy(second, enc)
            texts = [x + y for x, y in itertools.product(a, b)]
        else:
            whole = [x + s + y for x, y in itertools.product(first, second) for s in _SPACES]
            texts = lossy([t for t in whole if _encodable(t, enc)], enc)
        return {_ASCII_SPACE.sub("", t) for t in texts if t}

    def name_clear(
        self, postcode: str, surname: str, given: str, surname_kana: str, given_kana: str
    ) -> bool:
        """Whether no person the passes found at ``postcode`` has this name or reading."""
        f = self.found
        if name_key(surname + given) in f.names.get(postcode, ()):
            return False
        if kana_key(surname_kana + given_kana) in f.kanas.get(postcode, ()):
            return False
        names = f.lossy_names.get(postcode, set())
        kanas = f.lossy_kanas.get(postcode, set())
        if names:
            forms = [spellings(surname), spellings(given)]
            if self._written(forms, self.cols.split_name) & names:
                return False
        if kanas:
            forms = [_scripts(surname_kana), _scripts(given_kana)]
            if self._written(forms, self.cols.split_kana) & kanas:
                return False
        return True

    def phone_held(self, e164: str | None) -> bool:
        return bool(e164) and bool(national_forms([str(e164)]) & self.found.phones)

    def email_held(self, address: str | None) -> bool:
        return bool(address) and email_key(str(address)) in self.found.emails


def _encodable(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True
