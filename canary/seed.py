"""Seeding: one export of one list, with canaries unique to it, committed before it appears.

Order of work (invariant 1: no export without its registry entry):

1. read the head of the input, infer its schema, profile it (nothing is stored);
2. choose the export's pool numbers and make its canaries;
3. stream the input to a locked temporary file beside the output, splicing canaries in;
4. fsync, then commit the export and its canaries (status ``sealed``);
5. rename the temporary file into place, fsync the folder, mark the export ``delivered``.

A crash before 4 leaves a temporary file that ``recover`` removes and no registry row; a
crash between 4 and 5 is rolled forward by ``recover`` (the sealed file is put in place).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import socket
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from canary import csvfile, hostcheck, listids, sample, xlsxfile
from canary.delivery import TempFile, file_sha256, place_file, recover
from canary.domains import configured_zones, website_tokens
from canary.errors import EmptyFileError, InputError, OutputError, PoolTooSmallError
from canary.formats import IdStyle
from canary.generate import CanaryFactory, GeneratedCanary
from canary.hostkeys import Columns, Found, python_found
from canary.hostpass import find_hosts
from canary.normalize import address_key
from canary.ordering import (
    Carried,
    fit_id_range,
    keep_order,
    lines_before,
    sort_order,
)
from canary.pools import PoolNumber, choose_phone_set
from canary.profile import HostProfile, profile_host
from canary.reference import Gazetteer, name_book
from canary.registry import Registry, new_export_code
from canary.registry.records import CanaryDraft, ExportDraft, ExportRecord
from canary.schema import Schema, infer_schema
from canary.settings import Settings

Progress = Callable[[int, int], None]  # (bytes done, bytes total)
SPREAD_WINDOWS, SPREAD_BYTES = 128, 4096  # the profile's windows through the list


def default_canary_count(rows: int) -> int:
    """Canaries for a list of ``rows`` people: ~15·log10(rows), at most 2 % of the rows.

    10 rows → 1, 100 → 2, 1,000 → 20, 10,000 → 61, 100,000 → 76, 1 M → 91, 10 M → 106.
    A broker who keeps 5 % of a 10,000-row list still carries about three canaries of it; the
    leak simulator's recall is bounded by canaries surviving subsamples, not by matching.
    """
    if rows <= 0:
        return 1
    return max(1, min(math.ceil(15 * math.log10(rows + 1)), rows // 50))


def default_stable_count(count: int) -> int:
    """How many of an export's ``count`` canaries are stable for its (list, account).

    Stable canaries are the same rows in every export of one list by one account, so an
    insider who diffs two of the account's exports and drops every row that differs still
    carries them, and the account is named. They cannot name the export (every export of
    the account holds them); the export's own canaries do that. A quarter keeps most of an
    export's canaries unique to it (exact attribution) while leaving several to survive a
    diff; below four canaries every canary stays unique.
    """
    return count // 4 if count >= 4 else 0


def stable_group(client: str, list_name: str, account: str) -> str:
    """The key of one (client, list, account) group of exports."""
    return hashlib.sha256("\x1f".join((client, list_name, account)).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SeedRequest:
    input: Path
    output: Path
    client: str
    list_name: str
    account: str
    recipient: str | None = None
    requested_by: str | None = None
    canaries: int | None = None
    stable: int | None = None  # of them stable for (list, account); default_stable_count
    encoding: str | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)
    force: bool = False
    account_members: tuple[str, ...] = ()
    host: str | None = None
    terminal: str | None = None
    rng_seed: int | None = None


@dataclass(frozen=True)
class SeedResult:
    export: ExportRecord
    schema: Schema
    canaries: list[GeneratedCanary | Carried]
    positions: list[int]
    timings: dict[str, float] = field(default_factory=dict)
    stable: int = 0  # the first ``stable`` canaries are stable for (list, account)

    def own(self) -> list[GeneratedCanary]:
        """The canaries unique to this export."""
        return [c for c in self.canaries[self.stable :] if isinstance(c, GeneratedCanary)]

    def as_json(self) -> dict[str, object]:
        e = self.export
        return {
            "export_id": e.code,
            "canaries": e.canary_count,
            "rows_in": e.rows_in,
            "rows_out": e.rows_out,
            "sha256": e.output_sha256,
            "output": e.output_path,
            "client": e.client,
            "list": e.list_name,
            "account": e.account,
            "encoding": e.encoding,
            "format": e.file_format,
            "stable_canaries": self.stable,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


class _Clock:
    """Seconds spent in each phase of a seed, reported in --json for benchmarks."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now


