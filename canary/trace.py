"""Trace a token back to the export that holds it."""

from __future__ import annotations

from dataclasses import dataclass

from canary.normalize import email_key, name_key, phone_e164
from canary.registry import Registry
from canary.registry.records import CanaryRecord


@dataclass(frozen=True)
class TraceMatch:
    canary: CanaryRecord
    key: str  # email | phone | phone2 | name | kana


@dataclass(frozen=True)
class TraceResult:
    query: str
    matches: list[TraceMatch]
    note: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "query": self.query,
            "note": self.note,
            "matches": [
                {
                    "export_id": m.canary.export.code,
                    "client": m.canary.export.client,
                    "list": m.canary.export.list_name,
                    "account": m.canary.export.account,
                    "account_shared": m.canary.export.account_shared,
                    "account_members": m.canary.export.account_members,
                    "recipient": m.canary.export.recipient,
                    "exported_at": m.canary.export.created_at.isoformat(),
                    "canary": m.canary.name,
                    "kana": m.canary.kana,
                    "row": m.canary.position + 1,
                    "phone": m.canary.phone_e164,
                    "email": m.canary.email,
                    "key": m.key,
                }
                for m in self.matches
            ],
        }


def trace(
    registry: Registry,
    *,
    phone: str | None = None,
    email: str | None = None,
    name: str | None = None,
) -> TraceResult:
    """Find the canaries holding one token; an email names one export, a phone several."""
    if email:
        found = registry.find_by_email(email)
        return TraceResult(email_key(email), [TraceMatch(c, "email") for c in found])
    if phone:
        e164 = phone_e164(phone)
        if e164 is None:
            return TraceResult(phone, [], f"{phone!r} is not a valid Japanese phone number.")
        found = registry.find_by_phone(phone)
        matches = [TraceMatch(c, "phone" if c.phone_e164 == e164 else "phone2") for c in found]
        exports = {m.canary.export.code for m in matches}
        note = (
            f"A pool number is shared by {len(exports)} exports; a phone alone is a weak "
            "signal. Ask the caller which name they asked for, and trace that name."
            if len(exports) > 1
            else ""
        )
        return TraceResult(e164, matches, note)
    assert name
    found = registry.find_by_name(name)
    return TraceResult(
        name,
        [TraceMatch(c, "name" if name_key(c.name) == name_key(name) else "kana") for c in found],
    )
