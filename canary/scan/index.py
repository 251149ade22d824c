"""The canary index a scan matches against, built from the registry in batches.

Keys go through the same polars expressions as the broker's rows. Each canary also gets an
estimate of how common its name is (from the reference data's frequencies), from which the
chance that a real namesake produces a match is computed at the end of a scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from canary.registry import Registry
from canary.scan import keys as K

JAPAN = 1.25e8
# Share of people whose given name is in the reference table (the table holds the common
# names of each period; the rest spread over thousands of rarer names).
GIVEN_COVERAGE = 0.4
UNKNOWN_NAME_FREQUENCY = 1e-6


@dataclass
class CanaryIndex:
    canaries: pl.DataFrame  # canary_id, export_id, email, name, kana, postcode, address, f_name
    phones: pl.DataFrame  # phone (national digits), canary_id, export_id
    exports_by_phone: dict[str, list[int]]  # national digits → export ids holding the number

    @property
    def size(self) -> int:
        return self.canaries.height


def _name_frequencies(seeds_dir: str) -> tuple[dict[str, float], dict[str, float]]:
    import csv

    base = Path(seeds_dir) / "names"
    with (base / "surnames.csv").open(encoding="utf-8") as fh:
        surnames = {r["kanji"]: float(r["weight"]) / JAPAN for r in csv.DictReader(fh)}
    given: dict[str, float] = {}
    totals: dict[str, float] = {"M": 0.0, "F": 0.0}
    rows = []
    with (base / "given_names.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            rows.append(r)
            totals[r["sex"]] += float(r["weight"])
    for r in rows:
        share = 0.5 * GIVEN_COVERAGE * float(r["weight"]) / totals[r["sex"]]
        given[r["kanji"]] = max(given.get(r["kanji"], 0.0), share)
    return surnames, given


def national(e164: str | None) -> str | None:
    if not e164:
        return None
    return "0" + e164[3:] if e164.startswith("+81") else e164


def build_index(registry: Registry, seeds_dir: str) -> CanaryIndex:
    surnames, given = _name_frequencies(seeds_dir)
    fields = [
        "canary_id",
        "export_id",
        "name_raw",
        "kana_raw",
        "name_key",
        "kana_key",
        "postcode",
        "address_raw",
        "phone1",
        "phone2",
        "email",
    ]
    schema = {f: (pl.Int64 if f.endswith("_id") else pl.String) for f in fields}
    parts = [pl.DataFrame(batch, schema=schema, orient="row") for batch in registry.canary_keys()]
    raw = pl.concat(parts) if parts else pl.DataFrame(schema=schema)
    # E.164 to national digits, as the rows' phones are normalised.
    raw = raw.with_columns(
        [
            pl.when(pl.col(c).str.starts_with("+81"))
            .then(pl.lit("0") + pl.col(c).str.slice(3))
            .otherwise(pl.col(c))
            .alias(c)
            for c in ("phone1", "phone2")
        ]
    )
    surname_part = pl.col("name_raw").str.split("\u3000").list.first()
    given_part = pl.col("name_raw").str.split("\u3000").list.last()
    canaries = raw.select(
        "canary_id",
        "export_id",
        pl.col("email").str.to_lowercase(),
        K.name_key(pl.col("name_raw").str.normalize("NFKC")).alias("name"),
        K.kana_key(pl.col("kana_raw").str.normalize("NFKC")).alias("kana"),
        "postcode",
        # The address up to the building: a broker may drop the building, never the block.
        K.address_core(
            pl.col("address_raw").str.normalize("NFKC").str.split(" ").list.first()
        ).alias("address"),
        (
            surname_part.replace_strict(
                surnames, default=UNKNOWN_NAME_FREQUENCY**0.5, return_dtype=pl.Float64
            )
            * given_part.replace_strict(
                given, default=UNKNOWN_NAME_FREQUENCY**0.5, return_dtype=pl.Float64
            )
        ).alias("f_name"),
        "name_raw",
    )
    phones = pl.concat(
        [
            raw.select(pl.col("phone1").alias("phone"), "canary_id", "export_id"),
            raw.select(pl.col("phone2").alias("phone"), "canary_id", "export_id"),
        ]
    ).drop_nulls("phone")
    by_phone = {national(k) or k: v for k, v in registry.exports_by_number().items()}
    return CanaryIndex(canaries, phones, by_phone)