def _terminal() -> str | None:
    ssh = os.environ.get("SSH_CLIENT")
    if ssh:
        return f"ssh from {ssh.split()[0]}"
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            return os.ttyname(fd)
    return None


def _check_output(req: SeedRequest) -> None:
    out = req.output
    if out.resolve() == req.input.resolve():
        raise OutputError("The output would overwrite the input list; choose another --out.")
    if out.exists() and not req.force:
        raise OutputError(
            f"{out} already exists; choose another --out or pass --force to replace it."
        )
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"The folder {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"Cannot write into {parent}; choose a folder you can write to.")


def seed(
    registry: Registry, settings: Settings, req: SeedRequest, progress: Progress | None = None
) -> SeedResult:
    """Seed one export of one list; see the module docstring for the order of work."""
    registry.require_ready()
    if not req.input.is_file():
        raise InputError(f"{req.input} does not exist or is not a file.")
    _check_output(req)
    recover(registry, req.output.parent)
    rng = random.Random(req.rng_seed)
    try:
        xlsx = xlsxfile.is_xlsx(req.input)
    except OSError as exc:
        raise InputError(f"Cannot read {req.input}: {exc.strerror}.") from exc
    if xlsx:
        return _seed_xlsx(registry, settings, req, rng, progress)
    return _seed_text(registry, settings, req, rng, progress)


def _prepare(
    registry: Registry,
    settings: Settings,
    req: SeedRequest,
    schema: Schema,
    body: list[list[str]],
    est_rows: int,
    rng: random.Random,
    encodable: Callable[[str], bool],
    spread: Sequence[list[str]] = (),
) -> tuple[CanaryFactory, int, list[PoolNumber]]:
    # The profile sees the head and windows through the whole list (in memory only), the
    # head thinned to the windows' density: in a sorted list the head holds only its first
    # districts or years, and taken whole it would pull canaries there.
    keep = len(body)
    if spread:
        density = len(spread) / max(len(spread), est_rows - len(body))
        keep = max(1, round(len(body) * density))
    thinned = sample.thinned(body, keep, rng)
    profile = profile_host(schema, [*thinned, *spread])
    profile.sampled_share = min(1.0, (len(thinned) + len(spread)) / max(1, est_rows))
    count = req.canaries if req.canaries is not None else default_canary_count(est_rows)
    if count < 1:
        raise InputError("--canaries must be at least 1.")
    has_phone = any(r in schema.roles for r in ("phone", "mobile"))
    has_email = "email" in schema.roles
    numbers: list[PoolNumber] = []
    if has_phone:
        numbers = choose_phone_set(
            registry.active_numbers(),
            count,
            settings.max_numbers_per_export,
            registry.used_phone_sets(),
            rng,
        )
    domains = [d.domain for d in registry.pool_domains("active")]
    if has_email and not domains:
        raise PoolTooSmallError(
            "The list has an email column but the pool has no mail "
            "domain; add one you control with `canary pool add-domain`."
        )
    if (
        not has_phone
        and not has_email
        and not registry.pool_phones()
        and not registry.pool_domains()
    ):
        raise PoolTooSmallError(
            "The pool is empty; add owned numbers and mail domains with "
            "`canary pool add-phone` and `canary pool add-domain`."
        )
    factory = CanaryFactory(
        profile,
        name_book(settings.seeds_dir),
        Gazetteer(),
        numbers,
        domains,
        rng,
        emails_taken=registry.emails_taken,
        identity_taken=registry.identity_taken,
        encodable=encodable,
    )
    id_col = schema.column_of("id")
    if id_col is not None:  # neither a host's ID nor one the account's canaries hold
        column = schema.columns[id_col]
        used = listids.ids_taken(registry, req.client, req.list_name, req.account, column)
        values = [r[id_col] for r in body if id_col < len(r)] + sorted(used)
        factory.exclude_ids(_id_numbers(profile, id_col, values))
    url_col = schema.column_of("url")
    zones = configured_zones(settings) if url_col is not None else []
    if url_col is not None and zones:  # no zone: the URL column is a free column
        values = [r[url_col] for r in [*body, *spread] if url_col < len(r)]
        factory.websites = website_tokens(registry, zones[0], values)
    return factory, count, numbers


