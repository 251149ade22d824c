"""Events: stored once, classified, attributed to exports, grouped into incidents, sealed.

Runs on SQLite and PostgreSQL through the ``registry`` fixture.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from canary.errors import InvalidEventError
from canary.events import EventDraft
from canary.registry import Registry
from canary.settings import Settings
from tests.helpers import call_event, seed_export

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def test_mail_to_an_assigned_address_names_its_export_and_opens_an_incident(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_export(registry, settings, tmp_path, "op1", 1)
    canary = next(c for c in registry.canaries_of(result.export.code) if c.email)
    assert canary.email is not None
    draft = EventDraft(
        channel="email",
        target=canary.email.upper(),  # any case
        occurred_at=T0,
        provider="smtp",
        payload=b"Message-ID: <1@spam>\r\n\r\nbuy now",
        source="sales@broker.example",
        provider_id="<1@spam>",
    )
    event = registry.record_event(draft)
    assert event.classification == "suspicious"
    assert event.strength == "strong"
    assert event.exports == [result.export.code]
    again = registry.record_event(draft)
    assert again.duplicate and again.id == event.id
    assert len(registry.events(limit=None)) == 1
    [incident] = registry.incidents()
    assert incident.export == result.export.code
    assert incident.account == "op1"
    assert incident.attributed and incident.confidence == pytest.approx(0.99)
    record, events = registry.incident(incident.code)
    assert record.code == incident.code and record.events == 1
    assert [e.id for e in events] == [event.id]


def test_the_recipients_own_campaign_is_expected_inside_its_window_plus_grace(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_export(registry, settings, tmp_path, "op1", 1)
    number = next(c.phone_e164 for c in registry.canaries_of(result.export.code) if c.phone_e164)
    assert number is not None
    registry.set_expectation(
        result.export.code, callers=["03-1234-5678"], start=T0, until=T0 + timedelta(days=10)
    )
    # Other exports may hold the number too; the campaign of this one explains the call.
    inside = registry.record_event(call_event(number, "0312345678", T0 + timedelta(days=12), "CA1"))
    assert inside.classification == "expected"
    assert result.export.code in inside.reason  # the export id a person reads
    late = registry.record_event(call_event(number, "0312345678", T0 + timedelta(days=14), "CA2"))
    assert late.classification == "suspicious" and late.strength == "weak"
    early = registry.record_event(
        call_event(number, "+81312345678", T0 - timedelta(hours=1), "CA3")
    )
    assert early.classification == "suspicious"
    stranger = registry.record_event(
        call_event(number, "09011112222", T0 + timedelta(days=1), "CA4")
    )
    assert stranger.classification == "suspicious"


def test_numbers_outside_the_pool_or_in_quarantine_are_noise_and_counted_as_stray(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    seed_export(registry, settings, tmp_path, "op1", 1)
    outside = registry.record_event(call_event("03-9999-0000", "09011112222", T0, "CA1"))
    assert outside.classification == "noise"
    idle = next(p for p in registry.pool_phones() if p.use_count == 0)
    registry.set_phone_state([idle.e164], "quarantine")
    stray = registry.record_event(call_event(idle.e164, "09011112222", T0, "CA2"))
    assert stray.classification == "noise"
    assert next(p for p in registry.pool_phones() if p.e164 == idle.e164).stray_events == 1
    assert registry.incidents() == []


def test_calls_from_one_source_to_several_numbers_narrow_to_the_export_holding_all(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    exports = [seed_export(registry, settings, tmp_path, f"op{i}", i) for i in range(1, 5)]
    target = exports[2].export.code
    numbers = sorted({c.phone_e164 for c in registry.canaries_of(target) if c.phone_e164})
    assert len(numbers) >= 3
    for i, number in enumerate(numbers[:4]):
        event = registry.record_event(
            call_event(number, "0120-00-1111", T0 + timedelta(hours=i), f"CA{i}")
        )
        assert event.classification == "suspicious"
    found = {i.export: i for i in registry.incidents()}
    assert target in found, "four numbers of one export called by one source name it"
    assert found[target].events >= 2
    others = [i for code, i in found.items() if code != target]
    assert all(o.confidence < found[target].confidence for o in others)


def test_a_caller_asking_for_a_canary_by_name_is_strong(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_export(registry, settings, tmp_path, "op1", 1)
    canary = next(c for c in registry.canaries_of(result.export.code) if c.phone_e164)
    assert canary.phone_e164 is not None
    sms = EventDraft(
        channel="sms",
        target=canary.phone_e164,
        occurred_at=T0,
        provider="twilio",
        payload=b"SM1",
        source="+819011112222",
        provider_id="SM1",
        text=f"{canary.name.replace(' ', '')}様 未公開株のご案内です",
    )
    event = registry.record_event(sms)
    assert event.strength == "strong"
    assert event.exports == [result.export.code]
    [incident] = registry.incidents()
    assert incident.attributed


def test_a_letter_to_a_canary_name_is_filed_with_its_export(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_export(registry, settings, tmp_path, "op1", 1)
    canary = registry.canaries_of(result.export.code)[0]
    letter = EventDraft(
        channel="postal",
        target=canary.kana,
        occurred_at=T0,
        provider="manual",
        payload=b"letter 1",
        details={"address": canary.address},
    )
    event = registry.record_event(letter)
    assert event.classification == "suspicious" and event.strength == "strong"
    assert result.export.code in event.exports
    # The name alone, without the canary's address, may be a real namesake: medium.
    bare = EventDraft(
        channel="manual", target=canary.name, occurred_at=T0, provider="manual", payload=b"call"
    )
    named_only = registry.record_event(bare)
    assert named_only.classification == "suspicious" and named_only.strength == "medium"


def test_times_are_kept_as_the_same_instant_and_seals_verify(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_export(registry, settings, tmp_path, "op1", 1)
    number = next(c.phone_e164 for c in registry.canaries_of(result.export.code) if c.phone_e164)
    assert number is not None
    tokyo = timezone(timedelta(hours=9))
    start = datetime(2026, 11, 1, 9, 0, tzinfo=tokyo)
    registry.set_expectation(result.export.code, callers=["0312345678"], start=start)
    event = registry.record_event(
        call_event(number, "0312345678", start + timedelta(minutes=1), "C1")
    )
    assert event.occurred_at == start + timedelta(minutes=1)  # the same instant, in UTC
    assert event.classification == "expected"
    before = registry.record_event(
        call_event(number, "0312345678", start - timedelta(minutes=1), "C2")
    )
    assert before.classification == "suspicious"
    registry.seal_events()
    assert registry.verify_event_seals() == (2, 0, [])


def test_malformed_events_are_refused_and_nothing_is_stored(registry: Registry) -> None:
    for channel, target in [
        ("call", "not a number"),
        ("email", "nobody"),
        ("fax", "x"),
        ("postal", "  "),
    ]:
        with pytest.raises(InvalidEventError):
            registry.record_event(
                EventDraft(
                    channel=channel, target=target, occurred_at=T0, provider="t", payload=b""
                )
            )
    assert registry.events(limit=None) == []


def test_events_are_sealed_into_the_audit_chain_and_tampering_shows(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_export(registry, settings, tmp_path, "op1", 1)
    number = next(c.phone_e164 for c in registry.canaries_of(result.export.code) if c.phone_e164)
    assert number is not None
    for i in range(5):
        registry.record_event(call_event(number, f"09000000{i:03d}", T0, f"CA{i}"))
    assert registry.verify_event_seals() == (0, 5, [])
    assert registry.seal_events(batch=3) == 5
    assert registry.verify_event_seals() == (5, 0, [])
    assert registry.verify_audit().ok
    from sqlalchemy import text

    with registry.engine.begin() as conn:
        conn.execute(text("UPDATE events SET source = 'someone else' WHERE id = 2"))
    sealed, unsealed, problems = registry.verify_event_seals()
    assert (sealed, unsealed) == (5, 0)
    assert problems and "event 2" in problems[0]
