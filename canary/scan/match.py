"""Matching a chunk of broker rows against the canary index, by keys of graded strength.

strong: an assigned email; phone + name (kanji or kana); name + address up to the block.
medium: name + postcode; kana + postcode; kana within one edit + phone.
weak:   a pool phone number alone (numbers are shared by exports and get stray use).

A name alone, or a surname, never matches: every key pairs a name with something that ties
it to one place or one owned token.
"""

from __future__ import annotations

import polars as pl
from rapidfuzz.distance import Levenshtein

from canary.scan.index import CanaryIndex

EVIDENCE_SCHEMA = {
    "_row": pl.Int64,
    "canary_id": pl.Int64,
    "export_id": pl.Int64,
    "key": pl.String,
    "postcode": pl.String,
    "address": pl.String,
    "f_name": pl.Float64,
}


def _evidence(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    return frame.select(
        pl.col("_row").cast(pl.Int64),
        pl.col("canary_id").cast(pl.Int64),
        pl.col("export_id").cast(pl.Int64),
        pl.lit(key).alias("key"),
        pl.col("postcode_c").alias("postcode"),
        pl.col("address_c").alias("address"),
        pl.col("f_name").cast(pl.Float64),
    )


def match_chunk(rows: pl.DataFrame, index: CanaryIndex) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(evidence of strong and medium matches, weak phone-only hits) for one chunk."""
    canaries = index.canaries.rename(
        {
            "name": "name_c",
            "kana": "kana_c",
            "postcode": "postcode_c",
            "address": "address_c",
            "email": "email_c",
        }
    )
    found: list[pl.DataFrame] = []

    emails = rows.select("_row", pl.col("emails").alias("email_c")).explode("email_c")
    hit = emails.drop_nulls("email_c").join(canaries.drop_nulls("email_c"), on="email_c")
    found.append(_evidence(hit, "email"))

    phones = (
        rows.select("_row", "name", "kana", pl.col("phones").alias("phone"))
        .explode("phone")
        .drop_nulls("phone")
    )
    pairs = phones.join(index.phones, on="phone").join(canaries.drop("export_id"), on="canary_id")
    found.append(_evidence(pairs.filter(pl.col("name") == pl.col("name_c")), "phone+name"))
    found.append(
        _evidence(
            pairs.filter(
                (pl.col("name") != pl.col("name_c")).fill_null(True)
                & (pl.col("kana") == pl.col("kana_c"))
            ),
            "phone+kana",
        )
    )
    near = pairs.filter(
        pl.col("kana").is_not_null()
        & (pl.col("kana") != pl.col("kana_c"))
        & ((pl.col("name") != pl.col("name_c")).fill_null(True))
    )
    if near.height:
        close = [
            Levenshtein.distance(a, b, score_cutoff=1) <= 1
            for a, b in zip(near["kana"].to_list(), near["kana_c"].to_list(), strict=True)
        ]
        found.append(_evidence(near.filter(pl.Series(close, dtype=pl.Boolean)), "kana~phone"))
    weak = phones.join(index.phones.select("phone").unique(), on="phone").select("_row", "phone")

    named = rows.drop_nulls("name").join(canaries, left_on="name", right_on="name_c")
    at_address = named.filter(
        pl.col("address").is_not_null()
        & pl.col("address").str.starts_with(pl.col("address_c"))
        & ~pl.col("address").str.slice(pl.col("address_c").str.len_chars(), 1).str.contains(r"^\d")
    )
    found.append(_evidence(at_address, "name+address"))
    found.append(
        _evidence(named.filter(pl.col("postcode") == pl.col("postcode_c")), "name+postcode")
    )
    kana_rows = rows.drop_nulls("kana").join(canaries, left_on="kana", right_on="kana_c")
    found.append(
        _evidence(kana_rows.filter(pl.col("postcode") == pl.col("postcode_c")), "kana+postcode")
    )
    evidence = pl.concat([f for f in found if f.height] or [pl.DataFrame(schema=EVIDENCE_SCHEMA)])
    return evidence, weak
