"""Registry access for the owned pools: phone numbers and mail domains."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from canary.errors import NotFoundError, RegistryError
from canary.pools import OwnedPhone, PoolNumber
from canary.registry.models import Export, PoolDomain, PoolPhone
from canary.registry.records import PoolDomainRecord, PoolPhoneRecord


def _now() -> datetime:
    return datetime.now(UTC)


class PoolStore:
    """Mixed into Registry; uses its sessions, transactions and audit chain."""

    _sessions: Any
    transaction: Any
    _audit: Any
    _pool_cache: Any

    def add_phones(self, phones: Sequence[OwnedPhone], state: str) -> tuple[list[str], list[str]]:
        """Add owned numbers; returns (added, already present)."""
        added: list[str] = []
        present: list[str] = []
        with self.transaction() as s:
            for phone in phones:
                if s.execute(select(PoolPhone.id).where(PoolPhone.e164 == phone.e164)).first():
                    present.append(phone.e164)
                    continue
                now = _now()
                s.add(
                    PoolPhone(
                        e164=phone.e164,
                        kind=phone.kind,
                        state=state,
                        added_at=now,
                        state_changed_at=now,
                        use_count=0,
                        stray_events=0,
                    )
                )
                added.append(phone.e164)
            if added:
                s.flush()
                self._audit(
                    s, "pool.add_phone", f"{len(added)} numbers", {"numbers": added, "state": state}
                )
        self._pool_cache = None  # the events core's copy of the pool (other processes: TTL)
        return added, present

    def set_phone_state(self, e164s: Sequence[str], state: str) -> list[str]:
        """Move numbers to a new state (quarantine, active, burnt, retired)."""
        changed: list[str] = []
        with self.transaction() as s:
            for e164 in e164s:
                row = s.execute(select(PoolPhone).where(PoolPhone.e164 == e164)).scalar()
                if row is None:
                    raise NotFoundError(
                        f"{e164} is not in the pool; add it with `canary pool add-phone` first."
                    )
                if row.state == "burnt" and state == "active":
                    raise RegistryError(
                        f"{e164} is burnt (it was in a leaked list) and must not be reused."
                    )
                if row.state != state:
                    row.state = state
                    row.state_changed_at = _now()
                    changed.append(e164)
            if changed:
                self._audit(
                    s,
                    "pool.set_state",
                    f"{len(changed)} numbers",
                    {"numbers": changed, "state": state},
                )
        self._pool_cache = None
        return changed

    def add_domains(self, domains: Sequence[str]) -> tuple[list[str], list[str]]:
        added: list[str] = []
        present: list[str] = []
        with self.transaction() as s:
            for domain in domains:
                if s.execute(select(PoolDomain.id).where(PoolDomain.domain == domain)).first():
                    present.append(domain)
                    continue
                s.add(PoolDomain(domain=domain, state="active", added_at=_now()))
                added.append(domain)
            if added:
                s.flush()
                self._audit(s, "pool.add_domain", f"{len(added)} domains", {"domains": added})
        return added, present

    def pool_phones(self, state: str | None = None) -> list[PoolPhoneRecord]:
        with self._sessions() as s:
            q = select(PoolPhone).order_by(PoolPhone.e164)
            if state:
                q = q.where(PoolPhone.state == state)
            return [
                PoolPhoneRecord(
                    p.e164,
                    p.kind,
                    p.state,
                    p.use_count,
                    p.added_at,
                    p.state_changed_at,
                    p.stray_events,
                )
                for p in s.execute(q).scalars()
            ]

    def pool_domains(self, state: str | None = None) -> list[PoolDomainRecord]:
        with self._sessions() as s:
            q = select(PoolDomain).order_by(PoolDomain.domain)
            if state:
                q = q.where(PoolDomain.state == state)
            return [PoolDomainRecord(d.domain, d.state, d.added_at) for d in s.execute(q).scalars()]

    def active_numbers(self) -> list[PoolNumber]:
        with self._sessions() as s:
            rows = s.execute(select(PoolPhone).where(PoolPhone.state == "active")).scalars()
            return [PoolNumber(p.id, p.e164, p.kind, p.use_count) for p in rows]

    def numbers_by_e164(self, e164s: Sequence[str]) -> list[PoolNumber]:
        """The pool numbers with these E.164 forms, whatever their state."""
        if not e164s:
            return []
        with self._sessions() as s:
            rows = s.execute(select(PoolPhone).where(PoolPhone.e164.in_(list(e164s)))).scalars()
            return [PoolNumber(p.id, p.e164, p.kind, p.use_count) for p in rows]

    def used_phone_sets(self) -> set[str]:
        with self._sessions() as s:
            q = select(Export.phone_set_hash).where(Export.phone_set_hash.is_not(None))
            return {str(h) for (h,) in s.execute(q) if h}
