"""Incidents in the registry: suspicious events filed per export (or per account when a
token is shared by several exports of one login), locked in a fixed order, rescored with the
guilt model of ``canary.events.incidents`` when a new sign arrives, and read back.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, case, select, text, update
from sqlalchemy.orm import Session

from canary.errors import NotFoundError
from canary.events import PHONE_CHANNELS, EventRecord, aware
from canary.events.incidents import NARROW_WINDOW, Sign, account_guilt, export_guilt
from canary.registry.eventfacts import fetch, one_of, raw
from canary.registry.events import MAX_CANDIDATES, _insert, _now
from canary.registry.models import Event, Export, ExportPhone, Incident, IncidentEvent

_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"

# PostgreSQL's statements of the filing, each of one text for every batch (arrays or a JSON
# array of rows, not a VALUES list per batch): psycopg converts each once, PostgreSQL plans
# each once. The incidents are opened (or found) and locked in the order of the rows given.
_PG_OPEN = """
INSERT INTO incidents (code, subject, export_id, account_id, status, first_seen, last_seen,
                       event_count, confidence, attributed, updated_at)
SELECT code, subject, export_id, account_id, status, first_seen, last_seen, event_count,
       confidence, attributed, updated_at
FROM json_populate_recordset(NULL::incidents, %(rows)s::json)
ON CONFLICT (subject) DO UPDATE SET updated_at = excluded.updated_at
RETURNING subject, id, attributed
"""
# The links, and which signs (incident, token, source; source NULL: from any source) the
# incidents held before them: the query sees incident_events as it was before the INSERT.
# For each sign, the token's events through its index until one is linked to the incident
# (LIMIT 1 keeps it a plain index scan that stops there; as EXISTS it became a bitmap scan of
# every event of the token, about twice the CPU).
_PG_LINK = """
WITH linked AS (
    INSERT INTO incident_events (incident_id, event_id)
    SELECT * FROM unnest(%(incidents)s::integer[], %(events)s::bigint[])
    ON CONFLICT DO NOTHING
    RETURNING incident_id, event_id)
SELECT 'linked' AS kind, incident_id, event_id, NULL::varchar AS target, NULL::varchar AS source
FROM linked
UNION ALL
SELECT 'known', p.incident_id, NULL, p.target, p.source
FROM unnest(%(asked)s::integer[], %(targets)s::varchar[], %(sources)s::varchar[])
     AS p(incident_id, target, source)
CROSS JOIN LATERAL (
    SELECT FROM events e JOIN incident_events ie ON ie.event_id = e.id
    WHERE ie.incident_id = p.incident_id AND e.target = p.target
      AND (p.source IS NULL OR e.source = p.source)
    LIMIT 1) AS held
"""
_PG_TOUCH_AND_ALERT = """
WITH touched AS (
    UPDATE incidents SET event_count = event_count + t.added,
           first_seen = LEAST(first_seen, t.first), last_seen = GREATEST(last_seen, t.last),
           updated_at = %(now)s
    FROM unnest(%(incident)s::integer[], %(added)s::integer[], %(first)s::timestamptz[],
                %(last)s::timestamptz[]) AS t(id, added, first, last)
    WHERE incidents.id = t.id)
