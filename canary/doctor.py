"""``canary doctor``: everything a steward needs before seeding, checked, with what to fix.

Each finding is ``ok``, ``warn`` (not checked, or worth a look) or ``fail`` (to fix), with a
sentence in English and Japanese. Checks that need the registry are skipped when it cannot
be used: the one finding to fix is the registry's. The listeners are probed with short
timeouts and in ways that record no event (an HTTP health check; an SMTP banner then QUIT;
a DNS query outside every zone, which a healthy listener refuses).
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from canary import jobruns
from canary.errors import CanaryError, RegistryError
from canary.registry import Registry
from canary.settings import Settings

POOL_FACTOR = 3  # active numbers >= numbers one export may use x this, so sets stay distinct
TIMEOUT = 2.0
SCHEDULER_SLACK = timedelta(minutes=10)


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # ok | warn | fail
    en: str
    ja: str

    def text(self, lang: str) -> str:
        return self.ja if lang == "ja" else self.en

    def as_json(self) -> dict[str, object]:
        return {"check": self.check, "status": self.status, "en": self.en, "ja": self.ja}


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not any(f.status == "fail" for f in self.findings)

    def add(self, check: str, status: str, en: str, ja: str) -> None:
        self.findings.append(Finding(check, status, en, ja))

    def as_json(self) -> dict[str, object]:
        return {"healthy": self.healthy, "findings": [f.as_json() for f in self.findings]}


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # bound to every address: ask the loopback one
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    try:
        return host, int(port)
    except ValueError:
        return host or value, default_port


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and exc.reason is not None:
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# -- probes ---------------------------------------------------------------------------------


def probe_http(listen: str, timeout: float = TIMEOUT) -> str | None:
    """None if the web server's /healthz answers ok, else why not."""
    host, port = _host_port(listen, 8425)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read(65536) or b"{}")
    except urllib.error.HTTPError as exc:
        return f"/healthz answered HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return _why(exc)
    return None if body.get("ok") else "/healthz did not say ok"


def probe_smtp(listen: str, timeout: float = TIMEOUT) -> str | None:
    """None if the SMTP listener greets with 220, else why not."""
    host, port = _host_port(listen, 25)
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            banner = conn.makefile("rb").readline(512)
            conn.sendall(b"QUIT\r\n")
    except OSError as exc:
        return _why(exc)
    if not banner.startswith(b"220"):
        return f"greeted with {banner[:60]!r}, not 220"
    return None


def probe_dns(listen: str, timeout: float = TIMEOUT) -> str | None:
    """None if the DNS listener answers over UDP (any answer: a name outside its zones is
    refused, and that refusal is no event), else why not."""
    import dns.exception
    import dns.message
    import dns.query

    host, port = _host_port(listen, 53)
    query = dns.message.make_query("canary-doctor.invalid.", "SOA")
    try:
        dns.query.udp(query, host, port=port, timeout=timeout)
    except dns.exception.Timeout:
        return "no answer in time"
    except (OSError, dns.exception.DNSException) as exc:
        return _why(exc)
    return None


# -- checks ---------------------------------------------------------------------------------


def _registry(settings: Settings, report: DoctorReport) -> Registry | None:
    from sqlalchemy.engine import make_url

    try:
        where = make_url(settings.db).render_as_string(hide_password=True)
    except Exception:
        where = "(an unreadable URL)"
    try:
        registry = Registry(settings.db, actor="doctor")
        revision = registry.revision()
    except RegistryError as exc:
        # The driver's own reason, first line, without the URL (it may hold a password).
        cause = exc.__cause__
        reason = str(getattr(cause, "orig", None) or cause or exc).strip().splitlines()[0]
        reason = reason.replace(settings.db, where)
        report.add(
            "registry",
            "fail",
            f"The registry {where} cannot be reached ({reason}); check CANARY_DB and that "
            "the database is running.",
            f"レジストリ {where} に接続できません。"
            "CANARY_DB とデータベースの稼働を確認してください。",
        )
        return None
    if revision is None:
        report.add(
            "registry",
            "fail",
            f"The registry {where} is not initialised; run `canary init`.",
            f"レジストリ {where} が初期化されていません。`canary init` を実行してください。",
        )
    elif revision != registry.head_revision():
        report.add(
            "registry",
            "fail",
            f"The registry is at schema {revision}, not {registry.head_revision()}; "
            "run `canary init` to upgrade it.",
            f"レジストリのスキーマが {revision} で古いままです。`canary init` で更新してください。",
        )
    else:
        report.add(
            "registry",
            "ok",
            f"Registry {where} reachable, schema {revision}.",
            f"レジストリ {where} に接続可、スキーマ {revision}。",
        )
        return registry
    registry.close()
    return None


