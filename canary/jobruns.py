"""What the monitors did: one ``job_runs`` row per run of a scheduled job.

A run is written as ``running`` when it starts and finished as ``ok``, ``failed`` or
``skipped`` with a small JSON summary and, for a failure, the sentence that says why. The
scheduler's ``jobs list``, the daily digest and ``canary doctor`` read them back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from canary.events import aware
from canary.registry import Registry
from canary.registry.models import JobRun

OUTCOMES = ("running", "ok", "failed", "skipped")
ERROR_LIMIT = 2000  # characters of an error kept: a sentence, never a payload


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


def latest_start(registry: Registry) -> datetime | None:
    """When any job last started: the scheduler's heartbeat."""
    with _session(registry) as s:
        at = s.execute(select(func.max(JobRun.started_at))).scalar()
        return aware(at) if at is not None else None
