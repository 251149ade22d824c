"""The registry: the one module through which exports, canaries, pools and the audit chain
are read and written.

Callers never touch the ORM models directly; they pass drafts in and get plain records out,
so that token values can be encrypted at rest here later without changing them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, inspect, select, text, update
from sqlalchemy.exc import DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from canary import audit
from canary.errors import AuditError, NotFoundError, NotInitialisedError, RegistryError
from canary.events import aware
from canary.normalize import email_key, kana_key, name_key, phone_e164
from canary.pools import PoolNumber, phone_set_hash
from canary.registry.access import AccessStore
from canary.registry.events import DEFAULT_EVENT_THRESHOLD, EventStore
from canary.registry.filing import FilingStore
from canary.registry.incidents import IncidentStore
from canary.registry.models import (
    Account,
    AuditEntry,
    Canary,
    Client,
    Export,
    ExportPhone,
    HostnameToken,
    PeopleList,
    PoolPhone,
    StableCarrier,
)
from canary.registry.pools import PoolStore
from canary.registry.records import (
    CanaryDraft,
    CanaryRecord,
    ExportDraft,
    ExportRecord,
)
from canary.registry.scans import ScanStore
from canary.registry.seals import SealStore

__all__ = ["CanaryDraft", "CanaryRecord", "ExportDraft", "ExportRecord", "Registry"]

_MIGRATIONS = str(Path(__file__).parent / "migrations")
# The newest migration; a test checks it against Alembic's own view of the scripts. Kept as a
# constant so that everyday commands need not import Alembic (half of the start-up time).
HEAD_REVISION = "0008"
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L, U: read aloud safely


def _now() -> datetime:
    return datetime.now(UTC)


def new_export_code() -> str:
    """A short export id a person can read over the phone, e.g. ``EX-7KQ3-M9TZ``."""
    chars = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
    return f"EX-{chars[:4]}-{chars[4:]}"


def _shown(url: str) -> str:
    """A registry URL as messages may show it: the password masked."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show it, there is no password to hide
        return url


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", _MIGRATIONS)
    cfg.attributes["connection"] = connection
    return cfg