def _pool(registry: Registry, settings: Settings, report: DoctorReport) -> None:
    active = len(registry.pool_phones("active"))
    waiting = len(registry.pool_phones("quarantine"))
    need = settings.max_numbers_per_export * POOL_FACTOR
    if active < need:
        report.add(
            "pool",
            "fail",
            f"Only {active} active pool numbers ({waiting} in quarantine); add at least "
            f"{need - active} with `canary pool add-phone` (an export uses up to "
            f"{settings.max_numbers_per_export}; keep {POOL_FACTOR} times that).",
            f"有効なプール番号が {active} 件しかありません（隔離中 {waiting} 件）。"
            f"`canary pool add-phone` で {need - active} 件以上追加してください。",
        )
    else:
        report.add(
            "pool",
            "ok",
            f"{active} active pool numbers ({waiting} in quarantine).",
            f"有効なプール番号 {active} 件（隔離中 {waiting} 件）。",
        )
    domains = registry.pool_domains("active")
    if not domains:
        report.add(
            "pool",
            "fail",
            "No active mail domain in the pool; add one with `canary pool add-domain`.",
            "プールに有効なメールドメインがありません。"
            "`canary pool add-domain` で追加してください。",
        )
    else:
        names = ", ".join(d.domain for d in domains[:5])
        report.add(
            "pool",
            "ok",
            f"{len(domains)} active mail domains ({names}).",
            f"有効なメールドメイン {len(domains)} 件（{names}）。",
        )


def _domains(registry: Registry, settings: Settings, report: DoctorReport, resolver: Any) -> None:
    from canary.domainhealth import check_all, resolver_for

    # Short lookups: the doctor is run by a person waiting at a terminal.
    res = resolver or resolver_for(settings.dns_resolver, lifetime=TIMEOUT * 2)
    for health in check_all(registry, settings, res):
        if health.blind:
            report.add("domains", "fail", str(health.finding("en")), str(health.finding("ja")))
        else:
            report.add(
                "domains", "ok", f"{health.domain} is healthy.", f"{health.domain} は正常です。"
            )


def _listeners(settings: Settings, report: DoctorReport, timeout: float) -> None:
    probes = [
        ("http", settings.listen, probe_http, "the web server (`canary serve`)", "Web サーバー"),
        ("smtp", settings.smtp_listen, probe_smtp, "the SMTP listener", "SMTP リスナー"),
        ("dns", settings.dns_listen, probe_dns, "the DNS listener", "DNS リスナー"),
    ]
    for check, listen, probe, en, ja in probes:
        why = probe(listen, timeout)
        if why is None:
            report.add(
                check,
                "ok",
                f"{en[0].upper() + en[1:]} answers at {listen}.",
                f"{ja}応答あり（{listen}）。",
            )
        else:
            report.add(
                check,
                "fail",
                f"Nothing healthy answers at {listen} ({why}); start {en} or fix its address "
                "setting.",
                f"{listen} の{ja}が応答しません（{why}）。"
                "起動するか、アドレス設定を直してください。",
            )


def _scheduler(registry: Registry, report: DoctorReport, now: datetime, slack: timedelta) -> None:
    # The job store, not the job runs, tells whether the scheduler lives: a job run by hand
    # (`jobs run --once`) is a run too, but only a running scheduler moves the next run
    # times on, so none of them lies more than a little in the past.
    due = {name: at for name, at in jobruns.scheduled(registry).items() if at is not None}
    late = sorted((at, name) for name, at in due.items() if now - at > slack)
    if not due:
        report.add(
            "scheduler",
            "fail",
            "The scheduler has never run on this registry; start it with `canary jobs run`.",
            "スケジューラーがこのレジストリで一度も動いていません。"
            "`canary jobs run` で起動してください。",
        )
    elif late:
        at, name = late[0]
        report.add(
            "scheduler",
            "fail",
            f"The scheduler is not running: {name} was due at {at:%Y-%m-%d %H:%M} UTC and "
            "did not run; start `canary jobs run` again.",
            f"スケジューラーが動いていません（{name} は {at:%Y-%m-%d %H:%M} UTC に実行予定で"
            "したが未実行）。`canary jobs run` を起動し直してください。",
        )
    else:
        at, name = min((at, name) for name, at in due.items())
        report.add(
            "scheduler",
            "ok",
            f"The scheduler is running: next {name} at {at:%Y-%m-%d %H:%M} UTC.",
            f"スケジューラー稼働中。次は {name}（{at:%Y-%m-%d %H:%M} UTC）。",
        )
    for name, run in sorted(jobruns.last_finished(registry).items()):
        if run.outcome == "failed":
            report.add(
                f"job:{name}",
                "fail",
                f"The last {name} run failed ({run.started_at:%Y-%m-%d %H:%M} UTC): {run.error}",
                f"前回の {name} は失敗しました（{run.started_at:%Y-%m-%d %H:%M} UTC）: {run.error}",
            )


def diagnose(
    settings: Settings,
    *,
    now: datetime | None = None,
    timeout: float = TIMEOUT,
    resolver: Any = None,
    scheduler_slack: timedelta = SCHEDULER_SLACK,
) -> DoctorReport:
    """Run every check; ``scheduler_slack``: how late a scheduled job may be before the
    scheduler counts as stopped."""
    report = DoctorReport()
    moment = now or datetime.now(UTC)
    registry = _registry(settings, report)
    try:
        if registry is not None:
            _pool(registry, settings, report)
            try:
                _domains(registry, settings, report, resolver)
            except CanaryError as exc:  # a malformed address or resolver setting
                report.add("domains", "fail", str(exc), str(exc))
        _listeners(settings, report, timeout)
        if registry is not None:
            _scheduler(registry, report, moment, scheduler_slack)
    finally:
        if registry is not None:
            registry.close()
    return report
