"""The registry: schema management, the audit chain (invariant 6), pools and phone sets."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from canary.errors import NotInitialisedError, PoolTooSmallError, RegistryError
from canary.pools import PoolNumber, choose_phone_set, phone_set_hash
from canary.registry import Registry
from canary.settings import Settings


def test_init_is_idempotent(settings: Settings) -> None:
    reg = Registry(settings.db)
    assert reg.revision() is None
    with pytest.raises(NotInitialisedError, match="canary init"):
        reg.require_ready()
    before, after = reg.init()
    assert before is None and after == Registry.head_revision()
    assert reg.init() == (after, after)
    reg.require_ready()
    reg.close()


def test_audit_chain_verifies_and_detects_tampering(registry: Registry) -> None:
    registry.record("test.event", "subject", {"n": 1})
    registry.record("test.event", "subject", {"n": 2})
    result = registry.verify_audit()
    assert result.ok and result.entries >= 5

    # The database itself refuses to change or remove entries.
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), registry.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), registry.engine.begin() as c:
        c.execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))

    # An administrator who bypasses the guard is still caught by the chain.
    with registry.engine.begin() as c:
        if registry.engine.dialect.name == "postgresql":
            c.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
            c.execute(sa.text("UPDATE audit_log SET payload = :p WHERE seq = 3"), {"p": '{"n":9}'})
            c.execute(sa.text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
        else:
            c.execute(sa.text("DROP TRIGGER audit_log_no_update"))
            c.execute(sa.text("UPDATE audit_log SET payload = :p WHERE seq = 3"), {"p": '{"n":9}'})
    broken = registry.verify_audit()
    assert not broken.ok and broken.broken_at == 3 and "altered" in (broken.reason or "")


def test_audit_detects_removed_entry(registry: Registry) -> None:
    with registry.engine.begin() as c:
        if registry.engine.dialect.name == "postgresql":
            c.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
            c.execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))
            c.execute(sa.text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
        else:
            c.execute(sa.text("DROP TRIGGER audit_log_no_delete"))
            c.execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))
    broken = registry.verify_audit()
    assert not broken.ok and broken.broken_at == 3 and "missing" in (broken.reason or "")


def _numbers(n: int) -> list[PoolNumber]:
    return [PoolNumber(i, f"+8150310{i:05d}", "ip", 0) for i in range(n)]


def test_phone_sets_are_distinct() -> None:
    rng = random.Random(1)
    used: set[str] = set()
    numbers = _numbers(12)
    for _ in range(60):
        chosen = choose_phone_set(numbers, canaries=5, max_numbers=5, used_sets=used, rng=rng)
        h = phone_set_hash([n.e164 for n in chosen])
        assert h not in used
        used.add(h)
        # Usage stays balanced: least-used numbers are preferred.
        numbers = [PoolNumber(n.id, n.e164, n.kind, n.use_count + (n in chosen)) for n in numbers]
    counts = [n.use_count for n in numbers]
    assert max(counts) - min(counts) <= 3


def test_pool_too_small_says_how_many() -> None:
    numbers = _numbers(3)
    used = {phone_set_hash([n.e164 for n in numbers])}
    with pytest.raises(PoolTooSmallError, match=r"add at least 1 more"):
        choose_phone_set(numbers, canaries=10, max_numbers=10, used_sets=used, rng=random.Random(1))
    with pytest.raises(PoolTooSmallError, match="no active phone numbers"):
        choose_phone_set([], canaries=3, max_numbers=3, used_sets=set(), rng=random.Random(1))


def test_exports_get_distinct_number_sets(registry: Registry, settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from canary.seed import SeedRequest, seed
    from tests.listgen import people, write_csv

    src = write_csv(tmp_path / "l.csv", people(300))
    sets = []
    for i in range(6):
        res = seed(
            registry,
            settings,
            SeedRequest(
                input=src,
                output=tmp_path / f"o{i}.csv",
                client="c",
                list_name="l",
                account=f"a{i % 2}",
                canaries=6,
                rng_seed=i,
            ),
        )
        sets.append(frozenset(c.phone_e164 for c in registry.canaries_of(res.export.code)))
    assert len(set(sets)) == 6
    assert len(registry.used_phone_sets()) == 6


def test_head_revision_matches_alembic_scripts() -> None:
    from alembic.script import ScriptDirectory

    from canary.registry import _MIGRATIONS

    assert ScriptDirectory(_MIGRATIONS).get_current_head() == Registry.head_revision()


def test_messages_never_show_the_database_password() -> None:
    reg = Registry("postgresql+psycopg://canary:s3cret-pw@127.0.0.1:1/registry")
    with pytest.raises(RegistryError) as caught:
        reg.revision()
    assert "s3cret-pw" not in str(caught.value) and "***" in str(caught.value)
