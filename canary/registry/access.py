"""API tokens, campaign expectations and known noise sources in the registry.

A token is shown once, when it is created; the registry keeps only its SHA-256, so a copy
of the database does not hand out access. Roles:

| role | may |
|---|---|
| steward | seed exports (the gateway), list exports, set expectations |
| investigator | everything a steward may, and read canaries, events, incidents, traces |
| admin | everything, and create or revoke tokens |
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from canary.errors import AccessError, InvalidEventError, NotFoundError
from canary.events import aware
from canary.normalize import email_key, phone_e164
from canary.registry.models import ApiToken, Export, NoiseSource

ROLES = ("steward", "investigator", "admin")
TOKEN_PREFIX = "cnry_"
# What each role may do; an API view or a command names the permission it needs.
PERMISSIONS: dict[str, frozenset[str]] = {
    "steward": frozenset({"seed", "exports:read", "exports:expect"}),
    "investigator": frozenset(
        {"seed", "exports:read", "exports:expect", "canaries:read", "events:read", "events:write"}
    ),
    "admin": frozenset(
        {
            "seed",
            "exports:read",
            "exports:expect",
            "canaries:read",
            "events:read",
            "events:write",
            "tokens:admin",
        }
    ),
}


def _now() -> datetime:
    return datetime.now(UTC)


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.strip().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling the API: the token's name and role."""

    name: str
    role: str

    def may(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())

    def require(self, permission: str) -> None:
        if not self.may(permission):
            raise AccessError(f"A {self.role} token may not do this ({permission}).")


class AccessStore:
    """Mixed into Registry; uses its sessions and audit chain."""

    _sessions: Any
    transaction: Any
    _audit: Any
    _noise_cache: Any

    # -- API tokens -----------------------------------------------------------------------

    def create_token(self, name: str, role: str) -> str:
        """Create a token and return its secret, which is never stored nor shown again."""
        if role not in ROLES:
            raise AccessError(f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
        if not name.strip():
            raise AccessError("Give the token a name that says who or what uses it.")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.transaction() as s:
            s.add(
                ApiToken(
                    name=name.strip(),
                    role=role,
                    token_sha256=token_hash(secret),
                    created_at=_now(),
                    created_by=getattr(self, "actor", "unknown"),
                )
            )
            self._audit(s, "token.create", name.strip(), {"role": role})
        return secret

    def authenticate(self, secret: str) -> Principal:
        """The principal of a bearer token; AccessError if it is unknown or revoked."""
        if not secret:
            raise AccessError("This needs a token: send `Authorization: Bearer <token>`.")
        with self._sessions() as s, s.begin():
            row = s.execute(
                select(ApiToken).where(ApiToken.token_sha256 == token_hash(secret))
            ).scalar()
            if row is None or row.revoked_at is not None:
                raise AccessError("The token is unknown or revoked.")
            row.last_used_at = _now()
            return Principal(row.name, row.role)

    def revoke_token(self, name: str) -> int:
        with self.transaction() as s:
            rows = list(
                s.execute(
                    select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
                ).scalars()
            )
            if not rows:
                raise NotFoundError(
                    f"No live token named {name!r}; `canary token list` shows them."
                )
            for r in rows:
                r.revoked_at = _now()
            self._audit(s, "token.revoke", name, {"count": len(rows)})
            return len(rows)

    def tokens(self) -> list[dict[str, object]]:
        with self._sessions() as s:
            return [
                {
                    "name": t.name,
                    "role": t.role,
                    "created_at": t.created_at.isoformat(),
                    "created_by": t.created_by,
                    "revoked": t.revoked_at is not None,
                    "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                }
                for t in s.execute(select(ApiToken).order_by(ApiToken.id)).scalars()
            ]

    # -- expectations ---------------------------------------------------------------------

    def set_expectation(
        self,
        code: str,
        callers: Sequence[str] = (),
        senders: Sequence[str] = (),
        start: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, object]:
        """Record what the recipient's own campaign will look like: its caller IDs, its
        sender domains and its window. Adds to what was set before."""
        numbers = []
        for c in callers:
            e164 = phone_e164(c)
            if e164 is None:
                raise InvalidEventError(f"{c!r} is not a phone number; give the caller ID.")
            numbers.append(e164)
        domains = [
            email_key(d).lstrip("@").rpartition("@")[2].strip(".") for d in senders if d.strip()
        ]
        if start and until and until < start:
            raise InvalidEventError("The campaign ends before it starts; check its start and end.")
        with self.transaction() as s:
            e = s.execute(select(Export).where(Export.code == code.strip().upper())).scalar()
            if e is None:
                raise NotFoundError(f"No export {code} in the registry.")
            e.expected_callers = sorted(set(e.expected_callers or []) | set(numbers))
            e.expected_senders = sorted(set(e.expected_senders or []) | set(domains))
            # Stored in UTC: SQLite keeps no offset.
            if start is not None:
                e.campaign_from = aware(start).astimezone(UTC)
            if until is not None:
                e.campaign_until = aware(until).astimezone(UTC)
            result: dict[str, object] = {
                "export_id": e.code,
                "callers": e.expected_callers,
                "senders": e.expected_senders,
                "from": e.campaign_from.isoformat() if e.campaign_from else None,
                "until": e.campaign_until.isoformat() if e.campaign_until else None,
            }
            self._audit(s, "export.expect", e.code, result)
            return result

    # -- noise sources --------------------------------------------------------------------

    def add_noise_source(self, kind: str, value: str, note: str = "") -> None:
        """Mark a caller or sender as a known source of stray contacts."""
        if kind not in ("caller", "sender", "ip"):
            raise InvalidEventError("A noise source is a caller, a sender or an ip.")
        key = value.strip().lower()
        if kind == "caller":
            key = phone_e164(value) or key
        with self.transaction() as s:
            exists = s.execute(
                select(NoiseSource.id).where(NoiseSource.kind == kind, NoiseSource.value == key)
            ).first()
            if exists is None:
                s.add(NoiseSource(kind=kind, value=key, note=note or None, added_at=_now()))
                self._audit(s, "noise.add", key, {"kind": kind, "note": note})
        self._noise_cache = None  # other processes see it within eventfacts.NOISE_TTL
