"""Events in the registry: store each contact once, classify it, hand the suspicious ones
to their incidents (``canary.registry.incidents``) and owe a human an alert. Events are
sealed into the audit chain in batches (``canary.registry.seals``).

``record_events`` stores a batch in one transaction (a group commit: the server's writer
thread hands it every event its requests are waiting on). One commit then waits for the
disk once for all of them, and the batch's events go in as one INSERT.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from canary import audit
from canary.errors import NotFoundError
from canary.events import (
    PHONE_CHANNELS,
    TEXT_LIMIT,
    Classification,
    EventDraft,
    EventRecord,
    aware,
    normalise_target,
)
from canary.events.classify import Facts, classify
from canary.registry.eventfacts import EventFacts, _statements, fetch, raw
from canary.registry.models import Alert, Event, Export, FilingQueue, IncidentEvent, PoolPhone

DEFAULT_GRACE = timedelta(hours=72)
DEFAULT_EVENT_THRESHOLD = 0.95
MAX_CANDIDATES = 5  # a sign pointing at more exports than this opens no incident yet
_COLUMNS = [c.name for c in Event.__table__.columns if c.name != "id"]


@cache
def _pg_insert_events(queue: bool) -> str:
    """PostgreSQL's INSERT of a batch of events, the rows given as one JSON array: the whole
    of a batch's writing in one statement, atomic without a transaction around it (the
    server's writer runs it alone, in autocommit: no BEGIN and COMMIT round trips).

    Its text is the same for every batch, so psycopg converts it once and PostgreSQL plans
    it once; a multi-row VALUES differs with each batch's size and, past 50 parameters,
    psycopg parses it anew every time. A new event is never sealed: sealed_by stays NULL.
    The events are inserted only if the registry's generation is still
    ``%(generation)s`` (NULL: whatever it is), the one their tokens' facts were read at;
    the last row returned is the generation as the statement saw it. The new noise calls
    and SMS to pool numbers are counted as the numbers' stray contacts (locked in the
    numbers' order, as every batch locks them). With ``queue``, the new suspicious events
    go into the filing queue."""
    columns = ", ".join(c for c in _COLUMNS if c != "sealed_by")
    rows = (
        f"INSERT INTO events ({columns}) "
        f"SELECT {columns} FROM json_populate_recordset(NULL::events, %(rows)s::json) "
        "WHERE %(generation)s::bigint IS NULL "
        "OR %(generation)s::bigint = (SELECT n FROM registry_generation WHERE id = 1) "
        "ON CONFLICT (dedupe_key) DO NOTHING "
        "RETURNING dedupe_key, id, classification, channel, target"
    )
    queued = (
        "queued AS (INSERT INTO filing_queue (event_id) "
        "SELECT id FROM stored WHERE classification = 'suspicious'), "
        if queue
        else ""
    )
    return (
        f"WITH stored AS ({rows}), {queued}"
        "strays AS (SELECT target, count(*) AS n FROM stored "
        "WHERE classification = 'noise' AND channel IN ('call', 'sms') GROUP BY target), "
        "locked AS (SELECT p.id, s.n FROM pool_phones p JOIN strays s ON p.e164 = s.target "
        "ORDER BY p.e164 FOR UPDATE OF p), "
        "counted AS (UPDATE pool_phones p SET stray_events = p.stray_events + l.n "
        "FROM locked l WHERE p.id = l.id) "
        "SELECT dedupe_key, id FROM stored "
        "UNION ALL SELECT NULL, n FROM registry_generation WHERE id = 1"
    )


_PG_ALERTS = """
INSERT INTO alerts (event_id, incident_id, created_at, attempts)
SELECT e, i, %(now)s, 0 FROM unnest(%(events)s::bigint[], %(incidents)s::integer[]) AS a(e, i)
"""


class _Moved(Exception):
    """The registry's generation moved after a batch's facts were read."""


def _now() -> datetime:
    return datetime.now(UTC)


def event_digest(row: Event | SimpleNamespace) -> str:
    """SHA-256 over an event's stored fields, as sealed into the audit chain."""
    body = audit.canonical_json(
        [
            row.dedupe_key,
            row.channel,
            row.provider,
            row.provider_id,
            aware(row.occurred_at).isoformat(),
            aware(row.received_at).isoformat(),
            row.source,
            row.target,
            row.payload_sha256,
            row.classification,
            row.reason,
            row.strength,
            row.exports,
            row.details,
        ]
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _insert(dialect: str) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT DO NOTHING on both backends."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if dialect == "postgresql" else sqlite.insert


class EventStore(EventFacts):
    """Mixed into Registry; uses its sessions, engine and audit chain."""

    _file_events: Any  # canary.registry.incidents.IncidentStore
    _incident_row: Any
    filed: Any  # canary.registry.filing.FilingStore
    _insert_event_stmt: Any = None

    _sessions: Any
    engine: Any
    transaction: Any
    _audit: Any
    actor: str

    # -- recording ------------------------------------------------------------------------

    def record_event(
        self,
        draft: EventDraft,
        grace: timedelta = DEFAULT_GRACE,
        threshold: float = DEFAULT_EVENT_THRESHOLD,
    ) -> EventRecord:
        """Classify and store one event exactly once; a repeated delivery (same provider id,
        or same payload) returns the stored event with ``duplicate=True``."""
        return self.record_events([draft], grace, threshold)[0]

    def record_events(
        self,
        drafts: Sequence[EventDraft],
        grace: timedelta = DEFAULT_GRACE,
        threshold: float = DEFAULT_EVENT_THRESHOLD,
        file: bool = True,
    ) -> list[EventRecord]:
        """Classify and store events in one transaction, each exactly once; their records in
        the order given. A delivery repeated in the batch or stored before returns the stored
        event with ``duplicate=True``. If one fails, none is stored.

        The new suspicious events are filed into their incidents in the same transaction, or
        with ``file=False`` put in the filing queue, for ``file_queued`` to file many at once
        (the server's writers: filing is most of an event's cost, and most of it is per
        statement, not per event)."""
        targets = [normalise_target(d.channel, d.target) for d in drafts]
        try:
            return self._record_events(drafts, targets, grace, threshold, file, check=True)
        except _Moved:
            # The canaries or exports changed since the process's copy of them was read:
            # classify the batch again from fresh reads, in a new transaction.
            self._token_cache().forget()
            return self._record_events(drafts, targets, grace, threshold, file, check=False)

    def _record_events(
        self,
        drafts: Sequence[EventDraft],
        targets: Sequence[str],
        grace: timedelta,
        threshold: float,
        file: bool,
        check: bool,
    ) -> list[EventRecord]:
        """``record_events`` in one transaction (on PostgreSQL without filing, in one
        statement); with ``check``, raises _Moved (storing nothing) if the registry's
        generation moved after the facts it classified by."""
        pg = self.engine.dialect.name == "postgresql"
        with self._batch(autocommit=pg and not file) as s:
            # Core on the hot path (the ORM doubled the cost), and no look before the
            # insert: a repeat is found by the insert itself (ON CONFLICT DO NOTHING).
            facts: list[Facts] = []
            rows: list[SimpleNamespace] = []
            read, known_at = self._facts_many(s, drafts, targets)
            for draft, target, (known, chance) in zip(drafts, targets, read, strict=True):
                verdict = classify(draft, target, known, grace)
                facts.append(known)
                rows.append(self._event_row(draft, target, verdict, chance))
            first: dict[str, int] = {}  # the first delivery of each event in the batch
            for i, row in enumerate(rows):
                first.setdefault(row.dedupe_key, i)
            # Keys in one order in every batch: two batches inserting the same two events
            # wait for each other's commit instead of deadlocking.
            fresh = [rows[first[k]] for k in sorted(first)]
            expected = known_at if check else None
            ids, generation = self._insert_events(s, fresh, not file, expected)
            if expected is not None and generation != expected:
                raise _Moved  # nothing was inserted (PostgreSQL), or it is rolled back
            stored = {}  # events a concurrent or earlier delivery stored
            if len(ids) < len(fresh):
                stored = self._stored_events(s, [k for k in first if k not in ids])
            new = []  # the events this batch stored, with what was known of their tokens
            for i, (r, f) in enumerate(zip(rows, facts, strict=True)):
                if r.dedupe_key in ids and first[r.dedupe_key] == i:
                    r.id = ids[r.dedupe_key]  # the row as inserted; no need to read it back
                    new.append((r, f))
            if not pg:  # PostgreSQL counts them in the INSERT's statement
                self._count_strays(s, [r for r, f in new if f.pool_state is not None])
            suspicious = [r for r, _f in new if r.classification == "suspicious"]
            if suspicious and file:
                accounts = {h.export_id: h.account_id for f in facts for h in f.holders}
                # Filed into their incidents, each with the alert it is owed.
                self._file_events(s, suspicious, threshold, accounts)
            # The holders read for classification already name the exports' codes.
            codes = {h.export_id: h.code for f in facts for h in f.holders}
            return [
                self._event_record(s, rows[first[r.dedupe_key]], first[r.dedupe_key] != i, codes)
                if r.dedupe_key in ids
                else self._event_record(s, stored[r.dedupe_key], True, codes)
                for i, r in enumerate(rows)
            ]

    @contextmanager
    def _batch(self, autocommit: bool) -> Iterator[Session]:
        """A session for one batch of events: in a transaction, or with ``autocommit`` on a
        connection without one, where the batch's only write is one statement (PostgreSQL,
        when filing is left to the queue). BEGIN and COMMIT were two of a batch's three
        round trips, each a wake-up of the writer thread that waits for the GIL."""
        if not autocommit:
            with self._sessions() as s, s.begin():
                yield s
            return
        with self.engine.connect() as connection:
            bound = connection.execution_options(isolation_level="AUTOCOMMIT")
            with self._sessions(bind=bound) as s:
                yield s

    def _owe_alerts(self, s: Session, events: Sequence[tuple[int, int | None]]) -> None:
        """An alert for each new suspicious event (its id, its first incident)."""
        if self.engine.dialect.name == "postgresql":
            raw(
                s,
                _PG_ALERTS,
                {
                    "events": [e for e, _ in events],
                    "incidents": [i for _, i in events],
                    "now": _now(),
                },
            )
            return
        s.connection().execute(
            _insert(self.engine.dialect.name)(Alert),
            [
                {"event_id": e, "incident_id": i, "created_at": _now(), "attempts": 0}
                for e, i in events
            ],
        )

    def _count_strays(self, s: Session, rows: Sequence[SimpleNamespace]) -> None:
        """Count noise calls and SMS to pool numbers as the numbers' stray contacts (in the
        numbers' order, as every batch locks them)."""
        strays = Counter(
            r.target for r in rows if r.classification == "noise" and r.channel in PHONE_CHANNELS
        )
        for target in sorted(strays):
            s.execute(
                update(PoolPhone)
                .where(PoolPhone.e164 == target)
                .values(stray_events=PoolPhone.stray_events + strays[target])
            )

    def _stored_events(self, s: Session, keys: Sequence[str]) -> dict[str, Any]:
        """The stored events of these dedupe keys, as rows with the events' columns (Core:
        the ORM's objects cost a tenth of the writer's time when a tenth were repeats)."""
        query = _statements(self._dialect())["stored"]
        return {e.dedupe_key: e for e in fetch(s, query, {"keys": list(keys)})}

    def _insert_events(
        self,
        s: Session,
        rows: Sequence[SimpleNamespace],
        queue: bool = False,
        generation: int | None = None,
    ) -> tuple[dict[str, int], int]:
        """Insert the events (their columns as attributes) that are not stored yet; the
        dedupe key and id of each one inserted, and the registry's generation as the insert
        saw it. With ``queue``, the suspicious ones among them go into the filing queue
        too. With ``generation``, PostgreSQL inserts nothing if the registry's is another
        (SQLite's cannot move in the transaction: the caller compares and rolls back)."""
        if self.engine.dialect.name == "postgresql":
            # Times as ISO 8601 with their offset, JSON columns as JSON: the stored text of
            # details, exports and canaries is what json.dumps makes of them, as before.
            body = json.dumps(
                [
                    {
                        c: v.isoformat() if isinstance(v, datetime) else v
                        for c in _COLUMNS
                        if c != "sealed_by" and (v := getattr(r, c)) is not None
                    }
                    for r in rows
                ]
            )
            found = raw(s, _pg_insert_events(queue), {"rows": body, "generation": generation})
            return {key: i for key, i in found if key is not None}, next(
                i for key, i in found if key is None
            )
        params = [{c: getattr(r, c) for c in _COLUMNS} for r in rows]
        ids = dict(s.connection().execute(self._insert_event(), params).all()) if rows else {}
        if queue:
            queued = [
                {"event_id": ids[r.dedupe_key]}
                for r in rows
                if r.classification == "suspicious" and r.dedupe_key in ids
            ]
            if queued:
                s.connection().execute(insert(FilingQueue), queued)
        # SQLite's writer holds the database from BEGIN IMMEDIATE: nothing moves meanwhile.
        generation = fetch(s, _statements(self._dialect())["generation"], {})[0][0]
        return ids, int(generation)

    def _insert_event(self) -> Any:
        stmt = self._insert_event_stmt
        if stmt is None:
            # Built once and executed with parameters: building it per event cost as much
            # as the round trip. Several rows go in as one multi-row INSERT.
            stmt = (
                _insert(self.engine.dialect.name)(Event)
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(Event.dedupe_key, Event.id)
            )
            self._insert_event_stmt = stmt
        return stmt

    def _event_row(
        self, draft: EventDraft, target: str, verdict: Classification, chance: float
    ) -> SimpleNamespace:
        """The event's columns, as attributes (an ORM object per event cost more than its
        INSERT)."""
        details = dict(draft.details)
        if draft.text:
            details["text"] = draft.text[:TEXT_LIMIT]
        details["p"] = chance  # p_t of canary.events.incidents
        if verdict.canaries:
            details["canaries"] = list(verdict.canaries)
        row = SimpleNamespace(
            id=None,
            dedupe_key=draft.dedupe_key,
            channel=draft.channel,
            provider=draft.provider,
            provider_id=draft.provider_id,
            # UTC as stored: SQLite keeps no offset, and the digest must read back the same.
            occurred_at=aware(draft.occurred_at).astimezone(UTC),
            received_at=_now(),
            source=(draft.source or None) and str(draft.source)[:254],
            target=target[:254],
            payload_sha256=draft.payload_sha256,
            details=details,
            classification=verdict.classification,
            reason=verdict.reason,
            strength=verdict.strength,
            exports=list(verdict.exports),
            canaries=list(verdict.canaries),
            sealed_by=None,
        )
        row.digest = event_digest(row)
        return row

    # -- reading --------------------------------------------------------------------------

    def _codes(self, s: Session, export_ids: Sequence[int]) -> list[str]:
        if not export_ids:
            return []
        rows = s.connection().execute(
            select(Export.id, Export.code).where(Export.id.in_(list(export_ids)))
        )
        codes = dict(rows.all())
        return [codes[i] for i in export_ids if i in codes]

    def _event_record(
        self,
        s: Session,
        e: Event | SimpleNamespace,
        duplicate: bool = False,
        codes: dict[int, str] | None = None,
    ) -> EventRecord:
        shown = e.exports[:50]
        if codes is not None and all(i in codes for i in shown):
            exports = [codes[i] for i in shown]
        else:
            exports = self._codes(s, shown)
        return EventRecord(
            id=e.id,
            channel=e.channel,
            provider=e.provider,
            provider_id=e.provider_id,
            occurred_at=aware(e.occurred_at),
            received_at=aware(e.received_at),
            source=e.source,
            target=e.target,
            payload_sha256=e.payload_sha256,
            classification=e.classification,
            reason=e.reason,
            strength=e.strength,
            exports=exports,
            details=dict(e.details or {}),
            duplicate=duplicate,
        )

    def events(
        self,
        limit: int | None = 100,
        classification: str | None = None,
        channel: str | None = None,
        export: str | None = None,
        incident: str | None = None,
    ) -> list[EventRecord]:
        """Stored events, newest first, optionally filtered."""
        if incident:
            self.filed()
        with self._sessions() as s:
            q = select(Event).order_by(Event.occurred_at.desc(), Event.id.desc())
            if classification:
                q = q.where(Event.classification == classification)
            if channel:
                q = q.where(Event.channel == channel)
            if incident:
                inc = self._incident_row(s, incident)
                q = q.join(IncidentEvent, IncidentEvent.event_id == Event.id).where(
                    IncidentEvent.incident_id == inc.id
                )
            rows = list(s.execute(q).scalars())
            if export:
                eid = s.execute(select(Export.id).where(Export.code == export.upper())).scalar()
                if eid is None:
                    raise NotFoundError(f"No export {export} in the registry.")
                rows = [r for r in rows if eid in r.exports]
            if limit:
                rows = rows[:limit]
            return [self._event_record(s, r) for r in rows]