def _make_engine(url: str, pre_ping: bool = True) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Take the write lock up front: the audit chain's head is read then extended.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if pre_ping:
        return create_engine(url, pool_pre_ping=True)
    # No round trip at checkout (a fifth of a small batch's cost, client and server): a
    # connection psycopg already knows is closed or broken is replaced here; one that died
    # unseen fails its first statement, is invalidated, and the caller tries again.
    engine = create_engine(url)

    @event.listens_for(engine, "checkout")
    def _known_dead(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.closed or getattr(dbapi_connection, "broken", False):
            raise DisconnectionError("the connection was closed")

    return engine


class Registry(
    PoolStore, ScanStore, EventStore, IncidentStore, FilingStore, SealStore, AccessStore
):
    """Access to one registry database (SQLite file or PostgreSQL)."""

    def __init__(
        self,
        url: str,
        actor: str = "unknown",
        event_threshold: float = DEFAULT_EVENT_THRESHOLD,
        pre_ping: bool = True,
    ) -> None:
        self.url = url
        self.shown_url = _shown(url)  # for messages: never the password
        self.actor = actor
        self.event_threshold = event_threshold  # guilt that attributes, for queued filing
        try:
            self.engine = _make_engine(url, pre_ping)
        except Exception as exc:  # bad URL, missing driver
            raise RegistryError(f"Cannot open the registry at {_shown(url)!r}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    # -- schema ---------------------------------------------------------------------------

    def revision(self) -> str | None:
        """The schema revision the database is at, or None if it was never initialised."""
        try:
            with self.engine.connect() as conn:
                if not inspect(conn).has_table("alembic_version"):
                    return None
                row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
                return None if row is None else str(row[0])
        except OperationalError as exc:
            raise RegistryError(
                f"Cannot reach the registry at {self.shown_url!r}: {exc.orig}"
            ) from exc

    @staticmethod
    def head_revision() -> str:
        return HEAD_REVISION

    def init(self) -> tuple[str | None, str]:
        """Create or upgrade the schema; returns (revision before, revision after)."""
        from alembic import command

        before = self.revision()
        with self.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
        after = self.head_revision()
        if before != after:
            with self.transaction() as s:
                self._audit(
                    s, "registry.init", self.url.rsplit("@", 1)[-1], {"from": before, "to": after}
                )
        return before, after

    def require_ready(self) -> None:
        """Raise NotInitialisedError unless the schema is at the current revision."""
        current = self.revision()
        if current is None:
            raise NotInitialisedError(
                f"The registry at {self.shown_url} is not initialised; run `canary init` first."
            )
        if current != self.head_revision():
            raise NotInitialisedError(
                f"The registry at {self.shown_url} is at schema {current}, older than this version "
                "of canary; run `canary init` to upgrade it."
            )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            if self.engine.dialect.name == "postgresql":
                # Serialise writers on the audit chain head.
                session.execute(text("SELECT pg_advisory_xact_lock(7242937)"))
            yield session

    # -- audit ----------------------------------------------------------------------------

    def _audit(self, s: Session, action: str, subject: str, payload: object) -> None:
        head = s.execute(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).scalar()
        seq = 1 if head is None else head.seq + 1
        prev = audit.GENESIS if head is None else head.hash
        at = _now().isoformat(timespec="microseconds")
        body = audit.canonical_json(payload)
        digest = audit.entry_hash(seq, at, self.actor, action, subject, body, prev)
        s.add(
            AuditEntry(
                seq=seq,
                at=at,
                actor=self.actor,
                action=action,
                subject=subject,
                payload=body,
                prev_hash=prev,
                hash=digest,
            )
        )
        s.flush()

    def audit_links(self) -> Iterator[audit.Link]:
        with self._sessions() as s:
            rows = s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()
            for r in rows:
                yield audit.Link(
                    r.seq, r.at, r.actor, r.action, r.subject, r.payload, r.prev_hash, r.hash
                )

    def verify_audit(self) -> audit.VerifyResult:
        self.require_ready()
        return audit.verify_chain(self.audit_links())

    def record(self, action: str, subject: str, payload: object) -> None:
        """Append one entry to the audit chain in its own transaction."""
        try:
            with self.transaction() as s:
                self._audit(s, action, subject, payload)
        except IntegrityError as exc:
            raise AuditError(f"Could not extend the audit chain: {exc.orig}") from exc

    def identity_taken(self, name_key: str, kana_key: str, postcode: str) -> bool:
        """Whether a canary with this name or reading already lives at this postcode."""
        with self._sessions() as s:
            q = (
                select(Canary.id)
                .where(
                    Canary.postcode == postcode,
                    (Canary.name_key == name_key) | (Canary.kana_key == kana_key),
                )
                .limit(1)
            )
            return s.execute(q).first() is not None

    def emails_taken(self, emails: Sequence[str]) -> set[str]:
        keys = [email_key(e) for e in emails]
        taken: set[str] = set()
        with self._sessions() as s:
            for i in range(0, len(keys), 500):
                q = select(Canary.email).where(Canary.email.in_(keys[i : i + 500]))
                taken.update(str(e) for (e,) in s.execute(q) if e)
        return taken

    # -- exports --------------------------------------------------------------------------

    def _get_or_create(self, s: Session, draft: ExportDraft) -> tuple[PeopleList, Account]:
        client = s.execute(select(Client).where(Client.name == draft.client)).scalar()
        if client is None:
            client = Client(name=draft.client, created_at=_now())
            s.add(client)
            s.flush()
        plist = s.execute(
            select(PeopleList).where(
                PeopleList.client_id == client.id, PeopleList.name == draft.list_name
            )
        ).scalar()
        if plist is None:
            plist = PeopleList(client_id=client.id, name=draft.list_name, created_at=_now())
            s.add(plist)
            s.flush()
        account = s.execute(select(Account).where(Account.name == draft.account)).scalar()
        if account is None:
            account = Account(
                name=draft.account,
                shared=bool(draft.account_members),
                members=list(draft.account_members),
                created_at=_now(),
            )
            s.add(account)
            s.flush()
        elif draft.account_members:
            merged = sorted(set(account.members or []) | set(draft.account_members))
            if merged != sorted(account.members or []):
                account.members = merged
                account.shared = True
        return plist, account

    def set_account(self, name: str, shared: bool, members: Sequence[str]) -> None:
        """Record whether a login is shared and who is known to use it."""
        with self.transaction() as s:
            account = s.execute(select(Account).where(Account.name == name)).scalar()
            if account is None:
                account = Account(
                    name=name, shared=shared, members=list(members), created_at=_now()
                )
                s.add(account)
            else:
                account.shared = shared
                account.members = sorted(set(members))
            s.flush()
            self._audit(s, "account.set", name, {"shared": shared, "members": sorted(members)})

    def seal_export(
        self,
        draft: ExportDraft,
        canaries: Sequence[CanaryDraft],
        numbers: Sequence[PoolNumber],
        hostnames: Sequence[tuple[str, str]] = (),
    ) -> ExportRecord:
        """Commit an export, its canaries and the (hostname, zone) tokens in their URL column
        (status ``sealed``) before its file appears."""
        try:
            with self.transaction() as s:
                plist, account = self._get_or_create(s, draft)
                export = Export(
                    code=draft.code,
                    list_id=plist.id,
                    account_id=account.id,
                    recipient=draft.recipient,
                    requested_by=draft.requested_by,
                    host=draft.host,
                    terminal=draft.terminal,
                    created_at=_now(),
                    status="sealed",
                    rows_in=draft.rows_in,
                    rows_out=draft.rows_out,
                    canary_count=len(canaries),
                    input_name=draft.input_name,
                    input_sha256=draft.input_sha256,
                    output_path=draft.output_path,
                    output_sha256=draft.output_sha256,
                    temp_path=draft.temp_path,
                    file_format=draft.file_format,
                    encoding=draft.encoding,
                    phone_set_hash=phone_set_hash([n.e164 for n in numbers]) if numbers else None,
                    expected_callers=[],
                    expected_senders=[],
                    columns=dict(draft.columns),
                )
                s.add(export)
                s.flush()
                for c in canaries:
                    if c.reuse_id is not None:
                        s.add(
                            StableCarrier(
                                export_id=export.id, canary_id=c.reuse_id, position=c.position
                            )
                        )
                        continue
                    row = Canary(
                        export_id=export.id,
                        position=c.position,
                        name=c.name,
                        kana=c.kana,
                        romaji=c.romaji,
                        sex=c.sex,
                        birth_date=c.birth_date,
                        postcode=c.postcode,
                        address=c.address,
                        phone_e164=c.phone_e164,
                        phone2_e164=c.phone2_e164,
                        email=email_key(c.email) if c.email else None,
                        name_key=name_key(c.name),
                        kana_key=kana_key(c.kana),
                        address_key=c.address_key,
                        fields=dict(c.fields),
                        layer=c.layer,
                        stable_group=c.stable_group,
                    )
                    s.add(row)
                    if c.layer == "stable":
                        s.flush()
                        s.add(
                            StableCarrier(
                                export_id=export.id, canary_id=row.id, position=c.position
                            )
                        )
                for n in numbers:
                    s.add(ExportPhone(export_id=export.id, pool_phone_id=n.id))
                if numbers:
                    s.execute(
                        update(PoolPhone)
                        .where(PoolPhone.id.in_([n.id for n in numbers]))
                        .values(use_count=PoolPhone.use_count + 1)
                    )
                for hostname, zone in hostnames:
                    s.add(
                        HostnameToken(
                            hostname=hostname, zone=zone, export_id=export.id, created_at=_now()
                        )
                    )
                s.flush()
                self._audit(
                    s,
                    "export.seal",
                    draft.code,
                    {
                        "client": draft.client,
                        "list": draft.list_name,
                        "account": draft.account,
                        "recipient": draft.recipient,
                        "requested_by": draft.requested_by,
                        "host": draft.host,
                        "terminal": draft.terminal,
                        "input_sha256": draft.input_sha256,
                        "output_sha256": draft.output_sha256,
                        "output": draft.output_path,
                        "rows_in": draft.rows_in,
                        "rows_out": draft.rows_out,
                        "canaries": len(canaries),
                    },
                )
                for hostname, zone in hostnames:  # as `canary dns token` records one
                    self._audit(s, "dns.token", hostname, {"export": draft.code, "zone": zone})
        except IntegrityError as exc:
            raise RegistryError(
                "Another seed took the same tokens at the same moment; run the seed again. "
                f"({exc.orig})"
            ) from exc
        return self.export(draft.code)

    def set_export_status(self, code: str, status: str, note: str = "") -> None:
        with self.transaction() as s:
            export = s.execute(select(Export).where(Export.code == code)).scalar()
            if export is None:
                raise NotFoundError(f"No export {code} in the registry.")
            export.status = status
            export.temp_path = None
            self._audit(s, f"export.{status}", code, {"note": note})

    def sealed_exports(self) -> list[ExportRecord]:
        with self._sessions() as s:
            q = select(Export).where(Export.status == "sealed")
            return [self._export_record(e) for e in s.execute(q).scalars()]

    def _export_record(self, e: Export) -> ExportRecord:
        return ExportRecord(
            code=e.code,
            client=e.people_list.client.name,
            list_name=e.people_list.name,
            account=e.account.name,
            account_shared=e.account.shared,
            account_members=list(e.account.members or []),
            recipient=e.recipient,
            requested_by=e.requested_by,
            host=e.host,
            terminal=e.terminal,
            created_at=aware(e.created_at),  # SQLite keeps no offset; stored in UTC
            status=e.status,
            rows_in=e.rows_in,
            rows_out=e.rows_out,
            canary_count=e.canary_count,
            input_name=e.input_name,
            input_sha256=e.input_sha256,
            output_path=e.output_path,
            output_sha256=e.output_sha256,
            temp_path=e.temp_path,
            file_format=e.file_format,
            encoding=e.encoding,
            columns=dict(e.columns or {}),
        )

    def export(self, code: str) -> ExportRecord:
        with self._sessions() as s:
            e = s.execute(select(Export).where(Export.code == code.strip().upper())).scalar()
            if e is None:
                raise NotFoundError(
                    f"No export {code} in the registry; `canary exports list` shows them all."
                )
            return self._export_record(e)

    def exports(self, limit: int | None = None) -> list[ExportRecord]:
        with self._sessions() as s:
            q = select(Export).order_by(Export.created_at.desc(), Export.id.desc())
            if limit:
                q = q.limit(limit)
            return [self._export_record(e) for e in s.execute(q).scalars()]

    def export_count(self) -> int:
        with self._sessions() as s:
            return int(s.execute(select(func.count(Export.id))).scalar_one())

    # -- canaries -------------------------------------------------------------------------

    def _record(self, c: Canary, export: Export, position: int) -> CanaryRecord:
        return CanaryRecord(
            export=self._export_record(export),
            position=position,
            name=c.name,
            kana=c.kana,
            romaji=c.romaji,
            sex=c.sex,
            birth_date=c.birth_date,
            postcode=c.postcode,
            address=c.address,
            phone_e164=c.phone_e164,
            phone2_e164=c.phone2_e164,
            email=c.email,
            fields=dict(c.fields or {}),
            layer=c.layer,
        )

    def _canary_records(self, s: Session, q: Any) -> list[CanaryRecord]:
        """Records of the canaries ``q`` selects: a stable canary once per export carrying
        it, at its place in that export."""
        out = []
        for c in s.execute(q).scalars().all():
            if c.layer != "stable":
                out.append(self._record(c, c.export, c.position))
                continue
            carriers = s.execute(
                select(StableCarrier, Export)
                .join(Export, Export.id == StableCarrier.export_id)
                .where(StableCarrier.canary_id == c.id)
                .order_by(Export.id)
            )
            out.extend(self._record(c, export, carrier.position) for carrier, export in carriers)
        return out

    def canaries_of(self, code: str) -> list[CanaryRecord]:
        """Every canary an export carries, its own and the stable ones of its account."""
        code = code.strip().upper()
        with self._sessions() as s:
            own = s.execute(
                select(Canary).join(Export).where(Export.code == code, Canary.layer != "stable")
            ).scalars()
            out = [self._record(c, c.export, c.position) for c in own]
            carried = s.execute(
                select(Canary, StableCarrier.position, Export)
                .join(StableCarrier, StableCarrier.canary_id == Canary.id)
                .join(Export, Export.id == StableCarrier.export_id)
                .where(Export.code == code)
            )
            out.extend(self._record(c, export, position) for c, position, export in carried)
            return sorted(out, key=lambda r: r.position)

    def find_by_email(self, email: str) -> list[CanaryRecord]:
        with self._sessions() as s:
            return self._canary_records(s, select(Canary).where(Canary.email == email_key(email)))

    def find_by_phone(self, phone: str) -> list[CanaryRecord]:
        e164 = phone_e164(phone)
        if e164 is None:
            return []
        with self._sessions() as s:
            q = (
                select(Canary)
                .where((Canary.phone_e164 == e164) | (Canary.phone2_e164 == e164))
                .order_by(Canary.export_id, Canary.position)
            )
            return self._canary_records(s, q)

    def find_by_name(self, name: str) -> list[CanaryRecord]:
        nk, kk = name_key(name), kana_key(name)
        with self._sessions() as s:
            q = (
                select(Canary)
                .where((Canary.name_key == nk) | (Canary.kana_key == kk))
                .order_by(Canary.export_id, Canary.position)
            )
            return self._canary_records(s, q)
