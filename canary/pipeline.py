"""Read, write, hash and count a stream of byte pieces, on worker threads.

Seeding is bound by copying the host's bytes, SHA-256 over the output and counting
records; all three release the GIL (file writes, OpenSSL, numpy), so running them beside
the main thread (which finds record boundaries) uses every core. Queues are bounded, so
memory stays flat in the file size.

A host list that is a regular file is mapped, not read (MappedSource), and its pieces are
copied to the output by the kernel (``copy_file_range``), not written from memory: a
read into fresh buffers and a write of them cost three times the system time of ``cp``
(10 M rows: 1.5 to 4.3 s against 0.5 s), and more than everything else the copy does.
The hash and the record count read the pieces from the map, whose pages are let go
behind them, so the seed's memory does not grow with the file.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import numpy as np

_DONE = object()
_MARK = object()


CHUNK_BYTES = 16 * 1024 * 1024


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


@dataclass(frozen=True)
class Window:
    """The bytes of a source from ``base`` on: ``n`` bytes of ``buf`` (find and rfind)
    from ``lo``, and ``view`` over ``buf``."""

    buf: Any
    view: memoryview
    lo: int
    n: int
    eof: bool
    got: int  # bytes new in this window (for progress)
    mapped: bool = False  # ``buf`` is the whole file: its offsets are the file's

    def offset(self, start: int) -> int | None:
        """The file offset of the piece at ``start``, for a mapped file."""
        return self.lo + start if self.mapped else None

    def find(self, sub: bytes, start: int, end: int) -> int:
        at = self.buf.find(sub, self.lo + start, self.lo + end)
        return at - self.lo if at >= 0 else -1

    def rfind(self, sub: bytes, start: int, end: int) -> int:
        at = self.buf.rfind(sub, self.lo + start, self.lo + end)
        return at - self.lo if at >= 0 else -1

    def piece(self, start: int, stop: int) -> memoryview:
        return self.view[self.lo + start : self.lo + stop]

    def byte(self, i: int) -> int:
        return int(self.buf[self.lo + i])


class ReadSource:
    """Windows read from a stream into fresh buffers (the worker threads may still hold
    views of the last one); what a window did not use starts the next."""

    fd: int | None = None

    def __init__(self, src: Readable, start: int) -> None:
        self.src, self.base, self._carry = src, start, b""

    def header(self) -> tuple[bytes, int | None]:
        return self.src.read(self.base), None

    def window(self) -> Window:
        carry = self._carry
        block = bytearray(len(carry) + CHUNK_BYTES)
        block[: len(carry)] = carry
        got = self.src.readinto(memoryview(block)[len(carry) :]) or 0
        n = len(carry) + got
        return Window(block, memoryview(block)[:n].toreadonly(), 0, n, not got, got)

    def advance(self, w: Window, used: int) -> None:
        """The next window starts ``used`` bytes into ``w``."""
        self._carry = w.view[used : w.n].tobytes()
        self.base += used

    def release(self, upto: int) -> None:
        """Bytes before file offset ``upto`` are hashed and counted (nothing to let go)."""

    def close(self) -> None:
        """Nothing to unmap."""


class MappedSource:
    """Windows of a mapped file: nothing is copied into memory, and pieces carry their
    offset in the file for ``copy_file_range``."""

    def __init__(self, fd: int, start: int) -> None:
        self.fd, self.base = fd, start
        self.map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        self.size = len(self.map)
        if hasattr(mmap, "MADV_SEQUENTIAL"):
            self.map.madvise(mmap.MADV_SEQUENTIAL)
        self._view = memoryview(self.map)
        self._want, self._seen, self._released = CHUNK_BYTES, start, 0

    def header(self) -> tuple[memoryview, int | None]:
        return self._view[: self.base], 0

    def window(self) -> Window:
        hi = min(self.size, self.base + self._want)
        got, self._seen = max(0, hi - self._seen), max(self._seen, hi)
        n = hi - self.base
        return Window(self.map, self._view, self.base, n, hi == self.size, got, mapped=True)

    def advance(self, w: Window, used: int) -> None:
        self.base += used
        self._want = w.n - used + CHUNK_BYTES  # a window holding no record end grows

    def release(self, upto: int) -> None:
        """Unmap the pages before ``upto`` (they stay in the page cache): the process's
        memory stays that of the pieces in flight."""
        upto -= upto % mmap.PAGESIZE
        if upto > self._released and hasattr(mmap, "MADV_DONTNEED"):
            self.map.madvise(mmap.MADV_DONTNEED, self._released, upto - self._released)
            self._released = upto

    def close(self) -> None:
        """Unmap the file, unless a piece is still held (after a failure, by the frames of
        its traceback): then when the last is let go."""
        with contextlib.suppress(BufferError):
            self._view.release()
            self.map.close()


def open_source(src: Readable, start: int) -> ReadSource | MappedSource:
    """A mapped source for a regular file that can be mapped, else a read one; ``src`` is
    at its start (ReadSource.header reads up to ``start``)."""
    try:
        fd = src.fileno()  # type: ignore[attr-defined]
        if os.fstat(fd).st_size > 0:
            return MappedSource(fd, start)
    except (AttributeError, OSError, ValueError):
        pass  # a stream, an empty file, or a file system that cannot map: read it
    return ReadSource(src, start)


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
    thread, and to the hashes and the record counter on another. With a ``source`` whose
    pieces carry their file offset, those are copied file to file by the kernel."""

    def __init__(
        self,
        dst: BinaryIO,
        hashes: list[Any],
        counter: RecordCounter | None = None,
        depth: int = 4,
        source: ReadSource | MappedSource | None = None,
    ) -> None:
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self.written = 0
        self._depth = depth
        self._hashes = hashes
        self._counter = counter
        self._source = source
        self._copying = (
            source is not None and source.fd is not None and hasattr(os, "copy_file_range")
        )
        if self._copying:
            dst.flush()  # from here on the file is written through its descriptor
            self._fd = dst.fileno()
            self._write = self._worker(self._write_item)
        else:
            self._write = self._worker(lambda item: dst.write(item[0]))
        self._digest = self._worker(self._digest_item)
        if counter is not None:
            counter.attach(self)

    def _write_item(self, item: tuple[bytes | memoryview, int | None]) -> None:
        data, at = item
        done = 0
        if at is not None and self._copying:
            assert self._source is not None and self._source.fd is not None
            try:
                while done < len(data):
                    n = os.copy_file_range(self._source.fd, self._fd, len(data) - done, at + done)
                    if n <= 0:
                        raise OSError("copy_file_range copied nothing")
                    done += n
            except OSError:
                self._copying = False  # not here (another file system, an old kernel)
        view = memoryview(data)[done:]
        while len(view):
            view = view[os.write(self._fd, view) :]

    def _digest_item(self, item: object) -> None:
        if isinstance(item, tuple):
            piece, count, at = item
            for h in self._hashes:
                h.update(piece)
            if count and self._counter is not None:
                self._counter.consume(piece)
            if at is not None and self._source is not None:
                self._source.release(at + len(piece))
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

    def put(self, data: bytes | memoryview, count: bool = False, at: int | None = None) -> None:
        """Send ``data`` on; ``at``: its offset in the source file, if it is the file's."""
        if not data:
            return
        if self._errors:
            raise self._errors[0]
        self.written += len(data)
        self._write.put((data, at))
        self._digest.put((data, count, at))

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
