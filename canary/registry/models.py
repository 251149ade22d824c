"""SQLAlchemy models of the registry.

The registry holds canaries and export metadata, never rows of real people. Token values
(emails, phone numbers, names) are read and written only through ``canary.registry``, so
that encryption at rest can be added there without touching callers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Client(Base):
    __tablename__ = "clients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PeopleList(Base):
    __tablename__ = "lists"
    __table_args__ = (UniqueConstraint("client_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    client: Mapped[Client] = relationship()


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    members: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Export(Base):
    __tablename__ = "exports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    recipient: Mapped[str | None] = mapped_column(String(200))
    requested_by: Mapped[str | None] = mapped_column(String(200))
    host: Mapped[str | None] = mapped_column(String(200))
    terminal: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))  # sealed -> delivered | void
    rows_in: Mapped[int] = mapped_column(BigInteger)
    rows_out: Mapped[int] = mapped_column(BigInteger)
    canary_count: Mapped[int] = mapped_column(Integer)
    input_name: Mapped[str] = mapped_column(Text)
    input_sha256: Mapped[str | None] = mapped_column(String(64))
    output_path: Mapped[str] = mapped_column(Text)
    output_sha256: Mapped[str] = mapped_column(String(64))
    temp_path: Mapped[str | None] = mapped_column(Text)
    file_format: Mapped[str] = mapped_column(String(10))
    encoding: Mapped[str | None] = mapped_column(String(20))
    phone_set_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    campaign_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    campaign_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expected_callers: Mapped[list[str]] = mapped_column(JSON, default=list)
    expected_senders: Mapped[list[str]] = mapped_column(JSON, default=list)
    columns: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # column -> role

    people_list: Mapped[PeopleList] = relationship()
    account: Mapped[Account] = relationship()
    canaries: Mapped[list[Canary]] = relationship(
        back_populates="export", order_by="Canary.position"
    )


class PoolPhone(Base):
    __tablename__ = "pool_phones"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    e164: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # mobile | ip | landline
    state: Mapped[str] = mapped_column(String(12))  # quarantine | active | burnt | retired
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    use_count: Mapped[int] = mapped_column(Integer, default=0)
    stray_events: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str | None] = mapped_column(Text)


class PoolDomain(Base):
    __tablename__ = "pool_domains"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    state: Mapped[str] = mapped_column(String(12))  # active | retired
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExportPhone(Base):
    """The set of pool numbers one export carries (decodes phone-only signals later)."""

    __tablename__ = "export_phones"
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id"), primary_key=True)
    pool_phone_id: Mapped[int] = mapped_column(ForeignKey("pool_phones.id"), primary_key=True)


class Canary(Base):
    __tablename__ = "canaries"
    __table_args__ = (
        Index("ix_canaries_phone", "phone_e164"),
        Index("ix_canaries_phone2", "phone2_e164"),  # events look up either number
        Index("ix_canaries_name_key", "name_key"),
        Index("ix_canaries_kana_key", "kana_key"),
        Index("ix_canaries_export", "export_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id"))
    position: Mapped[int] = mapped_column(BigInteger)  # 0-based data-row index in the output
    name: Mapped[str] = mapped_column(String(100))
    kana: Mapped[str] = mapped_column(String(100))
    romaji: Mapped[str] = mapped_column(String(100))
    sex: Mapped[str] = mapped_column(String(1))
    birth_date: Mapped[str] = mapped_column(String(10))
    postcode: Mapped[str] = mapped_column(String(7))
    address: Mapped[str] = mapped_column(Text)
    phone_e164: Mapped[str | None] = mapped_column(String(20))
    phone2_e164: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    name_key: Mapped[str] = mapped_column(String(100))
    kana_key: Mapped[str] = mapped_column(String(100))
    address_key: Mapped[str] = mapped_column(Text)
    fields: Mapped[dict[str, object]] = mapped_column(JSON)  # column -> value written
    # "export": unique to its export. "stable": carried, as the same row, by every export of
    # one list by one account (stable_group); its carriers are in stable_carriers.
    layer: Mapped[str] = mapped_column(String(8), default="export", server_default="export")
    stable_group: Mapped[str | None] = mapped_column(String(64), index=True)
    export: Mapped[Export] = relationship(back_populates="canaries")


class StableCarrier(Base):
    """An export carrying a stable canary (the export that introduced it included)."""

    __tablename__ = "stable_carriers"
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id"), primary_key=True)
    canary_id: Mapped[int] = mapped_column(ForeignKey("canaries.id"), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)  # 0-based data-row index in that export


class AuditEntry(Base):
    """One link of the append-only, hash-chained audit log."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, hashed as written
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON, hashed as written
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Scan(Base):
    """One scanned broker list: counts and hashes only, never the list's rows."""

    __tablename__ = "scans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    file_name: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    matched_rows: Mapped[int] = mapped_column(BigInteger)
    scanned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    threshold: Mapped[float] = mapped_column()
    result: Mapped[dict[str, object]] = mapped_column(JSON)  # the --json findings


