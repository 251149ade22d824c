"""Vectorised normalisation: a chunk of broker rows → one row of matching keys each.

The same expressions normalise the canaries' own values, so both sides meet in one form:
phones as national digits (09012345678), emails NFKC and lower case, names NFKC without
spaces and with variant kanji folded, kana in full-width katakana without spaces, postcodes
as seven digits, addresses NFKC without spaces, prefecture or postcode, dashes unified.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from canary.normalize import _KANJI_VARIANTS
from canary.scan.plan import KeyPlan
from canary.schema import PREFECTURES

_HIRAGANA = [chr(c) for c in range(0x3041, 0x3097)]
_KATAKANA = [chr(c + 0x60) for c in range(0x3041, 0x3097)]
_VARIANT_FROM = list(_KANJI_VARIANTS_KEYS := [chr(k) for k in _KANJI_VARIANTS])
_VARIANT_TO = [str(_KANJI_VARIANTS[ord(k)]) for k in _KANJI_VARIANTS_KEYS]
_DASHES = "[‐‑‒–—―−－ｰー─━]"
_PHONE_FIND = r"\+?\d[\d\-()\s.]{7,18}\d"
_EMAIL_FIND = r"[^@\s,;<>\"'()]+@[^@\s,;<>\"'()]+\.[a-z]{2,}"
_PREF_RE = "^(?:" + "|".join(PREFECTURES) + ")"


def _text(col: str) -> pl.Expr:
    return pl.col(col).fill_null("").str.normalize("NFKC")


def phone_digits(expr: pl.Expr) -> pl.Expr:
    """Phone text (NFKC) → its national significant number, or null when not the shape of
    a Japanese number. 090-1234-5678, +81 90 1234 5678 and 819012345678 all give
    9012345678: one extracting regex, no string arithmetic."""
    return _significant(
        expr.str.replace(r"(?i)(?:ext|x|内線).*$", "").str.replace_all(r"[^\d+]", "")
    )


def _significant(digits: pl.Expr) -> pl.Expr:
    return digits.str.extract(r"^(?:\+?81|0)(\d{9,10})$", 1)


def name_key(expr: pl.Expr, variants: bool = True) -> pl.Expr:
    """Name without spaces, variant kanji folded (skipped when a chunk has none)."""
    out = _drop_spaces(expr)
    return out.str.replace_many(_VARIANT_FROM, _VARIANT_TO) if variants else out


def kana_key(expr: pl.Expr, hiragana: bool = True) -> pl.Expr:
    """Reading without spaces, in katakana (the hiragana pass skipped when there is none)."""
    out = _drop_spaces(expr).str.replace_all("・", "", literal=True)
    return out.str.replace_many(_HIRAGANA, _KATAKANA) if hiragana else out


def _drop_spaces(expr: pl.Expr) -> pl.Expr:
    # Literal replaces are several times faster than a regex class; NFKC has already
    # turned other spaces into these two.
    return expr.str.replace_all(" ", "", literal=True).str.replace_all("\u3000", "", literal=True)


def address_core(expr: pl.Expr) -> pl.Expr:
    """Address without spaces, postcode or prefecture, with 丁目/番/号 as dashes."""
    return (
        expr.str.replace_all(r"[\s\u3000]+", "")
        .str.replace_all(r"^〒?\d{3}-?\d{4}", "")
        .str.replace(_PREF_RE, "")
        .str.replace_all(rf"(\d){_DASHES}(\d)", "$1-$2")
        .str.replace_all(rf"(\d){_DASHES}(\d)", "$1-$2")
        .str.replace_all(r"(\d+)丁目(\d)", "$1-$2")
        .str.replace_all(r"(\d+)番地?(\d)", "$1-$2")
        .str.replace_all(r"(\d+)号", "$1")
        .str.replace_many(_VARIANT_FROM, _VARIANT_TO)
    )


def postcode_digits(expr: pl.Expr) -> pl.Expr:
    digits = expr.str.replace_all(r"\D", "")
    return pl.when(digits.str.len_chars() == 7).then(digits)


def _postcode_column(frame: pl.DataFrame, column: str) -> pl.Expr:
    """Seven postcode digits of a postcode column. ASCII cells (123-4567, 1234567) lose
    their dash or space in one pass; anything else is NFKC-normalised and stripped."""
    if _is_ascii(frame, column):
        digits = pl.col(column).str.replace_many(["-", " "], ["", ""])
        return pl.when(digits.str.len_bytes() == 7).then(digits)
    return postcode_digits(_text(column))


def street_key(core: pl.Expr) -> pl.Expr:
    """An address core up to its block number: the building, which brokers drop or rewrite,
    is cut off (千代田区千代田1-2-3メゾン101 → 千代田区千代田1-2-3)."""
    return core.str.extract(r"^(\D*?\d+(?:-\d+)*)", 1)


@dataclass
class RowKeys:
    """Keys of a chunk: one row per broker row, plus long frames of its phones and emails."""

    main: pl.DataFrame  # _row, name, kana, postcode, address (raw text, normalised lazily)
    phones: pl.DataFrame  # _row, phone (national digits)
    emails: pl.DataFrame  # _row, email


def _is_ascii(frame: pl.DataFrame, column: str) -> bool:
    """Whether a chunk's column is plain ASCII (as many bytes as characters in every cell),
    so NFKC (costly) can be skipped for it."""
    col = pl.col(column)
    return not frame.select((col.str.len_bytes() != col.str.len_chars()).any()).item()


def _cells(frame: pl.DataFrame, column: str) -> bytes:
    """Every cell of a chunk's column end to end, as UTF-8 bytes (nulls left out).

    A question about the whole chunk ("is there a space anywhere?") is then one memchr
    over the bytes: polars answers it per cell at 30-50 ns a cell, three to four times
    the cost of gathering the cells. Only for columns expected to be ASCII and short
    (postcodes, phones)."""
    return frame.select(pl.col(column).str.join("").cast(pl.Binary)).item() or b""


def _plain(frame: pl.DataFrame, column: str) -> pl.Expr:
    """A column's text, NFKC-normalised only when the chunk holds non-ASCII in it. Empty
    cells stay null: polars skips them in every later pass (most lists leave most email
    cells empty, and an empty string costs a search where a null costs nothing)."""
    return pl.col(column) if _is_ascii(frame, column) else pl.col(column).str.normalize("NFKC")


# Characters NFKC changes in names and readings: half-width kana and full-width ASCII,
# compatibility ideographs (﨑), enclosed and squared forms. The ideographic space is
# removed with the other spaces, so it needs no NFKC.
_NFKC_NEEDED = (
    r"[\uFF00-\uFFEF\uF900-\uFAFF\u2460-\u24FF\u3200-\u33FF\u2F00-\u2FDF\u00A0\u2000-\u200B\t]"
)
_VARIANTS_RE = "[" + "".join(_VARIANT_FROM) + "]"


def _any(frame: pl.DataFrame, column: str, pattern: str) -> bool:
    return bool(frame.select(pl.col(column).str.contains(pattern).any()).item())


def _name_text(frame: pl.DataFrame, column: str) -> pl.Expr:
    """Text of a name or reading column, NFKC-normalised only where the chunk needs it."""
    expr = pl.col(column).fill_null("")
    return expr.str.normalize("NFKC") if _any(frame, column, _NFKC_NEEDED) else expr


def _long(frame: pl.DataFrame, columns: list[int], name: str) -> pl.DataFrame:
    if not columns:
        return pl.DataFrame(schema={"_row": pl.Int64, name: pl.String})
    return pl.concat(
        [
            frame.select(pl.col("_row").cast(pl.Int64), _plain(frame, f"c{i}").alias(name))
            for i in columns
        ]
    )


# What separates the digits of a phone number written in ASCII; other characters (letters
# of an extension, a label) make the cell long and send it down the careful path.
_PHONE_PUNCT = ["-", "(", ")", " ", ".", "/"]


def _national(digits: pl.Expr) -> pl.Expr:
    """Digits (perhaps with a leading +) → the national significant number when the length
    fits a Japanese number (9 or 10 digits after the trunk 0 or the 81 country code)."""
    national = (
        pl.when(digits.str.starts_with("0"))
        .then(digits.str.slice(1))
        .when(digits.str.starts_with("+81"))
        .then(digits.str.slice(3).str.strip_prefix("0"))
        .when(digits.str.starts_with("81"))
        .then(digits.str.slice(2).str.strip_prefix("0"))
    )
    return pl.when(national.str.len_bytes().is_between(9, 10)).then(national)


def other_tails(pool: pl.DataFrame) -> pl.Series:
    """The four-digit endings no pool number has (see phones_of)."""
    taken = set(pool.get_column("phone").str.slice(-4).to_list())
    return pl.Series([f"{n:04d}" for n in range(10_000) if f"{n:04d}" not in taken])


def phones_of(
    frame: pl.DataFrame,
    columns: list[int],
    pool: pl.DataFrame | None = None,
    tails: pl.Series | None = None,
) -> pl.DataFrame:
    """(_row, phone) for every phone number in the phone columns, as national digits.

    With ``pool`` (the ways a pool number can be written once punctuation is gone, and its
    national digits: see CanaryIndex.prepared), only pool numbers are returned, found by
    one join instead of the string arithmetic every other number would need. With
    ``tails`` (other_tails of the pool), cells that cannot hold a pool number are dropped
    first: a cell of at most 13 bytes holds one number at most, which ends where the cell
    does, so a cell ending in four ASCII digits that no pool number ends in holds none."""
    parts = []
    whole = frame
    for i in columns:
        column = f"c{i}"
        if tails is not None:
            cell = pl.col(column)
            # Only the row number and this column are carried through the filter.
            frame = whole.select("_row", column).filter(
                (cell.str.len_bytes() > 13) | ~cell.str.slice(-4).is_in(tails.implode())
            )
        written = _cells(frame, column)
        if written.isascii():
            # Most lists: ASCII digits and dashes, which one literal pass removes.
            text = pl.col(column)
            if any(p.encode() in written for p in _PHONE_PUNCT[1:]):
                digits = text.str.replace_many(_PHONE_PUNCT, [""] * len(_PHONE_PUNCT))
            else:
                digits = text.str.replace_all("-", "", literal=True)
        else:
            text = _text(column)
            digits = text.str.replace_all(r"[^\d+]", "")
        cells = frame.select(
            pl.col("_row").cast(pl.Int64), text.alias("text"), digits.alias("digits")
        )
        if pool is None:
            cells = cells.with_columns(_national(pl.col("digits")).alias("phone"))
            single = cells.select("_row", "phone")
            rest = cells.filter(pl.col("phone").is_null())
        else:
            single = cells.join(pool, on="digits").select("_row", "phone")
            rest = cells.join(single, on="_row", how="anti")
        parts.append(single)
        # A cell holding several numbers ("090-… / 03-…") or an extension (内線, ext) is
        # split and cut; most cells hold one number, and no cell is both.
        multi = rest.filter(pl.col("digits").str.len_bytes() > 11)
        if multi.height:
            parts.append(
                multi.select("_row", pl.col("text").str.extract_all(_PHONE_FIND).alias("phone"))
                .explode("phone")
                .select("_row", phone_digits(pl.col("phone")).alias("phone"))
            )
    if not parts:
        return pl.DataFrame(schema={"_row": pl.Int64, "phone": pl.String})
    return pl.concat(parts).drop_nulls("phone")


def emails_of(
    frame: pl.DataFrame, columns: list[int], domains: list[str] | None = None
) -> pl.DataFrame:
    """(_row, email) for every address in the email columns. With ``domains`` (the pool
    domains canaries use), cells naming none of them are dropped first: an address on
    another domain can never be a canary's."""
    cells = _long(frame, columns, "text")
    if domains is not None:
        if not domains:
            return pl.DataFrame(schema={"_row": pl.Int64, "email": pl.String})
        cells = cells.filter(pl.col("text").str.contains_any(domains, ascii_case_insensitive=True))
    else:
        cells = cells.filter(pl.col("text").str.contains("@", literal=True))
    return (
        cells.select(
            "_row", pl.col("text").str.to_lowercase().str.extract_all(_EMAIL_FIND).alias("email")
        )
        .explode("email")
        .drop_nulls("email")
        .unique()
    )


