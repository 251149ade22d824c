"""Guilt of an export (or an account) from the suspicious events that point at it.

The model is the one of DESIGN.md (Papadimitriou and Garcia-Molina, IEEE TKDE 2011):

    Pr{export i leaked | S} = 1 − ∏_{t ∈ S ∩ R_i} (1 − (1 − p_t) / |V_t|)

Here a token t is one contacted canary token (an address, a number, a name asked for),
counted once however often it is contacted; V_t the exports holding it; p_t the chance that
the contact had nothing to do with a leak:

- mail to an assigned address: 0.01 (the address was never published; guessed local
  parts are rare);
- a canary's name asked for (SMS, voicemail, letter, manual note): 0.001 (the name exists
  only in exports);
- an SMTP probe of an assigned address: 0.2 (list cleaners probe, but so do dictionary
  attacks);
- a postal letter to a canary's name and address: 0.05; to the name alone (a real person
  may share it): 0.5;
- a call or SMS to a pool number: (s + 1) / (s + 3), s being the stray contacts the number
  has had (in quarantine, or from known noise sources): 1/3 for a clean number, tending to
  1 for a noisy one;
- a DNS lookup of a token hostname: 0.5 (resolvers prefetch, scanners walk zones).

Several pool numbers called by one source within ``NARROW_WINDOW`` narrow the candidates:
the exports holding *all* of them (the pool gives each export a distinct set of numbers),
so |V_t| for those calls is the size of that intersection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

NARROW_WINDOW = timedelta(days=7)
P_CHANNEL = {
    "email": 0.01,
    "named": 0.001,
    "smtp_probe": 0.2,
    "postal": 0.05,
    "name_only": 0.5,
    "dns": 0.5,
}


def phone_chance(stray_contacts: int) -> float:
    """p_t of a call or SMS to a pool number with this many stray contacts on record."""
    return (stray_contacts + 1) / (stray_contacts + 3)


@dataclass(frozen=True)
class Sign:
    """One suspicious event as the guilt model sees it."""

    token: str  # the contacted token (or the canary named), counted once
    channel: str
    source: str | None
    occurred_at: datetime
    exports: frozenset[int]  # V_t: the exports holding the token
    chance: float  # p_t
    phone_only: bool  # a weak phone sign that other calls from its source may narrow


def narrowed(signs: Sequence[Sign]) -> list[Sign]:
    """Replace V_t of phone-only signs by the exports holding every number their source
    called within the window, where that set is not empty."""
    by_source: dict[str, list[Sign]] = {}
    for sign in signs:
        if sign.phone_only and sign.source:
            by_source.setdefault(sign.source, []).append(sign)
    out: list[Sign] = []
    for sign in signs:
        if not sign.phone_only or not sign.source:
            out.append(sign)
            continue
        common = set(sign.exports)
        for other in by_source[sign.source]:
            if (
                other.phone_only
                and other.source == sign.source
                and other.token != sign.token
                and abs(other.occurred_at - sign.occurred_at) <= NARROW_WINDOW
                and common & other.exports
            ):
                common &= other.exports
        out.append(
            Sign(
                sign.token,
                sign.channel,
                sign.source,
                sign.occurred_at,
                frozenset(common),
                sign.chance,
                True,
            )
        )
    return out


def _per_token(signs: Sequence[Sign]) -> list[Sign]:
    """Each token once, with its strongest sign (smallest p_t, then fewest holders)."""
    best: dict[str, Sign] = {}
    for s in signs:
        held = best.get(s.token)
        if held is None or (s.chance, len(s.exports)) < (held.chance, len(held.exports)):
            best[s.token] = s
    return list(best.values())


def export_guilt(export_id: int, signs: Sequence[Sign]) -> float:
    """Pr{export leaked | the signs}."""
    miss = 1.0
    for s in _per_token(narrowed(signs)):
        if export_id in s.exports:
            miss *= 1 - (1 - s.chance) / len(s.exports)
    return 1 - miss


def account_guilt(account_exports: frozenset[int], signs: Sequence[Sign]) -> float:
    """Pr{one of the account's exports leaked | the signs}: a token held only by the
    account's exports names the account even when it cannot name one export."""
    miss = 1.0
    for s in _per_token(narrowed(signs)):
        share = len(s.exports & account_exports) / max(1, len(s.exports))
        if share:
            miss *= 1 - (1 - s.chance) * share
    return 1 - miss
