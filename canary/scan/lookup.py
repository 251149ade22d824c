"""Lookups of 64-bit keys in numpy arrays sorted once per scan.

A chunk of a broker list meets 10^6 canaries several times over; a polars join would hash
the canary side again for every chunk. Sorted once, the canary side answers each chunk's
few candidate keys by binary search instead, in time that grows with the chunk only.
"""

from __future__ import annotations

import numpy as np


def _bitmap(sorted_keys: np.ndarray, bits: int) -> np.ndarray:
    """A bitmap of the top ``bits`` bits of sorted 64-bit keys, one byte per 8 slots."""
    slots = sorted_keys >> np.uint64(64 - bits)
    where = slots >> np.uint64(3)
    flags = np.left_shift(1, slots & np.uint64(7)).astype(np.uint8)
    out = np.zeros(1 << (bits - 3), dtype=np.uint8)
    if where.size:
        starts = np.flatnonzero(np.diff(where, prepend=where[0] + np.uint64(1)))
        out[where[starts]] = np.bitwise_or.reduceat(flags, starts)
    return out


class SortedKeys:
    """64-bit keys sorted once, with where each run of keys sharing their top bits starts:
    finding a key then reads a cache line or two, where a binary search over millions of
    keys reads twenty-odd (and each read misses the cache)."""

    def __init__(self, sorted_keys: np.ndarray, starts: np.ndarray | None = None) -> None:
        """``starts``: the run starts from an earlier build (the index cache keeps them)."""
        self.sorted = sorted_keys
        if starts is None:
            # About four keys per run: the runs are scanned side by side, widest first.
            bits = int(min(max(np.log2(max(sorted_keys.size, 1) / 4), 1), 22))
            counts = np.bincount(
                (sorted_keys >> np.uint64(64 - bits)).astype(np.intp), minlength=1 << bits
            )
            starts = np.zeros(counts.size + 1, dtype=np.intp)
            np.cumsum(counts, out=starts[1:])
        self.starts = starts
        self.shift = np.uint64(64 - int(np.log2(starts.size - 1)))
        self.widest = int(np.diff(starts).max())

    def equal_range(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first, count) of each wanted key: where its run of equal keys starts in
        ``sorted`` and how many there are (0 when it is absent)."""
        run = (wanted >> self.shift).astype(np.intp)
        lo, hi = self.starts[run], self.starts[run + 1]
        first = lo.copy()
        count = np.zeros(wanted.size, dtype=np.intp)
        last = self.sorted.size - 1
        for step in range(self.widest):
            at = lo + step
            inside = at < hi
            if not inside.any():
                break
            value = self.sorted[np.minimum(at, last)]
            first += inside & (value < wanted)
            count += inside & (value == wanted)
        return first, count


class KeySet:
    """Membership of 64-bit keys: a bitmap (2^28 bits, 32 MiB) answers most probes (with
    6x10^6 keys, 98 % of misses), the sorted keys the rest."""

    BITS = 28

    def __init__(
        self,
        sorted_keys: np.ndarray,
        starts: np.ndarray | None = None,
        bits: np.ndarray | None = None,
    ) -> None:
        self.keys = SortedKeys(sorted_keys, starts)
        self.bits = _bitmap(sorted_keys, self.BITS) if bits is None else bits

    def arrays(self) -> dict[str, np.ndarray]:
        """What rebuilds this set without sorting or counting again (see ``KeySet(**…)``)."""
        return {"sorted_keys": self.keys.sorted, "starts": self.keys.starts, "bits": self.bits}

    def _maybe(self, keys: np.ndarray) -> np.ndarray:
        slots = keys >> np.uint64(64 - self.BITS)
        # np.take, not bits[...]: the same gather, measured twice as fast (10M probes
        # into the 32 MiB bitmap a scan, one per name and one per reading).
        byte = np.take(self.bits, slots >> np.uint64(3))
        return np.flatnonzero((byte >> (slots & np.uint64(7)).astype(np.uint8)) & 1)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        mask = np.zeros(keys.size, dtype=bool)
        candidates = self._maybe(keys)
        _, count = self.keys.equal_range(keys[candidates])
        mask[candidates[count > 0]] = True
        return mask


class KeyRows:
    """Rows of a table by one 64-bit key column (several rows may share a key)."""

    def __init__(
        self, order: np.ndarray, sorted_keys: np.ndarray, starts: np.ndarray | None = None
    ) -> None:
        """``order``: the key column's argsort; ``sorted_keys``: the keys in that order;
        ``starts``: their runs, from an earlier build (the index cache keeps all three)."""
        self.order = order
        self.keys = SortedKeys(sorted_keys, starts)

    def arrays(self) -> dict[str, np.ndarray]:
        """What rebuilds these rows without sorting again (see ``KeyRows(**…)``)."""
        return {"order": self.order, "sorted_keys": self.keys.sorted, "starts": self.keys.starts}

    def find(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(i, row) for every pair where ``wanted[i]`` is the key of table row ``row``."""
        lo, counts = self.keys.equal_range(wanted)
        total = int(counts.sum())
        i = np.repeat(np.arange(wanted.size), counts)
        # Position of each pair in the sorted keys: its key's first position, plus its
        # rank among the pairs of that key.
        first = np.repeat(lo - np.cumsum(counts) + counts, counts)
        return i, self.order[first + np.arange(total)]
