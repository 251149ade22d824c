"""The append-only, hash-chained audit log: how a link is hashed and how a chain is checked.

Each entry's hash covers its sequence number, time, actor, action, subject, canonical JSON
payload and the previous entry's hash, so changing, removing or reordering any entry breaks
every hash after it. The database also refuses UPDATE and DELETE on the table (migration 0001).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64


def canonical_json(payload: object) -> str:
    """JSON with sorted keys and no insignificant whitespace, as hashed."""
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def entry_hash(
    seq: int, at: str, actor: str, action: str, subject: str, payload: str, prev_hash: str
) -> str:
    """SHA-256 of one link, over its fields joined unambiguously."""
    material = canonical_json([seq, at, actor, action, subject, payload, prev_hash])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Link:
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    payload: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking a chain: ``ok`` and, if broken, where and why."""

    ok: bool
    entries: int
    head: str
    broken_at: int | None = None
    reason: str | None = None


def verify_chain(links: Iterable[Link]) -> VerifyResult:
    """Check sequence continuity, back-links and every hash; stop at the first break."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    for link in links:
        if link.seq != expected_seq:
            return VerifyResult(
                False,
                count,
                prev,
                link.seq,
                f"entry {expected_seq} is missing (found {link.seq} next)",
            )
        if link.prev_hash != prev:
            return VerifyResult(
                False,
                count,
                prev,
                link.seq,
                f"entry {link.seq} does not point at the entry before it",
            )
        recomputed = entry_hash(
            link.seq, link.at, link.actor, link.action, link.subject, link.payload, link.prev_hash
        )
        if recomputed != link.hash:
            return VerifyResult(
                False, count, prev, link.seq, f"entry {link.seq} was altered after it was written"
            )
        prev = link.hash
        expected_seq += 1
        count += 1
    return VerifyResult(True, count, prev)
