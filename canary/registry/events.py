"""Events and incidents in the registry: store each contact once, classify it, group the
suspicious ones into incidents, owe a human an alert, and seal events into the audit chain.

Recording an event does not take the audit chain's lock (a webhook burst would queue on it);
instead ``seal_events`` appends one audit link per batch of events whose digest covers each
event's own digest, and ``verify_event_seals`` recomputes them.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, text, update
from sqlalchemy.orm import Session

from canary import audit
from canary.errors import NotFoundError
from canary.events import (
    MAIL_CHANNELS,
    NAME_CHANNELS,
    PHONE_CHANNELS,
    TEXT_LIMIT,
    Classification,
    EventDraft,
    EventRecord,
    aware,
    normalise_target,
)
from canary.events.classify import CanaryFacts, Facts, Holder, classify, names_in
from canary.events.incidents import (
    NARROW_WINDOW,
    P_CHANNEL,
    Sign,
    account_guilt,
    export_guilt,
    phone_chance,
)
from canary.normalize import address_key, kana_key, name_key, phone_e164
from canary.registry.models import (
    Alert,
    Canary,
    Event,
    Export,
    ExportPhone,
    Incident,
    IncidentEvent,
    NoiseSource,
    PoolDomain,
    PoolPhone,
    StableCarrier,
)

DEFAULT_GRACE = timedelta(hours=72)
DEFAULT_EVENT_THRESHOLD = 0.95
NOISE_TTL = 10.0  # seconds a process trusts that no noise source is known
POOL_TTL = 10.0  # seconds a process trusts its copy of the pool's numbers and states
MAX_CANDIDATES = 5  # a sign pointing at more exports than this opens no incident yet
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _PoolPhoneFacts:
    id: int
    state: str
    stray_events: int


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


def event_digest(row: Event) -> str:
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


class EventStore:
    """Mixed into Registry; uses its sessions, engine and audit chain."""

    _noise_cache: tuple[float, bool] | None = None
    _pool_cache: tuple[float, dict[str, _PoolPhoneFacts]] | None = None
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
        target = normalise_target(draft.channel, draft.target)
        insert = _insert(self.engine.dialect.name)
        with self._sessions() as s, s.begin():
            # Core on the hot path (the ORM doubled the cost), and no look before the
            # insert: a repeat is found by the insert itself (ON CONFLICT DO NOTHING).
            conn = s.connection()
            facts, chance = self._facts(s, draft, target)
            verdict = classify(draft, target, facts, grace)
            row = self._event_row(draft, target, verdict, chance)
            values = {
                c.name: getattr(row, c.name) for c in Event.__table__.columns if c.name != "id"
            }
            # One statement built once and executed with parameters: building it per
            # event (values(**row)) cost as much as the round trip.
            new_id = conn.execute(self._insert_event(), values).scalar()
            if new_id is None:  # a concurrent delivery of the same event won the race
                existing = s.execute(
                    select(Event).where(Event.dedupe_key == draft.dedupe_key)
                ).scalar_one()
                return self._event_record(s, existing, duplicate=True)
            row.id = new_id  # the row as inserted; no need to read it back
            if (
                verdict.classification == "noise"
                and draft.channel in PHONE_CHANNELS
                and facts.pool_state is not None
            ):
                s.execute(
                    update(PoolPhone)
                    .where(PoolPhone.e164 == target)
                    .values(stray_events=PoolPhone.stray_events + 1)
                )
            if verdict.classification == "suspicious":
                accounts = {h.export_id: h.account_id for h in facts.holders}
                incident_id = self._file_event(s, row, threshold, accounts)
                s.execute(
                    insert(Alert).values(
                        event_id=row.id, incident_id=incident_id, created_at=_now(), attempts=0
                    )
                )
            return self._event_record(s, row)

    def _insert_event(self) -> Any:
        stmt = self._insert_event_stmt
        if stmt is None:
            stmt = (
                _insert(self.engine.dialect.name)(Event)
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(Event.id)
            )
            self._insert_event_stmt = stmt
        return stmt

    def _event_row(
        self, draft: EventDraft, target: str, verdict: Classification, chance: float
    ) -> Event:
        details = dict(draft.details)
        if draft.text:
            details["text"] = draft.text[:TEXT_LIMIT]
        details["p"] = chance  # p_t of canary.events.incidents
        if verdict.canaries:
            details["canaries"] = list(verdict.canaries)
        row = Event(
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

    def _facts(self, s: Session, draft: EventDraft, target: str) -> tuple[Facts, float]:
        """What the registry knows about the token, and p_t of a sign on it."""
        noise = False
        if draft.source and self._noise_sources(s):
            kind = (
                "sender"
                if draft.channel in MAIL_CHANNELS
                else "ip"
                if draft.channel == "dns"
                else "caller"
            )
            value = draft.source.strip().lower()
            if draft.channel in PHONE_CHANNELS:
                value = phone_e164(draft.source) or value
            noise = (
                s.connection()
                .execute(
                    select(NoiseSource.id).where(
                        NoiseSource.kind == kind, NoiseSource.value == value
                    )
                )
                .first()
                is not None
            )
        if draft.channel in PHONE_CHANNELS:
            phone = self._pool_phone(s, target)
            if phone is None:
                return Facts(noise_source=noise), 1.0
            holders = self._holders(
                s, select(ExportPhone.export_id).where(ExportPhone.pool_phone_id == phone.id)
            )
            canaries = self._canary_facts(
                s, (Canary.phone_e164 == target) | (Canary.phone2_e164 == target)
            )
            named = names_in(draft.text, canaries)
            facts = Facts(
                pool_state=phone.state,
                holders=holders,
                canaries=canaries,
                noise_source=noise,
                text_canaries=named,
            )
            return facts, P_CHANNEL["named"] if named else phone_chance(phone.stray_events)
        if draft.channel in MAIL_CHANNELS:
            domain = target.rpartition("@")[2]
            ours = (
                s.connection()
                .execute(select(PoolDomain.id).where(PoolDomain.domain == domain))
                .first()
                is not None
            )
            canaries = self._canary_facts(s, Canary.email == target)
            export_ids = sorted({e for c in canaries for e in c.export_ids})
            facts = Facts(
                pool_domain=ours,
                holders=self._holders(s, export_ids),
                canaries=canaries,
                noise_source=noise,
                text_canaries=names_in(draft.text, canaries),
            )
            return facts, P_CHANNEL[draft.channel]
        if draft.channel in NAME_CHANNELS:
            nk, kk = name_key(target), kana_key(target)
            canaries = self._canary_facts(s, (Canary.name_key == nk) | (Canary.kana_key == kk))
            export_ids = sorted({e for c in canaries for e in c.export_ids})
            # A canary's name with its address is strong; the name alone is medium (a real
            # person may share it).
            written = address_key(str(draft.details.get("address") or ""))
            addressed: list[CanaryFacts] = []
            if canaries and len(written) >= 6:
                keys = dict(
                    s.connection()
                    .execute(
                        select(Canary.id, Canary.address_key).where(
                            Canary.id.in_([c.canary_id for c in canaries])
                        )
                    )
                    .all()
                )
                addressed = [
                    c
                    for c in canaries
                    if (k := keys.get(c.canary_id)) and (k in written or written in k)
                ]
            facts = Facts(
                holders=self._holders(s, export_ids),
                canaries=canaries,
                noise_source=noise,
                text_canaries=addressed,
            )
            return facts, P_CHANNEL["postal" if addressed else "name_only"]
        if draft.channel == "dns":
            # A hostname token names its export; a pool domain dedicated to a client names
            # only the client (kept in the event's details by the listener).
            from canary.domains import holders_in  # canary.domains imports the registry

            found = holders_in(s, target)
            export_ids = list(found.export_ids) if found is not None else []
            return Facts(holders=self._holders(s, export_ids), noise_source=noise), P_CHANNEL["dns"]
        return Facts(noise_source=noise), P_CHANNEL["dns"]

    def _pool_phone(self, s: Session, e164: str) -> _PoolPhoneFacts | None:
        """A pool number's id, state and stray count, from a per-process copy of the pool
        read at most every POOL_TTL seconds (the pool is hundreds of numbers; most calls in
        a burst are to numbers outside it, which then cost no query)."""
        now = time.monotonic()
        cached = self._pool_cache
        if cached is None or now - cached[0] > POOL_TTL:
            rows = (
                s.connection()
                .execute(
                    select(PoolPhone.id, PoolPhone.e164, PoolPhone.state, PoolPhone.stray_events)
                )
                .all()
            )
            cached = (now, {r.e164: _PoolPhoneFacts(r.id, r.state, r.stray_events) for r in rows})
            self._pool_cache = cached
        return cached[1].get(e164)

    def _noise_sources(self, s: Session) -> bool:
        """Whether any noise source is known (read at most every NOISE_TTL seconds per
        process: the common case, none, then costs no query per event)."""
        now = time.monotonic()
        cached = getattr(self, "_noise_cache", None)
        if cached is None or now - cached[0] > NOISE_TTL:
            any_source = s.connection().execute(select(NoiseSource.id).limit(1)).first() is not None
            cached = (now, any_source)
            self._noise_cache = cached
        return bool(cached[1])

    def _canary_facts(self, s: Session, where: Any) -> list[CanaryFacts]:
        rows = (
            s.connection()
            .execute(
                select(Canary.id, Canary.export_id, Canary.name, Canary.kana, Canary.layer)
                .join(Export, Export.id == Canary.export_id)
                .where(where, Export.status != "void")
            )
            .all()
        )
        stable = [r.id for r in rows if r.layer == "stable"]
        carriers: dict[int, set[int]] = {}
        if stable:
            for cid, eid in s.connection().execute(
                select(StableCarrier.canary_id, StableCarrier.export_id).where(
                    StableCarrier.canary_id.in_(stable)
                )
            ):
                carriers.setdefault(cid, set()).add(eid)
        return [
            CanaryFacts(
                r.id, tuple(sorted(carriers.get(r.id, set()) | {r.export_id})), r.name, r.kana
            )
            for r in rows
        ]

    def _holders(self, s: Session, export_ids: Sequence[int] | Any) -> list[Holder]:
        """The live exports among ``export_ids`` (ids, or a subquery of them)."""
        if isinstance(export_ids, Sequence):
            if not export_ids:
                return []
            export_ids = list(export_ids)
        rows = (
            s.connection()
            .execute(
                select(
                    Export.id,
                    Export.account_id,
                    Export.campaign_from,
                    Export.campaign_until,
                    Export.expected_callers,
                    Export.expected_senders,
                    Export.code,
                ).where(Export.id.in_(export_ids), Export.status != "void")
            )
            .all()
        )
        return [
            Holder(r[0], r[1], r[2], r[3], list(r[4] or []), list(r[5] or []), r[6]) for r in rows
        ]

    # -- incidents ------------------------------------------------------------------------

    def _narrowed_candidates(self, s: Session, row: Event) -> tuple[list[int], list[int]]:
        """For a phone-only sign: the exports holding every pool number its source called
        (suspiciously) within the window, or the number's own holders if that is empty;
        and the ids of those other calls, which join the incident too."""
        if row.channel not in PHONE_CHANNELS or row.strength != "weak" or not row.source:
            return list(row.exports), []
        moment = aware(row.occurred_at)
        calls = (
            s.connection()
            .execute(
                select(Event.id, Event.target).where(
                    Event.source == row.source,
                    Event.channel.in_(PHONE_CHANNELS),
                    Event.classification == "suspicious",
                    Event.occurred_at >= moment - NARROW_WINDOW,
                    Event.occurred_at <= moment + NARROW_WINDOW,
                    Event.id != row.id,
                )
            )
            .all()
        )
        numbers = {t for _, t in calls} | {row.target}
        others = [i for i, _ in calls]
        if len(numbers) < 2:
            return list(row.exports), others
        phone_ids = [p.id for n in numbers if (p := self._pool_phone(s, n)) is not None]
        common = list(
            s.connection()
            .execute(
                select(ExportPhone.export_id)
                .where(ExportPhone.pool_phone_id.in_(phone_ids))
                .group_by(ExportPhone.export_id)
                .having(func.count() == len(phone_ids))
            )
            .scalars()
        )
        return (common or list(row.exports)), others

    def _file_event(
        self, s: Session, row: Event, threshold: float, accounts: dict[int, int]
    ) -> int | None:
        """Link a suspicious event to the incident(s) it points at; returns the first.
        ``accounts`` maps the exports holding the token to their accounts."""
        candidates, others = self._narrowed_candidates(s, row)
        if not candidates or len(candidates) > MAX_CANDIDATES:
            return None
        if not set(candidates) <= accounts.keys():
            accounts = dict(
                s.connection()
                .execute(select(Export.id, Export.account_id).where(Export.id.in_(candidates)))
                .all()
            )
        accounts = {e: accounts[e] for e in candidates}
        subjects: list[tuple[str, int | None]]
        if len(candidates) > 1 and len(set(accounts.values())) == 1:
            subjects = [(f"account:{next(iter(accounts.values()))}", None)]
        else:
            subjects = [(f"export:{e}", e) for e in sorted(candidates)]
        # Incidents are locked in one order (sorted subjects), before any link to them is
        # written: otherwise two events filing into the same two incidents deadlock.
        linked = [row.id, *others]  # the source's calls that narrowed the candidates
        insert = _insert(self.engine.dialect.name)
        first: int | None = None
        for subject, export_id in subjects:
            incident_id, attributed = self._open_incident(s, subject, export_id, accounts, row)
            done = s.connection().execute(
                insert(IncidentEvent)
                .values([{"incident_id": incident_id, "event_id": e} for e in linked])
                .on_conflict_do_nothing()
            )
            added = max(0, getattr(done, "rowcount", 0) or 0)
            if self._sign_known(s, incident_id, row, any_source=attributed):
                # Guilt only grows with signs. A token (or, before attribution, a token
                # from this source) already counted adds nothing: count the event only,
                # and keep the rescoring (all the incident's events) for new signs.
                self._touch_incident(s, incident_id, row, added)
            else:
                self._rescore(s, incident_id, threshold)
            first = first if first is not None else incident_id
        return first

    def _sign_known(self, s: Session, incident_id: int, row: Event, any_source: bool) -> bool:
        """Whether the incident holds this token already (from this source, unless
        ``any_source``), through another event."""
        q = (
            select(Event.id)
            .join(IncidentEvent, IncidentEvent.event_id == Event.id)
            .where(
                IncidentEvent.incident_id == incident_id,
                Event.target == row.target,
                Event.id != row.id,
            )
            .limit(1)
        )
        if not any_source:
            q = q.where(Event.source == row.source)
        return s.connection().execute(q).first() is not None

    def _touch_incident(self, s: Session, incident_id: int, row: Event, added: int) -> None:
        moment = aware(row.occurred_at)
        s.connection().execute(
            update(Incident)
            .where(Incident.id == incident_id)
            .values(
                event_count=Incident.event_count + added,
                first_seen=case((Incident.first_seen > moment, moment), else_=Incident.first_seen),
                last_seen=case((Incident.last_seen < moment, moment), else_=Incident.last_seen),
                updated_at=_now(),
            )
        )

    def _open_incident(
        self, s: Session, subject: str, export_id: int | None, accounts: dict[int, int], row: Event
    ) -> tuple[int, bool]:
        """The incident of ``subject``, opened if need be: (id, attributed)."""
        insert = _insert(self.engine.dialect.name)
        now = _now()
        account_id = accounts[export_id] if export_id is not None else int(subject.split(":")[1])
        code = "IN-" + "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
        stmt = insert(Incident).values(
            code=f"{code[:7]}-{code[7:]}",
            subject=subject,
            export_id=export_id,
            account_id=account_id,
            status="open",
            first_seen=aware(row.occurred_at),
            last_seen=aware(row.occurred_at),
            event_count=0,
            confidence=0.0,
            attributed=False,
            updated_at=now,
        )
        # One statement opens or finds the incident and locks its row to commit (the
        # update touches no key column: FOR NO KEY UPDATE, so the links' foreign keys
        # pass); incidents are taken in sorted order, so no two events deadlock.
        found = (
            s.connection()
            .execute(
                stmt.on_conflict_do_update(
                    index_elements=["subject"], set_={"updated_at": stmt.excluded.updated_at}
                ).returning(Incident.id, Incident.attributed)
            )
            .one()
        )
        return int(found[0]), bool(found[1])

    def _signs(self, s: Session, incident_id: int) -> list[tuple[Sign, int, datetime]]:
        """The incident's events as signs of the guilt model, with their ids and times."""
        rows = (
            s.connection()
            .execute(
                select(
                    Event.id,
                    Event.target,
                    Event.channel,
                    Event.source,
                    Event.occurred_at,
                    Event.exports,
                    Event.details,
                    Event.strength,
                )
                .join(IncidentEvent, IncidentEvent.event_id == Event.id)
                .where(IncidentEvent.incident_id == incident_id)
            )
            .all()
        )
        out = []
        for r in rows:
            moment = aware(r.occurred_at)
            sign = Sign(
                token=r.target,
                channel=r.channel,
                source=r.source,
                occurred_at=moment,
                exports=frozenset(r.exports),
                chance=float((r.details or {}).get("p", 0.5)),
                phone_only=r.channel in PHONE_CHANNELS and r.strength == "weak",
            )
            out.append((sign, int(r.id), moment))
        return out

    def _rescore(self, s: Session, incident_id: int, threshold: float) -> None:
        """Recompute the incident's guilt from all its signs (its row is locked already)."""
        incident = s.execute(select(Incident).where(Incident.id == incident_id)).scalar_one()
        rows = self._signs(s, incident_id)
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
        was = incident.attributed
        incident.confidence = confidence
        incident.attributed = confidence >= threshold
        incident.event_count = len(rows)
        incident.first_seen = min(m for _, _, m in rows)
        incident.last_seen = max(m for _, _, m in rows)
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

    # -- sealing --------------------------------------------------------------------------

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
            import json

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

    # -- reading --------------------------------------------------------------------------

    def _codes(self, s: Session, export_ids: Sequence[int]) -> list[str]:
        if not export_ids:
            return []
        rows = s.connection().execute(
            select(Export.id, Export.code).where(Export.id.in_(list(export_ids)))
        )
        codes = dict(rows.all())
        return [codes[i] for i in export_ids if i in codes]

    def _event_record(self, s: Session, e: Event, duplicate: bool = False) -> EventRecord:
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
            exports=self._codes(s, e.exports[:50]),
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
        with self._sessions() as s:
            q = select(Incident).order_by(Incident.confidence.desc(), Incident.last_seen.desc())
            if status:
                q = q.where(Incident.status == status)
            return [self._incident_record(s, i) for i in s.execute(q).scalars()]

    def incident(self, code: str) -> tuple[IncidentRecord, list[EventRecord]]:
        with self._sessions() as s:
            row = self._incident_row(s, code)
            record = self._incident_record(s, row)
        return record, self.events(limit=None, incident=code)
