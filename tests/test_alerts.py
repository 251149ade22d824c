"""Alerts: every suspicious event reaches a human once, over real SMTP, HTTP and syslog
peers on loopback; past the hourly rate as a digest; never dropped; webhooks never reach
the inside network unless allowed.

Runs on SQLite and PostgreSQL through the ``registry`` and ``run`` fixtures.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from canary.alerts import (
    AlertMessage,
    DeliveryError,
    UnsafeTargetError,
    WebhookOutput,
    dispatch,
    notify,
)
from canary.alerts.ssrf import post_json
from canary.alerts.store import dispatch_lock
from canary.events import EventDraft
from canary.registry import Registry
from canary.registry.models import Alert
from canary.settings import Settings
from tests.helpers import seed_export

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def suspicious(registry: Registry, settings: Settings, tmp: Path, n: int, start: int = 0) -> str:
    """n suspicious mails to one canary address of a new (or the first) export; its code."""
    exports = registry.exports(None)
    code = (
        exports[0].code if exports else seed_export(registry, settings, tmp, "op1", 1).export.code
    )
    address = next(c.email for c in registry.canaries_of(code) if c.email)
    assert address is not None
    for i in range(start, start + n):
        event = registry.record_event(
            EventDraft(
                channel="email",
                target=address,
                occurred_at=T0 + timedelta(minutes=i),
                provider="smtp",
                payload=f"mail {i}".encode(),
                source="sales@broker.example",
                provider_id=f"<{i}@broker.example>",
            )
        )
        assert event.classification == "suspicious"
    return code


class Recorder:
    """An output that keeps what it is sent, and fails while ``down`` is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[AlertMessage] = []
        self.down: str | None = None

    def send(self, message: AlertMessage) -> None:
        if self.down:
            raise DeliveryError(self.down)
        self.sent.append(message)


def alerts_table(registry: Registry) -> list[Alert]:
    with registry._sessions() as s:
        return list(s.execute(select(Alert).order_by(Alert.id)).scalars())