def _make_canaries(
    registry: Registry,
    req: SeedRequest,
    schema: Schema,
    factory: CanaryFactory,
    count: int,
    numbers: list[PoolNumber],
    encodable: Callable[[str], bool],
) -> tuple[list[GeneratedCanary | Carried], int]:
    """The export's canaries, stable ones first, and how many are stable. Stable canaries
    already made for this (client, list, account) with the same columns are carried again
    as the same rows (their pool numbers join the export's); the rest are made new."""
    stable = req.stable if req.stable is not None else default_stable_count(count)
    if not 0 <= stable <= count:
        raise InputError(f"--stable must be between 0 and the number of canaries ({count}).")
    carried: list[GeneratedCanary | Carried] = []
    if stable:
        group = stable_group(req.client, req.list_name, req.account)
        columns = list(schema.columns)
        for _, draft in registry.stable_canaries(group):
            if len(carried) == stable:
                break
            if list(draft.fields) != columns:
                continue  # made for another layout of the list
            row = [str(draft.fields[c]) for c in columns]
            if all(encodable(cell) for cell in row):  # checked against the list later
                carried.append(Carried(row, {c: str(draft.fields[c]) for c in columns}, draft))
        have = {n.e164 for n in numbers}
        wanted = {
            e
            for c in carried
            if isinstance(c, Carried)
            for e in (c.draft.phone_e164, c.draft.phone2_e164)
            if e and e not in have
        }
        numbers.extend(registry.numbers_by_e164(sorted(wanted)))
    made = carried + [factory.make() for _ in range(count - len(carried))]
    return made, stable


def _id_numbers(profile: HostProfile, id_col: int, values: list[str]) -> set[int]:
    style = profile.columns[id_col].style
    if not isinstance(style, IdStyle):
        return set()
    return {n for v in values if (n := style.number(v)) is not None}


def _export_draft(
    req: SeedRequest,
    schema: Schema,
    rows_in: int,
    count: int,
    sha256: str,
    temp: TempFile,
    file_format: str,
    encoding: str | None,
) -> ExportDraft:
    # The input is not hashed: the output's SHA-256 identifies what was handed over, and a
    # second hash would cost as much time as copying the file.
    return ExportDraft(
        code=new_export_code(),
        client=req.client,
        list_name=req.list_name,
        account=req.account,
        recipient=req.recipient,
        requested_by=req.requested_by,
        host=req.host or socket.gethostname(),
        terminal=req.terminal or _terminal(),
        rows_in=rows_in,
        rows_out=rows_in + count,
        input_name=req.input.name,
        input_sha256=None,
        output_path=str(req.output.resolve()),
        output_sha256=sha256,
        temp_path=str(temp.path.resolve()),
        file_format=file_format,
        encoding=encoding,
        columns=dict(zip(schema.columns, schema.roles, strict=True)),
        account_members=req.account_members,
    )


def _draft_canaries(
    made: list[GeneratedCanary | Carried],
    positions: list[int],
    factory: CanaryFactory,
    stable: int = 0,
    group: str | None = None,
) -> list[CanaryDraft]:
    """Registry drafts: the first ``stable`` canaries are the group's stable ones."""
    drafts = []
    for i, (c, pos) in enumerate(zip(made, positions, strict=True)):
        if isinstance(c, Carried):
            drafts.append(replace(c.draft, position=pos))
            continue
        layer = "stable" if i < stable else "export"
        p = c.person
        drafts.append(
            CanaryDraft(
                position=pos,
                name=p.name,
                kana=p.kana,
                romaji=p.romaji,
                sex=p.sex,
                birth_date=p.birth.isoformat(),
                postcode=p.place.postcode,
                address=p.address,
                address_key=address_key(p.address),
                phone_e164=p.phone.e164 if p.phone and _phone_written(c) else None,
                phone2_e164=p.phone2.e164 if p.phone2 and _phone_written(c, second=True) else None,
                email=p.email if p.email and p.email in c.row else None,
                fields=c.fields,
                layer=layer,
                stable_group=group if layer == "stable" else None,
            )
        )
    return drafts


