"""Classification of one event: expected, suspicious or noise, and how strong a sign it is.

- *expected*: the export itself explains it: a caller ID or sender domain of the
  recipient's campaign, inside its window plus a grace period (``canary exports expect``).
- *suspicious*: a contact with an assigned token that nothing explains.
- *noise*: an unassigned address on a pool domain, a number in quarantine, retired or burnt,
  a known spam source.

Strength follows DESIGN.md: an assigned email address or a canary's name asked for by the
caller is strong; a phone number alone is weak (pool numbers are shared and get stray calls);
a DNS lookup is weak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from canary.events import MAIL_CHANNELS, PHONE_CHANNELS, Classification, EventDraft, aware
from canary.normalize import kana_key, name_key, phone_e164


@dataclass(frozen=True)
class Holder:
    """An export holding the contacted token, with what its campaign makes expected."""

    export_id: int
    account_id: int
    campaign_from: datetime | None
    campaign_until: datetime | None
    expected_callers: Sequence[str]
    expected_senders: Sequence[str]
    code: str = ""  # the export id a person reads (EX-…)


@dataclass(frozen=True)
class CanaryFacts:
    canary_id: int
    export_ids: tuple[int, ...]  # its own export, or every carrier of a stable canary
    name: str
    kana: str


@dataclass(frozen=True)
class Facts:
    """What the registry knows about the contacted token, gathered in one read."""

    pool_state: str | None = None  # of a phone number: active | quarantine | burnt | retired
    pool_domain: bool = False  # the address's domain is one of ours
    holders: Sequence[Holder] = ()
    canaries: Sequence[CanaryFacts] = ()
    noise_source: bool = False
    text_canaries: Sequence[CanaryFacts] = field(default_factory=tuple)  # named in the text


def _sender_domain(source: str | None) -> str:
    return (source or "").strip("<> ").rpartition("@")[2].lower()


@lru_cache(maxsize=16384)  # phonenumbers takes 40-150 µs a number; callers call again
def _caller(source: str) -> str:
    """A caller ID as campaigns list it: its E.164 form, or as given if it is none."""
    return phone_e164(source) or source.strip()


def _source(draft: EventDraft) -> str:
    """The contact's source as campaigns list it: a caller's E.164, a sender's domain."""
    if draft.channel in PHONE_CHANNELS:
        return _caller(draft.source or "")
    if draft.channel in MAIL_CHANNELS:
        return _sender_domain(draft.source)
    return ""


def _explains(holder: Holder, draft: EventDraft, source: str, grace: timedelta) -> bool:
    """Whether the holder's campaign explains this contact (``source``: see _source)."""
    moment = aware(draft.occurred_at)
    if holder.campaign_from is not None and moment < aware(holder.campaign_from):
        return False
    if holder.campaign_until is not None and moment > aware(holder.campaign_until) + grace:
        return False
    if not source:
        return False
    if draft.channel in PHONE_CHANNELS:
        return source in holder.expected_callers
    if draft.channel in MAIL_CHANNELS:
        return any(source == d or source.endswith("." + d) for d in holder.expected_senders)
    return False


def names_in(text: str | None, canaries: Sequence[CanaryFacts]) -> list[CanaryFacts]:
    """The canaries whose name or reading the text holds (spaces and widths ignored)."""
    if not text:
        return []
    flat_name, flat_kana = name_key(text), kana_key(text)
    return [
        c
        for c in canaries
        if (name_key(c.name) and name_key(c.name) in flat_name)
        or (kana_key(c.kana) and kana_key(c.kana) in flat_kana)
    ]


def classify(draft: EventDraft, target: str, facts: Facts, grace: timedelta) -> Classification:
    """Classify one event whose normalised token is ``target``."""
    exports = tuple(sorted({h.export_id for h in facts.holders}))
    canaries = tuple(sorted(c.canary_id for c in facts.canaries))
    if draft.channel in PHONE_CHANNELS:
        if facts.pool_state is None:
            return Classification("noise", f"{target} is not a pool number.", "none")
        if facts.pool_state != "active":
            return Classification(
                "noise", f"{target} is {facts.pool_state}; no export holds it now.", "none"
            )
    if draft.channel in MAIL_CHANNELS and not facts.canaries:
        why = (
            "an address on a pool domain that no canary holds"
            if facts.pool_domain
            else "an address outside the pool domains"
        )
        return Classification(
            "noise", f"{target} is {why}.", "weak" if facts.pool_domain else "none"
        )
    if not facts.holders:
        return Classification("noise", f"No export holds {target}.", "none")
    source = _source(draft) if facts.holders else ""
    explained = [h for h in facts.holders if _explains(h, draft, source, grace)]
    if explained:
        codes = ", ".join(h.code or str(h.export_id) for h in explained)
        return Classification(
            "expected",
            f"The campaign of export {codes} explains this contact from {draft.source}.",
            "none",
            exports,
            canaries,
        )
    if facts.noise_source:
        return Classification(
            "noise", f"{draft.source} is a known source of stray contacts.", "none", exports
        )
    named = facts.text_canaries
    if named:
        named_exports = tuple(sorted({e for c in named for e in c.export_ids}))
        return Classification(
            "suspicious",
            "The contact asked for a canary by name: " + ", ".join(c.name for c in named) + ".",
            "strong",
            named_exports,
            tuple(sorted(c.canary_id for c in named)),
        )
    if draft.channel in MAIL_CHANNELS:
        kind = "mail to" if draft.channel == "email" else "an SMTP probe of"
        return Classification(
            "suspicious",
            f"{kind.capitalize()} the assigned canary address {target}.",
            "strong" if draft.channel == "email" else "medium",
            exports,
            canaries,
        )
    if draft.channel in PHONE_CHANNELS:
        return Classification(
            "suspicious",
            f"A {draft.channel} to pool number {target}, held by {len(exports)} export(s); "
            "a number alone is a weak sign.",
            "weak",
            exports,
            canaries,
        )
    if draft.channel == "dns":
        return Classification("suspicious", f"A DNS lookup of {target}.", "weak", exports)
    return Classification(
        "suspicious",
        f"A {draft.channel} contact addressed to the canary {target}.",
        "medium",
        exports,
        canaries,
    )
