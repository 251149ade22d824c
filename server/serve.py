"""``canary serve``: gunicorn runs the Flask application in worker processes; beside it,
once and not once per worker, run the SMTP and DNS listeners, the filer of the events the
workers queued (``server.filer``) and the sealer of events.

Process layout: the ``canary serve`` process forks gunicorn's master (which forks the
workers) *before* it starts any thread, then runs the listeners, the filer and the sealer in
threads of its own. Forking a process that runs threads (an asyncio loop, a pool of database
connections) can deadlock the child on a lock held at the fork, and gunicorn forks again
whenever a worker is replaced; this way no process that forks ever holds a thread or a
database connection. SIGTERM or SIGINT is passed to gunicorn, which stops gracefully
(workers finish their requests); then the listeners stop and the sealer seals what is left.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from gunicorn.app.base import BaseApplication

from canary.errors import CanaryError
from canary.registry import Registry
from canary.settings import Settings
from server.filer import GATHER, Filer

log = logging.getLogger("canary.server.serve")
SEAL_EVERY = 5.0  # seconds between two seals of the events recorded meanwhile


class Listener(Protocol):
    port: int

    def start(self) -> object: ...

    def stop(self) -> None: ...


ListenerFactory = Callable[[Registry, Settings], Listener]
# name, module, class, the setting that names its address
LISTENERS = [
    ("SMTP", "server.smtp", "SmtpListener", "CANARY_SMTP_LISTEN", "smtp"),
    ("DNS", "server.dns", "DnsListener", "CANARY_DNS_LISTEN", "dns"),
]


@dataclass(frozen=True)
class ServeOptions:
    bind: str
    workers: int = 4
    threads: int = 4  # gthread: a webhook waiting on the database does not hold a worker
    smtp: bool | None = None  # None: run it if it is installed
    dns: bool | None = None
    seal_every: float = SEAL_EVERY


def listener_factories(
    options: ServeOptions, say: Callable[[str], None]
) -> list[tuple[str, str, ListenerFactory]]:
    """(name, flag, class) of each listener to run; a listener asked for by its flag that
    cannot be imported is an error, one merely on by default is skipped with a note."""
    wanted = {"smtp": options.smtp, "dns": options.dns}
    out: list[tuple[str, str, ListenerFactory]] = []
    for name, module, cls, _env, flag in LISTENERS:
        if wanted[flag] is False:
            continue
        try:
            factory = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as exc:
            if wanted[flag]:
                raise CanaryError(
                    f"The {name} listener is not available in this installation ({exc}); "
                    f"install it or run without --{flag}."
                ) from None
            say(f"The {name} listener is not available ({exc}); serving without it.")
            continue
        out.append((name, flag, factory))
    return out


class Sealer:
    """Seals recorded events into the audit chain every few seconds, in a thread."""

    def __init__(self, registry: Registry, every: float) -> None:
        self.registry = registry
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="canary-sealer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        """Stop the thread and seal what is left; returns how many that was."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.registry.seal_events()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                sealed = self.registry.seal_events()
                if sealed:
                    log.info("sealed %d event(s) into the audit chain", sealed)
            except Exception:  # a lost connection must not end sealing for good
                log.exception("sealing events failed; trying again in %.0f s", self.every)


