"""What the monitors did: one ``job_runs`` row per run of a scheduled job.

A run is written as ``running`` when it starts and finished as ``ok``, ``failed`` or
``skipped`` with a small JSON summary and, for a failure, the sentence that says why. The
scheduler's ``jobs list``, the daily digest and ``canary doctor`` read them back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from canary.errors import CanaryError
from canary.events import aware
from canary.registry import Registry
from canary.registry.incidents import IncidentRecord
from canary.registry.models import JobRun
from canary.settings import Settings

OUTCOMES = ("running", "ok", "failed", "skipped")
ERROR_LIMIT = 2000  # characters of an error kept: a sentence, never a payload
JOB_STORE_TABLE = "apscheduler_jobs"  # the scheduler's jobs, beside the registry's tables


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobRunRecord:
    id: int
    job: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    summary: dict[str, object]
    error: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "job": self.job,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "outcome": self.outcome,
            "summary": self.summary,
            "error": self.error,
        }


@contextmanager
def _session(registry: Registry) -> Iterator[Session]:
    # Not registry.transaction(): a job run is no audit event and must not queue on the
    # audit chain's lock behind a long seed.
    with Session(registry.engine, expire_on_commit=False) as s, s.begin():
        yield s


def _record(row: JobRun) -> JobRunRecord:
    return JobRunRecord(
        id=int(row.id),
        job=row.job,
        started_at=aware(row.started_at),
        finished_at=aware(row.finished_at) if row.finished_at is not None else None,
        outcome=row.outcome,
        summary=dict(row.summary or {}),
        error=row.error,
    )


def start_run(registry: Registry, job: str, at: datetime | None = None) -> int:
    """Write a ``running`` row for a job that starts now; returns its id."""
    with _session(registry) as s:
        row = JobRun(job=job, started_at=at or _now(), outcome="running", summary={})
        s.add(row)
        s.flush()
        return int(row.id)


def finish_run(
    registry: Registry,
    run_id: int,
    outcome: str,
    summary: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Close a run as ``ok``, ``failed`` or ``skipped``."""
    if outcome not in OUTCOMES[1:]:
        raise ValueError(f"unknown job outcome {outcome!r}")
    with _session(registry) as s:
        s.execute(
            update(JobRun)
            .where(JobRun.id == run_id)
            .values(
                finished_at=_now(),
                outcome=outcome,
                summary=dict(summary or {}),
                error=error[:ERROR_LIMIT] if error else None,
            )
        )


def last_runs(registry: Registry) -> dict[str, JobRunRecord]:
    """The newest run of every job that ever ran, by job name."""
    with _session(registry) as s:
        newest = select(JobRun.job, func.max(JobRun.id).label("id")).group_by(JobRun.job).subquery()
        rows = s.execute(select(JobRun).join(newest, newest.c.id == JobRun.id)).scalars()
        return {r.job: _record(r) for r in rows}


def last_finished(registry: Registry) -> dict[str, JobRunRecord]:
    """The newest finished run (ok, failed or skipped) of every job, by job name."""
    with _session(registry) as s:
        newest = (
            select(JobRun.job, func.max(JobRun.id).label("id"))
            .where(JobRun.outcome != "running")
            .group_by(JobRun.job)
            .subquery()
        )
        rows = s.execute(select(JobRun).join(newest, newest.c.id == JobRun.id)).scalars()
        return {r.job: _record(r) for r in rows}


def runs(
    registry: Registry,
    job: str | None = None,
    since: datetime | None = None,
    outcome: str | None = None,
    limit: int | None = 100,
) -> list[JobRunRecord]:
    """Runs, newest first, optionally of one job, since a time, with one outcome."""
    with _session(registry) as s:
        q = select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc())
        if job:
            q = q.where(JobRun.job == job)
        if since is not None:
            q = q.where(JobRun.started_at >= since)
        if outcome:
            q = q.where(JobRun.outcome == outcome)
        if limit:
            q = q.limit(limit)
        return [_record(r) for r in s.execute(q).scalars()]


