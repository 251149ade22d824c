"""Group commit: the events of concurrent webhook requests are stored in one transaction.

Committing each event in its own transaction costs, per event, a connection checkout, a
BEGIN, the INSERT and a COMMIT that waits for the disk. Here a request hands its events to
the worker process's writer thread and waits; the writer stores everything that is waiting
in one transaction (``Registry.record_events``), then wakes the requests with their records.
While it commits, the next requests gather, so batches grow with the load and a lone event
waits for nothing but its own commit.

Nothing is answered before its commit has returned, so nothing acknowledged is lost. A
request's events are never split between transactions. If a batch fails, each request of it
is stored again on its own, so that one bad request fails alone.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from canary.events import EventDraft, EventRecord

log = logging.getLogger("canary.server.hooks")

MAX_BATCH = 200  # events per transaction; a single request may bring more (up to 1,000)

Store = Callable[[Sequence[EventDraft]], list[EventRecord]]


@dataclass
class _Job:
    """One request's events, waiting for their commit."""

    drafts: Sequence[EventDraft]
    done: threading.Event = field(default_factory=threading.Event)
    records: list[EventRecord] = field(default_factory=list)
    error: BaseException | None = None


class GroupCommit:
    """Stores events through ``store`` (one transaction per call) from one writer thread,
    started on first use in the process that uses it (never across a fork)."""

    def __init__(
        self,
        store: Store,
        max_batch: int = MAX_BATCH,
        committed: Callable[[Sequence[EventRecord]], None] | None = None,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._committed = committed  # told of every commit's records, by the writer
        self._lock = threading.Lock()
        self._waiting = threading.Condition(self._lock)
        self._queue: deque[_Job] = deque()
        self._writer: threading.Thread | None = None
        self._pid = 0

    def record(self, drafts: Sequence[EventDraft]) -> list[EventRecord]:
        """Store the events (classified, each once) and return their records once they are
        committed; raises what storing them raised."""
        job = _Job(drafts)
        with self._lock:
            self._queue.append(job)
            if self._writer is None or self._pid != os.getpid() or not self._writer.is_alive():
                self._pid = os.getpid()
                self._writer = threading.Thread(
                    target=self._run, name="canary-group-commit", daemon=True
                )
                self._writer.start()
            self._waiting.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.records

    def _next_batch(self) -> list[_Job]:
        with self._lock:
            while not self._queue:
                self._waiting.wait()
            jobs = [self._queue.popleft()]
            count = len(jobs[0].drafts)
            while self._queue and count + len(self._queue[0].drafts) <= self._max_batch:
                job = self._queue.popleft()
                jobs.append(job)
                count += len(job.drafts)
            return jobs

    def _run(self) -> None:
        while True:
            jobs = self._next_batch()
            try:
                self._commit(jobs)
            finally:
                for job in jobs:  # whatever happened, no request waits for ever
                    if not job.done.is_set():
                        job.error = job.error or RuntimeError("The event was not stored.")
                        job.done.set()

    def _commit(self, jobs: list[_Job]) -> None:
        try:
            records = self._store([d for job in jobs for d in job.drafts])
        except Exception as exc:
            if len(jobs) == 1:
                jobs[0].error = exc
                jobs[0].done.set()
                return
            log.warning(
                "a batch of %d requests failed (%s); storing them one by one", len(jobs), exc
            )
            for job in jobs:
                try:
                    job.records = self._store(job.drafts)
                except Exception as one:
                    job.error = one
                job.done.set()
                self._tell(job.records)
            return
        start = 0
        for job in jobs:
            job.records = records[start : start + len(job.drafts)]
            start += len(job.drafts)
            job.done.set()
        self._tell(records)

    def _tell(self, records: Sequence[EventRecord]) -> None:
        if self._committed is not None:
            try:
                self._committed(records)
            except Exception:  # the events are stored; the filer looks again on its own
                log.exception("after a commit of %d events", len(records))
