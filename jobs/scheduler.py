"""One scheduler process for all monitors (APScheduler 3.11), its jobs kept in the registry
database so that a restart keeps one copy of each and catches up, once, what it missed.

On every start each configured job is written again (``replace_existing``) under its name,
by textual reference, so the store can always rebuild it. A job whose schedule did not
change keeps its stored next run time: if the process was down at that time, the run is
caught up once on start (``coalesce``) when it is late by less than the misfire grace.
Jobs no longer configured are removed from the store.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from canary import jobruns
from canary.registry import Registry
from canary.settings import Settings
from jobs.config import JobsConfig, JobSpec, load_config
from jobs.run import use_settings

log = logging.getLogger("canary.jobs")

TABLE = jobruns.JOB_STORE_TABLE
WORKERS = 4


def job_store(registry: Registry) -> Any:
    """The job store: a table beside the registry's, on the same engine (and so the same
    PostgreSQL schema or search path)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    return SQLAlchemyJobStore(engine=registry.engine, tablename=TABLE)


def stored_jobs(registry: Registry) -> dict[str, Any]:
    """The jobs in the store, by id ({} before the scheduler ever ran)."""
    from sqlalchemy import inspect

    with registry.engine.connect() as conn:
        if not inspect(conn).has_table(TABLE):
            return {}
    return {job.id: job for job in job_store(registry).get_all_jobs()}


def build_scheduler(
    settings: Settings, config: JobsConfig, registry: Registry, scheduler_class: Any = None
) -> Any:
    """A scheduler with the configured jobs added, ready to ``start()``."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.blocking import BlockingScheduler

    registry.require_ready()
    store = job_store(registry)
    store.jobs_t.create(registry.engine, checkfirst=True)
    existing = {job.id: job for job in store.get_all_jobs()}
    wanted = {spec.name for spec in config.enabled}
    for job_id in set(existing) - wanted:
        store.remove_job(job_id)
        log.info("removed job %s: no longer configured", job_id)
    scheduler = (scheduler_class or BlockingScheduler)(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(WORKERS)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(config.misfire_grace_hours * 3600),
        },
        **({"timezone": config.timezone} if config.timezone else {}),
    )
    use_settings(settings)
    for spec in config.enabled:
        trigger = spec.trigger(scheduler.timezone)
        extra: dict[str, Any] = {}
        old = existing.get(spec.name)
        if old is not None and str(old.trigger) == str(trigger) and old.next_run_time:
            extra["next_run_time"] = old.next_run_time  # missed while down: caught up once
        scheduler.add_job(
            spec.ref,
            trigger,
            id=spec.name,
            name=spec.name,
            kwargs=spec.kwargs,
            replace_existing=True,
            **extra,
        )
    return scheduler


def run_forever(settings: Settings, config: JobsConfig | None = None) -> int:
    """Run the scheduler in the foreground until SIGTERM or SIGINT; returns the job count."""
    config = config or load_config(settings)
    registry = Registry(settings.db, actor="jobs", event_threshold=settings.event_threshold)
    scheduler = build_scheduler(settings, config, registry)
    stopping: list[threading.Thread] = []

    def stop(signum: int, _frame: object) -> None:
        if stopping:
            return
        log.info("%s: stopping after the running jobs finish", signal.Signals(signum).name)
        # Shut down from another thread: the handler may have interrupted the scheduler's
        # own loop, which holds the job store lock.
        t = threading.Thread(target=_shutdown, args=(scheduler,), name="canary-jobs-stop")
        stopping.append(t)
        t.start()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info(
            "scheduler started with %d jobs: %s",
            len(config.enabled),
            ", ".join(f"{j.name} ({j.describe()})" for j in config.enabled),
        )
        scheduler.start()  # blocks until shut down
    finally:
        for t in stopping:
            t.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
        use_settings(None)
        registry.close()
    return len(config.enabled)


def _shutdown(scheduler: Any) -> None:
    from apscheduler.schedulers import SchedulerNotRunningError

    with contextlib.suppress(SchedulerNotRunningError):
        scheduler.shutdown(wait=True)


def run_once(settings: Settings, name: str, config: JobsConfig | None = None) -> dict[str, object]:
    """Run one job now, in this process, as the scheduler would; returns its outcome."""
    from apscheduler.util import ref_to_obj

    config = config or load_config(settings)
    spec = config.job(name)
    use_settings(settings)
    try:
        result: dict[str, object] = ref_to_obj(spec.ref)(**spec.kwargs)
    finally:
        use_settings(None)
    return result


@dataclass(frozen=True)
class JobRow:
    """One line of ``canary jobs list``."""

    spec: JobSpec
    next_run: datetime | None
    last: jobruns.JobRunRecord | None

    def as_json(self) -> dict[str, object]:
        last = self.last
        return {
            "job": self.spec.name,
            "schedule": self.spec.describe(),
            "enabled": self.spec.enabled,
            "off_reason": self.spec.off_reason,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "last_run": last.started_at.isoformat() if last else None,
            "last_outcome": last.outcome if last else None,
            "last_error": last.error if last else None,
            "last_summary": last.summary if last else None,
        }


def list_jobs(settings: Settings, registry: Registry) -> list[JobRow]:
    """Every known job: its schedule, next run (from the store) and last run."""
    config = load_config(settings)
    registry.require_ready()
    stored = stored_jobs(registry)
    last = jobruns.last_runs(registry)
    rows = []
    for spec in config.jobs:
        job = stored.get(spec.name)
        # A stored job whose schedule the config changed is replaced on the next start.
        same = (
            job is not None
            and spec.enabled
            and str(job.trigger) == str(spec.trigger(job.trigger.timezone))
        )
        next_run = job.next_run_time if same and job is not None else None
        rows.append(JobRow(spec, next_run, last.get(spec.name)))
    return rows