# -- loopback peers ----------------------------------------------------------------------------


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class _LoopbackController(Controller):
    """aiosmtpd on a free port: learn the port the OS gave before the first connection."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, _Mailbox]]:
    mailbox = _Mailbox()
    controller = _LoopbackController(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()


class _Hooks(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.redirects: dict[str, str] = {}  # path -> Location answered with 307


class _HookHandler(BaseHTTPRequestHandler):
    server: _Hooks

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path in self.server.redirects:
            self.send_response(307)
            self.send_header("Location", self.server.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[_Hooks]:
    server = _Hooks()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- the switchboard, with recording outputs ---------------------------------------------------


def test_alerts_go_one_by_one_within_the_rate_and_as_one_digest_past_it(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    code = suspicious(registry, settings, tmp_path, 5)
    out = Recorder("fake")
    limited = replace(settings, alert_rate=2)
    result = dispatch(registry, limited, outputs=[out], now=T0)
    assert (result.pending_before, result.delivered, result.pending_after) == (5, 5, 0)
    assert [m.kind for m in out.sent] == ["alert", "alert", "digest"]
    assert len(out.sent[2].items) == 3 and out.sent[2].digest_id
    assert result.outputs[0].as_json() | {"error": None} == {
        "output": "fake", "alone": 2, "digests": 1, "in_digests": 3, "failed": 0, "error": None,
    }  # fmt: skip
    single = out.sent[0]
    incident = registry.incidents()[0]
    assert incident.code in single.subject and code in single.text
    assert f"canary incidents show {incident.code}" in single.text
    assert "確からしさ" in single.text and "エクスポート" in single.text
    rows = alerts_table(registry)
    assert [r.digest is None for r in rows] == [True, True, False, False, False]
    # The hour's two single alerts are spent: one more goes as a digest, later alone again.
    suspicious(registry, settings, tmp_path, 1, start=5)
    dispatch(registry, limited, outputs=[out], now=T0 + timedelta(minutes=30))
    assert out.sent[-1].kind == "digest" and len(out.sent[-1].items) == 1
    suspicious(registry, settings, tmp_path, 1, start=6)
    dispatch(registry, limited, outputs=[out], now=T0 + timedelta(hours=2))
    assert out.sent[-1].kind == "alert"
    assert dispatch(registry, limited, outputs=[out], now=T0 + timedelta(hours=3)).delivered == 0
    assert len(out.sent) == 5


def test_a_failed_delivery_stays_pending_and_is_retried_only_where_it_failed(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    suspicious(registry, settings, tmp_path, 2)
    mail, chat = Recorder("mail"), Recorder("chat")
    chat.down = "connection refused"
    first = dispatch(registry, settings, outputs=[mail, chat], now=T0)
    assert (first.delivered, first.pending_after) == (0, 2)
    assert first.outputs[1].error == "connection refused" and first.outputs[1].failed == 2
    rows = alerts_table(registry)
    assert all(r.delivered_at is None and r.attempts == 1 for r in rows)
    assert all("chat: connection refused" in (r.last_error or "") for r in rows)
    assert all((r.last_error or "").endswith("delivered to: mail") for r in rows)
    chat.down = None
    second = dispatch(registry, settings, outputs=[mail, chat], now=T0 + timedelta(minutes=1))
    assert (second.delivered, second.pending_after) == (2, 0)
    assert len(mail.sent) == 2, "mail had them already"
    assert len(chat.sent) == 2
    rows = alerts_table(registry)
    assert all(r.delivered_at is not None and r.last_error is None for r in rows)
    assert [r.attempts for r in rows] == [2, 2]


def test_a_second_dispatch_at_the_same_time_sends_nothing(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    suspicious(registry, settings, tmp_path, 1)
    out = Recorder("fake")
    with dispatch_lock(registry) as mine:
        assert mine
        result = dispatch(registry, settings, outputs=[out])
    assert result.skipped == "another alert dispatch is running" and out.sent == []
    assert dispatch(registry, settings, outputs=[out]).delivered == 1


def test_notices_go_to_every_output_and_say_which_failed(settings: Settings) -> None:
    ok, down = Recorder("ok"), Recorder("down")
    down.down = "HTTP 500"
    results = notify(settings, "Daily digest / 日次まとめ", "3 events", outputs=[ok, down])
    assert results == {"ok": None, "down": "HTTP 500"}
    assert ok.sent[0].kind == "notice" and ok.sent[0].data["text"] == "3 events"


# -- real peers ---------------------------------------------------------------------------------


def test_alert_mail_over_real_smtp_digested_past_the_rate(
    registry: Registry,
    settings: Settings,
    tmp_path: Path,
    run: Any,
    smtp_server: tuple[int, _Mailbox],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, mailbox = smtp_server
    monkeypatch.setenv("CANARY_ALERT_SMTP", f"127.0.0.1:{port}")
    monkeypatch.setenv("CANARY_ALERT_EMAIL_TO", "soc@example.jp, dpo@example.jp")
    monkeypatch.setenv("CANARY_ALERT_FROM", "canary@example.jp")
    monkeypatch.setenv("CANARY_ALERT_RATE", "2")
    code = suspicious(registry, settings, tmp_path, 4)
    result = run("alerts", "send", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["delivered"], data["pending_after"]) == (4, 0)
    assert len(mailbox.messages) == 3
    [incident] = registry.incidents()
    first, _, digest = mailbox.messages
    assert first["To"] == "soc@example.jp, dpo@example.jp"
    assert incident.code in first["Subject"]
    body = first.get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]
    for expected in (code, "city / residents", "account op1", "不審なメール", "確からしさ"):
        assert expected in body
    assert f"canary incidents show {incident.code}" in body
    assert digest["X-Canary-Kind"] == "digest" and "Digest: 2" in digest["Subject"]
    again = run("alerts", "send")
    assert again.exit_code == 0 and "0 alert(s) delivered" in again.output
    assert len(mailbox.messages) == 3


def test_webhooks_over_real_http_in_json_slack_and_teams_form(
    registry: Registry, settings: Settings, tmp_path: Path, http_server: _Hooks
) -> None:
    suspicious(registry, settings, tmp_path, 1)
    base = f"http://127.0.0.1:{http_server.server_port}"
    configured = replace(
        settings,
        alert_webhooks=f"json={base}/json?a=1,b=2,slack={base}/slack,teams={base}/teams",
        alert_allow_private=1,
    )
    result = dispatch(registry, configured)
    assert result.delivered == 1 and not result.failed, result.as_json()
    got = dict(http_server.received)
    assert set(got) == {"/json?a=1,b=2", "/slack", "/teams"}  # a comma inside a URL stays
    incident = registry.incidents()[0]
    assert got["/json?a=1,b=2"]["type"] == "canary.alert"
    assert got["/json?a=1,b=2"]["incident"]["incident_id"] == incident.code
    assert "text" not in got["/json?a=1,b=2"]["event"]["details"]
    slack = got["/slack"]
    assert incident.code in slack["text"]
    assert [b["type"] for b in slack["blocks"]][:2] == ["header", "section"]
    card = got["/teams"]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "localhost"])
def test_webhooks_to_the_inside_network_are_refused_and_the_alert_kept(
    registry: Registry, settings: Settings, tmp_path: Path, http_server: _Hooks, host: str
) -> None:
    suspicious(registry, settings, tmp_path, 1)
    url = f"http://{host}:{http_server.server_port}/hook"
    with pytest.raises(UnsafeTargetError, match="refused"):
        post_json(url, b"{}")
    result = dispatch(registry, replace(settings, alert_webhooks=f"json={url}"))
    assert result.pending_after == 1 and result.failed
    assert "CANARY_ALERT_ALLOW_PRIVATE=1" in (result.outputs[0].error or "")
    [row] = alerts_table(registry)
    assert row.delivered_at is None and "refused" in (row.last_error or "")
    assert http_server.received == []


def test_a_redirect_to_the_inside_network_is_refused(http_server: _Hooks) -> None:
    port = http_server.server_port
    # A public host (its resolution and route faked: no public peer can run here) whose
    # webhook answers 307 to a loopback address.
    public = "93.184.216.34"

    def resolve(host: str, _port: int) -> list[str]:
        return [public] if host == "hooks.example" else [host]

    def connect(address: tuple[str, int], timeout: float) -> socket.socket:
        assert address[0] == public, "only the public address is ever dialled"
        return socket.create_connection(("127.0.0.1", port), timeout=timeout)

    http_server.redirects["/hook"] = f"http://127.0.0.1:{port}/inside"
    http_server.redirects["/moved"] = "http://hooks.example/final"
    hook = WebhookOutput("json", "http://hooks.example/hook", resolve=resolve, connect=connect)
    with pytest.raises(UnsafeTargetError, match=r"127\.0\.0\.1 is a loopback address"):
        hook.send(AlertMessage(kind="notice", subject="s", text="t", data={"x": 1}))
    moved = WebhookOutput("json", "http://hooks.example/moved", resolve=resolve, connect=connect)
    moved.send(AlertMessage(kind="notice", subject="s", text="t", data={"x": 1}))
    assert [path for path, _ in http_server.received] == ["/final"]


def test_siem_lines_over_real_syslog_and_stdout(
    registry: Registry,
    settings: Settings,
    tmp_path: Path,
    run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    suspicious(registry, settings, tmp_path, 3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(30)
        port = listener.getsockname()[1]
        to_syslog = replace(settings, alert_siem=f"syslog://127.0.0.1:{port}", alert_rate=1)
        result = dispatch(registry, to_syslog)
        assert result.delivered == 3, result.as_json()
        lines = [listener.recv(65536).decode("utf-8") for _ in range(3)]
    assert all(line.startswith("<12>canary[") for line in lines)
    records = [json.loads(line.split("]: ", 1)[1]) for line in lines]
    # The digest of two is still one line per alert, carrying the digest's id.
    assert [r["digest_id"] is None for r in records] == [True, False, False]
    assert len({r["alert_id"] for r in records}) == 3
    suspicious(registry, settings, tmp_path, 1, start=3)
    monkeypatch.setenv("CANARY_ALERT_SIEM", "stdout")
    out = run("alerts", "send", "--json")
    assert out.exit_code == 0, out.output
    [line] = out.stdout.splitlines()  # stdout is the SIEM's; the summary went to stderr
    assert json.loads(line)["event"]["channel"] == "email"
    assert json.loads(out.stderr)["delivered"] == 1


def test_alerts_send_without_outputs_or_with_a_bad_one_says_what_to_set(
    registry: Registry,
    settings: Settings,
    tmp_path: Path,
    run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    suspicious(registry, settings, tmp_path, 1)
    none = run("alerts", "send")
    assert none.exit_code == 1 and "no alert output is configured" in none.stderr
    monkeypatch.setenv("CANARY_ALERT_WEBHOOKS", "discord=https://example.com/x")
    bad = run("alerts", "send")
    assert bad.exit_code == 1 and "is not kind=url" in bad.stderr
    monkeypatch.setenv("CANARY_ALERT_WEBHOOKS", "")
    monkeypatch.setenv("CANARY_ALERT_EMAIL_TO", "soc@example.jp")
    half = run("alerts", "send")
    assert half.exit_code == 1 and "needs both" in half.stderr
    assert [r.delivered_at for r in alerts_table(registry)] == [None]
