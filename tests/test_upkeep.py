"""Upkeep on a real registry (SQLite and PostgreSQL): pool maintenance (quarantine ends
after the burn-in when strangers stopped calling; numbers of leaked exports are burnt), the
daily digest by mail (aiosmtpd on loopback), by webhook (an HTTP server on loopback) and as
a JSON line, and the pruning of old job runs."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update
from sqlalchemy.orm import Session

from canary import jobruns
from canary.errors import RegistryError
from canary.events import EventDraft
from canary.poolcare import maintain_pool
from canary.registry import Registry
from canary.registry.models import PoolPhone
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from jobs.scheduler import run_once
from tests.listgen import people, write_csv

# -- pool maintenance -----------------------------------------------------------------------


def _call(number: str, when: datetime, pid: str) -> EventDraft:
    return EventDraft(
        channel="call",
        target=number,
        occurred_at=when,
        provider="cdr",
        payload=pid.encode(),
        source="09011112222",
        provider_id=pid,
    )


def test_pool_maintenance_releases_quiet_numbers_and_burns_leaked_ones(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    numbers = [p.e164 for p in registry.pool_phones()]
    quiet, noisy, young = numbers[-3:]
    registry.set_phone_state([quiet, noisy, young], "quarantine")
    with Session(registry.engine) as s, s.begin():
        s.execute(
            update(PoolPhone)
            .where(PoolPhone.e164.in_([quiet, noisy]))
            .values(state_changed_at=now - timedelta(days=40))
        )
        s.execute(
            update(PoolPhone)
            .where(PoolPhone.e164 == young)
            .values(state_changed_at=now - timedelta(days=10))
        )
    registry.record_event(_call(quiet, now - timedelta(days=35), "old"))  # before the window
    for i in range(5):  # 5 in 30 days: 1.2 a week, over the limit of 1.0
        registry.record_event(_call(noisy, now - timedelta(days=i + 1), f"n{i}"))

    report = maintain_pool(registry, settings, now=now)
    assert report.released == [quiet] and report.burnt == []
    held = {h.e164: h.reason for h in report.held}
    assert "1.2/week" in held[noisy] and "in burn-in until" in held[young]
    states = {p.e164: p.state for p in registry.pool_phones()}
    assert (states[quiet], states[noisy], states[young]) == ("active", "quarantine", "quarantine")

    # An export named by an attributed incident burns its numbers, for good.
    write_csv(tmp_path / "host.csv", people(300, seed=7))
    export = seed(
        registry,
        settings,
        SeedRequest(
            input=tmp_path / "host.csv",
            output=tmp_path / "out.csv",
            client="city",
            list_name="residents",
            account="op1",
            rng_seed=7,
        ),
    ).export
    canary = next(c for c in registry.canaries_of(export.code) if c.email)
    assert canary.email is not None
    registry.record_event(
        EventDraft(
            channel="email",
            target=canary.email,
            occurred_at=now,
            provider="smtp",
            payload=b"spam",
            source="sales@broker.example",
            provider_id="<1@spam>",
        )
    )
    assert registry.incidents()[0].attributed
    carried = {c.phone_e164 for c in registry.canaries_of(export.code) if c.phone_e164}
    report = maintain_pool(registry, settings, now=now)
    assert set(report.burnt) == carried and carried
    again = maintain_pool(registry, settings, now=now)
    assert again.burnt == []  # burnt once
    with pytest.raises(RegistryError, match="must not be reused"):
        registry.set_phone_state([next(iter(carried))], "active")


# -- the daily digest -----------------------------------------------------------------------


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(BytesParser(policy=policy.default).parsebytes(envelope.content))
        return "250 OK"


class _LoopbackController(Controller):
    """aiosmtpd on a free port: learn the port the OS gave before the first connection."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def test_the_digest_goes_out_by_mail_and_otherwise_as_a_json_line(
    registry: Registry, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    number = registry.pool_phones()[0].e164
    registry.record_event(_call(number, datetime.now(UTC), "CA1"))  # in no export: noise
    registry.record_event(_call("03-9999-0000", datetime.now(UTC), "CA2"))  # not ours: noise
    run_id = jobruns.start_run(registry, "domains")
    jobruns.finish_run(registry, run_id, "failed", {}, "Canaries on x.example are blind: no MX.")
    digest = jobruns.build_digest(registry)
    assert digest.events == {"noise": 2} and digest.channels == {"call": 2}
    assert [f.job for f in digest.failures] == ["domains"]
    assert "FAILED domains" in digest.text("en") and "blind: no MX" in digest.text("en")
    assert "失敗 domains" in digest.text("ja") and "ノイズ 2" in digest.text("ja")

    assert jobruns.deliver_digest(digest, settings) == ([], [])
    assert '"type": "canary.job_digest"' in capsys.readouterr().out

    mailbox = _Mailbox()
    controller = _LoopbackController(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        mail = dataclasses.replace(
            settings, alert_email_to="soc@example.jp", alert_smtp=f"127.0.0.1:{controller.port}"
        )
        assert jobruns.deliver_digest(digest, mail) == (["email"], [])
    finally:
        controller.stop()
    [message] = mailbox.messages
    assert str(message["Subject"]).strip().startswith("Canary digest")
    assert "カナリア日次報告" in message.get_content()


class _Hook(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def test_the_digest_job_goes_out_by_webhook(registry: Registry, settings: Settings) -> None:
    _Hook.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        hooked = dataclasses.replace(
            settings,
            alert_webhooks=f"json=http://127.0.0.1:{server.server_address[1]}/digest",
            alert_allow_private=1,  # a loopback target: refused by default (SSRF)
        )
        registry.record_event(_call(registry.pool_phones()[0].e164, datetime.now(UTC), "CA9"))
        result = run_once(hooked, "digest")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert result["outcome"] == "ok", result
    summary = result["summary"]
    assert isinstance(summary, dict) and summary["events"] == {"noise": 1}
    [name] = summary["delivered_to"]
    assert name.startswith("json-webhook:")
    [body] = _Hook.bodies
    assert body["type"] == "canary.job_digest" and body["events"] == {"noise": 1}
    assert body["subject"].startswith("Canary digest") and "カナリア日次報告" in body["text"]


def test_old_job_runs_are_pruned_but_each_jobs_last_run_stays(registry: Registry) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=200)
    for job in ("pool", "pool", "seal"):
        jobruns.finish_run(registry, jobruns.start_run(registry, job, at=long_ago), "ok")
    jobruns.finish_run(registry, jobruns.start_run(registry, "pool"), "ok")
    assert jobruns.prune_runs(registry, timedelta(days=90)) == 2
    assert {r.job for r in jobruns.runs(registry, limit=None)} == {"pool", "seal"}
