"""The event store alone: ``Registry.record_events(file=False)``, as the server's writer
thread calls it, in batches of 1 to 64 events, in process, against PostgreSQL.

The webhook benchmark (``benchmarks/webhooks.py``) measures the whole server, whose figures
swing with what else the machine runs. This one isolates the writer: per event, its CPU
(this thread's), PostgreSQL's CPU (every postgres process on the machine: run it on a quiet
one) and the wall time of a batch (the writer is on every request's critical path: a batch
that waits for round trips holds up every request gathered behind it). The baseline, in the
same run, is the floor of storing: the same rows inserted by bare psycopg, one statement
and a commit per batch, no classification.

The events are the webhook benchmark's mix (half suspicious: calls, SMS and mail to
canaries; the rest calls outside the pool; 10 % redeliveries), built as the generic hook
builds them.

    .venv/bin/python benchmarks/eventstore.py
    .venv/bin/python benchmarks/eventstore.py --sizes 1,4,16 --events 4000 --suspicious 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from benchmarks.webhooks import DEFAULT_PG, _cpu_of, _processes, events, prepare  # noqa: E402
from canary.events import EventDraft  # noqa: E402
from canary.registry import Registry  # noqa: E402
from server.hooks import generic_draft  # noqa: E402


def drafts_for(n: int, suspicious: float, numbers: list[str], emails: list[str]) -> list:
    """n deliveries, a tenth of them repeats of earlier ones, as the generic hook makes them."""
    items = events(n - n // 10, suspicious, numbers, emails)
    rng = random.Random(3)
    repeats = [items[i] for i in rng.sample(range(len(items) // 2), n // 10)]
    tail = items[len(items) // 2 :] + repeats
    rng.shuffle(tail)
    now = datetime.now(UTC)
    out = []
    for item in items[: len(items) // 2] + tail:
        out.append(generic_draft(item, json.dumps(item).encode(), now))
    return out


def postgres_cpu() -> float:
    return sum(_cpu_of([pid for pid, _ppid, name in _processes() if name == "postgres"]).values())


def measure(store, batches: list[list[EventDraft]]) -> tuple[float, float, float]:
    """(thread CPU, postgres CPU, wall) in ms per event, for storing every batch."""
    events = sum(len(b) for b in batches)
    pg, cpu, wall = postgres_cpu(), time.thread_time(), time.perf_counter()
    for batch in batches:
        store(batch)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    pg = postgres_cpu() - pg
    return cpu * 1000 / events, pg * 1000 / events, wall * 1000 / events


def bare_store(url: str):
    """The floor: the rows inserted by psycopg in one statement per batch, then a commit."""
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    conn.execute(
        "CREATE TABLE floor (k text PRIMARY KEY, channel text, target text, source text, "
        "occurred_at timestamptz, payload_sha256 text, details json)"
    )
    conn.commit()
    sql = (
        "INSERT INTO floor SELECT * FROM json_populate_recordset(NULL::floor, %(rows)s::json) "
        "ON CONFLICT (k) DO NOTHING RETURNING k"
    )

    def store(batch: list[EventDraft]) -> None:
        rows = [
            {
                "k": d.dedupe_key,
                "channel": d.channel,
                "target": d.target,
                "source": d.source,
                "occurred_at": d.occurred_at.isoformat(),
                "payload_sha256": d.payload_sha256,
                "details": d.details,
            }
            for d in {d.dedupe_key: d for d in batch}.values()
        ]
        conn.execute(sql, {"rows": json.dumps(rows)}).fetchall()
        conn.commit()

    return store, conn


def main() -> None:
    ap = argparse.ArgumentParser(description="record_events in process, by batch size.")
    ap.add_argument("--pg", default=os.environ.get("CANARY_TEST_PG_URL") or DEFAULT_PG)
    ap.add_argument("--events", type=int, default=3000, help="deliveries per batch size")
    ap.add_argument("--sizes", default="1,2,4,16,64", help="batch sizes, comma-separated")
    ap.add_argument("--suspicious", type=float, default=0.5, help="share of suspicious events")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(f"record_events(file=False), {args.suspicious:.0%} suspicious, 10 % repeats; per event:")
    print("batch | writer CPU | postgres CPU | wall | bare insert: CPU, postgres, wall | ratio")
    for size in sizes:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = f"{args.pg}{'&' if '?' in args.pg else '?'}options=-csearch_path%3D{schema}"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                numbers, emails = prepare(url, 4, Path(tmp))
            drafts = drafts_for(args.events, args.suspicious, numbers, emails)
            batches = [drafts[i : i + size] for i in range(0, len(drafts), size)]
            writer = Registry(url, actor="bench", pre_ping=False)
            writer.record_events(drafts[:1], file=False)  # connect, compile, read the pool
            ours = measure(partial(writer.record_events, file=False), batches)
            writer.close()
            store, conn = bare_store(url)
            floor = measure(store, batches)
            conn.close()
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        print(
            f"{size:>5} | {ours[0]:.3f} ms | {ours[1]:.3f} ms | {ours[2]:.3f} ms | "
            f"{floor[0]:.3f}, {floor[1]:.3f}, {floor[2]:.3f} ms | "
            f"x{(ours[0] + ours[1]) / (floor[0] + floor[1]):.1f} CPU, "
            f"x{ours[2] / floor[2]:.1f} wall"
        )
    cmd = " ".join(["python benchmarks/eventstore.py", *sys.argv[1:]])
    print(f"reproduce: cd {REPO} && .venv/bin/{cmd}")


if __name__ == "__main__":
    main()
