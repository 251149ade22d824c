"""Vectorised normalisation: a chunk of broker rows → one row of matching keys each.

The same expressions normalise the canaries' own values, so both sides meet in one form:
phones as national digits (09012345678), emails NFKC and lower case, names NFKC without
spaces and with variant kanji folded, kana in full-width katakana without spaces, postcodes
as seven digits, addresses NFKC without spaces, prefecture or postcode, dashes unified.
"""

from __future__ import annotations

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
    """Phone text (NFKC) → national digits, or null when not a Japanese number's shape."""
    digits = expr.str.replace_all(r"(?i)\s*(?:ext\.?|x|内線)\s*\d+$", "").str.replace_all(
        r"[^\d+]", ""
    )
    national = (
        pl.when(digits.str.starts_with("+81"))
        .then(pl.lit("0") + digits.str.slice(3))
        .when(digits.str.starts_with("81") & digits.str.len_chars().is_in([11, 12]))
        .then(pl.lit("0") + digits.str.slice(2))
        .otherwise(digits.str.replace_all(r"\+", ""))
    )
    return pl.when(national.str.contains(r"^0\d{9,10}$")).then(national).otherwise(None)


def name_key(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(r"[\s\u3000]+", "").str.replace_many(_VARIANT_FROM, _VARIANT_TO)


def kana_key(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(r"[\s\u3000・]+", "").str.replace_many(_HIRAGANA, _KATAKANA)


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
    digits = expr.str.extract(r"(\d{3})-?(\d{4})", 0).str.replace("-", "")
    return pl.when(digits.str.len_chars() == 7).then(digits).otherwise(None)


def row_keys(frame: pl.DataFrame, plan: KeyPlan) -> pl.DataFrame:
    """Keys of every row: _row, phones, emails, name, kana, postcode, address core."""
    exprs: list[pl.Expr] = [pl.col("_row")]
    if plan.phones:
        found = pl.concat_list([_text(f"c{i}").str.extract_all(_PHONE_FIND) for i in plan.phones])
        exprs.append(
            found.list.eval(phone_digits(pl.element()))
            .list.drop_nulls()
            .list.unique()
            .alias("phones")
        )
    else:
        exprs.append(pl.lit([], dtype=pl.List(pl.String)).alias("phones"))
    if plan.emails:
        found = pl.concat_list(
            [_text(f"c{i}").str.to_lowercase().str.extract_all(_EMAIL_FIND) for i in plan.emails]
        )
        exprs.append(found.list.unique().alias("emails"))
    else:
        exprs.append(pl.lit([], dtype=pl.List(pl.String)).alias("emails"))

    names = [_text(f"c{i}") for i in plan.names]
    if plan.name_parts:
        names.append(pl.concat_str([_text(f"c{i}") for i in plan.name_parts]))
    kanas = [_text(f"c{i}") for i in plan.kanas]
    if plan.kana_parts:
        kanas.append(pl.concat_str([_text(f"c{i}") for i in plan.kana_parts]))
    for i in plan.merged:
        merged = _text(f"c{i}")
        names.append(merged.str.replace(r"\s*\(.*\)$", ""))
        kanas.append(merged.str.extract(r"\(([^)]*)\)$", 1))
    exprs.append(_first_non_empty([name_key(e) for e in names]).alias("name"))
    exprs.append(_first_non_empty([kana_key(e) for e in kanas]).alias("kana"))

    address = (
        pl.concat_str([_text(f"c{i}") for i in plan.address], ignore_nulls=True)
        if plan.address
        else pl.lit(None, dtype=pl.String)
    )
    codes = [postcode_digits(_text(f"c{i}")) for i in plan.postcodes]
    codes.append(postcode_digits(address.str.extract(r"^〒?\s*(\d{3}-?\d{4})", 1)))
    exprs.append(pl.coalesce(codes).alias("postcode"))
    exprs.append(
        pl.when(address.str.len_chars() > 0)
        .then(address_core(address))
        .otherwise(None)
        .alias("address")
    )
    return frame.select(exprs)


def _first_non_empty(exprs: list[pl.Expr]) -> pl.Expr:
    if not exprs:
        return pl.lit(None, dtype=pl.String)
    return pl.coalesce([pl.when(e.str.len_chars() > 0).then(e) for e in exprs])
