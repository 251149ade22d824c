"""canary jobs run, canary jobs list: the scheduled monitors (APScheduler, imported inside
the commands that need it)."""

from __future__ import annotations

import logging
from datetime import datetime

import click

from canary.cli.common import AppContext, handle_errors, print_json


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M %Z") if moment else "—"


def _brief(summary: object) -> str:
    """A job run's summary in a few words: its counts."""
    if not isinstance(summary, dict):
        return ""
    parts = [
        f"{k} {v}" for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool)
    ]
    reason = summary.get("reason")
    if isinstance(reason, str):
        parts.append(reason)
    return ", ".join(parts[:6])


def _file_lines(summary: object, most: int = 20) -> list[str]:
    """One line per file a folder job handled, then the first lines of its reason."""
    files = summary.get("files") if isinstance(summary, dict) else None
    if not isinstance(files, list):
        return []
    lines: list[str] = []
    for f in files[:most]:
        if not isinstance(f, dict):
            continue
        where = f" -> {f['moved_to']}" if f.get("moved_to") else ""
        lines.append(f"  {f.get('file')}: {f.get('status')}{where}")
        reason = str(f.get("reason") or "").splitlines()
        lines += [f"      {line}" for line in reason[:4]]
    if len(files) > most:
        lines.append(f"  ... and {len(files) - most} more (--json lists them all)")
    return lines


@click.group("jobs")
def jobs_group() -> None:
    """The scheduled monitors: drop folders, outbox, mailbox, domains, pool, digest.

    \b
    canary jobs run              run them all until stopped (Ctrl-C or SIGTERM)
    canary jobs run --once JOB   run one now, by hand
    canary jobs list             schedules, next and last runs, last outcomes
    Schedules and folders: CANARY_JOBS_CONFIG (a TOML file) and CANARY_*_FOLDER.
    """


@jobs_group.command("run")
@click.option("--once", "once", metavar="JOB", help="Run this one job now and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the outcome as JSON.")
@click.pass_obj
@handle_errors
def jobs_run(app: AppContext, once: str | None, as_json: bool) -> None:
    """Run the monitors in the foreground until Ctrl-C or SIGTERM.

    Jobs are kept in the registry database: a restart keeps one copy of each and catches
    up, once, a run missed while the process was down. Running jobs finish before it stops.
    With --once JOB, run one job now and exit non-zero if it failed.
    """
    from jobs.config import load_config

    config = load_config(app.settings)
    if once:
        from jobs.scheduler import run_once

        # The outcome is printed below; the log keeps only what it alone can say.
        logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
        result = run_once(app.settings, once, config)
        if as_json:
            print_json(result)
        else:
            err = f": {result['error']}" if result.get("error") else ""
            click.echo(f"{once}: {result['outcome']}{err}")
            summary = _brief(result.get("summary"))
            if summary:
                click.echo(f"  {summary}")
            for line in _file_lines(result.get("summary")):
                click.echo(line)
        if result["outcome"] == "failed":
            click.get_current_context().exit(1)
        return
    from jobs.scheduler import run_forever

    if not config.enabled:
        click.echo("canary: no job is enabled; see `canary jobs list` for why.", err=True)
        click.get_current_context().exit(1)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # APScheduler's own INFO lines ("Adding job tentatively", "Running job") repeat what the
    # scheduler's start line and each job's outcome line say; its warnings and errors stay.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    count = run_forever(app.settings, config)
    click.echo(f"Scheduler stopped ({count} jobs).", err=True)


@jobs_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@click.pass_obj
@handle_errors
def jobs_list(app: AppContext, as_json: bool) -> None:
    """Each job: its schedule, next run, last run and last outcome."""
    from jobs.scheduler import list_jobs

    rows = list_jobs(app.settings, app.registry())
    if as_json:
        print_json({"jobs": [r.as_json() for r in rows]})
        return
    # Two lines a job, no table: the reason a job is off names the variable to set, and a
    # table on an 80-column terminal would cut or fold it.
    width = max(len(r.spec.name) for r in rows) + 2
    pad = " " * width
    for r in rows:
        if r.spec.enabled:
            when = f"{r.spec.describe()}, next {_when(r.next_run)}" if r.next_run else ""
            head = when or f"{r.spec.describe()} (when the scheduler runs)"
        else:
            head = f"off: {r.spec.off_reason}"
        click.echo(f"{r.spec.name:<{width}}{head}")
        last = r.last
        if last is None:
            click.echo(f"{pad}last: never ran")
            continue
        outcome = (
            click.style(last.outcome, fg="red", bold=True)
            if last.outcome == "failed"
            else last.outcome
        )
        note = last.error or _brief(last.summary)
        click.echo(
            f"{pad}last: {_when(last.started_at)} {outcome}" + (f" - {note}" if note else "")
        )
    if all(r.next_run is None for r in rows if r.spec.enabled):
        click.echo("The scheduler has not run yet: start it with `canary jobs run`.")
