"""Pool maintenance: release numbers from quarantine, burn numbers of leaked exports.

A phone number we rent may have belonged to someone else and still get their calls. It
waits in quarantine for a burn-in (``settings.quarantine_days``) and becomes active only if
strangers stopped calling it: at most ``settings.stray_rate_limit`` stray calls or SMS per
week over the last burn-in. A number carried by an export that an incident names (an
attributed incident with an export) is burnt: brokers hold it now, and any later call to it
would point at the wrong export, so it is never reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from canary.errors import InputError
from canary.events import PHONE_CHANNELS, aware
from canary.registry import Registry
from canary.registry.models import Event, ExportPhone, Incident, PoolPhone
from canary.settings import Settings


@dataclass(frozen=True)
class Held:
    """A quarantined number kept in quarantine, and why."""

    e164: str
    reason: str


@dataclass
class PoolCareReport:
    burnt: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    active: int = 0
    quarantined: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "burnt": self.burnt,
            "released": self.released,
            "held": [{"number": h.e164, "reason": h.reason} for h in self.held],
            "active": self.active,
            "quarantined": self.quarantined,
        }


def leaked_numbers(registry: Registry) -> list[str]:
    """Pool numbers, not yet burnt, carried by an export that an attributed incident names."""
    with Session(registry.engine) as s:
        leaked = select(Incident.export_id).where(
            Incident.attributed.is_(True), Incident.export_id.is_not(None)
        )
        q = (
            select(PoolPhone.e164)
            .join(ExportPhone, ExportPhone.pool_phone_id == PoolPhone.id)
            .where(ExportPhone.export_id.in_(leaked), PoolPhone.state != "burnt")
            .distinct()
            .order_by(PoolPhone.e164)
        )
        return [str(e) for e in s.execute(q).scalars()]


def _strays(s: Session, e164: str, since: datetime) -> int:
    """Calls and SMS to a number since a time that no campaign expected."""
    q = select(func.count(Event.id)).where(
        Event.target == e164,
        Event.channel.in_(PHONE_CHANNELS),
        Event.classification != "expected",
        Event.occurred_at >= since,
    )
    return int(s.execute(q).scalar_one())


def release_candidates(
    registry: Registry, burn_in: timedelta, limit_per_week: float, now: datetime
) -> tuple[list[str], list[Held]]:
    """Quarantined numbers that may become active, and those held back with the reason."""
    release: list[str] = []
    held: list[Held] = []
    with Session(registry.engine) as s:
        rows = s.execute(
            select(PoolPhone.e164, PoolPhone.state_changed_at)
            .where(PoolPhone.state == "quarantine")
            .order_by(PoolPhone.e164)
        ).all()
        for e164, changed in rows:
            since = aware(changed)
            if now - since < burn_in:
                ready = (since + burn_in).date().isoformat()
                held.append(Held(e164, f"in burn-in until {ready}"))
                continue
            window = max(since, now - burn_in)
            strays = _strays(s, e164, window)
            weeks = max((now - window) / timedelta(days=7), 1.0)
            rate = strays / weeks
            if rate > limit_per_week:
                held.append(
                    Held(
                        e164,
                        f"{strays} stray contacts in the last {(now - window).days} days "
                        f"({rate:.1f}/week, limit {limit_per_week:g}); still someone's number",
                    )
                )
                continue
            release.append(e164)
    return release, held


def maintain_pool(
    registry: Registry, settings: Settings, now: datetime | None = None
) -> PoolCareReport:
    """Burn the numbers of leaked exports, then release quiet numbers from quarantine."""
    registry.require_ready()
    if settings.quarantine_days < 0 or settings.stray_rate_limit < 0:
        raise InputError(
            "CANARY_QUARANTINE_DAYS and CANARY_STRAY_RATE_LIMIT must not be negative; "
            "set them to 0 or more."
        )
    moment = aware(now) if now is not None else datetime.now(UTC)
    report = PoolCareReport()
    burnt = leaked_numbers(registry)
    if burnt:
        report.burnt = registry.set_phone_state(burnt, "burnt")
    release, report.held = release_candidates(
        registry, timedelta(days=settings.quarantine_days), settings.stray_rate_limit, moment
    )
    if release:
        report.released = registry.set_phone_state(release, "active")
    report.active = len(registry.pool_phones("active"))
    report.quarantined = len(registry.pool_phones("quarantine"))
    return report
