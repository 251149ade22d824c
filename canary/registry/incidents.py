"""Incidents in the registry: suspicious events filed per export (or per account when a
token is shared by several exports of one login), locked in a fixed order, rescored with the
guilt model of ``canary.events.incidents`` when a new sign arrives, and read back.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, text, update
from sqlalchemy.orm import Session

from canary.errors import NotFoundError
from canary.events import PHONE_CHANNELS, EventRecord, aware
from canary.events.incidents import NARROW_WINDOW, Sign, account_guilt, export_guilt
from canary.registry.events import MAX_CANDIDATES, _insert, _now
from canary.registry.models import Event, Export, ExportPhone, Incident, IncidentEvent

_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


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


class IncidentStore:
    """Mixed into Registry; uses its sessions, engine, audit chain and events."""

    _sessions: Any
    engine: Any
    _audit: Any
    _pool_phone: Any
    events: Any
    _codes: Any

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