def row_keys(frame: pl.DataFrame, plan: KeyPlan, domains: list[str] | None = None) -> RowKeys:
    """Keys of every row of a chunk. ``domains``: the email domains canaries use, if known."""
    return RowKeys(
        main_keys(frame, plan),
        phones_of(frame, plan.phones),
        emails_of(frame, plan.emails, domains),
    )


def main_keys(frame: pl.DataFrame, plan: KeyPlan) -> pl.DataFrame:
    """_row, name, kana, postcode (normalised) and address (raw) of every row."""
    names = [_name_text(frame, f"c{i}") for i in plan.names]
    if plan.name_parts:
        names.append(pl.concat_str([_name_text(frame, f"c{i}") for i in plan.name_parts]))
    kanas = [_name_text(frame, f"c{i}") for i in plan.kanas]
    if plan.kana_parts:
        kanas.append(pl.concat_str([_name_text(frame, f"c{i}") for i in plan.kana_parts]))
    for i in plan.merged:
        merged = _text(f"c{i}")
        names.append(merged.str.replace(r"\s*\(.*\)$", ""))
        kanas.append(merged.str.extract(r"\(([^)]*)\)$", 1))
    # Addresses stay raw here; only rows that join with a canary are normalised (match.py).
    address = (
        pl.concat_str([pl.col(f"c{i}").fill_null("") for i in plan.address])
        if plan.address
        else pl.lit(None, dtype=pl.String)
    )
    codes = [_postcode_column(frame, f"c{i}") for i in plan.postcodes]
    if not plan.postcodes:  # a postcode written inside the address
        head = address.str.slice(0, 14).str.normalize("NFKC")
        codes.append(postcode_digits(head.str.extract(r"^〒?\s*(\d{3}-?\d{4})", 1)))
    variants = any(
        _any(frame, f"c{i}", _VARIANTS_RE) for i in plan.names + plan.name_parts + plan.merged
    )
    hiragana = any(
        _any(frame, f"c{i}", "[\u3041-\u3096]") for i in plan.kanas + plan.kana_parts + plan.merged
    )
    # Keys first, then empty keys as nulls: each key expression is evaluated once.
    name_cols = [name_key(e, variants).alias(f"name{j}") for j, e in enumerate(names)]
    kana_cols = [kana_key(e, hiragana).alias(f"kana{j}") for j, e in enumerate(kanas)]
    keyed = frame.select(
        pl.col("_row").cast(pl.Int64),
        *name_cols,
        *kana_cols,
        pl.coalesce(codes).alias("postcode"),
        address.alias("address"),
    )
    main = keyed.select(
        "_row",
        _first_non_empty([pl.col(f"name{j}") for j in range(len(names))]).alias("name"),
        _first_non_empty([pl.col(f"kana{j}") for j in range(len(kanas))]).alias("kana"),
        "postcode",
        _first_non_empty([pl.col("address")] if plan.address else []).alias("address"),
    )
    return main


