"""Matching a chunk of broker rows against the canary index, by keys of graded strength.

strong: an assigned email; phone + name (kanji or kana); name + address up to the block.
medium: name + postcode; kana + postcode; kana within one edit + phone.
weak:   a pool phone number alone (numbers are shared by exports and get stray use).

A name alone, or a surname, never matches: every key pairs a name with something that ties
it to one place or one owned token. Joins are on composite keys, so the work grows with
the rows, not with rows × canaries; addresses are normalised only for rows that need them.
"""

from __future__ import annotations

import polars as pl
from rapidfuzz.distance import Levenshtein

from canary.scan import keys as K
from canary.scan.index import HASH_SEED, CanaryIndex, pair_hash

EVIDENCE_SCHEMA = {
    "_row": pl.Int64,
    "canary_id": pl.Int64,
    "export_id": pl.Int64,
    "key": pl.String,
    "postcode": pl.String,
    "address": pl.String,
    "f_name": pl.Float64,
}


def _evidence(frame: pl.DataFrame, key: str | pl.Expr) -> pl.DataFrame:
    return frame.select(
        pl.col("_row").cast(pl.Int64),
        pl.col("canary_id").cast(pl.Int64),
        pl.col("export_id").cast(pl.Int64),
        (pl.lit(key) if isinstance(key, str) else key).alias("key"),
        pl.col("postcode_c").alias("postcode"),
        pl.col("street_c").alias("address"),
        pl.col("f_name").cast(pl.Float64),
    )


def _street(address: pl.Expr) -> pl.Expr:
    return K.street_key(K.address_core(address))


def _phone_evidence(pairs: pl.DataFrame) -> list[pl.DataFrame]:
    """Rows holding a canary's pool number with its name, its reading, or a reading
    within one edit of it."""
    same_name = pl.col("name") == pl.col("name_c")
    found = [
        _evidence(pairs.filter(same_name), "phone+name"),
        _evidence(
            pairs.filter(~same_name.fill_null(False) & (pl.col("kana") == pl.col("kana_c"))),
            "phone+kana",
        ),
    ]
    near = pairs.filter(
        pl.col("kana").is_not_null()
        & (pl.col("kana") != pl.col("kana_c"))
        & ~same_name.fill_null(False)
    )
    if near.height:
        close = [
            Levenshtein.distance(a, b, score_cutoff=1) <= 1
            for a, b in zip(near["kana"].to_list(), near["kana_c"].to_list(), strict=True)
        ]
        found.append(_evidence(near.filter(pl.Series(close, dtype=pl.Boolean)), "kana~phone"))
    return found


def match_chunk(rows: K.RowKeys, index: CanaryIndex) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(evidence of strong and medium matches, weak phone-only hits) for one chunk."""
    main = rows.main
    found: list[pl.DataFrame] = []

    hit = index.join(rows.emails, "email", pl.col("email").hash(HASH_SEED))
    found.append(_evidence(hit.filter(pl.col("email") == pl.col("email_c")), "email"))

    # Only pool numbers can match: the few rows holding one are found against the pool's
    # distinct numbers before they meet the canaries that carry them.
    pooled = rows.phones.join(index.prepared()["phones"], on="phone", how="semi")
    if pooled.height:
        pairs = index.by_phone(pooled).join(main.select("_row", "name", "kana"), on="_row")
        found += _phone_evidence(pairs)
    weak = pooled.select("_row", "phone")

    # Name (or reading) + postcode; where the street address agrees too, the key is strong.
    for col, key in (("name", "name"), ("kana", "kana")):
        at = index.join(
            main.drop_nulls([col, "postcode"]), col, pair_hash(pl.col(col), pl.col("postcode"))
        ).filter((pl.col(col) == pl.col(f"{col}_c")) & (pl.col("postcode") == pl.col("postcode_c")))
        if at.height:
            at = at.with_columns(_street(pl.col("address")).alias("street"))
            key_expr = (
                pl.when(pl.col("street") == pl.col("street_c"))
                .then(pl.lit("name+address"))
                .otherwise(pl.lit(f"{key}+postcode"))
            )
            found.append(_evidence(at, key_expr))
    # Rows without a postcode: name + street address.
    bare = main.filter(
        pl.col("postcode").is_null()
        & pl.col("address").is_not_null()
        & pl.col("name").is_not_null()
    )
    if bare.height:
        bare = bare.with_columns(_street(pl.col("address")).alias("street"))
        at = index.join(
            bare.drop_nulls("street"), "street", pair_hash(pl.col("name"), pl.col("street"))
        ).filter((pl.col("name") == pl.col("name_c")) & (pl.col("street") == pl.col("street_c")))
        found.append(_evidence(at, "name+address"))
    found = [f for f in found if f.height]
    evidence = pl.concat(found) if found else pl.DataFrame(schema=EVIDENCE_SCHEMA)
    return evidence, weak
