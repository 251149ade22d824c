"""Which monitors run when: built-in schedules, a TOML file (``CANARY_JOBS_CONFIG``) and the
``CANARY_*`` settings that override it (folders, digest time).

The file, every key optional::

    [scheduler]
    timezone = "Asia/Tokyo"        # default: the machine's
    misfire_grace_hours = 168      # a run missed by less than this is caught up once

    [jobs.drop_folder]
    every = "5m"                   # or cron = "*/5 * * * *", or at = "08:00" (daily)
    folder = "/srv/canary/drop"
    settle_seconds = 10            # a file modified more recently is still being written
    gap_seconds = 3                # between the two looks at a file's size and time

    [jobs.mailbox]
    enabled = false

A folder job runs only with a folder, the mailbox only with ``CANARY_IMAP_URL``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary.errors import InputError
from canary.settings import Settings


@dataclass(frozen=True)
class JobDefault:
    ref: str  # textual reference the job store persists
    schedule: tuple[str, str]  # (every | cron | at, value)
    help: str
    folder: str | None = None  # the Settings field of its folder, for folder jobs


JOBS: dict[str, JobDefault] = {
    "drop_folder": JobDefault(
        "jobs.folders:drop_folder", ("every", "5m"), "scan broker lists", "drop_folder"
    ),
    "cdr_import": JobDefault(
        "jobs.folders:cdr_import", ("every", "15m"), "import call-detail files", "cdr_folder"
    ),
    "outbox": JobDefault(
        "jobs.folders:outbox", ("every", "1m"), "seed lists for recipients", "outbox_folder"
    ),
    "mailbox": JobDefault("jobs.monitors:mailbox", ("every", "5m"), "poll the IMAP mailbox"),
    "alerts": JobDefault("jobs.monitors:alerts", ("every", "1m"), "deliver pending alerts"),
    "domains": JobDefault("jobs.monitors:domains", ("cron", "30 6 * * *"), "check canary domains"),
    "pool": JobDefault("jobs.upkeep:pool", ("cron", "0 4 * * *"), "quarantine and burnt numbers"),
    "seal": JobDefault("jobs.upkeep:seal", ("every", "1h"), "seal events into the audit chain"),
    "digest": JobDefault("jobs.upkeep:digest", ("at", "08:00"), "daily digest"),
}
DEFAULT_GRACE_HOURS = 168.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_KEYS = {"every", "cron", "at", "enabled", "folder", "settle_seconds", "gap_seconds"}
_FOLDER_KEYS = {"folder", "settle_seconds", "gap_seconds"}


@dataclass(frozen=True)
class JobSpec:
    name: str
    ref: str
    kind: str  # every | cron | at
    value: str
    enabled: bool
    off_reason: str | None = None  # why a job does not run, for `canary jobs list`
    kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.kind} {self.value}"

    def trigger(self, timezone: Any) -> Any:
        """The APScheduler trigger of this schedule."""
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        if self.kind == "every":
            return IntervalTrigger(seconds=parse_every(self.value), timezone=timezone)
        if self.kind == "at":
            hour, minute = parse_at(self.value)
            return CronTrigger(hour=hour, minute=minute, timezone=timezone)
        return CronTrigger.from_crontab(self.value, timezone=timezone)

    def period_seconds(self) -> float:
        """How often the job runs, at least (a day for cron and daily jobs)."""
        return parse_every(self.value) if self.kind == "every" else 86400.0


@dataclass(frozen=True)
class JobsConfig:
    jobs: list[JobSpec]
    timezone: str | None = None
    misfire_grace_hours: float = DEFAULT_GRACE_HOURS
    source: str | None = None  # the TOML file read, if any

    def job(self, name: str) -> JobSpec:
        for spec in self.jobs:
            if spec.name == name:
                return spec
        raise InputError(f"There is no job {name!r}; the jobs are {', '.join(JOBS)}.")

    @property
    def enabled(self) -> list[JobSpec]:
        return [j for j in self.jobs if j.enabled]


def parse_every(value: str) -> int:
    """Seconds of an interval such as ``90s``, ``5m``, ``2h`` or ``1d``."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", value)
    if not m or int(m.group(1)) == 0:
        raise InputError(f"every = {value!r} is not an interval; write it like 30s, 5m, 2h or 1d.")
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_at(value: str) -> tuple[int, int]:
    """(hour, minute) of a daily time such as ``08:00``."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise InputError(f"at = {value!r} is not a time of day; write it like 08:00.")
    return int(m.group(1)), int(m.group(2))


def _read(path: str) -> dict[str, Any]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(
            f"CANARY_JOBS_CONFIG names {file}, which does not exist; create it or unset it."
        )
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{file} is not valid TOML ({exc}); fix it.") from None


def _job(name: str, table: dict[str, Any], settings: Settings) -> JobSpec:
    default = JOBS[name]
    unknown = set(table) - _KEYS
    if unknown:
        raise InputError(
            f"[jobs.{name}] has unknown keys {', '.join(sorted(unknown))}; "
            f"use {', '.join(sorted(_KEYS))}."
        )
    given = [k for k in ("every", "cron", "at") if k in table]
    if len(given) > 1:
        raise InputError(f"[jobs.{name}] gives {' and '.join(given)}; keep one schedule.")
    kind, value = (given[0], str(table[given[0]])) if given else default.schedule
    if name == "digest" and settings.digest_time:
        kind, value = "at", settings.digest_time
    enabled, off = table.get("enabled", True), None
    if not isinstance(enabled, bool):
        raise InputError(f"[jobs.{name}] enabled must be true or false, not {enabled!r}.")
    if not isinstance(table.get("folder", ""), str):
        raise InputError(f'[jobs.{name}] folder must be a path in quotes, like "/srv/drop".')
    if not enabled:
        off = "enabled = false"
    kwargs: dict[str, Any] = {}
    if default.folder:
        folder = getattr(settings, default.folder) or table.get("folder") or ""
        kwargs["folder"] = str(folder)
        for key in ("settle_seconds", "gap_seconds"):
            if key in table:
                seconds = table[key]
                if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                    raise InputError(f"[jobs.{name}] {key} must be a number of seconds, 0 or more.")
                kwargs[key.split("_")[0]] = float(seconds)
        if enabled and not folder:
            env = f"CANARY_{default.folder.upper()}"
            enabled, off = False, f"set {env} (or folder in [jobs.{name}])"
    elif set(table) & _FOLDER_KEYS:
        raise InputError(f"[jobs.{name}] takes no folder; it is not a folder job.")
    if name == "mailbox" and enabled and not settings.imap_url:
        enabled, off = False, "set CANARY_IMAP_URL"
    outputs = (settings.alert_email_to, settings.alert_webhooks, settings.alert_siem)
    if name == "alerts" and enabled and not any(outputs):
        enabled, off = False, "no alert output (CANARY_ALERT_EMAIL_TO, _WEBHOOKS or _SIEM)"
    spec = JobSpec(name, default.ref, kind, value, enabled, off, kwargs)
    if kind == "every":
        parse_every(value)
    elif kind == "at":
        parse_at(value)
    else:
        try:
            spec.trigger(None)
        except ValueError as exc:
            raise InputError(
                f"[jobs.{name}] cron = {value!r} is not a crontab line ({exc}); write "
                'five fields like "30 6 * * *" (weekdays by name: mon-sun).'
            ) from None
    return spec


def load_config(settings: Settings) -> JobsConfig:
    """The monitors' schedules from the built-in defaults, the file and the settings."""
    data = _read(settings.jobs_config) if settings.jobs_config else {}
    unknown = set(data) - {"scheduler", "jobs"}
    if unknown:
        raise InputError(
            f"The jobs config has unknown sections {', '.join(sorted(unknown))}; "
            "use [scheduler] and [jobs.NAME]."
        )
    sched = data.get("scheduler", {})
    tables = data.get("jobs", {})
    strangers = set(tables) - set(JOBS)
    if strangers:
        raise InputError(
            f"The jobs config names unknown jobs {', '.join(sorted(strangers))}; "
            f"the jobs are {', '.join(JOBS)}."
        )
    grace = sched.get("misfire_grace_hours", DEFAULT_GRACE_HOURS)
    if not isinstance(grace, int | float) or isinstance(grace, bool) or grace <= 0:
        raise InputError("misfire_grace_hours must be a number of hours above 0.")
    timezone = sched.get("timezone")
    if timezone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(str(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise InputError(
                f"timezone = {timezone!r} is not a time zone; write it like Asia/Tokyo."
            ) from None
    return JobsConfig(
        jobs=[_job(name, tables.get(name, {}), settings) for name in JOBS],
        timezone=str(timezone) if timezone else None,
        misfire_grace_hours=float(grace),
        source=settings.jobs_config or None,
    )
