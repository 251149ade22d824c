"""``canary serve`` as a user runs it: a real process with gunicorn workers and the SMTP and
DNS listeners on loopback; and ``canary config``, whose table server/README.md carries."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from canary.cli import cli
from canary.errors import CanaryError
from canary.registry import Registry
from canary.settings import Settings
from server.serve import ServeOptions, listener_factories
from server.signatures import generic_signature
from tests.conftest import REPO, TEST_NUMBERS
from tests.helpers import mail_event, seed_export

SECRET = "serve-test-secret"
SAFETY = 300  # seconds before a hung server fails the test (not a performance limit)


class Served:
    """``canary serve`` in a subprocess, its stderr read line by line."""

    def __init__(self, settings: Settings, *args: str, **env: str) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
        clean.update(
            {
                "CANARY_DB": settings.db,
                "CANARY_SEEDS_DIR": settings.seeds_dir,
                "CANARY_SMTP_LISTEN": "127.0.0.1:0",
                "CANARY_DNS_LISTEN": "127.0.0.1:0",
                "CANARY_WEBHOOK_SECRET": SECRET,
                **env,
            }
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "canary", "serve", "--bind", "127.0.0.1:0", *args],
            env=clean,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: close() kills gunicorn too
        )
        self.log: list[str] = []
        self.ended = False  # the reader's end mark was taken off the queue
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: str) -> re.Match[str]:
        for line in self.log:
            if found := re.search(pattern, line):
                return found
        while True:
            got = None if self.ended else self._lines.get(timeout=SAFETY)
            if got is None:
                self.ended = True
                raise AssertionError(f"canary serve ended without {pattern!r}:\n{self.text()}")
            self.log.append(got)
            if found := re.search(pattern, got):
                return found

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=SAFETY)
        self._reader.join()
        while not self.ended and (line := self._lines.get()) is not None:
            self.log.append(line)
        self.ended = True
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            # After a failed test: killed at once, with gunicorn and its workers, which would
            # otherwise outlive it and keep its log open (the reader would wait for ever).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.stop(signal.SIGKILL)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def text(self) -> str:
        return "".join(self.log)


@pytest.fixture
def served(registry: Registry, settings: Settings) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(*args: str, **env: str) -> Served:
        started.append(Served(settings, *args, **env))
        return started[-1]

    yield start
    for s in started:
        s.close()


def _request(port: int, method: str, path: str, body: bytes = b"", **headers: str) -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SAFETY)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_serve_answers_health_webhooks_and_smtp_then_stops_on_sigterm(
    served: Callable[..., Served], registry: Registry
) -> None:
    server = served("--workers", "2")
    port = int(server.wait_for(r"Serving http://127\.0\.0\.1:(\d+) \(2 worker")[1])
    smtp_port = int(server.wait_for(r"SMTP listener on port (\d+)")[1])
    server.wait_for(r"DNS listener on port \d+")
    assert _request(port, "GET", "/healthz") == (200, {"ok": True, "schema": "0008"})
    stamp = int(time.time())
    body = json.dumps(
        {
            "id": "serve-1",
            "channel": "sms",
            "to": TEST_NUMBERS[0],
            "from": "+819011112222",
            "time": "2026-11-01T10:00:00+09:00",
            "text": "ご案内",
        }
    ).encode()
    status, event = _request(
        port,
        "POST",
        "/hooks/events",
        body,
        **{
            "Content-Type": "application/json",
            "X-Canary-Timestamp": str(stamp),
            "X-Canary-Signature": generic_signature(SECRET, stamp, body),
        },
    )
    assert status == 201 and event["provider_id"] == "serve-1", event
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=SAFETY) as smtp:
        assert smtp.noop()[0] == 250
    assert server.stop() == 0, server.text()
    # The event is stored and sealed into the audit chain, by the end if not before.
    assert [e.provider_id for e in registry.events(limit=None)] == ["serve-1"]
    assert registry.verify_event_seals() == (1, 0, [])
    for closed in (port, smtp_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", closed), timeout=SAFETY).close()


def test_events_left_queued_are_filed_by_serves_filer_and_at_its_stop(
    served: Callable[..., Served], registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    """A worker that died after storing an event left it in the filing queue: the filer of
    ``canary serve`` files it while the server runs, and what is left when it stops."""
    from sqlalchemy import func, select

    from canary.registry.models import FilingQueue, Incident
    from server.serve import Master

    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    address = next(c.email for c in registry.canaries_of(code) if c.email)

    def queue_one(pid: str) -> None:
        draft = mail_event(address, f"{pid}@broker.example", pid, datetime(2026, 11, 1, tzinfo=UTC))
        registry.record_events([draft], file=False)

    def counts() -> tuple[int, int]:
        with registry._sessions() as s:
            return tuple(  # type: ignore[return-value]
                int(s.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (FilingQueue, Incident)
            )

    def filed_events() -> int:  # read directly: a reader would file the queue itself
        with registry._sessions() as s:
            return int(s.execute(select(func.sum(Incident.event_count))).scalar() or 0)

    def settled(want: tuple[int, int], events: int) -> None:
        deadline = time.monotonic() + SAFETY
        while (counts(), filed_events()) != (want, events) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (counts(), filed_events()) == (want, events), server.text()

    queue_one("<left-by-a-dead-worker>")
    assert counts() == (1, 0)
    server = served("--workers", "2", "--no-smtp", "--no-dns")
    port = int(server.wait_for(r"Serving http://127\.0\.0\.1:(\d+)")[1])
    settled((0, 1), 1)
    # A suspicious event a worker stores is filed by the same filer: the workers have none.
    stamp = int(time.time())
    body = json.dumps(
        {
            "id": "<by-a-worker>",
            "channel": "email",
            "to": address,
            "from": "w@broker.example",
            "time": "2026-11-01T10:00:00+09:00",
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Canary-Timestamp": str(stamp),
        "X-Canary-Signature": generic_signature(SECRET, stamp, body),
    }
    status, event = _request(port, "POST", "/hooks/events", body, **headers)
    assert status == 201 and event["classification"] == "suspicious", event
    settled((0, 1), 2)
    assert server.stop() == 0, server.text()
    # canary serve's own stop (its Master) files what the workers left.
    queue_one("<left-at-the-stop>")
    said: list[str] = []
    master = Master(settings, ServeOptions(bind="127.0.0.1:0"), [], said.append)
    master.stop()
    assert counts() == (0, 1)
    assert "Filed the last 1 queued event(s) into their incidents." in said
    [incident] = registry.incidents()
    assert incident.events == 3


def test_a_listener_that_cannot_start_stops_the_command_and_gunicorn(tmp_path: Path) -> None:
    settings = Settings(db=f"sqlite:///{tmp_path / 'r.db'}", seeds_dir=str(REPO / "seeds"))
    registry = Registry(settings.db)
    registry.init()
    registry.close()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        server = Served(settings, "--no-smtp", CANARY_DNS_LISTEN=busy)
        try:
            server.wait_for(
                r"Cannot listen for DNS on .*CANARY_DNS_LISTEN.*, or run with --no-dns\."
            )
            assert server.proc.wait(timeout=SAFETY) == 1
        finally:
            server.close()
    # gunicorn may be stopped before it says where it serves; if it did, it serves no more.
    ports = [m[1] for line in server.log if (m := re.search(r"Serving http://[\d.]+:(\d+)", line))]
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", int(port)), timeout=SAFETY).close()


def test_serve_refuses_an_uninitialised_registry_and_a_taken_port(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"CANARY_DB": f"sqlite:///{tmp_path / 'new.db'}"}
    result = runner.invoke(cli, ["serve", "--bind", "127.0.0.1:0"], env=env)
    assert result.exit_code == 6
    assert "not initialised; run `canary init` first" in result.output
    with socket.create_server(("127.0.0.1", 0)) as taken:
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        result = runner.invoke(cli, ["serve", "--bind", bind], env=env)
    assert result.exit_code == 1 and f"Cannot listen on {bind}" in result.output
    result = runner.invoke(cli, ["serve", "--bind", "localhost"], env=env)
    assert result.exit_code == 1 and "is not HOST:PORT" in result.output


def test_a_missing_listener_is_an_error_when_asked_for_and_a_note_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "server.smtp", None)  # as if it were not installed
    notes: list[str] = []
    with pytest.raises(CanaryError, match=r"SMTP listener is not available.*without --smtp"):
        listener_factories(ServeOptions(bind="127.0.0.1:0", smtp=True), notes.append)
    found = listener_factories(ServeOptions(bind="127.0.0.1:0"), notes.append)
    assert [name for name, _flag, _cls in found] == ["DNS"]
    assert notes == [notes[0]] and "serving without it" in notes[0]
    assert listener_factories(ServeOptions("127.0.0.1:0", smtp=False, dns=False), print) == []


def test_config_lists_every_variable_hides_secrets_and_the_readme_carries_the_table() -> None:
    runner = CliRunner()
    env = {"CANARY_TWILIO_AUTH_TOKEN": "do-not-print", "CANARY_DB": "postgresql://u:pw@h/db"}
    result = runner.invoke(cli, ["config"], env=env, terminal_width=200)
    assert result.exit_code == 0
    assert "do-not-print" not in result.output and "pw@" not in result.output
    for variable, _help in Settings.help_table():
        assert variable in result.output
    table = runner.invoke(cli, ["config", "--markdown"]).output.strip()
    readme = (REPO / "server" / "README.md").read_text(encoding="utf-8")
    assert table in readme, "server/README.md is stale: paste `canary config --markdown` into it"
