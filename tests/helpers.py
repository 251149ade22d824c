"""Checks shared by tests: strip an export's canary rows and compare with the input; a
seeded export; a host list seeded and read back; a call event as a telephony provider
reports it."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from canary.csvfile import _record_ends
from canary.events import EventDraft
from canary.registry import Registry
from canary.seed import SeedRequest, SeedResult, seed
from canary.settings import Settings
from tests.listgen import people, write_csv


def split_records(data: bytes, terminator: int = 10) -> list[bytes]:
    ends = [int(e) for e in _record_ends(data, terminator)]
    if not ends or ends[-1] < len(data):
        ends.append(len(data))
    out, start = [], 0
    for end in ends:
        out.append(data[start:end])
        start = end
    return out


def strip_canaries(
    seeded: bytes, registry: Registry, code: str, header_records: int, terminator: int = 10
) -> tuple[bytes, list[bytes]]:
    """The seeded file without its canary rows, and those rows."""
    records = split_records(seeded, terminator)
    positions = {c.position for c in registry.canaries_of(code)}
    kept, canaries = [], []
    for i, rec in enumerate(records):
        data_index = i - header_records
        if data_index >= 0 and data_index in positions:
            canaries.append(rec)
        else:
            kept.append(rec)
    return b"".join(kept), canaries


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def seed_export(
    registry: Registry, settings: Settings, tmp: Path, account: str, no: int
) -> SeedResult:
    """One seeded export of a 400-row host list (the canaries carry pool numbers)."""
    src = tmp / "host.csv"
    if not src.exists():
        write_csv(src, people(400, seed=5))
    return seed(
        registry,
        settings,
        SeedRequest(
            input=src,
            output=tmp / f"out{no}.csv",
            client="city",
            list_name="residents",
            account=account,
            rng_seed=no,
            stable=0,
        ),
    )


def seed_rows(
    registry: Registry,
    settings: Settings,
    rows: list[list[str]],
    tmp: Path,
    rng_seed: int,
    account: str = "a",
) -> tuple[SeedResult, list[list[str]]]:
    """Seed a host list of ``rows`` (as tests.listgen writes it, CP932) once; the result
    and the seeded file's data rows."""
    src = write_csv(tmp / "l.csv", rows)
    out = tmp / f"o{rng_seed}.csv"
    res = seed(
        registry,
        settings,
        SeedRequest(
            input=src, output=out, client="c", list_name="l", account=account, rng_seed=rng_seed
        ),
    )
    with out.open(encoding="cp932", newline="") as fh:
        return res, list(csv.reader(fh))[1:]


def call_event(
    target: str, source: str, when: datetime, pid: str, text: str | None = None
) -> EventDraft:
    """A call to ``target`` from ``source``, as Twilio reports it (its id is ``pid``)."""
    return EventDraft(
        channel="call",
        target=target,
        occurred_at=when,
        provider="twilio",
        payload=f"{pid}|{target}|{source}".encode(),
        source=source,
        provider_id=pid,
        text=text,
    )


def mail_event(address: str, sender: str, pid: str, when: datetime) -> EventDraft:
    """A mail to ``address`` from ``sender``, as the SMTP listener stores it (id ``pid``)."""
    return EventDraft(
        channel="email",
        target=address,
        occurred_at=when,
        provider="smtp",
        payload=f"{pid}|{sender}".encode(),
        source=sender,
        provider_id=pid,
    )