def scheduled(registry: Registry) -> dict[str, datetime | None]:
    """Each job in the scheduler's job store and its next run time (None: paused), read
    with plain SQL so that ``canary/`` needs no APScheduler; {} before the scheduler ever
    ran. While the scheduler runs, no next run time lies far in the past."""
    from sqlalchemy import Float, String, column, inspect, table

    with registry.engine.connect() as conn:
        if not inspect(conn).has_table(JOB_STORE_TABLE):
            return {}
        store = table(JOB_STORE_TABLE, column("id", String), column("next_run_time", Float))
        rows = conn.execute(select(store.c.id, store.c.next_run_time)).all()
    return {
        str(job): datetime.fromtimestamp(float(at), UTC) if at is not None else None
        for job, at in rows
    }


# -- the daily digest ---------------------------------------------------------------------

CLASS_JA = {"suspicious": "不審", "expected": "想定内", "noise": "ノイズ"}
OUTCOME_JA = {"ok": "正常", "failed": "失敗", "skipped": "スキップ", "running": "実行中"}


@dataclass(frozen=True)
class Digest:
    """Events, open incidents and job health of one period (a day)."""

    since: datetime
    until: datetime
    events: dict[str, int]  # classification -> count
    channels: dict[str, int]  # channel -> count
    incidents: list[IncidentRecord]  # open, most likely first
    jobs: dict[str, JobRunRecord]  # newest finished run of each job
    failures: list[JobRunRecord]  # failed runs in the period, newest first
    files_failed: dict[str, int] = field(default_factory=dict)  # folder job -> files

    @property
    def subject(self) -> str:
        bad = len(self.failures)
        return (
            f"Canary digest {self.until:%Y-%m-%d}: {self.events.get('suspicious', 0)} "
            f"suspicious, {len(self.incidents)} open incidents, {bad} failed job runs"
        )

    def text(self, lang: str = "en") -> str:
        return _text_ja(self) if lang == "ja" else _text_en(self)

    def as_json(self) -> dict[str, object]:
        return {
            "type": "canary.job_digest",
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "events": self.events,
            "channels": self.channels,
            "incidents": [i.as_json() for i in self.incidents],
            "jobs": {name: r.as_json() for name, r in sorted(self.jobs.items())},
            "failures": [r.as_json() for r in self.failures],
            "files_failed": self.files_failed,
        }


def _incident_line(i: IncidentRecord) -> str:
    what = f"export {i.export}" if i.export else f"account {i.account} ({', '.join(i.candidates)})"
    where = f" {i.client} / {i.list_name}," if i.client else ""
    mark = " ATTRIBUTED" if i.attributed else ""
    return (
        f"  {i.code} {what}{where} account {i.account}: {i.events} events, last "
        f"{i.last_seen:%Y-%m-%d %H:%M} UTC, confidence {i.confidence:.3f}{mark}"
    )


def _text_en(d: Digest) -> str:
    total = sum(d.events.values())
    counts = ", ".join(f"{d.events.get(c, 0)} {c}" for c in ("suspicious", "expected", "noise"))
    lines = [
        f"Canary digest {d.since:%Y-%m-%d %H:%M} to {d.until:%Y-%m-%d %H:%M} UTC",
        f"Events: {total} ({counts}).",
    ]
    if d.channels:
        lines.append("  by channel: " + ", ".join(f"{c} {n}" for c, n in d.channels.items()))
    lines.append(f"Open incidents: {len(d.incidents)}.")
    lines += [_incident_line(i) for i in d.incidents[:20]]
    lines.append(f"Monitors: {len(d.failures)} failed runs in the period.")
    for r in d.failures[:20]:
        lines.append(f"  FAILED {r.job} at {r.started_at:%Y-%m-%d %H:%M} UTC: {r.error}")
    for name, r in sorted(d.jobs.items()):
        lines.append(f"  {name}: last {r.outcome} at {r.started_at:%Y-%m-%d %H:%M} UTC")
    for name, n in sorted(d.files_failed.items()):
        lines.append(f"  {name}: {n} files could not be taken; see failed/ and the reasons")
    return "\n".join(lines)