def _phone_written(c: GeneratedCanary, second: bool = False) -> bool:
    from canary.normalize import phone_e164

    number = c.person.phone2 if second else c.person.phone
    return number is not None and any(phone_e164(v) == number.e164 for v in c.row if v)


def _hostnames(
    made: list[GeneratedCanary | Carried], factory: CanaryFactory
) -> list[tuple[str, str]]:
    """(hostname, zone) of the tokens new canaries carry in the URL column; a carried
    stable canary's website stays its first export's token."""
    if factory.websites is None:
        return []
    zone = factory.websites.zone
    return [
        (c.person.hostname, zone)
        for c in made
        if isinstance(c, GeneratedCanary) and c.person.hostname is not None
    ]


def _finish(
    registry: Registry,
    req: SeedRequest,
    temp: TempFile,
    draft: ExportDraft,
    drafts: list[CanaryDraft],
    numbers: list[PoolNumber],
    hostnames: list[tuple[str, str]],
    clock: _Clock | None = None,
) -> ExportRecord:
    temp.seal()
    if clock:
        clock.lap("fsync")
    used = {d.phone_e164 for d in drafts} | {d.phone2_e164 for d in drafts}
    numbers = [n for n in numbers if n.e164 in used]
    registry.seal_export(draft, drafts, numbers, hostnames)
    temp.keep = True  # from here the registry owns the file: recovery rolls it forward
    # Still holding the temp file's lock, so a concurrent recovery leaves it to us.
    place_file(temp.path, req.output, req.force)
    temp.fh.close()
    registry.set_export_status(draft.code, "delivered")
    if clock:
        clock.lap("commit")
    return registry.export(draft.code)


def _seed_text(
    registry: Registry,
    settings: Settings,
    req: SeedRequest,
    rng: random.Random,
    progress: Progress | None,
) -> SeedResult:
    clock = _Clock()
    head = csvfile.read_head(req.input, req.encoding)
    schema = infer_schema(head.records, req.mapping)
    csvfile.check_ragged(head.records, schema.header_index, req.input.name)
    header_end = (
        head.ends[schema.header_index] if schema.header_index >= 0 else len(head.dialect.bom)
    )
    body = [r for r in head.records[schema.header_index + 1 :] if any(c.strip() for c in r)]
    if not body:
        raise EmptyFileError(f"{req.input.name} has a header but no rows of people.")
    est_rows = max(len(body), round((head.size - header_end) / max(1.0, head.avg_record_bytes)))
    dialect = head.dialect
    clock.lap("read_head")
    # Windows through the rest of the file, after the head (which they must not count
    # twice: in a sorted list that pulled canaries towards its first districts). Many
    # small windows rather than a few large ones: in a list sorted by postcode each
    # window sees one or two districts, and districts no window saw would get no canary.
    head_end = head.ends[-1] if head.ends else header_end
    # Each export's windows are drawn afresh (see canary.sample).
    start, width = max(header_end, head_end), len(schema.columns)
    spread = sample.spread(req.input, dialect, start, width, rng, SPREAD_WINDOWS, SPREAD_BYTES)
    factory, count, numbers = _prepare(
        registry, settings, req, schema, body, est_rows, rng, dialect.encodable, spread
    )
    clock.lap("profile")
    skip_lines = lines_before(req.input, header_end, dialect.terminator)
    tail = csvfile.read_tail(req.input, dialect)
    fit_id_range(tail, schema, factory, est_rows)
    made, stable = _make_canaries(registry, req, schema, factory, count, numbers, dialect.encodable)
    span = max(1, head.size - header_end)
    targets = [
        header_end + (span * i) // count + rng.randrange(max(1, span // count))
        for i in range(count)
    ]
    sort = sort_order(schema, factory, body, tail)

    def place(only: set[int] | None = None) -> list[Any]:
        return keep_order(
            req.input, dialect, sort, factory, header_end, head.size, made, targets, only
        )

    ties = place()

    def replace_changed(changed: set[int]) -> None:
        nonlocal ties
        ties = place(changed)

    # The made canaries against the whole list: their IDs, and the people at their
    # postcodes or holding the export's pool numbers and domains (canary.hostcheck).
    hostcheck.check(
        made,
        factory,
        schema,
        numbers,
        Found(),
        dialect.encoding,
        lambda probe, found: find_hosts(req.input, dialect, schema, skip_lines, probe, found),
        replace_changed,
    )
    clock.lap("canaries")

    # Canaries sharing a place go in their sort order (splice keeps this order for ties).
    order = sorted(range(count), key=lambda i: (targets[i], ties[i]))
    insertions = [csvfile.Insertion(targets[i], dialect.render_row(made[i].row)) for i in order]
    temp = TempFile(req.output)
    try:
        out_hash = hashlib.sha256()
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, head.size)

        with req.input.open("rb", buffering=0) as src:
            result = csvfile.splice(
                src, temp.fh, header_end, insertions, dialect.terminator, tick, [out_hash]
            )
        positions = [0] * count
        for pos, i in zip(result.positions, order, strict=True):
            positions[i] = pos
        clock.lap("splice")
        group = stable_group(req.client, req.list_name, req.account)
        drafts = _draft_canaries(made, positions, factory, stable, group)
        draft = _export_draft(
            req, schema, result.rows_in, count, out_hash.hexdigest(), temp, "csv", dialect.label
        )
        hostnames = _hostnames(made, factory)
        export = _finish(registry, req, temp, draft, drafts, numbers, hostnames, clock)
    finally:
        temp.close()
    return SeedResult(export, schema, made, positions, clock.laps, stable)


