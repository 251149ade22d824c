"""canary doctor against a healthy setup (the real HTTP server, SMTP and DNS listeners on
loopback, domains checked through our own DNS listener, a scheduler whose jobs are in the
registry's job store) and broken ones (no registry, an uninitialised one, an empty pool,
nothing listening, a scheduler that stopped or never ran, a failed job)."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
from werkzeug.serving import make_server

from canary import jobruns
from canary.doctor import diagnose
from canary.registry import Registry
from canary.settings import Settings
from jobs.config import load_config
from jobs.run import use_settings
from jobs.scheduler import build_scheduler
from server.app import close_app, create_app
from server.dns import DnsListener
from server.smtp import SmtpListener
from tests.conftest import TEST_DOMAIN


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nothing_listening(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        listen=f"127.0.0.1:{_closed_port()}",
        smtp_listen=f"127.0.0.1:{_closed_port()}",
        dns_listen=f"127.0.0.1:{_closed_port()}",
        dns_ns=f"ns1.{TEST_DOMAIN}",
    )


@pytest.fixture
def healthy(registry: Registry, settings: Settings) -> Iterator[tuple[Settings, Any]]:
    """Settings whose listeners all run, and a resolver that asks our DNS listener."""
    base = dataclasses.replace(
        settings, max_numbers_per_export=12, dns_ns=f"ns1.{TEST_DOMAIN}", dns_ipv4="127.0.0.1"
    )
    app = create_app(base, registry)
    web = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    smtp = SmtpListener(registry, base, host="127.0.0.1", port=0)
    smtp.start()
    dns_listener = DnsListener(registry, base, host="127.0.0.1", port=0).start()
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = dns_listener.port
    resolver.lifetime = 5.0
    try:
        yield (
            dataclasses.replace(
                base,
                listen=f"127.0.0.1:{web.server_port}",
                smtp_listen=f"127.0.0.1:{smtp.port}",
                dns_listen=f"127.0.0.1:{dns_listener.port}",
            ),
            resolver,
        )
    finally:
        dns_listener.stop()
        smtp.stop()
        web.shutdown()
        web.server_close()
        close_app(app)


def _scheduler_started(settings: Settings, registry: Registry) -> None:
    """Start and stop the real scheduler once: its jobs and next run times are stored."""
    from apscheduler.schedulers.background import BackgroundScheduler

    sched = build_scheduler(settings, load_config(settings), registry, BackgroundScheduler)
    sched.start(paused=True)
    sched.shutdown()
    use_settings(None)


def test_a_healthy_setup_has_nothing_to_fix(
    healthy: tuple[Settings, Any], registry: Registry
) -> None:
    settings, resolver = healthy
    _scheduler_started(settings, registry)
    report = diagnose(settings, resolver=resolver)
    by_check = {f.check: f for f in report.findings}
    assert report.healthy, [f.en for f in report.findings if f.status != "ok"]
    assert set(by_check) == {"registry", "pool", "domains", "http", "smtp", "dns", "scheduler"}
    assert all(f.status == "ok" for f in report.findings)
    assert f"{TEST_DOMAIN} is healthy" in by_check["domains"].en
    assert "50 active pool numbers" in " ".join(f.en for f in report.findings)
    assert "応答あり" in by_check["smtp"].ja
    assert by_check["scheduler"].en.startswith("The scheduler is running: next ")
    # The probes leave no trace: no event from the doctor's SMTP banner or DNS query.
    assert all(e.channel != "smtp_probe" for e in registry.events(limit=None))
    assert all(e.target != "canary-doctor.invalid" for e in registry.events(limit=None))

    # A blind domain, a failed job and a stopped scheduler are each a line to fix.
    blind = dataclasses.replace(settings, dns_mx_host="mx.elsewhere.example")
    run_id = jobruns.start_run(registry, "domains")
    jobruns.finish_run(registry, run_id, "failed", {}, "Canaries on x.example are blind.")
    report = diagnose(blind, resolver=resolver, now=datetime.now(UTC) + timedelta(days=3))
    fix = {f.check: f for f in report.findings if f.status == "fail"}
    assert set(fix) == {"domains", "job:domains", "scheduler"}
    assert f"Canaries on {TEST_DOMAIN} are blind" in fix["domains"].en
    assert fix["scheduler"].en.startswith("The scheduler is not running: ")
    assert "did not run; start `canary jobs run` again" in fix["scheduler"].en
    assert "blind" in fix["job:domains"].en and "前回の domains は失敗" in fix["job:domains"].ja


def test_runs_by_hand_do_not_pass_for_a_running_scheduler(
    registry: Registry, settings: Settings
) -> None:
    # `canary jobs run --once pool` records a run, but no scheduler is watching.
    jobruns.finish_run(registry, jobruns.start_run(registry, "pool"), "ok")
    quiet = _nothing_listening(settings)
    [finding] = [f for f in diagnose(quiet, timeout=1.0).findings if f.check == "scheduler"]
    assert finding.status == "fail" and "has never run on this registry" in finding.en
    _scheduler_started(settings, registry)
    now = datetime.now(UTC)
    [finding] = [
        f for f in diagnose(quiet, timeout=1.0, now=now).findings if f.check == "scheduler"
    ]
    assert finding.status == "ok"
    # Down for longer than the slack: the earliest job due says since when.
    later = now + timedelta(days=2)
    report = diagnose(quiet, timeout=1.0, now=later, scheduler_slack=timedelta(minutes=10))
    [finding] = [f for f in report.findings if f.check == "scheduler"]
    assert finding.status == "fail" and "was due at" in finding.en and "未実行" in finding.ja


def test_an_uninitialised_registry_and_nothing_listening(run: Any, settings: Settings) -> None:
    broken = _nothing_listening(settings)
    report = diagnose(broken, timeout=1.0)
    assert not report.healthy
    assert [(f.check, f.status) for f in report.findings] == [
        ("registry", "fail"),
        ("http", "fail"),
        ("smtp", "fail"),
        ("dns", "fail"),
    ]
    assert "run `canary init`" in report.findings[0].en
    assert "connection refused" in report.findings[1].en
    assert "no answer in time" in report.findings[3].en  # UDP: nothing refuses, nothing answers

    import os

    os.environ.update({"CANARY_LISTEN": broken.listen, "CANARY_SMTP_LISTEN": broken.smtp_listen})
    try:
        res = run("doctor", "--lang", "ja", "--timeout", "1")
        assert res.exit_code == 1
        assert "`canary init` を実行してください" in res.output and "要修正" in res.output
        res = run("doctor", "--json", "--timeout", "1")
        assert res.exit_code == 1
        data = json.loads(res.output)
        assert data["healthy"] is False and data["findings"][0]["check"] == "registry"
    finally:
        os.environ.pop("CANARY_LISTEN")
        os.environ.pop("CANARY_SMTP_LISTEN")


def test_an_unreachable_registry_is_the_one_thing_to_fix_there(settings: Settings) -> None:
    gone = dataclasses.replace(
        _nothing_listening(settings),
        db=f"postgresql+psycopg://u:secret@127.0.0.1:{_closed_port()}/x",
    )
    report = diagnose(gone, timeout=1.0)
    first = report.findings[0]
    assert (first.check, first.status) == ("registry", "fail")
    assert "cannot be reached" in first.en and "CANARY_DB" in first.en
    assert "secret" not in first.en and "***" in first.en


def test_an_empty_pool_and_a_scheduler_that_never_ran(settings: Settings, tmp_path: Path) -> None:
    bare = Registry(settings.db)
    try:
        bare.init()
        report = diagnose(_nothing_listening(settings), timeout=1.0)
    finally:
        bare.close()
    fix = [f.en for f in report.findings if f.status == "fail" and f.check in ("pool", "scheduler")]
    assert fix == [
        "Only 0 active pool numbers (0 in quarantine); add at least 72 with `canary pool "
        "add-phone` (an export uses up to 24; keep 3 times that).",
        "No active mail domain in the pool; add one with `canary pool add-domain`.",
        "The scheduler has never run on this registry; start it with `canary jobs run`.",
    ]