def _text_ja(d: Digest) -> str:
    total = sum(d.events.values())
    counts = "、".join(f"{CLASS_JA[c]} {d.events.get(c, 0)}" for c in CLASS_JA)
    lines = [
        f"カナリア日次報告 {d.since:%Y-%m-%d %H:%M} から {d.until:%Y-%m-%d %H:%M} (UTC)",
        f"イベント: {total} 件（{counts}）。",
        f"未解決インシデント: {len(d.incidents)} 件。",
    ]
    for i in d.incidents[:20]:
        target = f"払い出し {i.export}" if i.export else f"アカウント {i.account}"
        mark = "（特定）" if i.attributed else ""
        lines.append(f"  {i.code} {target}: {i.events} 件、確度 {i.confidence:.3f}{mark}")
    lines.append(f"監視ジョブ: 期間中の失敗 {len(d.failures)} 回。")
    for r in d.failures[:20]:
        lines.append(f"  失敗 {r.job} {r.started_at:%Y-%m-%d %H:%M} UTC: {r.error}")
    for name, r in sorted(d.jobs.items()):
        lines.append(f"  {name}: 最終 {OUTCOME_JA.get(r.outcome, r.outcome)}")
    for name, n in sorted(d.files_failed.items()):
        lines.append(f"  {name}: 処理できないファイル {n} 件（failed/ の理由を確認）")
    return "\n".join(lines)


def build_digest(registry: Registry, now: datetime | None = None, hours: int = 24) -> Digest:
    """What the last ``hours`` brought: events received, open incidents, job health."""
    from canary.registry.models import Event

    until = aware(now) if now is not None else _now()
    since = until - timedelta(hours=hours)
    with _session(registry) as s:
        rows = s.execute(
            select(Event.classification, Event.channel, func.count(Event.id))
            .where(Event.received_at >= since, Event.received_at <= until)
            .group_by(Event.classification, Event.channel)
        ).all()
    events: dict[str, int] = {}
    channels: dict[str, int] = {}
    for classification, channel, n in rows:
        events[classification] = events.get(classification, 0) + int(n)
        channels[channel] = channels.get(channel, 0) + int(n)
    files_failed: dict[str, int] = {}
    for r in runs(registry, since=since, outcome="ok", limit=None):
        failed = r.summary.get("failed")
        if isinstance(failed, int) and "files" in r.summary and failed:
            files_failed[r.job] = files_failed.get(r.job, 0) + failed
    return Digest(
        since=since,
        until=until,
        events=events,
        channels=dict(sorted(channels.items())),
        incidents=registry.incidents("open"),
        jobs=last_finished(registry),
        failures=runs(registry, since=since, outcome="failed", limit=200),
        files_failed=files_failed,
    )


def deliver_digest(
    digest: Digest, settings: Settings, outputs: Sequence[Any] | None = None
) -> tuple[list[str], list[str]]:
    """Send the digest through ``canary.alerts`` to the configured outputs (mail, webhooks,
    SIEM); returns the outputs that took it and the errors of those that did not. With no
    output configured it is printed as one JSON line on stdout. CanaryError if an output is
    misconfigured or every output refused it."""
    import json

    from canary.alerts import notify, outputs_from_settings

    targets = outputs_from_settings(settings) if outputs is None else list(outputs)
    if not targets:
        print(json.dumps(digest.as_json(), ensure_ascii=False, default=str), flush=True)
        return [], []
    text = digest.text("en") + "\n\n" + digest.text("ja")
    results = notify(settings, digest.subject, text, digest.as_json(), targets)
    took = [name for name, why in results.items() if why is None]
    errors = [f"{name}: {why}" for name, why in results.items() if why is not None]
    if errors and not took:
        raise CanaryError("The digest reached no output: " + "; ".join(errors))
    return took, errors


def prune_runs(registry: Registry, keep: timedelta, now: datetime | None = None) -> int:
    """Delete finished runs older than ``keep`` (the newest run of each job stays)."""
    cutoff = (aware(now) if now is not None else _now()) - keep
    newest = list(last_runs(registry).values())
    with _session(registry) as s:
        q = delete(JobRun).where(JobRun.started_at < cutoff, JobRun.outcome != "running")
        if newest:
            q = q.where(JobRun.id.not_in([r.id for r in newest]))
        result: Any = s.execute(q)
        return int(result.rowcount or 0)
