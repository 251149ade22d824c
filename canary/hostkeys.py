"""The host list's own people as keys a canary must not share, hashed, in memory, per seed.

A canary is told apart from the people of its list by its keys: name or reading with the
postcode, phone number, email address (see DESIGN.md, Attribution). A canary that shared
one with a real person of the same list would make that person look like a canary at scan
time, and point an investigator at them. The registry only knows canaries (invariant 3:
no real person is stored), so the seed reads the whole list once, columnar, and keeps its
people's keys as bits of a Bloom filter: hashes, never the values, in memory for the
length of one seed and bounded in size whatever the list's. A generated canary whose key
is in it is drawn again; a false positive (a key the list does not hold) only costs a draw.

Keys are normalised by one set of polars expressions for the list and for the canary, so
that the two are hashed alike: full-width and half-width forms folded as NFKC would, no
spaces, hiragana as katakana, variant kanji folded (as ``canary.normalize``), seven
postcode digits, national phone digits, lower-case addresses.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canary.normalize import _KANJI_VARIANTS

if TYPE_CHECKING:
    import polars as pl

    from canary.csvfile import Head
    from canary.schema import Schema

_HIRAGANA = [chr(c) for c in range(0x3041, 0x3097)] + ["ゝ", "ゞ"]
_KATAKANA = [chr(c + 0x60) for c in range(0x3041, 0x3097)] + ["ヽ", "ヾ"]
_VARIANTS = {chr(k): v for k, v in _KANJI_VARIANTS.items()}


def _fold_table() -> dict[str, str]:
    """What NFKC does to the characters lists hold, as plain replacements (polars' NFKC
    cost 7 us a value, a seed's whole time over again): full-width ASCII to ASCII,
    half-width kana to full-width, a voiced mark joined to its kana (pairs first: the
    replacements take the first pattern that matches)."""
    half = [chr(c) for c in range(0xFF61, 0xFFA0)]
    pairs = {a + m: unicodedata.normalize("NFKC", a + m) for a in half for m in "\uff9e\uff9f"}
    out = {k: v for k, v in pairs.items() if len(v) == 1}
    out.update({c: unicodedata.normalize("NFKC", c) for c in half})
    out.update({chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)})
    return out


_FOLD = _fold_table()
MAX_BITS = 1 << 28  # 32 MiB, whatever the list's size: about 2 % false positives at 10^7 rows
BITS_PER_KEY = 16  # below MAX_BITS: about 1.4 % false positives with two bits a key
PHONE_ROLES = ("phone", "mobile")
ROLES = ("name", "surname", "given", "kana", "kana_surname", "kana_given", "postcode", "email")


@dataclass(frozen=True)
class Person:
    """A canary's keys as its row writes them (any form: they are normalised here)."""

    name: str
    kana: str
    postcode: str
    phones: tuple[str, ...] = ()  # E.164 or as written
    email: str | None = None


def _exprs(columns: dict[str, list[str]]) -> list[pl.Expr]:
    """The key expressions of one frame whose columns for each role are ``columns``:
    prefixed by kind (a name never meets a phone), null where a key cannot be made."""
    import polars as pl

    def text(cols: list[str]) -> pl.Expr | None:
        if not cols:
            return None
        joined = pl.concat_str([pl.col(c).fill_null("") for c in cols])
        return joined.str.replace_many(_FOLD).str.replace_all(r"\s", "")

    def name_of(whole: str, parts: tuple[str, str]) -> list[str]:
        if whole in columns:
            return columns[whole]
        return [c for p in parts for c in columns.get(p, [])]

    out: list[pl.Expr] = []
    postcode = text(columns.get("postcode", []))
    if postcode is not None:
        code = postcode.str.replace_all(r"[^0-9]", "")
        code = pl.when(code.str.len_chars() == 7).then(code)
        name = text(name_of("name", ("surname", "given")))
        if name is not None:
            name = name.str.replace_many(_VARIANTS)
            out.append(_keyed("n", name, code))
        kana = text(name_of("kana", ("kana_surname", "kana_given")))
        if kana is not None:
            kana = kana.str.replace_many(_HIRAGANA, _KATAKANA)
            out.append(_keyed("k", kana, code))
    for i, col in enumerate(columns.get("phone", [])):
        digits = pl.col(col).str.replace_many(_FOLD).str.replace_all(r"[^0-9]", "")
        national = (
            pl.when(digits.str.starts_with("81") & digits.str.len_chars().is_in([11, 12]))
            .then(pl.lit("0") + digits.str.slice(2))
            .otherwise(digits)
        )
        out.append(_keyed("p", national, None, f"p{i}"))
    for i, col in enumerate(columns.get("email", [])):
        address = pl.col(col).str.replace_many(_FOLD).str.strip_chars().str.to_lowercase()
        out.append(_keyed("e", pl.when(address.str.contains("@")).then(address), None, f"e{i}"))
    return out


def _keyed(kind: str, value: pl.Expr, postcode: pl.Expr | None, alias: str = "") -> pl.Expr:
    import polars as pl

    value = pl.when(value.str.len_chars() > 0).then(value)
    parts = [pl.lit(kind), value] + ([postcode] if postcode is not None else [])
    key = pl.concat_str(parts, separator="|")
    # polars hashes a null too (to one constant): a missing key must stay missing.
    return pl.when(key.is_not_null()).then(key.hash(seed=7)).alias(alias or kind)


class HostKeys:
    """The keys of a host list's people, as two bits each of a table of ``bits`` bits."""

    def __init__(self, bits: int) -> None:
        size = 1 << max(16, (max(1, bits) - 1).bit_length())
        self.mask = np.uint64(min(size, MAX_BITS) - 1)
        self.table = np.zeros((int(self.mask) + 1) // 8, dtype=np.uint8)
        self.rows = 0

    def _bits(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = hashes.astype(np.uint64)
        both = np.concatenate([h & self.mask, (h >> np.uint64(32)) & self.mask])
        return (both >> np.uint64(3)).astype(np.int64), (1 << (both & np.uint64(7))).astype(
            np.uint8
        )

    def add(self, hashes: np.ndarray) -> None:
        at, bit = self._bits(hashes)
        np.bitwise_or.at(self.table, at, bit)

    def holds(self, hashes: np.ndarray) -> np.ndarray:
        """For each hash, whether the list (probably) holds its key."""
        at, bit = self._bits(hashes)
        hit = (self.table[at] & bit) != 0
        half = len(hashes)
        return hit[:half] & hit[half:]

    def add_frame(self, frame: pl.DataFrame, columns: dict[str, list[str]]) -> None:
        exprs = _exprs(columns)
        self.rows += frame.height
        if not exprs or not frame.height:
            return
        keys = frame.lazy().select(exprs).collect()  # lazy: shared parts computed once
        for series in keys.get_columns():
            self.add(series.drop_nulls().to_numpy())

    def taken(self, person: Person) -> bool:
        """Whether any key of ``person`` is (probably) a host's."""
        import polars as pl

        data: dict[str, list[str | None]] = {
            "name": [person.name],
            "kana": [person.kana],
            "postcode": [person.postcode],
        }
        columns: dict[str, list[str]] = {
            "name": ["name"],
            "kana": ["kana"],
            "postcode": ["postcode"],
        }
        for i, phone in enumerate(person.phones):
            data[f"p{i}"] = [phone]
            columns.setdefault("phone", []).append(f"p{i}")
        if person.email:
            data["e"] = [person.email]
            columns["email"] = ["e"]
        keys = pl.DataFrame(data, schema={k: pl.String for k in data}).select(_exprs(columns))
        hashes = np.concatenate([s.drop_nulls().to_numpy() for s in keys.get_columns()])
        return bool(len(hashes)) and bool(self.holds(hashes).any())

    def phones_taken(self, phones: Sequence[str]) -> set[str]:
        """Which of ``phones`` (E.164 or as written) the list holds."""
        return {p for p in phones if self.taken(Person("", "", "", (p,)))}


def _role_columns(schema: Schema) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, role in enumerate(schema.roles):
        if role in ROLES:
            out.setdefault(role, []).append(i)
        elif role in PHONE_ROLES:
            out.setdefault("phone", []).append(i)
    return out


def _named(by_role: dict[str, list[int]]) -> dict[str, list[str]]:
    return {role: [f"c{i}" for i in cols] for role, cols in by_role.items()}


def from_rows(schema: Schema, rows: Iterable[Sequence[str]], expected: int) -> HostKeys:
    """The keys of ``rows`` (data rows of a list with ``schema``), in batches."""
    import polars as pl

    by_role = _role_columns(schema)
    wanted = sorted({i for cols in by_role.values() for i in cols})
    keys = HostKeys(BITS_PER_KEY * 2 * max(1, expected))
    names = _named(by_role)

    def frame(batch: list[Sequence[str]]) -> pl.DataFrame:
        return pl.DataFrame(
            {f"c{i}": [r[i] if i < len(r) else "" for r in batch] for i in wanted},
            schema={f"c{i}": pl.String for i in wanted},
        )

    batch: list[Sequence[str]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= 50_000:
            keys.add_frame(frame(batch), names)
            batch = []
    if batch:
        keys.add_frame(frame(batch), names)
    return keys


def from_text(path: Path, head: Head, schema: Schema, start: int, expected: int) -> HostKeys:
    """The keys of every data row of a delimited list (from byte ``start``), read
    columnar in blocks (see canary.scan.readers): only the key columns are parsed."""
    import polars as pl

    from canary.scan import readers

    by_role = _role_columns(schema)
    wanted = sorted({i for cols in by_role.values() for i in cols})
    keys = HostKeys(BITS_PER_KEY * 2 * max(1, expected))
    if not wanted:
        return keys
    d = head.dialect
    layout = readers.Layout("csv", d.label, d.delimiter, tuple(schema.columns), schema, [])
    try:
        for chunk in readers.read_text(path, layout, start, head, readers.ReadStats(), wanted):
            keys.add_frame(chunk.frame, _named(by_role))
    except (pl.exceptions.PolarsError, OSError, UnicodeError):
        # A file polars will not parse: the whole list in Python (slow, but complete).
        return from_rows(schema, _python_rows(path, head, start), expected)
    return keys


def _python_rows(path: Path, head: Head, start: int) -> Iterator[list[str]]:
    with path.open("rb") as fh:
        fh.seek(start)
        text = io.TextIOWrapper(fh, encoding=head.dialect.encoding, errors="replace", newline="")
        yield from csv.reader(text, delimiter=head.dialect.delimiter)


def from_book(book: Any, schema: Schema, expected: int) -> HostKeys:
    """The keys of every data row of an Excel workbook's first sheet."""
    from canary.xlsxfile import cell_text

    rows = (
        [cell_text(v) for v in row] for i, row in enumerate(book._rows()) if i > schema.header_index
    )
    return from_rows(schema, rows, expected)
