"""The canary index a scan matches against, built from the registry in batches.

Keys go through the same polars expressions as the broker's rows. Each canary also gets an
estimate of how common its name is (from the reference data's frequencies), from which the
chance that a real namesake produces a match is computed at the end of a scan.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from canary.registry import Registry
from canary.registry.scans import CANARY_KEY_FIELDS
from canary.scan import keys as K
from canary.scan.lookup import KeyRows, KeySet

JAPAN = 1.25e8
# Share of people whose given name is in the reference table (the table holds the common
# names of each period; the rest spread over thousands of rarer names).
GIVEN_COVERAGE = 0.4
UNKNOWN_NAME_FREQUENCY = 1e-6


HASH_SEED = 0x63616E617279  # any fixed seed: both sides are hashed in the same process
JOIN_KEYS = ("name", "kana", "street", "email")  # h_name, …: see canary_hashes


def pair_hash(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """One 64-bit join key for two string keys. Chunks join the 10^6-row canary table on
    it (cheap to probe, unlike two string columns); every hit is then checked on the
    strings themselves, so a collision costs a comparison, never a false match."""
    return a.hash(HASH_SEED).xor(b.hash(HASH_SEED + 1))


def _renderings(
    raw: pl.Expr, canonical: pl.Expr, key: Callable[[pl.Expr], pl.Expr]
) -> list[pl.Expr]:
    """The plain ways a list writes a canary's name or reading: surname and given name
    with a full-width space, an ASCII space, or none."""
    parts = raw.str.normalize("NFKC").str.strip_chars().str.split(" ")
    two = parts.list.len() == 2
    first, last = key(parts.list.first()), key(parts.list.last())
    return [
        pl.when(two).then(pl.concat_str([first, last], separator=sep)).otherwise(canonical)
        for sep in ("\u3000", " ")
    ] + [canonical]


@dataclass
class CanaryIndex:
    canaries: pl.DataFrame  # canary_id, export_id, email, name, kana, postcode, street, f_name,
    # name_raw, kana_raw
    phones: pl.DataFrame  # phone (national digits), canary_id, export_id, pos (canary's row)
    numbers: pl.DataFrame  # phone (national digits), export_id: the exports holding a number
    carriers: pl.DataFrame  # canary_id, export_id: every export carrying a stable canary
    # 64-bit keys (polars' hash: bound to one polars version), sorted once when the index
    # is built and kept in its cache: name|kana → the plain renderings of each canary's
    # name or reading with its postcode (plain_keys); JOIN_KEYS → canary rows by
    # canary_hashes' h_name, h_kana, h_street, h_email.
    plain_sets: dict[str, KeySet]
    by_key: dict[str, KeyRows]
    domains: list[str] | None = None  # of the canaries' emails; see email_domains

    def carried(self, evidence: pl.DataFrame) -> pl.DataFrame:
        """Evidence with each stable canary's match repeated for every export carrying it
        (the canary's row in the registry names only the export that introduced it)."""
        if not self.carriers.height or not evidence.height:
            return evidence
        own = evidence.join(self.carriers, on="canary_id", how="anti")
        shared = (
            evidence.drop("export_id").join(self.carriers, on="canary_id").select(evidence.columns)
        )
        return pl.concat([own, shared])

    @property
    def size(self) -> int:
        return self.canaries.height

    def exports_by_phone(self, phones: Iterable[str]) -> dict[str, list[int]]:
        """National digits → ids of the exports holding that pool number, for ``phones``."""
        wanted = pl.Series(sorted(set(phones)), dtype=pl.String)
        if wanted.is_empty():
            return {}
        found = self.numbers.filter(pl.col("phone").is_in(wanted.implode()))
        out: dict[str, list[int]] = {}
        for phone, export_id in found.iter_rows():
            out.setdefault(phone, []).append(export_id)
        return out

    def plain(self, kind: str, keys: np.ndarray) -> np.ndarray:
        """Which raw (name or reading, postcode) pair hashes are a plain rendering of a
        canary's: see keys.candidate_rows."""
        return self.plain_sets[kind].contains(keys)

    def join(self, rows: pl.DataFrame, key: str, hashes: pl.Expr) -> pl.DataFrame:
        """``rows`` side by side with the canaries whose ``h_{key}`` equals ``hashes``."""
        wanted = rows.select(hashes).to_series().to_numpy()
        self.prepared()
        at, canary = self.by_key[key].find(wanted)
        return pl.concat([rows[at], self._prepared["all"][canary]], how="horizontal")

    def by_phone(self, rows: pl.DataFrame) -> pl.DataFrame:
        """``rows`` (_row, phone: a pool number) side by side with every canary carrying
        the number (canary_id, export_id and the canary's keys)."""
        self.prepared()  # built before any chunk is matched
        wanted = rows.get_column("phone").unique().to_list()
        at = [self._carrier_rows[p] for p in wanted if p in self._carrier_rows]
        carriers = self._carriers[at].explode(["canary_id", "export_id", "pos"])
        pairs = rows.join(carriers, on="phone")
        keys = self._prepared["by_pos"][pairs.get_column("pos").to_numpy()]
        return pl.concat([pairs.drop("pos"), keys], how="horizontal")

    def email_domains(self) -> list[str]:
        """The domains of canaries' emails (pool domains), lower case."""
        if self.domains is None:
            # What follows the first @ (a split, cheaper than a regex over 10^6 addresses).
            domain = pl.col("email").str.splitn("@", 2).struct.field("field_1")
            found = self.canaries.select(domain.unique().alias("d")).filter(
                pl.col("d").str.len_bytes() > 0
            )
            self.domains = found.to_series().sort().to_list()
        return self.domains

    def prepared(self) -> dict[str, pl.DataFrame]:
        """Frames and lookups every chunk uses, built once per scan rather than per chunk
        (and before the matching threads start)."""
        if not hasattr(self, "_prepared"):
            c = self.canaries.rename(
                {
                    "name": "name_c",
                    "kana": "kana_c",
                    "postcode": "postcode_c",
                    "email": "email_c",
                    "street": "street_c",
                }
            )
            # The canaries carrying each pool number (10^6 rows; a few numbers per chunk).
            self._carriers = self.phones.group_by("phone").agg("canary_id", "export_id", "pos")
            self._carrier_rows = {p: i for i, p in enumerate(self._carriers["phone"].to_list())}
            self._prepared = {
                "all": c,
                "by_pos": c.drop("canary_id", "export_id"),
                "phones": self.phones.select("phone").unique(),
            }
            number = pl.col("phone")
            self._prepared["phone_forms"] = pl.concat(
                [
                    self._prepared["phones"].select(
                        pl.concat_str([pl.lit(prefix), number]).alias("digits"), number
                    )
                    for prefix in ("0", "81", "+81", "810", "+810")
                ]
            )
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


INDEX_FORMAT = 9  # bump when the index's columns, normalisation or lookups change
FRAMES = ("canaries", "phones", "numbers", "carriers")


def load_index(registry: Registry, seeds_dir: str, cache_dir: str | None = None) -> CanaryIndex:
    """The canary index, from a cache folder when the registry's canaries have not changed.

    Building it for 10^6 canaries takes seconds; the cache (Arrow IPC for the frames, and
    the sorted key lookups as .npy files mapped into memory, mode 0600, canaries only,
    never people of a scanned list) loads in a fraction of that.
    """
    if not cache_dir:
        return build_index(registry, seeds_dir)
    import hashlib

    where = hashlib.sha256(registry.url.encode()).hexdigest()[:12]
    stamp = hashlib.sha256(
        # polars' hash is stable within one polars version only.
        f"{INDEX_FORMAT}|{pl.__version__}|{registry.canary_fingerprint()}|{seeds_dir}".encode()
    ).hexdigest()[:16]
    folder = Path(cache_dir) / f"index-{where}-{stamp}"
    if (folder / "complete").exists():
        try:
            return _read_cache(folder)
        except (OSError, ValueError, pl.exceptions.PolarsError):
            pass  # a damaged cache is rebuilt
    index = build_index(registry, seeds_dir)
    with contextlib.suppress(OSError):  # no cache is slower, not wrong
        _write_cache(index, folder, Path(cache_dir).glob(f"index-{where}-*"))
    return index


def _lookup_arrays(index: CanaryIndex) -> dict[str, np.ndarray]:
    out = {}
    for kind, keys in index.plain_sets.items():
        out.update({f"plain-{kind}-{part}": a for part, a in keys.arrays().items()})
    for key, rows in index.by_key.items():
        out.update({f"by-{key}-{part}": a for part, a in rows.arrays().items()})
    return out


def _read_cache(folder: Path) -> CanaryIndex:
    frames = [pl.read_ipc(folder / f"{name}.arrow") for name in FRAMES]
    arrays = {p.stem: np.load(p, mmap_mode="r") for p in folder.glob("*.npy")}

    def parts(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix) :]: a for k, a in arrays.items() if k.startswith(prefix)}

    plain = {kind: KeySet(**parts(f"plain-{kind}-")) for kind in ("name", "kana")}
    by_key = {key: KeyRows(**parts(f"by-{key}-")) for key in JOIN_KEYS}
    canaries, phones, numbers, carriers = frames
    domains = json.loads((folder / "domains.json").read_text(encoding="utf-8"))
    return CanaryIndex(canaries, phones, numbers, carriers, plain, by_key, domains)


