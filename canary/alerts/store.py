"""The ``alerts`` table as dispatch sees it: pending alerts with their event and incident,
how many went out alone in the last hour, and what became of each after a run.

An alert is delivered when every configured output has it. Until then it stays pending,
with ``attempts`` counted and ``last_error`` saying what failed; the outputs that did get it
are kept on the last line of ``last_error`` (``delivered to: email, slack-webhook:…``) so a
retry does not send it to them twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select, text

from canary.alerts.messages import AlertItem
from canary.registry import Registry
from canary.registry.models import Alert, Event, Incident, IncidentEvent

DELIVERED_PREFIX = "delivered to: "
_PG_LOCK = 7242938  # pg_try_advisory_lock key of dispatch (events use 7242937)


@dataclass(frozen=True)
class Pending:
    item: AlertItem
    attempts: int
    delivered_to: frozenset[str]


@dataclass
class Outcome:
    """What one run did with one alert."""

    alert_id: int
    delivered_to: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    digest_id: str | None = None
    tried: bool = False


def delivered_to(last_error: str | None) -> frozenset[str]:
    if not last_error:
        return frozenset()
    last = last_error.rstrip().rpartition("\n")[2]
    if not last.startswith(DELIVERED_PREFIX):
        return frozenset()
    return frozenset(n.strip() for n in last[len(DELIVERED_PREFIX) :].split(",") if n.strip())


def pending(registry: Registry, limit: int = 500) -> list[Pending]:
    """Alerts not yet delivered everywhere, oldest first (queued events filed first: their
    alerts are written when they are filed)."""
    registry.filed()
    with registry._sessions() as s:
        rows = s.execute(
            select(Alert, Event)
            .join(Event, Event.id == Alert.event_id)
            .where(Alert.delivered_at.is_(None))
            .order_by(Alert.id)
            .limit(limit)
        ).all()
        incidents: dict[int, Incident] = {}
        ids = {a.incident_id for a, _ in rows if a.incident_id is not None}
        if ids:
            incidents = {
                i.id: i for i in s.execute(select(Incident).where(Incident.id.in_(ids))).scalars()
            }
        records = {i: registry._incident_record(s, inc) for i, inc in incidents.items()}
        return [
            Pending(
                AlertItem(
                    a.id,
                    registry._event_record(s, e),
                    records.get(a.incident_id) if a.incident_id is not None else None,
                ),
                a.attempts or 0,
                delivered_to(a.last_error),
            )
            for a, e in rows
        ]


def pending_count(registry: Registry) -> int:
    registry.filed()
    with registry._sessions() as s:
        return int(
            s.execute(select(func.count(Alert.id)).where(Alert.delivered_at.is_(None))).scalar_one()
        )


def sent_alone_since(registry: Registry, since: datetime) -> int:
    """Alerts delivered one by one (not in a digest) since then."""
    with registry._sessions() as s:
        return int(
            s.execute(
                select(func.count(Alert.id)).where(
                    Alert.delivered_at >= since, Alert.digest.is_(None)
                )
            ).scalar_one()
        )


def record_outcomes(
    registry: Registry, outcomes: Sequence[Outcome], outputs: Sequence[str], now: datetime
) -> int:
    """Mark alerts delivered (every output has them) or still pending; returns how many
    were delivered."""
    delivered = 0
    with registry._sessions() as s, s.begin():
        for o in outcomes:
            if not o.tried:
                continue
            row = s.get(Alert, o.alert_id)
            if row is None or row.delivered_at is not None:
                continue
            row.attempts = (row.attempts or 0) + 1
            if all(name in o.delivered_to for name in outputs):
                row.delivered_at = now
                row.digest = o.digest_id
                row.last_error = None
                delivered += 1
            else:
                lines = o.errors or ["not delivered"]
                if o.delivered_to:
                    lines.append(DELIVERED_PREFIX + ", ".join(sorted(o.delivered_to)))
                row.last_error = "\n".join(lines)
    return delivered


def incidents_of_event(registry: Registry, event_id: int) -> list[str]:
    """Codes of the incidents an event was filed into."""
    with registry._sessions() as s:
        return list(
            s.execute(
                select(Incident.code)
                .join(IncidentEvent, IncidentEvent.incident_id == Incident.id)
                .where(IncidentEvent.event_id == event_id)
                .order_by(Incident.code)
            ).scalars()
        )


@contextlib.contextmanager
def dispatch_lock(registry: Registry) -> Iterator[bool]:
    """Yields True to the one dispatch that may run; another one at the same time gets
    False (two would send the same alerts twice). A PostgreSQL advisory lock, or an
    exclusive lock on a file beside the SQLite database."""
    if registry.engine.dialect.name == "postgresql":
        with registry.engine.connect() as conn:
            got = bool(conn.execute(text(f"SELECT pg_try_advisory_lock({_PG_LOCK})")).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text(f"SELECT pg_advisory_unlock({_PG_LOCK})"))
                    conn.commit()
        return
    database = registry.engine.url.database
    try:
        import fcntl
    except ImportError:  # Windows: one scheduler per registry is the rule there
        yield True
        return
    if not database or database == ":memory:":
        yield True
        return
    with open(Path(database).with_name(Path(database).name + ".alerts-lock"), "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
