"""What the registry said about contacted tokens, kept in memory between batches of events.

Classifying a call or a mail needs the canaries carrying its number or address, the exports
given the pool number, and those exports' campaigns and expected callers. The server's
writer read them for every batch, about 40 % of its work on a suspicious batch, although
they change only when an export is sealed, voided or given a campaign. A copy is good for
as long as the registry's generation (registry 0008: a counter that triggers move in every
transaction that changes canaries, exports, export_phones or stable_carriers) is the one
it was read at. The writer learns the current generation in the statement that inserts its
events and classifies the batch again from fresh reads if it moved (``record_events``), so
an event is never classified from a copy older than the insert that stores it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from canary.events.classify import CanaryFacts, Holder

MAX_TOKENS = 100_000  # beyond this the copy starts again (spam to random addresses)


@dataclass
class Known:
    """What one lookup found: the canaries of each token asked (an empty list for a token
    no canary carries), the live exports given each pool number, and the exports named."""

    canaries: dict[str, list[CanaryFacts]] = field(default_factory=dict)
    held: dict[str, set[int]] = field(default_factory=dict)
    holders: dict[int, Holder] = field(default_factory=dict)


class TokenCache:
    """Facts about tokens as of one registry generation, shared by a Registry's threads."""

    def __init__(self, max_tokens: int = MAX_TOKENS) -> None:
        self._lock = threading.Lock()
        self._max = max_tokens
        self.generation: int | None = None
        self._known = Known()

    def lookup(
        self, phones: Sequence[str], mails: Sequence[str]
    ) -> tuple[int | None, Known, list[str], list[str]]:
        """(the generation of the copy, what it knows of these tokens, the phone numbers
        and the addresses it does not know)."""
        with self._lock:
            known = self._known
            found = Known()
            missing: tuple[list[str], list[str]] = ([], [])
            for tokens, miss, pool in ((phones, missing[0], True), (mails, missing[1], False)):
                for token in tokens:
                    canaries = known.canaries.get(token)
                    if canaries is None or (pool and token not in known.held):
                        miss.append(token)
                        continue
                    found.canaries[token] = canaries
                    if pool:
                        found.held[token] = known.held[token]
            for token in found.canaries:
                for export_id in _named(found, token):
                    if (holder := known.holders.get(export_id)) is not None:  # else void
                        found.holders[export_id] = holder
            return self.generation, found, missing[0], missing[1]

    def store(self, generation: int, known: Known) -> None:
        """Keep what was read at ``generation``; a copy of another generation is dropped
        first (a newer one is kept and this is ignored: it is already out of date)."""
        with self._lock:
            if self.generation is not None and generation < self.generation:
                return
            if generation != self.generation or len(self._known.canaries) >= self._max:
                self.generation, self._known = generation, Known()
            mine = self._known
            mine.holders.update(known.holders)
            # ``known`` holds every live export its tokens name (an export it lacks is void).
            for token, canaries in known.canaries.items():
                mine.canaries[token] = canaries
                if token in known.held:
                    mine.held[token] = set(known.held[token])

    def forget(self) -> None:
        with self._lock:
            self.generation, self._known = None, Known()


def _named(known: Known, token: str) -> Iterable[int]:
    """The exports a token's facts refer to: the exports given the pool number, and the
    exports of mail canaries (their own and, for stable canaries, every carrier)."""
    if token in known.held:
        return known.held[token]
    return {e for c in known.canaries[token] for e in c.export_ids}


def merge(into: Known, more: Known) -> None:
    into.canaries.update(more.canaries)
    for token, exports in more.held.items():
        into.held.setdefault(token, set()).update(exports)
    into.holders.update(more.holders)


def holders_missing(known: Known, holders: Mapping[int, Holder]) -> list[int]:
    """The exports the mail canaries of ``known`` name that ``holders`` lacks."""
    return sorted(
        {
            e
            for token, canaries in known.canaries.items()
            if token not in known.held
            for c in canaries
            for e in c.export_ids
        }
        - holders.keys()
    )