def _first_non_empty(exprs: list[pl.Expr]) -> pl.Expr:
    if not exprs:
        return pl.lit(None, dtype=pl.String)
    return pl.coalesce([pl.when(e.str.len_bytes() > 0).then(e) for e in exprs])


# ---------------------------------------------------------------------------------------
# The fast path: which rows could hold a canary at all, decided on the raw text.
#
# Most rows of a list are written plainly: a name of ordinary characters with at most one
# space between surname and given name, an ASCII postcode. For those, the normalised key
# is the raw text without its space, so the raw text can be looked up directly among the
# plain renderings of every canary's key (with a full-width space, an ASCII space, none;
# postcode with and without its dash). Rows written any other way (half-width kana,
# hiragana, variant kanji, odd spacing) are taken as candidates and normalised in full, as
# are rows holding a pool number. Only candidates get the string work; a list of plain
# rows costs one regex test and one hash per key.

_ODD = r"\s" + _NFKC_NEEDED[1:-1]
_PLAIN_NAME = (
    rf"^[^{_ODD}{''.join(_VARIANT_FROM)}]+(?:[ \u3000][^{_ODD}{''.join(_VARIANT_FROM)}]+)?$"
)
_PLAIN_KANA = rf"^[^{_ODD}\u3041-\u3096・]+(?:[ \u3000][^{_ODD}\u3041-\u3096・]+)?$"


