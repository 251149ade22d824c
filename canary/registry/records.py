"""Plain records passed into and out of the registry (no ORM objects leave it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ExportDraft:
    """What the seeder knows of an export before it is committed."""

    code: str
    client: str
    list_name: str
    account: str
    recipient: str | None
    requested_by: str | None
    host: str | None
    terminal: str | None
    rows_in: int
    rows_out: int
    input_name: str
    input_sha256: str | None
    output_path: str
    output_sha256: str
    temp_path: str | None
    file_format: str
    encoding: str | None
    columns: Mapping[str, str] = field(default_factory=dict)
    account_members: Sequence[str] = ()


@dataclass(frozen=True)
class CanaryDraft:
    """One canary as written into an export."""

    position: int
    name: str
    kana: str
    romaji: str
    sex: str
    birth_date: str
    postcode: str
    address: str
    address_key: str
    phone_e164: str | None
    phone2_e164: str | None
    email: str | None
    fields: Mapping[str, object]
    layer: str = "export"  # or "stable": see models.Canary
    stable_group: str | None = None
    reuse_id: int | None = None  # a stable canary already in the registry, carried again


@dataclass(frozen=True)
class ExportRecord:
    code: str
    client: str
    list_name: str
    account: str
    account_shared: bool
    account_members: list[str]
    recipient: str | None
    requested_by: str | None
    host: str | None
    terminal: str | None
    created_at: datetime
    status: str
    rows_in: int
    rows_out: int
    canary_count: int
    input_name: str
    input_sha256: str | None
    output_path: str
    output_sha256: str
    temp_path: str | None
    file_format: str
    encoding: str | None
    columns: dict[str, str]

    def as_json(self) -> dict[str, object]:
        return {
            "export_id": self.code,
            "client": self.client,
            "list": self.list_name,
            "account": self.account,
            "account_shared": self.account_shared,
            "account_members": self.account_members,
            "recipient": self.recipient,
            "requested_by": self.requested_by,
            "host": self.host,
            "terminal": self.terminal,
            "created_at": self.created_at.isoformat(),
            "status": self.status,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "canaries": self.canary_count,
            "input_name": self.input_name,
            "input_sha256": self.input_sha256,
            "output": self.output_path,
            "sha256": self.output_sha256,
            "format": self.file_format,
            "encoding": self.encoding,
            "columns": self.columns,
        }


@dataclass(frozen=True)
class CanaryRecord:
    export: ExportRecord
    position: int
    name: str
    kana: str
    romaji: str
    sex: str
    birth_date: str
    postcode: str
    address: str
    phone_e164: str | None
    phone2_e164: str | None
    email: str | None
    fields: dict[str, object]
    layer: str = "export"  # or "stable" (carried by every export of the list by the account)

    def as_json(self) -> dict[str, object]:
        """The canary as `exports show --json` and the API give it."""
        return {
            "row": self.position + 1,
            "position": self.position,
            "name": self.name,
            "kana": self.kana,
            "sex": self.sex,
            "birth_date": self.birth_date,
            "postcode": self.postcode,
            "address": self.address,
            "phone": self.phone_e164,
            "phone2": self.phone2_e164,
            "email": self.email,
            "layer": self.layer,
            "fields": self.fields,
        }


@dataclass(frozen=True)
class PoolPhoneRecord:
    e164: str
    kind: str
    state: str
    use_count: int
    added_at: datetime
    state_changed_at: datetime
    stray_events: int = 0  # contacts nothing explained: quarantine calls, noise sources


@dataclass(frozen=True)
class PoolDomainRecord:
    domain: str
    state: str
    added_at: datetime
