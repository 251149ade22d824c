"""Events in the registry: store each contact once, classify it, hand the suspicious ones
to their incidents (``canary.registry.incidents``) and owe a human an alert. Events are
sealed into the audit chain in batches (``canary.registry.seals``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
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
    P_CHANNEL,
    phone_chance,
)
from canary.normalize import address_key, kana_key, name_key, phone_e164
from canary.registry.models import (
    Alert,
    Canary,
    Event,
    Export,
    ExportPhone,
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

    _file_event: Any  # canary.registry.incidents.IncidentStore
    _incident_row: Any
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
            # The holders read for classification already name the exports' codes.
            codes = {h.export_id: h.code for h in facts.holders}
            return self._event_record(s, row, codes=codes)

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
        e: Event,
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