@dataclass(frozen=True)
class RawShape:
    """The raw expressions of a chunk's name, reading and postcode, when the plan has one
    source for each (otherwise every row is normalised)."""

    name: pl.Expr | None
    kana: pl.Expr | None
    postcode: pl.Expr


def raw_shape(frame: pl.DataFrame, plan: KeyPlan) -> RawShape | None:
    if plan.merged or len(plan.postcodes) != 1 or len(plan.names) > 1 or len(plan.kanas) > 1:
        return None
    name = (
        pl.col(f"c{plan.names[0]}")
        if plan.names
        else (
            pl.concat_str([pl.col(f"c{i}") for i in plan.name_parts]) if plan.name_parts else None
        )
    )
    kana = (
        pl.col(f"c{plan.kanas[0]}")
        if plan.kanas
        else (
            pl.concat_str([pl.col(f"c{i}") for i in plan.kana_parts]) if plan.kana_parts else None
        )
    )
    if name is None and kana is None:
        return None
    column = f"c{plan.postcodes[0]}"
    cells = _cells(frame, column)
    plain = cells.isascii() and b" " not in cells  # ASCII without spaces in every cell
    postcode = pl.col(column) if plain else _postcode_column(frame, column)
    return RawShape(name, kana, postcode)


def _odd(raw: pl.Expr, plain: str) -> pl.Expr:
    """Filled cells not written plainly."""
    return (raw.str.len_bytes() > 0) & ~raw.str.contains(plain)