def _write_cache(index: CanaryIndex, folder: Path, stale: Iterable[Path]) -> None:
    """Write the cache into a fresh folder and mark it complete last, so that a scan
    never reads a half-written cache; older caches of this registry go."""
    import os
    import shutil
    import tempfile

    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for old in list(stale):
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)  # a cache of an earlier format: loose files
    work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".index-"))  # mode 0700
    try:
        for name, frame in zip(
            FRAMES, (index.canaries, index.phones, index.numbers, index.carriers), strict=True
        ):
            frame.write_ipc(work / f"{name}.arrow")
        for name, array in _lookup_arrays(index).items():
            np.save(work / f"{name}.npy", np.ascontiguousarray(array))
        domains = json.dumps(index.email_domains(), ensure_ascii=False)
        (work / "domains.json").write_text(domains, encoding="utf-8")
        for child in work.iterdir():
            os.chmod(child, 0o600)
        (work / "complete").touch(mode=0o600)
        os.replace(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
        "kana_raw",
    )
    pos = pl.int_range(pl.len(), dtype=pl.UInt32).alias("pos")
    phones = pl.concat(
        [
            raw.select(pl.col(c).alias("phone"), "canary_id", "export_id", pos)
            for c in ("phone1", "phone2")
        ]
    ).drop_nulls("phone")
    numbers = pl.DataFrame(
        [(significant(k) or k, e) for k, v in registry.exports_by_number().items() for e in v],
        schema={"phone": pl.String, "export_id": pl.Int64},
        orient="row",
    )
    hashes = canary_hashes(canaries)
    carriers = pl.DataFrame(
        registry.stable_carriers(),
        schema={"canary_id": pl.Int64, "export_id": pl.Int64},
        orient="row",
    )
    # Only the join keys, sorted, are kept; the renderings' hashes live on in the plain
    # keys. Sorting (polars' threads) and counting runs (numpy releases the GIL) are the
    # slow part of a build, so the four join keys and two plain sets are done side by side.
    orders = hashes.select(
        [pl.col(f"h_{k}").arg_sort().cast(pl.UInt32).alias(k) for k in JOIN_KEYS]
    )
    plain = plain_keys(hashes)

    def rows_by(key: str) -> KeyRows:
        order = orders.get_column(key).to_numpy()
        return KeyRows(order, hashes.get_column(f"h_{key}").to_numpy()[order])

    with ThreadPoolExecutor(2) as pool:
        plain_sets = dict(zip(plain, pool.map(KeySet, plain.values()), strict=True))
        by_key = dict(zip(JOIN_KEYS, pool.map(rows_by, JOIN_KEYS), strict=True))
    return CanaryIndex(canaries, phones, numbers, carriers, plain_sets, by_key)


