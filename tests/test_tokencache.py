"""The writer's copy of what the registry knows about tokens (``canary.registry.tokencache``):
a copy is used only while the registry's generation has not moved, and every change to
canaries or exports made by another process (another Registry here) moves it, so an event
is classified exactly as if its tokens' facts were read in its own transaction.

Runs on SQLite and PostgreSQL through the ``registry`` fixture.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from canary.registry import Registry
from canary.registry.models import RegistryGeneration
from canary.settings import Settings
from tests.helpers import call_event, mail_event, seed_export

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
CAMPAIGN = "03-1234-5678"


def _generation(registry: Registry) -> int:
    with registry._sessions() as s:
        return int(s.execute(select(RegistryGeneration.n)).scalar_one())


def _number(registry: Registry, code: str) -> str:
    number = next(c.phone_e164 for c in registry.canaries_of(code) if c.phone_e164)
    assert number is not None
    return number


def _address(registry: Registry, code: str) -> str:
    address = next(c.email for c in registry.canaries_of(code) if c.email)
    assert address is not None
    return address


def test_every_change_to_canaries_or_exports_moves_the_generation(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    start = _generation(registry)
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    sealed = _generation(registry)
    assert sealed > start
    registry.set_expectation(code, callers=[CAMPAIGN])
    expected = _generation(registry)
    assert expected > sealed
    registry.set_export_status(code, "void")
    assert _generation(registry) > expected
    before = _generation(registry)
    registry.record_events([call_event(_number(registry, code), "0311112222", T0, "CA1")])
    assert _generation(registry) == before  # storing events moves nothing


def test_an_expectation_set_by_another_process_applies_to_the_next_call(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    number = _number(registry, code)
    writer = Registry(settings.db, actor="server")
    try:
        first = writer.record_events([call_event(number, CAMPAIGN, T0, "CA1")], file=False)
        assert first[0].classification == "suspicious"
        assert writer._token_cache().generation is not None  # the number's facts are kept
        registry.set_expectation(code, callers=[CAMPAIGN], start=T0, until=T0 + timedelta(9))
        [later] = writer.record_events([call_event(number, CAMPAIGN, T0, "CA2")], file=False)
        assert later.classification == "expected"
    finally:
        writer.close()


def test_a_voided_export_and_a_new_one_are_seen_by_a_writer_that_kept_the_old_facts(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    old = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    address = _address(registry, old)
    writer = Registry(settings.db, actor="server")
    try:
        # Every pool number and the address are now in the writer's copy.
        numbers = [p.e164 for p in registry.pool_phones()]
        calls = [call_event(n, "0311112222", T0, f"CA{i}") for i, n in enumerate(numbers)]
        writer.record_events([*calls, mail_event(address, "a@b.example", "<1>", T0)], file=False)
        registry.set_export_status(old, "void")
        [mail] = writer.record_events([mail_event(address, "a@b.example", "<2>", T0)], file=False)
        assert mail.classification != "suspicious" and mail.exports == []
        new = seed_export(registry, settings, tmp_path, "op2", 2).export.code
        number = _number(registry, new)
        [call] = writer.record_events([call_event(number, "0311112222", T0, "CB1")], file=False)
        assert call.classification == "suspicious" and new in call.exports
    finally:
        writer.close()


def test_a_change_committed_between_the_read_and_the_insert_reclassifies_the_batch(
    registry: Registry, settings: Settings, tmp_path: Path, db_url: str
) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite's writer holds the database from BEGIN: no change can come between")
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    number = _number(registry, code)
    writer = Registry(settings.db, actor="server")
    reads: list[int | None] = []
    read = writer._facts_many

    def facts_then_a_change(*args: Any) -> Any:
        out = read(*args)
        reads.append(out[1])
        if len(reads) == 1:  # another process commits once the batch's facts are read
            registry.set_expectation(code, callers=[CAMPAIGN], start=T0, until=T0 + timedelta(9))
        return out

    writer._facts_many = facts_then_a_change  # type: ignore[method-assign]
    try:
        [event] = writer.record_events([call_event(number, CAMPAIGN, T0, "CA1")], file=False)
        assert event.classification == "expected"
        assert len(reads) == 2 and reads[1] == _generation(registry) != reads[0]
    finally:
        writer.close()
