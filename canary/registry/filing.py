"""The filing queue: suspicious events stored by the server's writers, filed into their
incidents in batches.

Filing an event (narrowing a call's candidates, opening or locking incidents, linking,
rescoring, owing its alert) costs about five statements whatever the batch's size, and a
webhook's group commit holds only the few events of the requests in flight. So the server
stores and classifies an event in the webhook's transaction and puts it in ``filing_queue``
there; a filer thread of the worker then files everything the queue holds in one
transaction (``file_queued``), while the webhooks go on. Under load the queue gathers the
events of many commits, and filing costs a statement per hundreds of events.

Nothing is lost between the two: the queue row is committed with its event and deleted in
the transaction that files it, so a worker that dies leaves its events queued for the next
filer (every worker's filer looks at the queue every few seconds; ``canary serve`` files
what is left when it stops). Readers of incidents and alerts file what is queued first, so
they never see an event without its incident.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from canary.registry.eventfacts import fetch, raw
from canary.registry.events import DEFAULT_EVENT_THRESHOLD
from canary.registry.incidents import _statements
from canary.registry.models import Event, FilingQueue

FILE_BATCH = 1000  # events filed per transaction

_FILED_COLUMNS = (
    Event.id,
    Event.channel,
    Event.strength,
    Event.source,
    Event.target,
    Event.occurred_at,
    Event.exports,
)


@cache
def _pg_take(wait: bool) -> str:
    """Take the oldest queued events off the queue, to be filed in this transaction. A filer
    skips the ones another filer holds (``SKIP LOCKED``); a reader waits for them, so that
    it sees them filed."""
    return (
        "DELETE FROM filing_queue WHERE event_id IN ("
        "SELECT event_id FROM filing_queue ORDER BY event_id LIMIT %(limit)s "
        f"FOR UPDATE{'' if wait else ' SKIP LOCKED'}) RETURNING event_id"
    )


_PG_EVENTS = (
    "SELECT id, channel, strength, source, target, occurred_at, exports "
    "FROM events WHERE id = ANY(%(ids)s) ORDER BY id"
)


class FilingStore:
    """Mixed into Registry; uses its sessions, engine and incidents."""

    _sessions: Any
    engine: Any
    event_threshold: float
    _file_events: Any  # canary.registry.incidents.IncidentStore

    def file_queued(
        self,
        threshold: float = DEFAULT_EVENT_THRESHOLD,
        limit: int = FILE_BATCH,
        wait: bool = False,
    ) -> int:
        """File up to ``limit`` queued events into their incidents in one transaction;
        returns how many were filed (fewer than ``limit``: the queue was empty, but for the
        events other filers hold, which a call with ``wait`` waits for)."""
        with self._sessions() as s, s.begin():
            ids = self._take(s, limit, wait)
            if ids:
                rows = self._filed_rows(s, ids)
                self._file_events(s, rows, threshold, self._accounts(s, rows))
            return len(ids)

    def file_all_queued(self, threshold: float = DEFAULT_EVENT_THRESHOLD, wait: bool = True) -> int:
        """File every queued event, a batch per transaction; how many. With ``wait``, also
        those another filer holds (a reader); without, they are left to it (a filer)."""
        filed = 0
        while True:
            count = self.file_queued(threshold, wait=wait)
            filed += count
            if count < FILE_BATCH:
                return filed

    def queued(self) -> bool:
        """Whether any event waits to be filed."""
        with self._sessions() as s:
            return bool(s.execute(select(exists().select_from(FilingQueue))).scalar())

    def filed(self) -> None:
        """Before reading incidents or alerts: file what is queued, if anything is (with
        the registry's ``event_threshold``)."""
        if self.queued():
            self.file_all_queued(self.event_threshold)

    def _take(self, s: Session, limit: int, wait: bool) -> list[int]:
        if self.engine.dialect.name == "postgresql":
            return sorted(int(r[0]) for r in raw(s, _pg_take(wait), {"limit": limit}))
        # SQLite: the transaction holds the database's write lock from its BEGIN.
        ids = list(
            s.execute(select(FilingQueue.event_id).order_by(FilingQueue.event_id).limit(limit))
            .scalars()
            .all()
        )
        if ids:
            s.execute(delete(FilingQueue).where(FilingQueue.event_id.in_(ids)))
        return [int(i) for i in ids]

    def _accounts(self, s: Session, rows: Sequence[Any]) -> dict[int, int]:
        """The account of every export the events point at (filing narrows among those)."""
        ids = sorted({e for r in rows for e in r.exports})
        if not ids:
            return {}
        query = _statements(self.engine.dialect.name)["accounts"]
        return {int(e): int(a) for e, a in fetch(s, query, {"ids": ids})}

    def _filed_rows(self, s: Session, ids: Sequence[int]) -> list[Any]:
        """The queued events' columns that filing reads, in the order of their ids."""
        rows: Sequence[Any]
        if self.engine.dialect.name == "postgresql":
            rows = raw(s, _PG_EVENTS, {"ids": list(ids)})
        else:
            rows = s.execute(
                select(*_FILED_COLUMNS).where(Event.id.in_(list(ids))).order_by(Event.id)
            ).all()
        return [
            SimpleNamespace(
                id=int(r.id),
                channel=r.channel,
                strength=r.strength,
                source=r.source,
                target=r.target,
                occurred_at=r.occurred_at,
                exports=list(r.exports or []),
            )
            for r in rows
        ]