def plain_keys(hashes: pl.DataFrame) -> dict[str, np.ndarray]:
    """Sorted pair hashes of every plain rendering of each canary's name (and reading)
    with each way of writing its postcode. pair_hash is an XOR of the two strings'
    hashes, so each rendering and each postcode form was hashed once (canary_hashes) and
    the pairs combine here."""
    postcodes = [pl.col("p0"), pl.col("p1")]
    return {
        kind: pl.concat(
            [
                hashes.select(pl.col(f"{kind}{i}").xor(p).alias("k"))
                for i in range(3)
                for p in postcodes
            ]
        )
        .get_column("k")
        .sort()
        .to_numpy()
        for kind in ("name", "kana")
    }


def canary_hashes(canaries: pl.DataFrame) -> pl.DataFrame:
    """The 64-bit keys chunks are matched on, one row per canary: h_name, h_kana (name or
    reading + postcode), h_street (name + street), h_email; and, for the raw-text fast
    path, the hashes of the three plain renderings of the name and of the reading
    (name0..2, kana0..2) and of the postcode with and without its dash (p0, p1)."""
    return (
        canaries.lazy()
        .select(
            pair_hash(pl.col("name"), pl.col("postcode")).alias("h_name"),
            pair_hash(pl.col("kana"), pl.col("postcode")).alias("h_kana"),
            pair_hash(pl.col("name"), pl.col("street")).alias("h_street"),
            pl.col("email").hash(HASH_SEED).alias("h_email"),
            pl.col("postcode").hash(HASH_SEED + 1).alias("p0"),
            pl.concat_str(
                [pl.col("postcode").str.slice(0, 3), pl.col("postcode").str.slice(3)],
                separator="-",
            )
            .hash(HASH_SEED + 1)
            .alias("p1"),
            *[
                form.hash(HASH_SEED).alias(f"{kind}{i}")
                for kind, raw, key in (
                    ("name", "name_raw", K.name_key),
                    ("kana", "kana_raw", K.kana_key),
                )
                for i, form in enumerate(_renderings(pl.col(raw), pl.col(kind), key))
            ],
        )
        .collect()
    )
