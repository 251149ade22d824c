"""The filing queue (``canary.registry.filing``): the server's events are stored and
classified in the webhook's transaction and filed into incidents later, many at once. Filed
late or filed at once, incidents and alerts come out the same; nothing queued is lost or
filed twice; readers of incidents and alerts never see an event before its incident.

Runs on SQLite and PostgreSQL through the ``registry`` fixture.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from canary.alerts.store import pending
from canary.events import EventDraft, aware
from canary.registry import Registry
from canary.registry.models import Alert, Event, FilingQueue, Incident
from canary.settings import Settings
from tests.helpers import call_event, mail_event, seed_export

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def _mail(address: str, sender: str, pid: str, when: datetime = T0) -> EventDraft:
    return mail_event(address, sender, pid, when)


def _count(registry: Registry, table: type) -> int:
    """Rows of a table, read directly (not through a reader, which files the queue first)."""
    with registry._sessions() as s:
        return int(s.execute(select(func.count()).select_from(table)).scalar_one())


def _suspicious(registry: Registry) -> int:
    with registry._sessions() as s:
        query = select(func.count()).where(Event.classification == "suspicious")
        return int(s.execute(query).scalar_one())


def _mixed_drafts(registry: Registry, codes: list[str], n: int, seed: int) -> list[EventDraft]:
    """Mail and calls (with and without caller ID) to the exports' canaries, a few stray
    calls, and redeliveries."""
    numbers = sorted({c.phone_e164 for code in codes for c in registry.canaries_of(code)})
    addresses = sorted({c.email for code in codes for c in registry.canaries_of(code) if c.email})
    rng = random.Random(seed)
    drafts: list[EventDraft] = []
    for i in range(n):
        when = T0 + timedelta(minutes=rng.randrange(60 * 24 * 10))
        roll = rng.random()
        if roll < 0.3:
            sender = f"s{rng.randrange(4)}@broker.example"
            drafts.append(_mail(rng.choice(addresses[:4]), sender, f"<m{i}>", when))
        elif roll < 0.9:
            source = rng.choice([None, "0120-00-1111", "0120-00-2222", "03-5555-0001"])
            drafts.append(
                EventDraft(
                    channel=rng.choice(["call", "sms"]),
                    target=rng.choice([n for n in numbers if n]),
                    occurred_at=when,
                    provider="twilio",
                    payload=f"c{i}".encode(),
                    source=source,
                    provider_id=f"CA{i}",
                )
            )
        else:
            drafts.append(call_event("03-9999-0000", "0312345678", when, f"ST{i}"))
    return drafts + rng.sample(drafts, n // 6)


def _record_in_small_batches(registry: Registry, drafts: list[EventDraft], seed: int) -> None:
    rng = random.Random(seed)
    start = 0
    while start < len(drafts):
        size = rng.randint(1, 6)
        registry.record_events(drafts[start : start + size], file=False)
        start += size


def _assert_scored_at_once(registry: Registry) -> None:
    """Every incident's count, first and last seen and guilt are what all its events make
    scored at once, and every suspicious event has its one alert."""
    with registry._sessions() as s:
        rows = list(s.execute(select(Incident)).scalars())
        assert rows
        for row in rows:
            guilt, count, first, last = registry.scored_at_once(s, row)
            seen = (aware(row.first_seen), aware(row.last_seen))
            assert (row.event_count, *seen) == (count, aware(first), aware(last))
            assert row.confidence == pytest.approx(guilt)
            assert row.attributed == (guilt >= 0.95)
    assert _count(registry, Alert) == _suspicious(registry)


def test_queued_events_wait_unfiled_and_are_filed_as_if_at_once(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    codes = [seed_export(registry, settings, tmp_path, f"op{i}", i).export.code for i in (1, 2)]
    _record_in_small_batches(registry, _mixed_drafts(registry, codes, 120, seed=3), seed=4)
    # Stored and classified, but not filed: no incident, no alert, every suspicious one queued.
    suspicious = _suspicious(registry)
    assert suspicious > 50
    assert _count(registry, FilingQueue) == suspicious
    assert _count(registry, Incident) == 0 and _count(registry, Alert) == 0
    filed = []
    while registry.queued():
        filed.append(registry.file_queued(limit=17))  # several rounds, each one transaction
    assert sum(filed) == suspicious and len(filed) >= 3
    assert _count(registry, FilingQueue) == 0
    _assert_scored_at_once(registry)


def test_readers_of_incidents_and_alerts_file_what_is_queued_first(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    address = next(c.email for c in registry.canaries_of(code) if c.email)
    [event] = registry.record_events([_mail(address, "a@broker.example", "<a>")], file=False)
    assert event.classification == "suspicious" and registry.queued()
    [incident] = registry.incidents()
    assert incident.export == code and incident.events == 1 and not registry.queued()
    registry.record_events([_mail(address, "b@broker.example", "<b>")], file=False)
    alerts = pending(registry)
    assert [a.item.event.provider_id for a in alerts] == ["<a>", "<b>"]
    assert all(a.item.incident is not None and a.item.incident.export == code for a in alerts)


def test_queued_events_outlive_the_process_that_queued_them(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    address = next(c.email for c in registry.canaries_of(code) if c.email)
    writer = Registry(settings.db, actor="server")
    writer.record_events([_mail(address, "a@broker.example", "<a>")], file=False)
    writer.close()  # the worker is gone before its filer ran
    later = Registry(settings.db, actor="server")
    try:
        assert later.queued() and later.file_all_queued() == 1
        [incident] = later.incidents()
        assert incident.export == code and incident.attributed
    finally:
        later.close()


def test_concurrent_filers_file_each_queued_event_once(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    codes = [seed_export(registry, settings, tmp_path, f"op{i}", i).export.code for i in (1, 2, 3)]
    _record_in_small_batches(registry, _mixed_drafts(registry, codes, 150, seed=5), seed=6)
    queued = _count(registry, FilingQueue)
    filed: list[int] = []
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def filer() -> None:
        try:
            start.wait(60)
            while True:
                count = registry.file_queued(limit=9)
                filed.append(count)
                if count == 0 and not registry.queued():
                    return
        except BaseException as exc:  # a deadlock or a second filing would surface here
            failures.append(exc)

    threads = [threading.Thread(target=filer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sum(filed) == queued and _count(registry, FilingQueue) == 0
    _assert_scored_at_once(registry)