def candidate_rows(
    frame: pl.DataFrame,
    shape: RawShape,
    lookup: Callable[[str, np.ndarray], np.ndarray],
    address: bool,
    counts: list[pl.DataFrame] | None = None,
) -> np.ndarray:
    """A mask of the rows that may hold a canary by name or reading + postcode, or that
    need normalising to tell (and rows without a postcode, for name + address). With
    ``counts``, the rows per postcode are appended to it (see postcode_counts)."""
    from canary.scan.index import HASH_SEED

    exprs: list[pl.Expr] = [shape.postcode.hash(HASH_SEED + 1).alias("h_postcode")]
    kinds = []
    for kind, raw, plain in (("name", shape.name, _PLAIN_NAME), ("kana", shape.kana, _PLAIN_KANA)):
        if raw is None:
            continue
        kinds.append(kind)
        # pair_hash(raw, postcode), with the postcode's hash computed once for both keys
        exprs += [raw.hash(HASH_SEED).alias(f"h_{kind}"), _odd(raw, plain).alias(f"odd_{kind}")]
    no_postcode = shape.postcode.is_null() | (shape.postcode.str.len_bytes() == 0)
    if address and shape.name is not None:
        exprs.append((no_postcode & shape.name.is_not_null()).alias("bare"))
    tests = frame.select(exprs)
    mask = np.zeros(frame.height, dtype=bool)
    postcode = tests.get_column("h_postcode").to_numpy()
    if counts is not None:
        counts.append(postcode_counts(postcode))
    for kind in kinds:
        mask |= lookup(kind, tests.get_column(f"h_{kind}").to_numpy() ^ postcode)
        mask |= tests.get_column(f"odd_{kind}").fill_null(False).to_numpy()
    if "bare" in tests.columns:
        mask |= tests.get_column("bare").fill_null(False).to_numpy()
    return mask


def postcode_counts(hashes: np.ndarray | pl.Series) -> pl.DataFrame:
    """Rows per postcode, keyed by the postcode text's 64-bit hash (as candidate_rows and
    the index compute it): counting integers is cheaper than counting strings, and only
    the postcodes where a canary is found are ever looked up (see scan._rows_at)."""
    series = pl.Series("h", hashes, dtype=pl.UInt64)
    return series.value_counts(name="count").with_columns(pl.col("count").cast(pl.Int64))
