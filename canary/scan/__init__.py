"""Scanning a broker list: read it in chunks, normalise every row's keys, match them against
the canary index, attribute the leak to exports and accounts, and record the scan.

Nothing about the list's people is kept: the scan record holds the file's name, size and
SHA-256, row counts, the findings and the canaries that were found (with row numbers).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from canary.attribute import DEFAULT_THRESHOLD, AccountFinding, ExportFinding, attribute
from canary.errors import EmptyFileError, InputError, RegistryError
from canary.registry import Registry
from canary.registry.scans import MatchRecord
from canary.scan import readers
from canary.scan.index import HASH_SEED, CanaryIndex, load_index
from canary.scan.keys import (
    RowKeys,
    candidate_rows,
    emails_of,
    main_keys,
    other_tails,
    phones_of,
    postcode_counts,
    raw_shape,
    row_keys,
)
from canary.scan.match import EVIDENCE_SCHEMA, match_chunk
from canary.scan.plan import KeyPlan, plan_keys
from canary.xlsxfile import is_xlsx

Progress = Callable[[int], None]  # rows read so far
MATCHERS = 2


@dataclass
class ScanResult:
    file_name: str
    sha256: str
    size: int
    kind: str
    encoding: str | None
    rows: int
    matched_rows: int
    weak_rows: int
    threshold: float
    plans: dict[str, dict[str, list[str]]]
    exports: list[ExportFinding]
    accounts: list[AccountFinding]
    warnings: list[str] = field(default_factory=list)
    scan_id: str | None = None
    canaries_indexed: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "scan_id": self.scan_id,
            "file": self.file_name,
            "sha256": self.sha256,
            "size": self.size,
            "format": self.kind,
            "encoding": self.encoding,
            "rows": self.rows,
            "matched_rows": self.matched_rows,
            "weak_rows": self.weak_rows,
            "threshold": self.threshold,
            "warnings": self.warnings,
            "exports": [
                {
                    "export_id": f.meta.code,
                    "client": f.meta.client,
                    "list": f.meta.list_name,
                    "account": f.meta.account,
                    "matched": f.matched,
                    "seeded": f.meta.canary_count,
                    "confidence": round(f.confidence, 6),
                    "attributed": f.attributed,
                    "account_shared": f.meta.account_shared,
                    "account_members": f.meta.account_members,
                    "recipient": f.meta.recipient,
                    "exported_at": f.meta.created_at.isoformat(),
                    "evidence": [
                        {
                            "canary": e.name,
                            "key": e.key,
                            "strength": e.strength,
                            "p": e.p,
                            "rows": e.rows[:50],
                        }
                        for e in f.evidence
                    ],
                    "weak_phones": f.weak_phones,
                }
                for f in self.exports
            ],
            "accounts": [
                {
                    "client": a.client,
                    "list": a.list_name,
                    "account": a.account,
                    "exports": a.exports,
                    "confidence": round(a.confidence, 6),
                    "attributed": a.attributed,
                    "account_members": a.members,
                    "evidence": [
                        {
                            "canary": e.name,
                            "key": e.key,
                            "strength": e.strength,
                            "p": e.p,
                            "rows": e.rows[:50],
                            "carried_by": e.holders,
                        }
                        for e in a.evidence
                    ],
                }
                for a in self.accounts
            ],
        }


HASH_BUFFER = 64 * 1024


def _hash_file(path: Path, out: list[str], stop: threading.Event) -> None:
    digest = hashlib.sha256()
    # One small buffer, read into again and again: it stays in the core's cache between
    # the kernel's copy and the digest's read. 4 MiB measured 0.6 s more CPU per 1.4 GB
    # than 64 KiB (the copy then goes out to memory and comes back).
    buffer = bytearray(HASH_BUFFER)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as fh:
        while not stop.is_set() and (n := fh.readinto(buffer)):
            digest.update(view[:n])
    out.append(digest.hexdigest())


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the duration: a scan (and an index build, which
    turns 10^6 canaries into rows) allocates objects by the million, none in cycles, and
    each collection walks every object the imports made. Measured: 110 collections per
    scan of 10 M rows, and 6 s of a first scan's index build. Reference counting still
    frees everything; the previous state is restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@collector_paused()
def scan(
    registry: Registry,
    seeds_dir: str,
    path: Path,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    encoding: str | None = None,
    record: bool = True,
    progress: Progress | None = None,
    cache_dir: str | None = None,
) -> ScanResult:
    """Scan one broker list against every canary in the registry."""
    registry.require_ready()
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file.")
    size = path.stat().st_size
    if size == 0:
        raise EmptyFileError(f"{path.name} is empty; nothing to scan.")
    if not 0 < threshold <= 1:
        raise InputError("--threshold must be a probability between 0 and 1.")
    # The index loads (or is built) while the file's head is read and its first chunks
    # are parsed: every chunk's matching waits for it, the reading does not.
    loader = ThreadPoolExecutor(1, thread_name_prefix="canary-index")
    loading = loader.submit(_ready_index, registry, seeds_dir, cache_dir)
    loader.shutdown(wait=False)
    digest: list[str] = []
    stop_hashing = threading.Event()
    hasher = threading.Thread(
        target=_hash_file, args=(path, digest, stop_hashing), name="canary-hash", daemon=True
    )
    hasher.start()
    try:
        stats = readers.ReadStats()
        evidence: list[pl.DataFrame] = []
        weak: list[pl.DataFrame] = []
        count_chunks: list[pl.DataFrame] = []
        plans: dict[str, dict[str, list[str]]] = {}
        warnings: list[str] = []

        # Each chunk is matched whole while the reader thread parses the next one: polars
        # spreads a chunk's expressions over the cores itself (splitting chunks across threads
        # measured slower once only candidate rows were normalised).

        def work(
            frame: pl.DataFrame, plan: KeyPlan
        ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
            index, domains, prepared, tails = loading.result()
            shape = raw_shape(frame, plan)
            if shape is None:  # several name columns, merged names, no postcode column
                keys = row_keys(frame, plan, domains)
                counts = postcode_counts(
                    keys.main.select(pl.col("postcode").hash(HASH_SEED + 1)).to_series()
                )
            else:
                # Only rows that may hold a canary, or that need normalising to tell, are
                # normalised; phones and emails are cheap to find in every row.
                phones = phones_of(frame, plan.phones, prepared["phone_forms"], tails)
                counted: list[pl.DataFrame] = []
                mask = candidate_rows(frame, shape, index.plain, bool(plan.address), counted)
                pooled = phones.join(prepared["phones"], on="phone", how="semi")
                first = frame.get_column("_row")[0] if frame.height else 0
                mask[pooled.get_column("_row").to_numpy() - first] = True
                keys = RowKeys(
                    main_keys(frame.filter(pl.Series(mask)), plan),
                    phones,
                    emails_of(frame, plan.emails, domains),
                )
                counts = counted[0]
            ev, wk = match_chunk(keys, index)
            return counts, ev, wk

        def consume(chunks: object, plan: KeyPlan) -> None:
            # Two chunks are matched at once (polars releases the GIL); at most two more wait.
            with ThreadPoolExecutor(MATCHERS, thread_name_prefix="canary-match") as pool:
                running: deque[Future[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]] = deque()
                for chunk in chunks:  # type: ignore[attr-defined]
                    running.append(pool.submit(work, chunk.frame, plan))
                    if len(running) > MATCHERS:
                        collect(*running.popleft().result())
                while running:
                    collect(*running.popleft().result())

        def collect(counts: pl.DataFrame, ev: pl.DataFrame, wk: pl.DataFrame) -> None:
            count_chunks.append(counts)
            if len(count_chunks) > 16:  # compact: memory stays flat
                count_chunks[:] = [pl.concat(count_chunks).group_by("h").agg(pl.col("count").sum())]
            if ev.height:
                evidence.append(ev)
            if wk.height:
                weak.append(wk)
            if progress:
                progress(stats.rows)

        if is_xlsx(path):
            kind, enc = "xlsx", None
            sheets = readers.open_xlsx(path)
            if not sheets:
                raise EmptyFileError(f"{path.name}: every sheet is empty; nothing to scan.")
            usable = 0
            for name, layout, body in sheets:
                plan = plan_keys(layout.columns, layout.sample, layout.schema)
                plans[name] = plan.describe(layout.columns)
                if plan.usable:
                    usable += 1
                    consume(readers.xlsx_chunks(body, len(layout.columns), name, stats), plan)
            if not usable:
                raise InputError(_no_keys(path, sheets[0][1].columns))
        else:
            kind = "csv"
            layout, start, head = readers.open_text(path, encoding)
            enc = layout.encoding
            if len(layout.columns) < 2:
                raise InputError(
                    f"{path.name} has a single column; a list of people needs "
                    "separate name and contact columns (check the delimiter)."
                )
            plan = plan_keys(layout.columns, layout.sample, layout.schema)
            plans[path.name] = plan.describe(layout.columns)
            if not plan.usable:
                raise InputError(_no_keys(path, layout.columns))
            columns = plan.columns()
            if head.dialect.encoding == "utf-8":
                try:
                    consume(readers.stream_utf8(path, layout, start, head, stats, columns), plan)
                except pl.exceptions.PolarsError:
                    # A file polars' streaming reader refuses (one ending inside a quoted
                    # field): start again with the block reader, which copes and says so.
                    evidence.clear()
                    weak.clear()
                    count_chunks.clear()
                    stats = readers.ReadStats()
                    consume(readers.read_text(path, layout, start, head, stats, columns), plan)
            else:
                consume(readers.read_text(path, layout, start, head, stats, columns), plan)
    except BaseException:
        # The file was refused or the scan broke off: the hash is not needed, and the
        # thread must not outlive the call (the caller may move or delete the file).
        stop_hashing.set()
        hasher.join()
        # Nor may the index's thread; and an empty registry is the first thing to fix.
        failed = loading.exception()
        if isinstance(failed, RegistryError):
            raise failed from None
        raise
    hasher.join()
    index = loading.result()[0]  # also where no chunk was matched (a file of no rows)
    if stats.truncated:
        warnings.append(
            "The file ends inside a quoted field: it looks cut off; the last "
            "record was read as far as it goes."
        )
    if stats.replaced_bytes:
        warnings.append(
            f"{stats.replaced_bytes} undecodable byte sequence(s) were replaced; "
            "the file may be damaged or mix encodings."
        )

    all_evidence = index.carried(
        pl.concat(evidence) if evidence else pl.DataFrame(schema=EVIDENCE_SCHEMA)
    )
    all_weak = (
        pl.concat(weak) if weak else pl.DataFrame(schema={"_row": pl.Int64, "phone": pl.String})
    )
    exports_hit = set(all_evidence["export_id"].to_list())
    by_phone = index.exports_by_phone(all_weak["phone"].to_list())
    for exports in by_phone.values():
        exports_hit.update(exports)
    meta = registry.export_meta(sorted(exports_hit))
    postcodes = _rows_at(count_chunks, all_evidence)
    names = dict(
        index.canaries.filter(
            pl.col("canary_id").is_in(all_evidence["canary_id"].unique().to_list())
        )
        .select("canary_id", "name_raw")
        .iter_rows()
    )
    findings, accounts = attribute(
        all_evidence,
        all_weak,
        names,
        postcodes,
        by_phone,
        meta,
        threshold,
        exports_total=registry.export_count(),
    )
    matched_rows = all_evidence["_row"].n_unique() if all_evidence.height else 0
    strong_rows = set(all_evidence["_row"].to_list())
    weak_rows = len({r for r in all_weak["_row"].to_list() if r not in strong_rows})
    result = ScanResult(
        path.name,
        digest[0],
        size,
        kind,
        enc,
        stats.rows,
        matched_rows,
        weak_rows,
        threshold,
        plans,
        findings,
        accounts,
        warnings,
        canaries_indexed=index.size,
    )
    if record:
        matches = [
            MatchRecord(e.canary_id, e.key, e.strength, e.rows)
            for f in findings
            for e in f.evidence
        ]
        result.scan_id = registry.record_scan(
            path.name,
            result.sha256,
            size,
            stats.rows,
            matched_rows,
            threshold,
            result.as_json(),
            matches,
        )
    return result


def _ready_index(
    registry: Registry, seeds_dir: str, cache_dir: str | None
) -> tuple[CanaryIndex, list[str], dict[str, pl.DataFrame], pl.Series]:
    """The canary index with what every chunk uses built once, before chunks meet it."""
    index = load_index(registry, seeds_dir, cache_dir)
    if index.size == 0:
        raise RegistryError(
            "The registry holds no canaries yet, so there is nothing to look "
            "for; seed exports with `canary seed` first."
        )
    prepared = index.prepared()  # built once here, not by two matching threads at once
    return index, index.email_domains(), prepared, other_tails(prepared["phones"])


def _rows_at(counts: list[pl.DataFrame], evidence: pl.DataFrame) -> Counter[str]:
    """Rows of the file at each postcode where a canary was found (the rest is not needed).
    Rows were counted by the hash of their postcode text, seven digits or with a dash."""
    wanted = evidence["postcode"].drop_nulls().unique()
    if not counts or wanted.is_empty():
        return Counter()
    forms = pl.DataFrame({"postcode": wanted}).select(
        "postcode",
        pl.col("postcode").hash(HASH_SEED + 1).alias("h0"),
        pl.concat_str(
            [pl.col("postcode").str.slice(0, 3), pl.col("postcode").str.slice(3)], separator="-"
        )
        .hash(HASH_SEED + 1)
        .alias("h1"),
    )
    totals = pl.concat(counts).group_by("h").agg(pl.col("count").sum())
    found = pl.concat(
        [
            forms.join(totals, left_on=form, right_on="h").select("postcode", "count")
            for form in ("h0", "h1")
        ]
    )
    return Counter(dict(found.group_by("postcode").agg(pl.col("count").sum()).iter_rows()))


def _no_keys(path: Path, columns: tuple[str, ...]) -> str:
    return (
        f"{path.name}: no column holds phone numbers, emails, names or kana, so there is "
        f"nothing to match. Columns found: {', '.join(columns)}."
    )