class ScanMatch(Base):
    """A canary found in a scanned list, by which key, in which rows."""

    __tablename__ = "scan_matches"
    __table_args__ = (Index("ix_scan_matches_canary", "canary_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"))
    canary_id: Mapped[int] = mapped_column(ForeignKey("canaries.id"))
    key: Mapped[str] = mapped_column(String(30))
    strength: Mapped[str] = mapped_column(String(10))
    rows: Mapped[list[int]] = mapped_column(JSON)


class Incident(Base):
    """The suspicious events (and scans) that point at one export, or at one account."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    # "export:<id>" or "account:<id>": one open incident per subject.
    subject: Mapped[str] = mapped_column(String(40), unique=True)
    export_id: Mapped[int | None] = mapped_column(ForeignKey("exports.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    status: Mapped[str] = mapped_column(String(10))  # open | closed
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    confidence: Mapped[float] = mapped_column(default=0.0)
    attributed: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Event(Base):
    """One observed contact with a token: stored once, whatever its classification."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_target", "target"),
        Index("ix_events_occurred", "occurred_at"),
        Index("ix_events_source", "source"),
        Index("ix_events_sealed", "sealed_by"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # "<provider>:<provider id>", or "sha256:<payload hash>" where the provider gives none.
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    channel: Mapped[str] = mapped_column(String(12))  # call|sms|email|smtp_probe|dns|postal|manual
    provider: Mapped[str] = mapped_column(String(20))
    provider_id: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str | None] = mapped_column(String(254))  # caller ID, sender, resolver IP
    target: Mapped[str] = mapped_column(String(254))  # the token: +81…, local@domain, host, name
    payload_sha256: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    classification: Mapped[str] = mapped_column(String(12))  # expected | suspicious | noise
    reason: Mapped[str] = mapped_column(Text)
    strength: Mapped[str] = mapped_column(String(8))  # strong | medium | weak | none
    exports: Mapped[list[int]] = mapped_column(JSON, default=list)  # candidate export ids
    canaries: Mapped[list[int]] = mapped_column(JSON, default=list)
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the stored fields
    sealed_by: Mapped[int | None] = mapped_column(BigInteger)  # audit_log.seq of its seal


class IncidentEvent(Base):
    __tablename__ = "incident_events"
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), primary_key=True)


class NoiseSource(Base):
    """A caller, sender or address known to contact numbers at random (spam, robocalls)."""

    __tablename__ = "noise_sources"
    __table_args__ = (UniqueConstraint("kind", "value"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # caller | sender | ip
    value: Mapped[str] = mapped_column(String(254))
    note: Mapped[str | None] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """A bearer token of the API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(12))  # investigator | steward | admin
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Alert(Base):
    """An alert owed to a human for one suspicious event; delivered alone or in a digest."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_pending", "delivered_at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), unique=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    digest: Mapped[str | None] = mapped_column(String(40))  # id of the digest that carried it
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class FilingQueue(Base):
    """A suspicious event stored by the server and not yet filed into its incident (written
    in the event's transaction, deleted in the filing's: see canary.registry.filing)."""

    __tablename__ = "filing_queue"
    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )


class RegistryGeneration(Base):
    """One row: a counter that triggers move whenever canaries, exports, the exports' pool
    numbers or stable carriers change (registry 0008), so that a copy of them kept in
    memory can tell it is still good (canary.registry.tokencache)."""

    __tablename__ = "registry_generation"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class HostnameToken(Base):
    """A hostname under a canary DNS zone that names one export (or one client) when looked
    up: put in a B2B list's URL column, or a pool domain dedicated to one client."""

    __tablename__ = "hostname_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hostname: Mapped[str] = mapped_column(String(253), unique=True)  # lowercase, no final dot
    zone: Mapped[str] = mapped_column(String(253))
    export_id: Mapped[int | None] = mapped_column(ForeignKey("exports.id"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobRun(Base):
    """One run of a scheduled monitor, for `canary jobs list`, the digest and the doctor."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job", "job", "started_at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(10))  # running | ok | failed | skipped
    summary: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
