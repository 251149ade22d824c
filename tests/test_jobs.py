"""The scheduler and its jobs on a real job store (SQLite and PostgreSQL): a restart keeps
the jobs and their next runs, a run missed while down is caught up once, SIGTERM stops it
gracefully; `jobs run --once` and `jobs list`; the folder jobs end to end. Pool maintenance
and the digest are in test_upkeep.py.

The scheduler runs with the very configuration code of ``canary jobs run``, as a
BackgroundScheduler in the test's process, and once as the real command in a subprocess
stopped by SIGTERM. Waits on threads and processes are bounded only to stop a hung test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text

from canary import jobruns
from canary.errors import InputError
from canary.registry import Registry
from canary.settings import Settings
from jobs.config import load_config
from jobs.run import Outcome, run_job, use_settings
from jobs.scheduler import TABLE, build_scheduler, job_store, list_jobs, run_once
from tests.conftest import REPO
from tests.listgen import people, write_csv

HANG = 120.0  # seconds after which a wait means the test hangs, not that it is slow


def _config(settings: Settings, tmp: Path, body: str) -> Settings:
    path = tmp / "jobs.toml"
    path.write_text(body, encoding="utf-8")
    return dataclasses.replace(settings, jobs_config=str(path))


def _runs(registry: Registry, job: str) -> list[jobruns.JobRunRecord]:
    return jobruns.runs(registry, job=job, limit=None)


@pytest.fixture
def hourly(registry: Registry, settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    yield _config(settings, tmp_path, '[jobs.pool]\nevery = "1h"\n[jobs.seal]\nevery = "1h"\n')
    use_settings(None)


def test_a_restart_keeps_one_copy_of_each_job_in_the_registry_database(
    registry: Registry, hourly: Settings, tmp_path: Path
) -> None:
    config = load_config(hourly)
    assert [j.name for j in config.enabled] == ["domains", "pool", "seal", "digest"]
    schedules = []
    for _start in range(2):
        sched = build_scheduler(hourly, config, registry, BackgroundScheduler)
        sched.start(paused=True)
        assert sorted(j.id for j in sched.get_jobs()) == ["digest", "domains", "pool", "seal"]
        sched.shutdown()
        schedules.append({j.id: j.next_run_time for j in job_store(registry).get_all_jobs()})
    # The restart kept each job's stored next run, rather than drawing a fresh schedule
    # (an hourly job restarted every 50 minutes would otherwise never run).
    first, second = schedules
    assert second == first and all(first.values())
    with registry.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar_one() == 4
        if registry.engine.dialect.name == "postgresql":
            # The job store's table lives in the registry's own schema (its search path).
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            where = conn.execute(
                text("SELECT table_schema FROM information_schema.tables WHERE table_name = :t"),
                {"t": TABLE},
            ).scalar_one()
            assert where == schema and schema.startswith("t_")
    # A job turned off in the config leaves the store on the next start.
    fewer = _config(hourly, tmp_path, '[jobs.pool]\nevery = "1h"\n[jobs.seal]\nenabled = false\n')
    sched = build_scheduler(fewer, load_config(fewer), registry, BackgroundScheduler)
    sched.start(paused=True)
    sched.shutdown()
    assert sorted(job_store(registry).get_all_jobs(), key=lambda j: j.id)[-1].id == "pool"
    assert "seal" not in {j.id for j in job_store(registry).get_all_jobs()}


def test_runs_missed_while_down_are_caught_up_once(registry: Registry, hourly: Settings) -> None:
    config = load_config(hourly)
    sched = build_scheduler(hourly, config, registry, BackgroundScheduler)
    sched.start(paused=True)
    sched.shutdown()
    # Down for three hours and a bit: three hourly runs of pool were missed.
    store = job_store(registry)
    job = store.lookup_job("pool")
    job.next_run_time = datetime.now(UTC) - timedelta(hours=3, minutes=5)
    store.update_job(job)

    sched = build_scheduler(hourly, config, registry, BackgroundScheduler)
    ran = threading.Event()
    sched.add_listener(lambda e: e.job_id == "pool" and ran.set(), EVENT_JOB_EXECUTED)
    sched.start()
    try:
        assert ran.wait(HANG), "the missed run of pool never ran"
    finally:
        sched.shutdown(wait=True)
    [run] = _runs(registry, "pool")  # three missed runs, caught up once
    assert run.outcome == "ok" and run.finished_at is not None
    assert run.summary["active"] == 50  # the pool of tests/conftest.py
    later = job_store(registry).lookup_job("pool").next_run_time
    assert later > datetime.now(UTC) + timedelta(minutes=50)


def test_the_scheduler_process_stops_gracefully_on_sigterm(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    every = _config(settings, tmp_path, '[jobs.pool]\nevery = "1s"\n')
    env = {
        **os.environ,
        "CANARY_DB": every.db,
        "CANARY_SEEDS_DIR": every.seeds_dir,
        "CANARY_CACHE_DIR": every.cache_dir,
        "CANARY_JOBS_CONFIG": every.jobs_config,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "canary", "jobs", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + HANG
        while len(_runs(registry, "pool")) < 2:
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the scheduler ran no job"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=HANG)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert b"SIGTERM: stopping" in err and b"Scheduler stopped" in err
    runs = _runs(registry, "pool")
    assert runs and all(r.outcome == "ok" for r in runs)  # none left "running"
    # The stopped process left its jobs in the registry database for the next start.
    kept = {j.id: j for j in job_store(registry).get_all_jobs()}
    assert set(kept) == {"domains", "pool", "seal", "digest"}
    assert str(kept["pool"].trigger) == "interval[0:00:01]"


def test_jobs_run_once_and_jobs_list(
    run: Any, registry: Registry, hourly: Settings, tmp_path: Path
) -> None:
    os.environ["CANARY_JOBS_CONFIG"] = hourly.jobs_config
    try:
        res = run("jobs", "list")  # the reason a job is off is whole, on any terminal
        assert "drop_folder  off: set CANARY_DROP_FOLDER (or folder in" in res.output
        assert "pool         every 1h (when the scheduler runs)\n" in res.output
        assert res.output.endswith(
            "The scheduler has not run yet: start it with `canary jobs run`.\n"
        )
        res = run("jobs", "run", "--once", "pool")
        assert res.exit_code == 0 and res.output.startswith("pool: ok")
        res = run("jobs", "run", "--once", "cdr_import", "--json")
        assert res.exit_code == 0 and '"outcome": "skipped"' in res.output
        res = run("jobs", "run", "--once", "nosuch")
        assert res.exit_code == 3 and "There is no job 'nosuch'" in res.output
        missing = str(tmp_path / "nowhere")
        os.environ["CANARY_DROP_FOLDER"] = missing
        res = run("jobs", "run", "--once", "drop_folder")
        assert res.exit_code == 1
        assert f"drop_folder: failed: The folder {missing} does not exist" in res.output
        res = run("jobs", "list", "--json")
    finally:
        os.environ.pop("CANARY_JOBS_CONFIG", None)
        os.environ.pop("CANARY_DROP_FOLDER", None)
    assert res.exit_code == 0
    rows = {r["job"]: r for r in json.loads(res.output)["jobs"]}
    assert rows["pool"]["schedule"] == "every 1h" and rows["pool"]["last_outcome"] == "ok"
    assert rows["drop_folder"]["last_outcome"] == "failed"
    assert (
        rows["mailbox"]["enabled"] is False and "CANARY_IMAP_URL" in rows["mailbox"]["off_reason"]
    )
    assert rows["pool"]["next_run"] is None  # the scheduler never ran
    sched = build_scheduler(hourly, load_config(hourly), registry, BackgroundScheduler)
    sched.start(paused=True)
    sched.shutdown()
    [pool] = [r for r in list_jobs(hourly, registry) if r.spec.name == "pool"]
    assert pool.next_run is not None and pool.last is not None and pool.last.outcome == "ok"


def test_a_job_never_crashes_the_scheduler(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    use_settings(settings)
    try:

        def broken(_r: Registry, _s: Settings) -> Outcome:
            raise ZeroDivisionError("division by zero")

        result = run_job("broken", broken)
        assert result["outcome"] == "failed"
        assert result["error"] == "unexpected ZeroDivisionError: division by zero"
        [row] = _runs(registry, "broken")
        assert row.outcome == "failed" and row.error == result["error"]
        bare = f"sqlite:///{tmp_path / 'uninitialised.db'}"
        use_settings(dataclasses.replace(settings, db=bare))
        result = run_job("broken", broken)  # no run can be recorded: logged, not raised
        assert result["outcome"] == "failed" and "canary init" in str(result["error"])
    finally:
        use_settings(None)


def test_an_unreachable_mailbox_is_a_failed_run_with_its_sentence(
    registry: Registry, settings: Settings
) -> None:
    from tests.test_doctor import _closed_port

    imap = dataclasses.replace(
        settings, imap_url=f"imap://canary@127.0.0.1:{_closed_port()}/INBOX", imap_password="x"
    )
    result = run_once(imap, "mailbox")
    assert result["outcome"] == "failed"
    assert "Cannot reach the IMAP server" in str(result["error"])
    assert _runs(registry, "mailbox")[0].error == result["error"]


def test_config_mistakes_are_one_sentence(settings: Settings, tmp_path: Path) -> None:
    for body, message in [
        ('[jobs.pool]\nevry = "1h"\n', "unknown keys evry"),
        ('[jobs.pool]\nevery = "1h"\ncron = "0 4 * * *"\n', "keep one schedule"),
        ('[jobs.pool]\ncron = "0 25 * * *"\n', "is not a crontab line"),
        ('[jobs.pool]\nevery = "often"\n', "write it like 30s"),
        ('[jobs.digest]\nat = "25:00"\n', "write it like 08:00"),
        ('[jobs.backup]\nevery = "1h"\n', "unknown jobs backup"),
        ('[scheduler]\ntimezone = "Mars/Olympus"\n', "not a time zone"),
        ("[jobs.pool\n", "not valid TOML"),
        ('[jobs.pool]\nfolder = "/x"\n', "takes no folder"),
        ("[jobs.outbox]\ngap_seconds = -1\n", "0 or more"),
        ('[jobs.pool]\nenabled = "no"\n', "true or false"),
    ]:
        with pytest.raises(InputError, match=message):
            load_config(_config(settings, tmp_path, body))
    with pytest.raises(InputError, match="does not exist"):
        load_config(dataclasses.replace(settings, jobs_config=str(tmp_path / "none.toml")))
    # CANARY_* settings override the file.
    both = _config(settings, tmp_path, '[jobs.drop_folder]\nfolder = "/from/file"\n')
    assert load_config(both).job("drop_folder").kwargs == {"folder": "/from/file"}
    env = dataclasses.replace(both, drop_folder="/from/env", digest_time="07:30")
    assert load_config(env).job("drop_folder").kwargs == {"folder": "/from/env"}
    assert load_config(env).job("digest").describe() == "at 07:30"


def _aged(path: Path) -> Path:
    then = time.time() - 600
    os.utime(path, (then, then))
    return path


def test_folder_jobs_scan_import_and_seed_and_the_digest_counts_failed_files(
    run: Any,
    registry: Registry,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    drop, cdr, outbox = (tmp_path / n for n in ("drop", "cdr", "outbox"))
    box = outbox / "Call center A"
    for folder in (drop, cdr, box):
        folder.mkdir(parents=True)
    folders = dataclasses.replace(
        settings, drop_folder=str(drop), cdr_folder=str(cdr), outbox_folder=str(outbox)
    )
    quick = "settle_seconds = 1\ngap_seconds = 0\n"
    configured = _config(
        folders,
        tmp_path,
        f"[jobs.drop_folder]\n{quick}[jobs.cdr_import]\n{quick}[jobs.outbox]\n{quick}",
    )
    (box / "outbox.toml").write_text('client = "Sakura City"\nlist = "Residents"\n')
    write_csv(box / "residents.csv", people(200, seed=8))
    number = registry.pool_phones()[0].e164
    (cdr / "calls.csv").write_text(
        f"time,from,to,duration,kind\n2026-11-20T10:00:00+09:00,0312345678,{number},30,call\n"
    )
    (cdr / "garbage.csv").write_bytes(b"\x00\xff" * 50)
    for p in (box / "residents.csv", cdr / "calls.csv", cdr / "garbage.csv"):
        _aged(p)

    sent = run_once(configured, "outbox")
    assert sent["outcome"] == "ok", sent
    assert (box / "sent" / "residents.csv").exists()
    _aged(Path(shutil.copy(box / "sent" / "residents.csv", drop / "bought.csv")))
    scanned = run_once(configured, "drop_folder")
    assert scanned["outcome"] == "ok" and scanned["summary"]["done"] == 1  # type: ignore[index]
    assert "LEAKED FROM EXPORT" in (drop / "done" / "bought.csv.reason.txt").read_text()
    # By hand, each file is named with where it went and why.
    _aged(Path(shutil.copy(box / "sent" / "residents.csv", drop / "again.csv")))
    os.environ["CANARY_JOBS_CONFIG"] = configured.jobs_config
    os.environ["CANARY_DROP_FOLDER"] = str(drop)
    try:
        res = run("jobs", "run", "--once", "drop_folder")
    finally:
        os.environ.pop("CANARY_JOBS_CONFIG")
        os.environ.pop("CANARY_DROP_FOLDER")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[:2] == ["drop_folder: ok", "  done 1, failed 0, waiting 0"]
    assert lines[2] == f"  again.csv: done -> {drop / 'done' / 'again.csv'}"
    assert lines[3].startswith("      Scan SC-") and lines[4].startswith("      LEAKED FROM EXPORT")
    imported = run_once(configured, "cdr_import")
    assert imported["outcome"] == "ok"
    assert imported["summary"]["done"] == 1 and imported["summary"]["failed"] == 1  # type: ignore[index]
    assert [e.target for e in registry.events(limit=None)] == [number]
    assert (cdr / "failed" / "garbage.csv.reason.txt").exists()

    digest = run_once(configured, "digest")
    assert digest["outcome"] == "ok"
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(line)["files_failed"] == {"cdr_import": 1}
