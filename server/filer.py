"""The filer: files the server's queued suspicious events into their incidents, from a
thread (``canary.registry.filing`` says why they are queued).

``canary serve`` runs one filer, in its own process beside gunicorn, for all the workers:
it looks at the queue every ``GATHER`` seconds and files everything queued, one
transaction per batch, until the queue is empty. Under load a round files many commits'
events of every worker at once (filing costs per statement far more than per event), and
the workers' request and writer threads do not wait for their GIL behind it. An
application made by ``create_app`` alone (another WSGI server) has a filer in each worker
process instead, poked by its writer after each commit that queued an event, with rounds
at least ``GATHER`` apart, and a look every few seconds without a poke. A failure is
logged and tried again at the next round: the events stay queued.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

from canary.events import EventRecord

log = logging.getLogger("canary.server.filer")

LOOK_EVERY = 5.0  # seconds between two looks at the queue without a poke
# Seconds at least between two rounds, in which the queue gathers events. Filing costs per
# round more than per event (benchmarks/eventstore.py's mix, in process, client + PostgreSQL
# CPU per event filed: 0.43 ms in rounds of 12, 0.21 in rounds of 50, 0.18 in rounds of
# 100); at 250 suspicious events/s, rounds hold 12 events 50 ms apart, 50 events 200 ms
# apart. An alert waits that much longer; a reader never does (it files first).
GATHER = 0.2


class Filer:
    """Calls ``file_all`` (everything queued that no other filer holds; returns how many it
    filed) from one thread, started on first use in the process that uses it (never across
    a fork)."""

    def __init__(
        self, file_all: Callable[[], int], every: float = LOOK_EVERY, gather: float = GATHER
    ) -> None:
        self._file_all = file_all
        self._every = every
        self._gather = gather
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopping = False

    def committed(self, records: Sequence[EventRecord]) -> None:
        """After a commit: poke the filer if the commit queued an event."""
        if any(r.classification == "suspicious" and not r.duplicate for r in records):
            self.poke()

    def poke(self) -> None:
        with self._lock:
            if self._stopping:
                return
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="canary-filer", daemon=True)
                self._thread.start()
        self._wake.set()

    def file_now(self) -> int:
        """File what is queued, in the caller's thread; how many were filed."""
        return self._file_all()

    def stop(self) -> None:
        """End the thread after its round, if it runs; what is queued stays queued."""
        with self._lock:
            self._stopping = True
            thread = self._thread if self._pid == os.getpid() else None
        self._wake.set()
        if thread is not None and thread.is_alive():
            thread.join()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._every)
            self._wake.clear()
            if self._stopping:
                return
            try:
                self.file_now()
            except Exception:  # the events stay queued; the next round tries them again
                log.exception("filing queued events failed; trying again at the next round")
            # A round right after a lone event files it at once; under load, the rounds
            # are spaced so that each files the events of many commits.
            if not self._stopping:
                time.sleep(self._gather)
