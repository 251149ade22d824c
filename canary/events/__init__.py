"""Events: every observed contact with a token, from any channel, as one value type.

An input channel (telephony webhook, call-detail file, SMTP listener, IMAP poll, DNS
listener, a steward's manual entry) turns what it saw into an ``EventDraft``;
``Registry.record_event`` classifies it, stores it exactly once and feeds its incident.
The raw payload is hashed, never stored: it may hold a caller's or sender's data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from canary.errors import InvalidEventError
from canary.normalize import email_key, name_key, phone_e164

PHONE_CHANNELS = ("call", "sms")
MAIL_CHANNELS = ("email", "smtp_probe")
NAME_CHANNELS = ("postal", "manual")
CHANNELS = (*PHONE_CHANNELS, *MAIL_CHANNELS, "dns", *NAME_CHANNELS)
CLASSIFICATIONS = ("expected", "suspicious", "noise")
TEXT_LIMIT = 2000  # characters of an SMS body, voicemail note or letter kept as evidence


@dataclass(frozen=True)
class EventDraft:
    """One contact as a channel saw it, before classification."""

    channel: str  # one of CHANNELS
    target: str  # the token contacted: a phone number, an address, a hostname, a name
    occurred_at: datetime
    provider: str  # twilio, generic, cdr, smtp, imap, dns, manual, ...
    payload: bytes  # the raw request or record; only its SHA-256 is kept
    source: str | None = None  # caller ID, envelope sender, resolver address
    provider_id: str | None = None  # the provider's own id of the event, if it has one
    text: str | None = None  # what the contact said (SMS text, voicemail note, letter)
    details: Mapping[str, object] = field(default_factory=dict)

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    @property
    def dedupe_key(self) -> str:
        """Idempotency key: the provider's id where there is one, else the payload's hash."""
        if self.provider_id:
            return f"{self.provider}:{self.provider_id}"[:300]
        return f"sha256:{self.payload_sha256}"


@dataclass(frozen=True)
class Classification:
    """What an event means: its class, why, how strong, and which exports it points at."""

    classification: str  # expected | suspicious | noise
    reason: str
    strength: str  # strong | medium | weak | none
    exports: tuple[int, ...] = ()
    canaries: tuple[int, ...] = ()


@dataclass(frozen=True)
class EventRecord:
    id: int
    channel: str
    provider: str
    provider_id: str | None
    occurred_at: datetime
    received_at: datetime
    source: str | None
    target: str
    payload_sha256: str
    classification: str
    reason: str
    strength: str
    exports: list[str]  # export codes
    details: dict[str, object]
    duplicate: bool = False  # True when this delivery was already stored

    def as_json(self) -> dict[str, object]:
        return {
            "event_id": self.id,
            "channel": self.channel,
            "provider": self.provider,
            "provider_id": self.provider_id,
            "occurred_at": self.occurred_at.isoformat(),
            "received_at": self.received_at.isoformat(),
            "source": self.source,
            "target": self.target,
            "payload_sha256": self.payload_sha256,
            "classification": self.classification,
            "reason": self.reason,
            "strength": self.strength,
            "exports": self.exports,
            "details": self.details,
            "duplicate": self.duplicate,
        }


@lru_cache(maxsize=4096)  # a hook checks the token, then the store normalises it again
def normalise_target(channel: str, target: str) -> str:
    """The token in the form the registry stores it; InvalidEventError if it is not one."""
    value = (target or "").strip()
    if channel not in CHANNELS:
        raise InvalidEventError(
            f"Unknown event channel {channel!r}; use one of {', '.join(CHANNELS)}."
        )
    if not value:
        raise InvalidEventError(f"A {channel} event needs the token that was contacted.")
    if channel in PHONE_CHANNELS:
        e164 = phone_e164(value)
        if e164 is None:
            raise InvalidEventError(f"{value!r} is not a phone number; give the number called.")
        return e164
    if channel in MAIL_CHANNELS:
        key = email_key(value.strip("<>"))
        local, at, domain = key.rpartition("@")
        if not at or not local or "." not in domain:
            raise InvalidEventError(f"{value!r} is not an email address.")
        return key
    if channel == "dns":
        return value.rstrip(".").lower()
    if not name_key(value):
        raise InvalidEventError(f"{value!r} holds no name; give the name the contact used.")
    return value


def aware(moment: datetime) -> datetime:
    """A timezone-aware time; naive times are taken as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
