"""The canary index a scan matches against, built from the registry in batches.

Keys go through the same polars expressions as the broker's rows. Each canary also gets an
estimate of how common its name is (from the reference data's frequencies), from which the
chance that a real namesake produces a match is computed at the end of a scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from canary.registry import Registry
from canary.registry.scans import CANARY_KEY_FIELDS
from canary.scan import keys as K

JAPAN = 1.25e8
# Share of people whose given name is in the reference table (the table holds the common
# names of each period; the rest spread over thousands of rarer names).
GIVEN_COVERAGE = 0.4
UNKNOWN_NAME_FREQUENCY = 1e-6


HASH_SEED = 0x63616E617279  # any fixed seed: both sides are hashed in the same process


def pair_hash(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """One 64-bit join key for two string keys. Chunks join the 10^6-row canary table on
    it (cheap to probe, unlike two string columns); every hit is then checked on the
    strings themselves, so a collision costs a comparison, never a false match."""
    return a.hash(HASH_SEED).xor(b.hash(HASH_SEED + 1))


class HashLookup:
    """Canary rows by a 64-bit key, built once per scan and probed by every chunk.

    A chunk's keys first meet a bitmap of the canaries' keys (2^27 bits, 16 MiB: with 10^6
    canaries fewer than 1 % of a list's keys get past it), and only those are looked up by
    binary search. A polars join would rebuild its hash table of the canaries per chunk.
    """

    BITS = 27

    def __init__(self, keys: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.sorted = keys[order]
        self.order = order
        slots = keys >> np.uint64(64 - self.BITS)
        self.bits = np.zeros(1 << (self.BITS - 3), dtype=np.uint8)
        np.bitwise_or.at(
            self.bits,
            slots >> np.uint64(3),
            np.left_shift(1, slots & np.uint64(7)).astype(np.uint8),
        )

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in ``keys``, canary rows) of every pair with equal keys."""
        slots = keys >> np.uint64(64 - self.BITS)
        maybe = (self.bits[slots >> np.uint64(3)] >> (slots & np.uint64(7)).astype(np.uint8)) & 1
        candidates = np.flatnonzero(maybe)
        wanted = keys[candidates]
        lo = np.searchsorted(self.sorted, wanted, "left")
        counts = np.searchsorted(self.sorted, wanted, "right") - lo
        rows = np.repeat(candidates, counts)
        starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
        return rows, self.order[starts + np.arange(rows.size)]


@dataclass
class CanaryIndex:
    canaries: pl.DataFrame  # canary_id, export_id, email, name, kana, postcode, address, f_name
    phones: pl.DataFrame  # phone (national digits), canary_id, export_id
    exports_by_phone: dict[str, list[int]]  # national digits → export ids holding the number

    @property
    def size(self) -> int:
        return self.canaries.height

    def join(self, rows: pl.DataFrame, key: str, hashes: pl.Expr) -> pl.DataFrame:
        """``rows`` side by side with the canaries whose ``h_{key}`` equals ``hashes``."""
        prepared = self.prepared()
        keys = rows.select(hashes).to_series().to_numpy()
        at, canary = self._lookups[key].find(keys)
        return pl.concat(
            [rows[pl.Series(at)], prepared["all"][pl.Series(canary)]], how="horizontal"
        )

    def email_domains(self) -> list[str]:
        """The domains of canaries' emails (pool domains), lower case."""
        if not hasattr(self, "_domains"):
            self._domains: list[str] = (
                self.canaries.select(pl.col("email").str.extract(r"@(.+)$", 1).unique())
                .drop_nulls()
                .to_series()
                .sort()
                .to_list()
            )
        return self._domains

    def prepared(self) -> dict[str, pl.DataFrame]:
        """Frames every chunk joins against, built once per scan rather than per chunk."""
        if not hasattr(self, "_prepared"):
            c = self.canaries.rename(
                {
                    "name": "name_c",
                    "kana": "kana_c",
                    "postcode": "postcode_c",
                    "address": "address_c",
                    "email": "email_c",
                    "street": "street_c",
                }
            )
            c = c.with_columns(
                pair_hash(pl.col("name_c"), pl.col("postcode_c")).alias("h_name"),
                pair_hash(pl.col("kana_c"), pl.col("postcode_c")).alias("h_kana"),
                pair_hash(pl.col("name_c"), pl.col("street_c")).alias("h_street"),
                pl.col("email_c").hash(HASH_SEED).alias("h_email"),
            )
            self._lookups = {
                key: HashLookup(c.get_column(f"h_{key}").to_numpy())
                for key in ("name", "kana", "street")
            }
            self._prepared = {
                "all": c,
                "email": c.drop_nulls("email_c"),
                "by_id": c.drop("export_id"),
                "phones": self.phones.select("phone").unique(),
            }
        return self._prepared


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


def significant(e164: str | None) -> str | None:
    """+819012345678 → 9012345678, the form phones are compared in."""
    if not e164:
        return None
    return e164[3:] if e164.startswith("+81") else e164


INDEX_FORMAT = 3  # bump when the index's columns or normalisation change


def load_index(registry: Registry, seeds_dir: str, cache_dir: str | None = None) -> CanaryIndex:
    """The canary index, from a cache file when the registry's canaries have not changed.

    Building it for 10^6 canaries takes seconds; the cache (Arrow IPC, mode 0600, canaries
    only, never people of a scanned list) loads in a fraction of that.
    """
    if not cache_dir:
        return build_index(registry, seeds_dir)
    import hashlib
    import os
    import tempfile

    where = hashlib.sha256(registry.url.encode()).hexdigest()[:12]
    stamp = hashlib.sha256(
        f"{INDEX_FORMAT}|{registry.canary_fingerprint()}|{seeds_dir}".encode()
    ).hexdigest()[:16]
    folder = Path(cache_dir)
    paths = [
        folder / f"index-{where}-{stamp}-{part}.arrow" for part in ("canaries", "phones", "numbers")
    ]
    if all(p.exists() for p in paths):
        try:
            canaries, phones, numbers = (pl.read_ipc(p) for p in paths)
            by_phone: dict[str, list[int]] = {}
            for phone, export_id in numbers.iter_rows():
                by_phone.setdefault(phone, []).append(export_id)
            return CanaryIndex(canaries, phones, by_phone)
        except (OSError, pl.exceptions.PolarsError):
            pass  # a damaged cache is rebuilt
    index = build_index(registry, seeds_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for old in folder.glob(f"index-{where}-*.arrow"):
            old.unlink(missing_ok=True)
        numbers = pl.DataFrame(
            [(k, e) for k, v in index.exports_by_phone.items() for e in v],
            schema={"phone": pl.String, "export_id": pl.Int64},
            orient="row",
        )
        for frame, path in zip((index.canaries, index.phones, numbers), paths, strict=True):
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".index-")
            os.close(fd)
            os.chmod(tmp, 0o600)
            frame.write_ipc(tmp)
            os.replace(tmp, path)
    except OSError:
        pass  # no cache is slower, not wrong
    return index


def build_index(registry: Registry, seeds_dir: str) -> CanaryIndex:
    surnames, given = _name_frequencies(seeds_dir)
    local = {
        "name": "name_raw",
        "kana": "kana_raw",
        "address": "address_raw",
        "phone_e164": "phone1",
        "phone2_e164": "phone2",
    }
    fields = [local.get(f, f) for f in CANARY_KEY_FIELDS]
    schema = {f: (pl.Int64 if f.endswith("_id") else pl.String) for f in fields}
    parts = [pl.DataFrame(batch, schema=schema, orient="row") for batch in registry.canary_keys()]
    raw = pl.concat(parts) if parts else pl.DataFrame(schema=schema)
    # E.164 to national significant numbers, as the rows' phones are normalised.
    raw = raw.with_columns(
        [pl.col(c).str.strip_prefix("+81").alias(c) for c in ("phone1", "phone2")]
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
        K.street_key(
            K.address_core(pl.col("address_raw").str.normalize("NFKC").str.split(" ").list.first())
        ).alias("street"),
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
    by_phone = {significant(k) or k: v for k, v in registry.exports_by_number().items()}
    return CanaryIndex(canaries, phones, by_phone)
