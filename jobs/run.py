"""The wrapper every job runs in: open the registry from the settings, write a ``running``
job run, call one library function, finish the run as ok, failed or skipped. Nothing a job
does escapes into the scheduler: an error becomes a failed run with its sentence.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from canary import jobruns
from canary.errors import CanaryError
from canary.registry import Registry
from canary.settings import Settings

log = logging.getLogger("canary.jobs")

_settings: Settings | None = None
_lock = threading.Lock()


def use_settings(settings: Settings | None) -> None:
    """Settings the jobs of this process use (the scheduler's, from its command line)."""
    global _settings
    with _lock:
        _settings = settings


def current_settings() -> Settings:
    """The process's settings; the environment's if none were given. Jobs take their
    settings from here, never from the job store, so no secret is ever pickled into it."""
    with _lock:
        return _settings if _settings is not None else Settings.from_env()


@dataclass
class Outcome:
    """What a job's work came to."""

    outcome: str = "ok"  # ok | failed | skipped
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {"outcome": self.outcome, "summary": self.summary, "error": self.error}


class Unavailable(CanaryError):
    """A job's library function is not part of this installation."""


Work = Callable[[Registry, Settings], Outcome]


def sentence(exc: BaseException) -> str:
    """An error as one line for a person: the library's own sentence where it has one."""
    if isinstance(exc, CanaryError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def run_job(name: str, work: Work) -> dict[str, object]:
    """Run one job's work in a recorded job run; returns the outcome as JSON."""
    settings = current_settings()
    try:
        registry = Registry(
            settings.db, actor=f"jobs/{name}", event_threshold=settings.event_threshold
        )
    except CanaryError as exc:
        log.error("%s: %s", name, exc)
        return {"job": name, **Outcome("failed", error=str(exc)).as_json()}
    try:
        try:
            registry.require_ready()
            run_id = jobruns.start_run(registry, name)
        except Exception as exc:  # no run can be recorded: say so in the log at least
            log.error("%s: cannot record a job run: %s", name, sentence(exc))
            return {"job": name, **Outcome("failed", error=sentence(exc)).as_json()}
        try:
            result = work(registry, settings)
        except Exception as exc:
            if not isinstance(exc, CanaryError):
                log.exception("%s failed", name)
            result = Outcome("failed", error=sentence(exc))
        try:
            jobruns.finish_run(registry, run_id, result.outcome, result.summary, result.error)
        except Exception as exc:
            log.error("%s: cannot finish job run %s: %s", name, run_id, sentence(exc))
        level = logging.WARNING if result.outcome == "failed" else logging.INFO
        log.log(level, "%s %s%s", name, result.outcome, f": {result.error}" if result.error else "")
        return {"job": name, "run_id": run_id, **result.as_json()}
    finally:
        registry.close()
