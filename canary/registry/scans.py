"""Registry access for scans: the canary index a scan matches against, and scan records."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from canary.registry.models import (
    Account,
    Canary,
    Client,
    Export,
    ExportPhone,
    PeopleList,
    PoolPhone,
    Scan,
    ScanMatch,
    StableCarrier,
)
from canary.registry.records import CanaryDraft

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


# The keys a scan needs of each canary, in the order ``canary_keys`` yields them.
CANARY_KEY_FIELDS = (
    "canary_id",
    "export_id",
    "name",
    "kana",
    "name_key",
    "kana_key",
    "postcode",
    "address",
    "phone_e164",
    "phone2_e164",
    "email",
)


@dataclass(frozen=True)
class ExportMeta:
    export_id: int
    code: str
    client: str
    list_name: str
    account: str
    account_shared: bool
    account_members: list[str]
    recipient: str | None
    created_at: datetime
    canary_count: int
    status: str


@dataclass(frozen=True)
class MatchRecord:
    canary_id: int
    key: str
    strength: str
    rows: list[int]


class ScanStore:
    """Mixed into Registry; uses its sessions, transactions and audit chain."""

    _sessions: Any
    engine: Any
    transaction: Any
    _audit: Any

    def canary_keys(self, batch: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
        """Every canary's keys as plain tuples ordered as CANARY_KEY_FIELDS, in batches
        (a million canaries never sit in ORM objects)."""
        cols = [Canary.id if f == "canary_id" else getattr(Canary, f) for f in CANARY_KEY_FIELDS]
        query = select(*cols).join(Export).where(Export.status != "void")
        with self.engine.connect() as conn:
            # A Core query, not an ORM one: ORM row loading cost more than the query
            # itself for 10^6 canaries.
            result = conn.execution_options(yield_per=batch).execute(query)
            for part in result.partitions(batch):
                yield [tuple(row) for row in part]

    def stable_canaries(self, group: str) -> list[tuple[int, CanaryDraft]]:
        """The stable canaries of one (client, list, account) group, oldest first, as
        (canary id, draft) for carrying them again (see seed)."""
        with self._sessions() as s:
            rows = s.execute(
                select(Canary)
                .where(Canary.stable_group == group, Canary.layer == "stable")
                .order_by(Canary.id)
            ).scalars()
            return [
                (
                    c.id,
                    CanaryDraft(
                        position=-1,
                        name=c.name,
                        kana=c.kana,
                        romaji=c.romaji,
                        sex=c.sex,
                        birth_date=c.birth_date,
                        postcode=c.postcode,
                        address=c.address,
                        address_key=c.address_key,
                        phone_e164=c.phone_e164,
                        phone2_e164=c.phone2_e164,
                        email=c.email,
                        fields=dict(c.fields),
                        layer="stable",
                        stable_group=group,
                        reuse_id=c.id,
                    ),
                )
                for c in rows
            ]

    def stable_carriers(self) -> list[tuple[int, int]]:
        """(canary id, export id) of every live export carrying a stable canary."""
        with self._sessions() as s:
            q = (
                select(StableCarrier.canary_id, StableCarrier.export_id)
                .join(Export, Export.id == StableCarrier.export_id)
                .where(Export.status != "void")
            )
            return [(int(c), int(e)) for c, e in s.execute(q)]

    def canary_fingerprint(self) -> str:
        """Changes whenever the set of live canaries changes (new exports, voided ones)."""
        from sqlalchemy import func

        with self._sessions() as s:
            count, top = s.execute(select(func.count(Canary.id), func.max(Canary.id))).one()
            void = s.execute(select(func.count(Export.id)).where(Export.status == "void")).scalar()
            numbers = s.execute(select(func.count()).select_from(ExportPhone)).scalar()
            carried = s.execute(select(func.count()).select_from(StableCarrier)).scalar()
        return f"{count}-{top}-{void}-{numbers}-{carried}"

    def export_meta(self, export_ids: Sequence[int] | None = None) -> dict[int, ExportMeta]:
        """Metadata of the given exports (all when None), keyed by export id."""
        q = (
            select(
                Export.id,
                Export.code,
                Client.name,
                PeopleList.name,
                Account.name,
                Account.shared,
                Account.members,
                Export.recipient,
                Export.created_at,
                Export.canary_count,
                Export.status,
            )
            .join(PeopleList, Export.list_id == PeopleList.id)
            .join(Client, PeopleList.client_id == Client.id)
            .join(Account, Export.account_id == Account.id)
        )
        out: dict[int, ExportMeta] = {}
        with self._sessions() as s:
            ids = list(export_ids) if export_ids is not None else None
            chunks = [ids[i : i + 500] for i in range(0, len(ids), 500)] if ids else [None]
            if ids == []:
                return out
            for chunk in chunks:
                query = q if chunk is None else q.where(Export.id.in_(chunk))
                for row in s.execute(query):
                    out[row[0]] = ExportMeta(
                        row[0],
                        row[1],
                        row[2],
                        row[3],
                        row[4],
                        bool(row[5]),
                        list(row[6] or []),
                        row[7],
                        row[8],
                        row[9],
                        row[10],
                    )
        return out

    def exports_by_number(self) -> dict[str, list[int]]:
        """Pool number (E.164) → ids of the exports that carry it."""
        q = select(PoolPhone.e164, ExportPhone.export_id).join(
            ExportPhone, ExportPhone.pool_phone_id == PoolPhone.id
        )
        out: dict[str, list[int]] = {}
        with self._sessions() as s:
            for e164, export_id in s.execute(q):
                out.setdefault(e164, []).append(export_id)
        return out

    def record_scan(
        self,
        file_name: str,
        sha256: str,
        size: int,
        rows: int,
        matched_rows: int,
        threshold: float,
        result: dict[str, object],
        matches: Sequence[MatchRecord],
    ) -> str:
        """Store a scan (counts, hashes, findings, matched canaries) and audit it."""
        code = "SC-" + "".join(secrets.choice("23456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(8))
        with self.transaction() as s:
            scan = Scan(
                code=code,
                file_name=file_name,
                sha256=sha256,
                size=size,
                rows=rows,
                matched_rows=matched_rows,
                scanned_at=datetime.now(UTC),
                threshold=threshold,
                result=result,
            )
            s.add(scan)
            s.flush()
            s.add_all(
                ScanMatch(
                    scan_id=scan.id,
                    canary_id=m.canary_id,
                    key=m.key,
                    strength=m.strength,
                    rows=m.rows[:1000],
                )
                for m in matches
            )
            _audit_scan(self, s, code, file_name, sha256, size, rows, matched_rows, result)
        return code

    def scans(self, limit: int | None = None) -> list[dict[str, object]]:
        with self._sessions() as s:
            q = select(Scan).order_by(Scan.scanned_at.desc())
            if limit:
                q = q.limit(limit)
            return [
                {
                    "scan_id": r.code,
                    "file": r.file_name,
                    "sha256": r.sha256,
                    "size": r.size,
                    "rows": r.rows,
                    "matched_rows": r.matched_rows,
                    "scanned_at": r.scanned_at.isoformat(),
                    "threshold": r.threshold,
                    "result": r.result,
                }
                for r in s.execute(q).scalars()
            ]


def _audit_scan(
    store: ScanStore,
    s: Session,
    code: str,
    file_name: str,
    sha256: str,
    size: int,
    rows: int,
    matched_rows: int,
    result: dict[str, object],
) -> None:
    exports = result.get("exports")
    attributed = (
        [e["export_id"] for e in exports if isinstance(e, dict) and e.get("attributed")]
        if isinstance(exports, list)
        else []
    )
    store._audit(
        s,
        "scan",
        code,
        {
            "file": file_name,
            "sha256": sha256,
            "size": size,
            "rows": rows,
            "matched_rows": matched_rows,
            "attributed": attributed,
        },
    )
