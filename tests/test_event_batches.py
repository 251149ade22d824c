"""Events stored in batches (``Registry.record_events``, the server's group commit): each
event once, repeats marked, incidents scored as if the events had come one by one, and
concurrent batches over the same events and incidents never deadlock.

Runs on SQLite and PostgreSQL through the ``registry`` fixture.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from canary.events import EventDraft
from canary.registry import Registry
from canary.settings import Settings
from tests.helpers import call_event, mail_event, seed_export

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def _mail(address: str, sender: str, pid: str, when: datetime = T0) -> EventDraft:
    return mail_event(address, sender, pid, when)


def _addresses(registry: Registry, code: str) -> list[str]:
    return sorted(c.email for c in registry.canaries_of(code) if c.email)


def test_a_batch_stores_each_event_once_and_marks_repeats_in_it_and_before_it(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_export(registry, settings, tmp_path, "op1", 1)
    mail = _mail(_addresses(registry, result.export.code)[0], "sales@broker.example", "<m1>")
    stray = call_event("03-9999-0000", "0312345678", T0, "CA0")
    before = registry.record_event(stray)
    records = registry.record_events(
        [mail, stray, mail, call_event("03-9999-0001", "0312345678", T0, "CA1")]
    )
    assert [r.duplicate for r in records] == [False, True, True, False]
    assert records[1].id == before.id and records[2].id == records[0].id
    assert [r.provider_id for r in records] == ["<m1>", "CA0", "<m1>", "CA1"]
    assert records[0].classification == "suspicious" and records[3].classification == "noise"
    assert len(registry.events(limit=None)) == 3
    [incident] = registry.incidents()
    assert incident.events == 1 and incident.attributed


def test_a_new_token_twice_in_one_batch_is_scored_not_merely_counted(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_export(registry, settings, tmp_path, "op1", 1)
    address = _addresses(registry, result.export.code)[0]
    registry.record_events(
        [_mail(address, "a@broker.example", "<a>"), _mail(address, "b@broker.example", "<b>")]
    )
    [incident] = registry.incidents()
    assert incident.events == 2
    assert incident.attributed and incident.confidence == pytest.approx(0.99)
    # A third delivery of the same token only counts.
    registry.record_events([_mail(address, "c@broker.example", "<c>", T0 + timedelta(days=1))])
    [incident] = registry.incidents()
    assert incident.events == 3 and incident.confidence == pytest.approx(0.99)
    assert incident.last_seen == T0 + timedelta(days=1)


def test_calls_of_one_source_in_one_batch_narrow_as_they_do_one_by_one(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    exports = [seed_export(registry, settings, tmp_path, f"op{i}", i) for i in range(1, 5)]
    target = exports[2].export.code
    numbers = sorted({c.phone_e164 for c in registry.canaries_of(target) if c.phone_e164})
    assert len(numbers) >= 3
    calls = [
        call_event(n, "0120-00-1111", T0 + timedelta(hours=i), f"CA{i}")
        for i, n in enumerate(numbers[:4])
    ]
    assert all(r.classification == "suspicious" for r in registry.record_events(calls))
    found = {i.export: i for i in registry.incidents()}
    assert target in found, "four numbers of one export called by one source name it"
    assert found[target].events == len(calls)
    others = [i for code, i in found.items() if code != target]
    assert all(o.confidence < found[target].confidence for o in others)


def test_concurrent_batches_over_the_same_events_and_incidents_store_each_once(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    exports = [seed_export(registry, settings, tmp_path, f"op{i}", i) for i in range(1, 4)]
    addresses = [_addresses(registry, r.export.code)[:3] for r in exports]
    assert all(addresses), "every export has a canary with an address"
    rounds, senders = 4, 6
    answers: list[list[bool]] = []
    failures: list[BaseException] = []
    start = threading.Barrier(senders)

    def deliver(sender: int) -> None:
        rng = random.Random(sender)
        try:
            for n in range(rounds):  # every sender delivers the round's events, its own order
                drafts = [
                    _mail(a, f"s{i}@broker.example", f"<{n}-{e}-{i}>", T0 + timedelta(hours=n))
                    for e, mine in enumerate(addresses)
                    for i, a in enumerate(mine)
                ]
                drafts += [
                    call_event("03-9999-0000", "0312345678", T0, f"CA{n}-{i}") for i in range(3)
                ]
                start.wait(120)  # generous: SQLite takes the batches one after the other
                batch = registry.record_events(rng.sample(drafts, len(drafts)))
                answers.append([r.duplicate for r in batch])
        except BaseException as exc:  # a deadlock would surface here
            failures.append(exc)
            start.abort()

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    distinct = rounds * (sum(map(len, addresses)) + 3)
    assert sum(a.count(False) for a in answers) == distinct  # each answered new once
    assert len(registry.events(limit=None)) == distinct
    incidents = registry.incidents()
    assert sorted(i.export for i in incidents) == sorted(r.export.code for r in exports)
    mailed = {r.export.code: len(mine) for r, mine in zip(exports, addresses, strict=True)}
    for incident in incidents:
        record, events = registry.incident(incident.code)
        assert record.events == len(events) == mailed[str(incident.export)] * rounds
        assert record.attributed


def test_incidents_counted_batch_by_batch_match_a_full_rescoring(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    """An incident is rescored only for signs it did not hold and otherwise merely counted:
    after many small batches (calls with and without a caller ID, mail, repeats) its count,
    first and last seen and guilt are those of all its events scored at once."""
    from canary.registry.models import Incident

    exports = [seed_export(registry, settings, tmp_path, f"op{i}", i) for i in range(1, 3)]
    numbers = sorted({c.phone_e164 for r in exports for c in registry.canaries_of(r.export.code)})
    addresses = [a for r in exports for a in _addresses(registry, r.export.code)[:2]]
    rng = random.Random(7)
    drafts: list[EventDraft] = []
    for i in range(120):
        when = T0 + timedelta(minutes=rng.randrange(60 * 24 * 10))
        if rng.random() < 0.3:
            sender = f"s{rng.randrange(4)}@broker.example"
            drafts.append(_mail(rng.choice(addresses), sender, f"<m{i}>", when))
        else:
            source = rng.choice([None, "0120-00-1111", "0120-00-2222", "03-5555-0001"])
            drafts.append(
                EventDraft(
                    channel=rng.choice(["call", "sms"]),
                    target=rng.choice(numbers),
                    occurred_at=when,
                    provider="twilio",
                    payload=f"c{i}".encode(),
                    source=source,
                    provider_id=f"CA{i}",
                )
            )
    drafts += rng.sample(drafts, 20)  # redeliveries
    start = 0
    while start < len(drafts):
        size = rng.randint(1, 6)
        registry.record_events(drafts[start : start + size])
        start += size
    incidents = registry.incidents()
    assert incidents
    with registry._sessions() as s:
        for record in incidents:
            row = s.query(Incident).filter_by(code=record.code).one()
            expected, count, first, last = registry.scored_at_once(s, row)
            assert record.events == count
            assert record.first_seen == first
            assert record.last_seen == last
            assert record.confidence == pytest.approx(expected)
            assert record.attributed == (expected >= 0.95)


@pytest.mark.parametrize("file", [True, False], ids=["filed", "queued"])
def test_stray_calls_to_pool_numbers_are_counted_once_per_new_event_by_concurrent_batches(
    registry: Registry, settings: Settings, tmp_path: Path, file: bool
) -> None:
    """Queued batches on PostgreSQL count strays in the INSERT's own statement (locking the
    numbers in order); two writers storing the same calls in opposite orders, with repeats,
    count each call once."""
    seed_export(registry, settings, tmp_path, "op1", 1)
    idle = sorted(p.e164 for p in registry.pool_phones() if p.use_count == 0)[:3]
    assert len(idle) == 3
    registry.set_phone_state(idle, "quarantine")
    drafts = [call_event(n, "09011112222", T0, f"S{i}-{n}") for i in range(8) for n in idle]
    writers = [Registry(settings.db, actor="server") for _ in range(2)]
    failures: list[BaseException] = []

    def write(writer: Registry, order: list[EventDraft], seed: int) -> None:
        rng = random.Random(seed)
        try:
            start = 0
            while start < len(order):
                size = rng.randint(1, 5)
                batch = order[start : start + size]
                records = writer.record_events([*batch, *batch[:1]], file=file)
                assert all(r.classification == "noise" for r in records)
                start += size
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=write, args=(writers[0], drafts, 1)),
        threading.Thread(target=write, args=(writers[1], drafts[::-1], 2)),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for w in writers:
            w.close()
    assert failures == []
    strays = {p.e164: p.stray_events for p in registry.pool_phones() if p.e164 in idle}
    assert strays == {n: 8 for n in idle}