class Master:
    """What runs beside gunicorn, in the ``canary serve`` process: listeners, the filer and
    the sealer."""

    def __init__(
        self,
        settings: Settings,
        options: ServeOptions,
        factories: list[tuple[str, str, ListenerFactory]],
        say: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.say = say
        self.registry = Registry(
            settings.db, actor="server", event_threshold=settings.event_threshold
        )
        self.factories = factories
        self.listeners: list[tuple[str, Listener]] = []
        self.sealer = Sealer(self.registry, options.seal_every)
        # One filer for every worker: its rounds file what all of them queued, and the
        # workers' threads do not wait behind it for their GIL. It looks every GATHER
        # seconds, so a worker that died leaves nothing queued for long.
        self.filer = Filer(
            partial(self.registry.file_all_queued, settings.event_threshold, wait=False),
            every=GATHER,
            gather=0.0,
        )

    def start(self) -> None:
        envs = {flag: env for _n, _m, _c, env, flag in LISTENERS}
        for name, flag, factory in self.factories:
            try:
                listener = factory(self.registry, self.settings)
                listener.start()
            except (OSError, RuntimeError) as exc:
                self.stop()
                raise CanaryError(
                    f"Cannot start the {name} listener ({exc}); free its port, set "
                    f"{envs[flag]} to another address, or run with --no-{flag}."
                ) from exc
            except CanaryError as exc:
                self.stop()
                raise CanaryError(f"{str(exc).rstrip('.')}, or run with --no-{flag}.") from exc
            self.listeners.append((name, listener))
        self.sealer.start()
        self.filer.poke()  # starts its thread
        parts = [f"{name} listener on port {listener.port}" for name, listener in self.listeners]
        parts.append(f"filing queued events every {GATHER:g} s")
        parts.append(f"sealing events every {self.sealer.every:g} s")
        line = "; ".join(parts)
        self.say(line[0].upper() + line[1:] + ".")

    def stop(self) -> None:
        for name, listener in reversed(self.listeners):
            try:
                listener.stop()
            except Exception:
                log.exception("stopping the %s listener failed", name)
        self.listeners = []
        self.filer.stop()
        try:
            filed = self.registry.file_all_queued(self.registry.event_threshold)
            if filed:
                self.say(f"Filed the last {filed} queued event(s) into their incidents.")
        except Exception:  # they stay queued; the next filer or reader files them
            log.exception("filing the last queued events failed")
        try:
            sealed = self.sealer.stop()
            if sealed:
                self.say(f"Sealed the last {sealed} event(s) into the audit chain.")
        except Exception:  # they stay unsealed; the next start seals them
            log.exception("sealing the last events failed")
        self.registry.close()


class CanaryGunicorn(BaseApplication):
    """gunicorn with ``server.create_app`` as the application, configured in code."""

    def __init__(self, settings: Settings, options: ServeOptions, say: Callable[[str], None]):
        self.settings = settings
        self.options = options
        self.say = say
        super().__init__()

    def load_config(self) -> None:
        options, say = self.options, self.say

        def when_ready(arbiter: Any) -> None:
            urls = ", ".join(str(s) for s in arbiter.LISTENERS)
            kind = f"{options.workers} worker(s)" + (
                f" x {options.threads} threads" if options.threads > 1 else ""
            )
            say(f"Serving {urls} ({kind}). Stop with SIGTERM or ^C.")

        config: dict[str, object] = {
            "bind": [options.bind],
            "workers": options.workers,
            "threads": options.threads,
            "worker_class": "gthread" if options.threads > 1 else "sync",
            "proc_name": "canary",
            "when_ready": when_ready,
            "graceful_timeout": 20,
            "errorlog": "-",
            "loglevel": "info",
            # gunicorn >= 25.1 opens a control socket in the home directory by default; two
            # servers would share it, and nothing here needs it.
            "control_socket_disable": True,
        }
        for key, value in config.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from server.app import create_app

        return create_app(self.settings, filer=False)  # the Master files for every worker


def _run_http(settings: Settings, options: ServeOptions, say: Callable[[str], None]) -> None:
    """The gunicorn master: a child process of ``canary serve``."""
    CanaryGunicorn(settings, options, say).run()


def check_bind(bind: str) -> None:
    """CanaryError in one sentence if HOST:PORT is malformed or taken (gunicorn would retry
    for seconds and then print a traceback-like log)."""
    host, colon, port = bind.rpartition(":")
    if not colon or not port.isdigit():
        raise CanaryError(f"--bind {bind!r} is not HOST:PORT; give e.g. 127.0.0.1:8425.")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            raise CanaryError(
                f"Cannot listen on {bind} ({exc.strerror}); free the port or choose another "
                "with --bind or CANARY_LISTEN."
            ) from None


def serve(settings: Settings, options: ServeOptions, say: Callable[[str], None]) -> None:
    """Run the server until SIGTERM or SIGINT; CanaryError if it cannot start or gunicorn
    stops on its own."""
    check_bind(options.bind)
    probe = Registry(settings.db, actor="server")
    try:
        probe.require_ready()
    finally:
        probe.close()  # no connection crosses the fork below
    factories = listener_factories(options, say)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
            stream=sys.stderr,
        )
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per verb
    http = multiprocessing.get_context("fork").Process(
        target=_run_http, args=(settings, options, say), name="canary-http"
    )
    http.start()
    pid = http.pid
    assert pid is not None

    def forward(_signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

    # From here a signal stops gunicorn, and this process follows when gunicorn has gone.
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    master = Master(settings, options, factories, say)
    try:
        master.start()
        http.join()
    except BaseException:
        forward(signal.SIGTERM, None)
        http.join()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        master.stop()
    if http.exitcode:
        raise CanaryError(
            f"The HTTP server stopped with exit code {http.exitcode}; see its log above."
        )
