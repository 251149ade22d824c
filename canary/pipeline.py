"""Write, hash and count a stream of byte pieces on worker threads.

Seeding is bound by copying the host's bytes, SHA-256 over the output and counting
records; all three release the GIL (file writes, OpenSSL, numpy), so running them beside
the main thread (which finds record boundaries) uses every core. Queues are bounded, so
memory stays flat in the file size.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, BinaryIO

import numpy as np

_DONE = object()
_MARK = object()


class RecordCounter:
    """Counts record terminators in plain pieces, in order, and where canaries went."""

    def __init__(self, terminator: int) -> None:
        self.terminator = terminator
        self.total = 0
        self._marks: list[int] = []

    def consume(self, item: object) -> None:
        if item is _MARK:
            self._marks.append(self.total)
        elif isinstance(item, int):
            self.total += item
        else:
            arr = np.frombuffer(item, dtype=np.uint8)  # type: ignore[call-overload]
            self.total += int(np.count_nonzero(arr == self.terminator))

    # The producer calls these; they are queued so they stay in order with the pieces.
    def mark(self) -> None:
        self._sink.put_count(_MARK)

    def add(self, n: int) -> None:
        self._sink.put_count(n)

    def attach(self, sink: Sink) -> None:
        self._sink = sink

    def positions(self) -> list[int]:
        """Data-row index in the output of each canary, in insertion order."""
        return [rows + i for i, rows in enumerate(self._marks)]


class Sink:
    """Send pieces (bytes, or memoryviews of buffers never changed again) to a file on one
    thread, and to the hashes and the record counter on another."""

    def __init__(
        self,
        dst: BinaryIO,
        hashes: list[Any],
        counter: RecordCounter | None = None,
        depth: int = 4,
    ) -> None:
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self.written = 0
        self._depth = depth
        self._hashes = hashes
        self._counter = counter
        self._write = self._worker(dst.write)
        self._digest = self._worker(self._digest_item)
        if counter is not None:
            counter.attach(self)

    def _digest_item(self, item: object) -> None:
        if isinstance(item, tuple):
            piece, count = item
            for h in self._hashes:
                h.update(piece)
            if count and self._counter is not None:
                self._counter.consume(piece)
        elif self._counter is not None:
            self._counter.consume(item)  # a mark or a number of records

    def _worker(self, consume: Any) -> queue.Queue[object]:
        q: queue.Queue[object] = queue.Queue(maxsize=self._depth)

        def run() -> None:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if self._errors:
                    continue  # drain after a failure so the producer never blocks
                try:
                    consume(item)
                except BaseException as exc:  # re-raised in close()
                    self._errors.append(exc)

        thread = threading.Thread(target=run, daemon=True, name="canary-sink")
        thread.start()
        self._threads.append(thread)
        return q

    def put(self, data: bytes | memoryview, count: bool = False) -> None:
        if not data:
            return
        if self._errors:
            raise self._errors[0]
        self.written += len(data)
        self._write.put(data)
        self._digest.put((data, count))

    def put_count(self, item: object) -> None:
        self._digest.put(item)

    def close(self) -> None:
        """Wait for every piece to be written, hashed and counted; raise the first failure."""
        for q in (self._write, self._digest):
            q.put(_DONE)
        for t in self._threads:
            t.join()
        if self._errors:
            raise self._errors[0]