INSERT INTO alerts (event_id, incident_id, created_at, attempts)
SELECT e, i, %(now)s, 0 FROM unnest(%(events)s::bigint[], %(incidents)s::integer[]) AS a(e, i)
"""


@dataclass(frozen=True)
class IncidentRecord:
    code: str
    subject: str  # export or account
    export: str | None  # export code
    account: str
    client: str | None
    list_name: str | None
    candidates: list[str]  # export codes an account incident cannot tell apart
    status: str
    first_seen: datetime
    last_seen: datetime
    events: int
    confidence: float
    attributed: bool

    def as_json(self) -> dict[str, object]:
        return {
            "incident_id": self.code,
            "subject": self.subject,
            "export_id": self.export,
            "account": self.account,
            "client": self.client,
            "list": self.list_name,
            "candidates": self.candidates,
            "status": self.status,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "events": self.events,
            "confidence": self.confidence,
            "attributed": self.attributed,
        }


@cache
def _statements(dialect: str) -> dict[str, Any]:
    """The filing's reads for the dialect, built on first use and executed with each batch's
    values (building them anew for every batch cost as much as running them)."""
    moment = Event.occurred_at.type

    def _many(column: Any, name: str) -> Any:
        return one_of(column, name, dialect)

    after, before = bindparam("after", type_=moment), bindparam("before", type_=moment)
    window = [Event.occurred_at >= after, Event.occurred_at <= before]
    if dialect == "postgresql":
        # Prepared, the statement gets a generic plan, which guesses any time range narrow
        # and reads every event of the window through ix_events_occurred besides the
        # source's: as differences, the window only filters the source's calls.
        window = [
            Event.occurred_at - after >= timedelta(0),
            before - Event.occurred_at >= timedelta(0),
        ]

    return {
        # A source's suspicious calls within the window (narrowing)
        "calls": select(Event.id, Event.source, Event.target, Event.occurred_at).where(
            _many(Event.source, "sources"),
            one_of(Event.channel, "phone_channels", dialect, PHONE_CHANNELS),
            Event.classification == "suspicious",
            *window,
        ),
        "numbers": select(ExportPhone.pool_phone_id, ExportPhone.export_id).where(
            _many(ExportPhone.pool_phone_id, "ids")
        ),
        "accounts": select(Export.id, Export.account_id).where(_many(Export.id, "ids")),
        "known": select(IncidentEvent.incident_id, Event.target, Event.source)
        .join(IncidentEvent, IncidentEvent.event_id == Event.id)
        .where(
            _many(IncidentEvent.incident_id, "incidents"),
            _many(Event.target, "targets"),
            ~_many(Event.id, "events"),
        )
        .distinct(),
        "signs": select(
            Event.id,
            Event.target,
            Event.channel,
            Event.source,
            Event.occurred_at,
            Event.exports,
            Event.details["p"].as_float().label("p"),  # not the whole details: p_t alone
            Event.strength,
        )
        .join(IncidentEvent, IncidentEvent.event_id == Event.id)
        .where(IncidentEvent.incident_id == bindparam("incident")),
    }


class IncidentStore:
    """Mixed into Registry; uses its sessions, engine, audit chain and events."""

    _sessions: Any
    engine: Any
    _audit: Any
    _pool_phone: Any
    events: Any
    _codes: Any
    _touch_stmt: Any = None
    _owe_alerts: Any  # canary.registry.events.EventStore
    filed: Any  # canary.registry.filing.FilingStore
    _filing_stmts: dict[str, Any] | None = None

    # -- incidents ------------------------------------------------------------------------

    def _narrowed(self, s: Session, rows: Sequence[Any]) -> dict[int, tuple[list[int], list[Any]]]:
        """Each new event's candidate exports, and the calls that join its incident with it.

        For a phone-only sign: the exports holding every pool number its source called
        (suspiciously) within the window, or the number's own holders if that is empty;
        those other calls join the incident too. Read for the whole batch at once."""
        weak = [
            r for r in rows if r.channel in PHONE_CHANNELS and r.strength == "weak" and r.source
        ]
        calls: dict[str, list[SimpleNamespace]] = {}  # by source
        if weak:
            moments = [aware(r.occurred_at) for r in weak]
            for i, source, target, moment in fetch(
                s,
                _statements(self.engine.dialect.name)["calls"],
                {
                    "sources": sorted({r.source for r in weak}),
                    "after": min(moments) - NARROW_WINDOW,
                    "before": max(moments) + NARROW_WINDOW,
                },
            ):
                call = SimpleNamespace(id=i, source=source, target=target, occurred_at=moment)
                calls.setdefault(str(source), []).append(call)
        numbers: dict[int, list[str]] = {}
        others: dict[int, list[Any]] = {}
        for r in weak:
            moment = aware(r.occurred_at)
            others[r.id] = [
                c
                for c in calls.get(r.source, [])
                if c.id != r.id and abs(aware(c.occurred_at) - moment) <= NARROW_WINDOW
            ]
            called = {c.target for c in others[r.id]} | {r.target}
            if len(called) >= 2:
                numbers[r.id] = sorted(called)
        phone_ids = {
            n: p.id
            for n in {n for ns in numbers.values() for n in ns}
            if (p := self._pool_phone(s, n)) is not None
        }
        holding: dict[int, set[int]] = {}  # pool phone id -> the exports given it
        if phone_ids:
            for phone_id, export_id in fetch(
                s,
                _statements(self.engine.dialect.name)["numbers"],
                {"ids": sorted(phone_ids.values())},
            ):
                holding.setdefault(phone_id, set()).add(export_id)
        out: dict[int, tuple[list[int], list[Any]]] = {}
        for r in rows:
            held = [
                holding.get(phone_ids[n], set()) for n in numbers.get(r.id, []) if n in phone_ids
            ]
            common = sorted(set.intersection(*held)) if held else []
            out[r.id] = (common or list(r.exports)), others.get(r.id, [])
        return out

    def _file_events(
        self, s: Session, rows: Sequence[Any], threshold: float, accounts: dict[int, int]
    ) -> dict[int, int]:
        """File new suspicious events (their columns as attributes, ids included) into the
        incidents they point at, each incident rescored at most once for the batch; returns
        each filed event's first incident. ``accounts`` maps the exports holding the tokens
        to their accounts (read here for exports it lacks)."""
        plans: list[tuple[int, list[str], list[int]]] = []  # event, its subjects, its links
        opening: dict[str, tuple[int | None, int, datetime]] = {}
        narrowed = self._narrowed(s, rows)
        signs = {row.id: row for row in rows}  # the events that may join an incident now
        for row in rows:
            candidates, others = narrowed[row.id]
            signs.update((c.id, c) for c in others)
            if not candidates or len(candidates) > MAX_CANDIDATES:
                continue
            if not set(candidates) <= accounts.keys():
                query = _statements(self.engine.dialect.name)["accounts"]
                accounts = accounts | {e: a for e, a in fetch(s, query, {"ids": candidates})}
            mine = {e: accounts[e] for e in candidates}
            subjects: list[tuple[str, int | None, int]]
            if len(candidates) > 1 and len(set(mine.values())) == 1:
                account = next(iter(mine.values()))
                subjects = [(f"account:{account}", None, account)]
            else:
                subjects = [(f"export:{e}", e, mine[e]) for e in sorted(candidates)]
            for subject, export_id, account_id in subjects:
                opening.setdefault(subject, (export_id, account_id, aware(row.occurred_at)))
            # The source's calls that narrowed the candidates join the incident too.
            linked = [row.id, *(c.id for c in others)]
            plans.append((row.id, [subject for subject, _, _ in subjects], linked))
        if not plans:
            self._owe_alerts(s, [(r.id, None) for r in rows])
            return {}
        # Incidents are opened or locked in one order (sorted subjects), before any link to
        # them is written: otherwise two batches filing into the same two incidents deadlock.
        incidents = self._open_incidents(s, opening)
        pairs = sorted(
            {
                (incidents[subject][0], e)
                for _, subjects, linked in plans
                for subject in subjects
                for e in linked
            }
        )
        attributed = dict(incidents.values())
        # The sign of each event linked: its token, and before attribution its source too.
        signed = {
            (i, e): (signs[e].target, None if attributed[i] else signs[e].source) for i, e in pairs
        }
        added, known = self._link(s, pairs, signed)
        touched = []
        for incident_id in sorted(attributed):
            new = [signs[e] for e in sorted(added.get(incident_id, ()))]
            if {signed[incident_id, r.id] for r in new} <= known.get(incident_id, set()):
                # Guilt only grows with signs. Tokens (or, before attribution, tokens from
                # these sources) already counted add nothing: count the events only, and
                # keep the rescoring (all the incident's events) for new signs.
                touched.append((incident_id, new))
            else:
                self._rescore(s, incident_id, threshold)
        first = {event_id: incidents[subjects[0]][0] for event_id, subjects, _ in plans}
        self._touch_incidents(s, touched, [(r.id, first.get(r.id)) for r in rows])
        return first

    def _link(
        self,
        s: Session,
        pairs: Sequence[tuple[int, int]],
        signed: dict[tuple[int, int], tuple[str, str | None]],
    ) -> tuple[dict[int, set[int]], dict[int, set[tuple[str, str | None]]]]:
        """Link the events to the incidents ((incident, event) pairs, sorted); returns the
        events each incident gained, and which of the signs of the pairs (``signed``) each
        incident held before. On PostgreSQL one statement: its query sees the links as they
        were before its INSERT."""
        added: dict[int, set[int]] = {}
        known: dict[int, set[tuple[str, str | None]]] = {}
        if self.engine.dialect.name == "postgresql":
            probes = sorted({(i, *signed[i, e]) for i, e in pairs}, key=str)
            rows = raw(
                s,
                _PG_LINK,
                {
                    "incidents": [i for i, _ in pairs],
                    "events": [e for _, e in pairs],
                    "asked": [i for i, _, _ in probes],
                    "targets": [t for _, t, _ in probes],
                    "sources": [src for _, _, src in probes],
                },
            )
            for kind, incident_id, event_id, target, source in rows:
                if kind == "linked":
                    added.setdefault(int(incident_id), set()).add(int(event_id))
                else:
                    known.setdefault(int(incident_id), set()).add((target, source))
            return added, known
        links = s.connection().execute(
            self._filing_statements()["link"],
            [{"incident_id": i, "event_id": e} for i, e in pairs],
        )
        for incident_id, event_id in links:
            added.setdefault(int(incident_id), set()).add(int(event_id))
        asked: dict[int, set[tuple[str, str | None]]] = {}
        for incident_id, events in added.items():
            asked[incident_id] = {signed[incident_id, e] for e in events}
        new = sorted({e for events in added.values() for e in events})
        return added, self._known_signs(s, asked, new)

    def _known_signs(
        self, s: Session, asked: dict[int, set[tuple[str, str | None]]], new: Sequence[int]
    ) -> dict[int, set[tuple[str, str | None]]]:
        """Which of the signs ``asked`` (token, source; source None: the token from any
        source) each incident held through events linked before ``new`` (the events linked
        now): one query for all the batch's incidents (SQLite; PostgreSQL asks in ``_link``)."""
        held: dict[int, set[tuple[str, str | None]]] = {i: set() for i in asked}
        targets = sorted({t for pairs in asked.values() for t, _ in pairs})
        if not targets:
            return held
        for incident_id, target, source in s.connection().execute(
            _statements(self.engine.dialect.name)["known"],
            {"incidents": sorted(asked), "targets": targets, "events": sorted(new)},
        ):
            held[int(incident_id)] |= {(target, source), (target, None)}
        return {i: pairs & held[i] for i, pairs in asked.items()}

    def _touch_incidents(
        self,
        s: Session,
        touched: list[tuple[int, list[Any]]],
        alerts: Sequence[tuple[int, int | None]],
    ) -> None:
        """Count new events whose signs the incidents held already, and owe an alert for
        each new suspicious event (its id, its first incident): one statement on PostgreSQL."""
        params = [
            {
                "incident": incident_id,
                "added": len(rows),
                "first": min(aware(r.occurred_at) for r in rows),
                "last": max(aware(r.occurred_at) for r in rows),
                "now": _now(),
            }
            for incident_id, rows in touched
            if rows
        ]
        if self.engine.dialect.name == "postgresql":
            columns = ("incident", "added", "first", "last")
            raw(
                s,
                _PG_TOUCH_AND_ALERT,
                {
                    **{key: [p[key] for p in params] for key in columns},
                    "events": [e for e, _ in alerts],
                    "incidents": [i for _, i in alerts],
                    "now": _now(),
                },
            )
            return
        if params:
            s.connection().execute(self._touch_statement(), params)
        self._owe_alerts(s, alerts)

    def _touch_statement(self) -> Any:
        stmt = self._touch_stmt
        if stmt is None:
            moment = Incident.first_seen.type
            first, last = bindparam("first", type_=moment), bindparam("last", type_=moment)
            stmt = (
                update(Incident)
                .where(Incident.id == bindparam("incident"))
                .values(
                    event_count=Incident.event_count + bindparam("added"),
                    first_seen=case(
                        (Incident.first_seen > first, first), else_=Incident.first_seen
                    ),
                    last_seen=case((Incident.last_seen < last, last), else_=Incident.last_seen),
                    updated_at=bindparam("now", type_=moment),
                )
            )
            self._touch_stmt = stmt
        return stmt

    def _open_incidents(
        self, s: Session, subjects: dict[str, tuple[int | None, int, datetime]]
    ) -> dict[str, tuple[int, bool]]:
        """The incident of each subject (export id, account id, first seen), opened if need
        be, and locked to commit: subject -> (id, attributed)."""
        now = _now()
        values = []
        for subject in sorted(subjects):
            export_id, account_id, moment = subjects[subject]
            code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
            values.append(
                {
                    "code": f"IN-{code[:4]}-{code[4:]}",
                    "subject": subject,
                    "export_id": export_id,
                    "account_id": account_id,
                    "status": "open",
                    "first_seen": moment,
                    "last_seen": moment,
                    "event_count": 0,
                    "confidence": 0.0,
                    "attributed": False,
                    "updated_at": now,
                }
            )
        # One statement opens or finds the incidents and locks their rows to commit, in the
        # order of the values (the update touches no key column: FOR NO KEY UPDATE, so the
        # links' foreign keys pass).
        if self.engine.dialect.name == "postgresql":
            body = json.dumps(
                [
                    {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
                    for row in values
                ]
            )
            found = raw(s, _PG_OPEN, {"rows": body})
        else:
            found = list(s.connection().execute(self._filing_statements()["open"], values))
        return {str(subject): (int(i), bool(a)) for subject, i, a in found}

    def _filing_statements(self) -> dict[str, Any]:
        """The filing's INSERTs, built once and executed with rows of parameters (a list in
        ``values()`` is compiled anew at every call: as costly as the round trip)."""
        if self._filing_stmts is None:
            insert = _insert(self.engine.dialect.name)
            upsert = insert(Incident)
            self._filing_stmts = {
                "open": upsert.on_conflict_do_update(
                    index_elements=["subject"], set_={"updated_at": upsert.excluded.updated_at}
                ).returning(Incident.subject, Incident.id, Incident.attributed),
                "link": insert(IncidentEvent)
                .on_conflict_do_nothing()
                .returning(IncidentEvent.incident_id, IncidentEvent.event_id),
            }
        return self._filing_stmts

    def _signs(self, s: Session, incident_id: int) -> list[tuple[Sign, int, datetime]]:
        """The incident's events as signs of the guilt model, with their ids and times."""
        query = _statements(self.engine.dialect.name)["signs"]
        rows = fetch(s, query, {"incident": incident_id})
        out = []
        for r in rows:
            moment = aware(r.occurred_at)
            sign = Sign(
                token=r.target,
                channel=r.channel,
                source=r.source,
                occurred_at=moment,
                exports=frozenset(r.exports),
                chance=0.5 if r.p is None else float(r.p),
                phone_only=r.channel in PHONE_CHANNELS and r.strength == "weak",
            )
            out.append((sign, int(r.id), moment))
        return out

    def scored_at_once(
        self, s: Session, incident: Incident
    ) -> tuple[float, int, datetime, datetime]:
        """The incident's guilt, event count, first and last seen from all its signs at once
        (what filing batch by batch must come to; the benchmark and tests compare)."""
        return self._score(s, incident, self._signs(s, incident.id))

    def _score(
        self, s: Session, incident: Incident, rows: list[tuple[Sign, int, datetime]]
    ) -> tuple[float, int, datetime, datetime]:
        signs = [sign for sign, _, _ in rows]
        if incident.export_id is not None:
            confidence = export_guilt(incident.export_id, signs)
        else:
            mine = frozenset(
                s.execute(select(Export.id).where(Export.account_id == incident.account_id))
                .scalars()
                .all()
            )
            confidence = account_guilt(mine, signs)
        times = [m for _, _, m in rows]
        return confidence, len(rows), min(times), max(times)

    def _rescore(self, s: Session, incident_id: int, threshold: float) -> None:
        """Recompute the incident's guilt from all its signs (its row is locked already)."""
        incident = s.execute(select(Incident).where(Incident.id == incident_id)).scalar_one()
        rows = self._signs(s, incident_id)
        confidence, count, first, last = self._score(s, incident, rows)
        was = incident.attributed
        incident.confidence = confidence
        incident.attributed = confidence >= threshold
        incident.event_count = count
        incident.first_seen = first
        incident.last_seen = last
        incident.updated_at = _now()
        s.flush()
        if incident.attributed and not was:
            # A verdict goes into the chain at once (it is rare; events are sealed in batches).
            if self.engine.dialect.name == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(7242937)"))
            self._audit(
                s,
                "incident.attributed",
                incident.code,
                {
                    "subject": incident.subject,
                    "confidence": confidence,
                    "events": sorted(i for _, i, _ in rows),
                },
            )

    def _incident_row(self, s: Session, code: str) -> Incident:
        row = s.execute(select(Incident).where(Incident.code == code.strip().upper())).scalar()
        if row is None:
            raise NotFoundError(
                f"No incident {code} in the registry; `canary incidents list` shows them."
            )
        return row

    def _incident_record(self, s: Session, i: Incident) -> IncidentRecord:
        from canary.registry.models import Account, PeopleList

        account = s.get(Account, i.account_id)
        export = s.get(Export, i.export_id) if i.export_id is not None else None
        candidates: list[str] = []
        if export is None:
            ids: set[int] = set()
            for (exports,) in s.execute(
                select(Event.exports)
                .join(IncidentEvent, IncidentEvent.event_id == Event.id)
                .where(IncidentEvent.incident_id == i.id)
            ):
                ids.update(exports)
            candidates = sorted(self._codes(s, sorted(ids)))
        people_list = s.get(PeopleList, export.list_id) if export is not None else None
        return IncidentRecord(
            code=i.code,
            subject="export" if export is not None else "account",
            export=export.code if export is not None else None,
            account=account.name if account is not None else "",
            client=people_list.client.name if people_list is not None else None,
            list_name=people_list.name if people_list is not None else None,
            candidates=candidates,
            status=i.status,
            first_seen=aware(i.first_seen),
            last_seen=aware(i.last_seen),
            events=i.event_count,
            confidence=i.confidence,
            attributed=i.attributed,
        )

    def incidents(self, status: str | None = None) -> list[IncidentRecord]:
        """Incidents, most likely first."""
        self.filed()
        with self._sessions() as s:
            q = select(Incident).order_by(Incident.confidence.desc(), Incident.last_seen.desc())
            if status:
                q = q.where(Incident.status == status)
            return [self._incident_record(s, i) for i in s.execute(q).scalars()]

    def incident(self, code: str) -> tuple[IncidentRecord, list[EventRecord]]:
        self.filed()
        with self._sessions() as s:
            row = self._incident_row(s, code)
            record = self._incident_record(s, row)
        return record, self.events(limit=None, incident=code)
