"""Events sealed into the audit chain in batches: recording an event does not take the
chain's lock (a webhook burst would queue on it); ``seal_events`` appends one audit link per
batch whose digest covers each event's own digest, and ``verify_event_seals`` recomputes
them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import func, select, text, update

from canary.registry.events import event_digest
from canary.registry.models import Event


class SealStore:
    """Mixed into Registry; uses its sessions, transactions and audit chain."""

    _sessions: Any
    transaction: Any
    _audit: Any

    def seal_events(self, batch: int = 10_000) -> int:
        """Append one audit link per batch of unsealed events; returns how many were sealed."""
        sealed = 0
        while True:
            with self.transaction() as s:
                rows = s.execute(
                    select(Event.id, Event.digest)
                    .where(Event.sealed_by.is_(None))
                    .order_by(Event.id)
                    .limit(batch)
                ).all()
                if not rows:
                    return sealed
                digest = hashlib.sha256("".join(d for _, d in rows).encode()).hexdigest()
                self._audit(
                    s,
                    "events.seal",
                    f"{rows[0][0]}-{rows[-1][0]}",
                    {
                        "count": len(rows),
                        "first": rows[0][0],
                        "last": rows[-1][0],
                        "digest": digest,
                    },
                )
                seq = s.execute(text("SELECT max(seq) FROM audit_log")).scalar_one()
                s.execute(
                    update(Event).where(Event.id.in_([i for i, _ in rows])).values(sealed_by=seq)
                )
                sealed += len(rows)

    def verify_event_seals(self) -> tuple[int, int, list[str]]:
        """(events sealed, events not yet sealed, problems): every stored event must match
        its own digest, and every seal the digests of the events it covers."""
        problems: list[str] = []
        sealed = 0
        with self._sessions() as s:
            seals = s.execute(
                text("SELECT seq, payload FROM audit_log WHERE action = 'events.seal' ORDER BY seq")
            ).all()
            for seq, payload in seals:
                claim = json.loads(payload)
                rows = list(
                    s.execute(
                        select(Event).where(Event.sealed_by == seq).order_by(Event.id)
                    ).scalars()
                )
                for r in rows:
                    if event_digest(r) != r.digest:
                        problems.append(f"event {r.id} was changed after it was stored")
                digest = hashlib.sha256("".join(r.digest for r in rows).encode()).hexdigest()
                if len(rows) != claim["count"] or digest != claim["digest"]:
                    problems.append(
                        f"the events sealed by audit entry {seq} are not the ones it sealed"
                    )
                sealed += len(rows)
            unsealed = int(
                s.execute(
                    select(func.count(Event.id)).where(Event.sealed_by.is_(None))
                ).scalar_one()
            )
        return sealed, unsealed, problems