def _book_rows(book: xlsxfile.Book, schema: Schema) -> Iterator[list[str]]:
    """The data rows of an Excel list's first sheet, as text (read again per round)."""
    for i, row in enumerate(book._rows()):
        if i > schema.header_index:
            yield [xlsxfile.cell_text(v) for v in row]


def _seed_xlsx(
    registry: Registry,
    settings: Settings,
    req: SeedRequest,
    rng: random.Random,
    progress: Progress | None,
) -> SeedResult:
    try:
        book = xlsxfile.open_book(req.input)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InputError(f"{req.input.name} is not a readable Excel workbook ({exc}).") from exc
    with book:
        records = book.head(csvfile.SAMPLE_RECORDS + 40)
        schema = infer_schema(records, req.mapping)
        body = [r for r in records[schema.header_index + 1 :] if any(c.strip() for c in r)]
        if not body:
            raise EmptyFileError(f"{req.input.name} has a header but no rows of people.")
        est_rows = max(len(body), book.row_count - schema.header_index - 1)
        factory, count, numbers = _prepare(
            registry, settings, req, schema, body, est_rows, rng, lambda _: True
        )
        made, stable = _make_canaries(
            registry, req, schema, factory, count, numbers, lambda _: True
        )
        cols = Columns.of(schema)
        hostcheck.check(
            made,
            factory,
            schema,
            numbers,
            Found(),
            "utf-8",
            lambda probe, found: python_found(_book_rows(book, schema), cols, probe, found),
        )
        data_rows = max(1, est_rows)
        slots = sorted(rng.randrange(max(1, data_rows - 1)) for _ in range(count))
        temp = TempFile(req.output)
        try:
            result = book.write_seeded(
                temp.fh, schema.header_index, slots, [c.row for c in made], progress
            )
            temp.seal()
            digest = file_sha256(temp.path)
            group = stable_group(req.client, req.list_name, req.account)
            drafts = _draft_canaries(made, result.positions, factory, stable, group)
            draft = _export_draft(req, schema, result.rows_in, count, digest, temp, "xlsx", None)
            export = _finish(registry, req, temp, draft, drafts, numbers, _hostnames(made, factory))
        finally:
            temp.close()
    return SeedResult(export, schema, made, result.positions, stable=stable)
