"""Webhook throughput: a burst of signed generic events at a real ``canary serve``.

Creates a fresh schema in a PostgreSQL database, initialises a registry there with a pool
and a few seeded exports, starts ``canary serve`` (gunicorn, a real process, on loopback,
without the SMTP and DNS listeners), then fires N signed events at ``POST /hooks/events``
over concurrent keep-alive connections: 10 % of them are redeliveries of ids already sent,
signed anew. The client is one thread with a selector that writes requests signed in chunks
just before they go out and reads the raw answers: it shares the CPUs with the server it
measures, so it should cost little (http.client in 16 threads cost 0.2 ms per event). It
then checks that every distinct id is stored exactly once, that every id was answered new
(201) exactly once and duplicate (200) otherwise, that every suspicious event has its alert
and every incident the count, first and last seen and guilt that all its events give when
scored at once, prints events/s and latency percentiles, and drops the schema.

    .venv/bin/python benchmarks/webhooks.py                       # 10,000 events
    .venv/bin/python benchmarks/webhooks.py --workers 4 --threads 1 --clients 8   # sync
    .venv/bin/python benchmarks/webhooks.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

It also prints the CPU time per event of the server's processes, of PostgreSQL (every
postgres process on the machine) and of this client, read from /proc before and after the
burst, once the workers have booted. On a shared machine events/s swing with what else runs;
CPU per event much less, and (CPUs x 1,000 ms) / (CPU ms per event) is the rate the idle
machine could sustain at best.

The mix of events (``--suspicious``) matters: a suspicious event files into an incident and
creates an alert; a noise event (a number outside the pool) is one read and one insert.

Goal (issue "Callbacks"): >= 1,000 events/s and p99 <= 50 ms on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402

from canary.pools import parse_owned_domain, parse_owned_phone  # noqa: E402
from canary.registry import Registry  # noqa: E402
from canary.seed import SeedRequest, seed  # noqa: E402
from canary.settings import Settings  # noqa: E402
from server.signatures import generic_signature  # noqa: E402
from tests.listgen import people, write_csv  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SECRET = "bench-secret"
POOL = [f"050-3{n:03d}-{4000 + n:04d}" for n in range(100, 160)]
DOMAIN = "canary-bench.example.jp"


@dataclass
class Shot:
    pid: str
    status: int
    duplicate: bool
    seconds: float


def prepare(url: str, exports: int, tmp: Path) -> tuple[list[str], list[str]]:
    """Registry with a pool and seeded exports; returns (canary numbers, canary addresses)."""
    registry = Registry(url, actor="bench")
    registry.init()
    registry.add_phones([parse_owned_phone(n) for n in POOL], "active")
    registry.add_domains([parse_owned_domain(DOMAIN)])
    settings = Settings(db=url, seeds_dir=str(REPO / "seeds"), cache_dir=str(tmp / "cache"))
    src = tmp / "host.csv"
    write_csv(src, people(300, seed=7))
    numbers: set[str] = set()
    emails: set[str] = set()
    for i in range(exports):
        result = seed(
            registry,
            settings,
            SeedRequest(
                input=src,
                output=tmp / f"out{i}.csv",
                client="city",
                list_name="residents",
                account=f"op{i}",
                rng_seed=i + 1,
                stable=0,
            ),
        )
        for c in registry.canaries_of(result.export.code):
            numbers.update(n for n in (c.phone_e164, c.phone2_e164) if n)
            if c.email:
                emails.add(c.email)
    registry.close()
    return sorted(numbers), sorted(emails)


def events(n: int, suspicious: float, numbers: list[str], emails: list[str]) -> list[dict]:
    """n distinct events: suspicious ones to canary numbers (calls, SMS) and addresses, the
    rest calls to numbers outside the pool (noise), from 2,000 sources over the last day."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        when = (now - timedelta(seconds=rng.randrange(86_400))).isoformat()
        source = f"+8190{rng.randrange(2000):08d}"
        if rng.random() < suspicious:
            if rng.random() < 0.7:
                channel, to = rng.choice(["call", "sms"]), rng.choice(numbers)
            else:
                channel, to, source = "email", rng.choice(emails), f"s{rng.randrange(500)}@x.jp"
        else:
            channel, to = "call", f"03-{rng.randrange(1000, 9999)}-{rng.randrange(10_000):04d}"
        out.append({"id": f"b-{i}", "channel": channel, "to": to, "from": source, "time": when})
    return out


def start_server(url: str, workers: int, threads: int) -> tuple[subprocess.Popen[str], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
    env.update({"CANARY_DB": url, "CANARY_WEBHOOK_SECRET": SECRET})
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "canary", "serve", "--bind", "127.0.0.1:0"),
            *("--workers", str(workers), "--threads", str(threads), "--no-smtp", "--no-dns"),
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"Serving http://127\.0\.0\.1:(\d+)", line)
        if found:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain the log
            return proc, int(found[1])
    raise SystemExit(f"canary serve did not start (exit {proc.wait()})")


CHUNK = 500  # requests signed at a time, just before they are sent: fresh in the window


def signed_requests(items: list[tuple[str, bytes, bool]], port: int) -> list[bytes]:
    """The raw HTTP/1.1 requests of ``items``, signed now. A first delivery is signed with
    an even timestamp, a redelivery with an odd one, so that a redelivery never repeats a
    signature (that would be a replay, refused 403)."""
    now = int(time.time()) & ~1
    out = []
    for _pid, body, again in items:
        stamp = now | again
        out.append(
            (
                f"POST /hooks/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nX-Canary-Timestamp: {stamp}\r\n"
                f"X-Canary-Signature: {generic_signature(SECRET, stamp, body)}\r\n\r\n"
            ).encode("ascii")
            + body
        )
    return out


class _Client:
    """One keep-alive connection: the request in flight and the bytes of its answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.pid = ""
        self.began = 0.0
        self.buf = b""

    def send(self, pid: str, request: bytes) -> None:
        self.pid, self.buf, self.began = pid, b"", time.perf_counter()
        sent = self.sock.send(request)  # a request is small: the socket's buffer takes it
        if sent < len(request):
            self.sock.setblocking(True)
            self.sock.sendall(request[sent:])
            self.sock.setblocking(False)

    def answer(self) -> tuple[int, bytes, bool] | None:
        """(status, body, whether the server closes) once the whole answer is in, else
        None; ConnectionError if the server hung up before answering."""
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data
        head, sep, body = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return None
        lines = head.split(b"\r\n")
        headers = dict(line.lower().split(b":", 1) for line in lines[1:])
        length = int(headers.get(b"content-length", b"0"))
        if len(body) < length:
            return None
        closes = headers.get(b"connection", b"").strip() == b"close"
        return int(lines[0].split()[1]), body[:length], closes


def fire(
    port: int, bodies: list[tuple[str, bytes, bool]], clients: int
) -> tuple[list[Shot], float]:
    """Send every body over ``clients`` keep-alive connections from one thread (a
    selector), each connection one request at a time, and time each answer. The requests
    are signed in chunks just before they go out, so that the client spends its CPU on
    sending and reading, not on building requests (it shares the machine's CPUs with the
    server it measures)."""
    shots: list[Shot] = []
    pending: list[tuple[str, bytes]] = []  # signed requests not sent yet, last first
    position = 0

    def next_request() -> tuple[str, bytes] | None:
        nonlocal position
        if not pending and position < len(bodies):
            chunk = bodies[position : position + CHUNK]
            position += len(chunk)
            signed = signed_requests(chunk, port)
            pending.extend(
                reversed([(pid, r) for (pid, _b, _a), r in zip(chunk, signed, strict=True)])
            )
        return pending.pop() if pending else None

    selector = selectors.DefaultSelector()
    began = time.perf_counter()
    for _ in range(clients):
        item = next_request()
        if item is None:
            break
        conn = _Client(port)
        conn.send(*item)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    while selector.get_map():
        for key, _mask in selector.select(timeout=60):
            conn = key.data
            try:
                answer = conn.answer()
            except OSError:  # reported by check() as a request without an answer
                selector.unregister(conn.sock)
                conn.sock.close()
                continue
            if answer is None:
                continue
            status, data, closes = answer
            took = time.perf_counter() - conn.began
            duplicate = bool(json.loads(data).get("duplicate")) if status in (200, 201) else False
            shots.append(Shot(conn.pid, status, duplicate, took))
            item = next_request()
            if item is None or closes:
                selector.unregister(conn.sock)
                conn.sock.close()
                if item is None:
                    continue
                conn = _Client(port)
                selector.register(conn.sock, selectors.EVENT_READ, conn)
            conn.send(*item)
    return shots, time.perf_counter() - began


def _cpu_of(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) each process has used so far; gone ones are left out."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command name) of every process (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.find("(") + 1 : stat.rfind(")")]
            out.append((int(entry.name), int(stat.rpartition(")")[2].split()[1]), name))
    return out


def cpu_sample(server_pid: int) -> dict[str, dict[int, float]]:
    """CPU seconds so far of the server's process tree and of every PostgreSQL process."""
    procs = _processes()
    tree, grew = {server_pid}, True
    while grew:
        more = {pid for pid, ppid, _ in procs if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    postgres = [pid for pid, _, name in procs if name.startswith("postgres")]
    return {"server": _cpu_of(sorted(tree)), "postgres": _cpu_of(postgres)}


def cpu_used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict:
    """CPU seconds used between two samples, per part (a process new since is counted whole)."""
    return {
        part: sum(t - before[part].get(pid, 0.0) for pid, t in after[part].items())
        for part in after
    }


def settle(server_pid: int, workers: int, timeout: float = 60.0) -> None:
    """Wait until every worker has booted and the server tree is idle, so that the CPU
    measured is the burst's and not the workers' start-up (imports, the app, the pool)."""
    deadline = time.monotonic() + timeout
    last = cpu_sample(server_pid)["server"]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_sample(server_pid)["server"]
        # canary serve, gunicorn's master and the workers
        if len(now) >= workers + 2 and sum(now.values()) - sum(last.values()) < 0.1:
            return
        last = now
    raise SystemExit("canary serve did not settle within a minute")


def check(url: str, shots: list[Shot], distinct: int, sent: int) -> list[str]:
    """What is wrong with the stored events and the answers (empty when all is well)."""
    problems = []
    if len(shots) < sent:
        problems.append(f"{sent - len(shots)} requests got no answer (a connection failed)")
    bad = [s for s in shots if s.status not in (200, 201)]
    if bad:
        problems.append(f"{len(bad)} answers were errors, e.g. {bad[0].status}")
    new: dict[str, int] = {}
    for s in shots:
        new[s.pid] = new.get(s.pid, 0) + (s.status == 201)
        if (s.status == 201) == s.duplicate:
            problems.append(f"{s.pid}: status {s.status} with duplicate={s.duplicate}")
    once = sum(1 for v in new.values() if v == 1)
    if once != distinct:
        problems.append(f"{distinct - once} ids were not answered new exactly once")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows, ids = conn.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT provider_id) FROM events "
                "WHERE provider = 'generic' AND provider_id LIKE 'b-%'"
            )
        ).one()
    engine.dispose()
    if (rows, ids) != (distinct, distinct):
        problems.append(f"stored {rows} rows for {ids} ids, expected {distinct}")
    return problems + check_incidents(url)


def check_incidents(url: str) -> list[str]:
    """What is wrong with the incidents and alerts (empty when all is well): an alert for
    every suspicious event, and each incident's count, first and last seen and guilt what
    all its linked events make of them scored at once (the server counts, without
    rescoring, the events whose signs an incident held already)."""
    from canary.registry.models import Incident

    problems = []
    registry = Registry(url, actor="bench")
    with registry._sessions() as s:
        alerts, suspicious = s.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM alerts), "
                "(SELECT count(*) FROM events WHERE classification = 'suspicious')"
            )
        ).one()
        if alerts != suspicious:
            problems.append(f"{alerts} alerts for {suspicious} suspicious events")
        for row in s.query(Incident):
            guilt, count, first, last = registry.scored_at_once(s, row)
            if (row.event_count, row.first_seen, row.last_seen) != (count, first, last) or abs(
                row.confidence - guilt
            ) > 1e-9:
                problems.append(
                    f"incident {row.subject}: {row.event_count} events, guilt "
                    f"{row.confidence:.6f}; its {count} events make {guilt:.6f}"
                )
    registry.close()
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description="Webhook throughput against canary serve.")
    ap.add_argument("--pg", default=os.environ.get("CANARY_TEST_PG_URL") or DEFAULT_PG)
    ap.add_argument("--events", type=int, default=10_000, help="requests in the burst")
    ap.add_argument("--duplicates", type=float, default=0.10, help="share of redeliveries")
    ap.add_argument("--suspicious", type=float, default=0.5, help="share of suspicious events")
    ap.add_argument("--exports", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="as canary serve on 2 CPUs")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--clients", type=int, default=16, help="concurrent client connections")
    args = ap.parse_args()

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(args.pg)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{args.pg}{'&' if '?' in args.pg else '?'}options=-csearch_path%3D{schema}"
    proc = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            numbers, emails = prepare(url, args.exports, Path(tmp))
        dups = int(args.events * args.duplicates)
        distinct = args.events - dups
        batch = events(distinct, args.suspicious, numbers, emails)
        bodies = [(e["id"], json.dumps(e).encode(), False) for e in batch]
        rng = random.Random(5)
        # Redeliveries come after their first delivery, mixed into the second half.
        resent = [(*bodies[i][:2], True) for i in rng.sample(range(distinct // 2), dups)]
        tail = bodies[distinct // 2 :] + resent
        rng.shuffle(tail)
        bodies = bodies[: distinct // 2] + tail

        proc, port = start_server(url, args.workers, args.threads)
        settle(proc.pid, args.workers)
        before, mine = cpu_sample(proc.pid), time.process_time()
        shots, seconds = fire(port, bodies, args.clients)
        after = cpu_sample(proc.pid)
        cpu = cpu_used(before, after)
        # The busiest processes of the server's tree are its workers: how the connections
        # fell between them (each keeps the connections it accepted) shows in their CPU.
        spent = sorted(
            (t - before["server"].get(pid, 0.0) for pid, t in after["server"].items()),
            reverse=True,
        )
        shares = [t / max(sum(spent), 1e-9) for t in spent[: args.workers]]
        cpu["client"] = time.process_time() - mine
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        proc = None
        problems = check(url, shots, distinct, len(bodies))
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    lat = sorted(s.seconds * 1000 for s in shots)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    rate = len(shots) / seconds
    kind = (
        f"{args.workers} sync workers"
        if args.threads == 1
        else (f"{args.workers} gthread workers x {args.threads} threads")
    )
    print(
        f"{len(shots):,} events ({distinct:,} distinct, {dups:,} redelivered) in "
        f"{seconds:.2f} s: {rate:,.0f} events/s; latency p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, max {lat[-1]:.1f} ms"
    )
    print(
        f"server: {kind}; {args.clients} client connections; "
        f"{args.suspicious:.0%} suspicious; {os.cpu_count()} CPUs; the workers' shares of "
        f"the server's CPU: {', '.join(f'{x:.0%}' for x in shares)}"
    )
    # CPU per event does not depend on what else the shared machine runs; the events/s do.
    per = {part: cpu[part] * 1000 / len(shots) for part in ("server", "postgres", "client")}
    total = sum(per.values())
    print(
        "CPU per event: "
        + ", ".join(f"{part} {ms:.2f} ms" for part, ms in per.items())
        + f"; total {total:.2f} ms, a ceiling of {(os.cpu_count() or 1) * 1000 / total:,.0f}"
        + f" events/s on {os.cpu_count()} CPUs; {sum(cpu.values()) / seconds:.2f} CPUs busy"
    )
    print(
        "stored exactly once, incidents and alerts as if scored at once: "
        + ("yes" if not problems else "NO: " + "; ".join(problems))
    )
    goal = rate >= 1000 and p99 <= 50
    print(f"goal (>= 1,000 events/s, p99 <= 50 ms): {'met' if goal else 'missed'}")
    cmd = " ".join(["python benchmarks/webhooks.py", *sys.argv[1:]])
    print(f"reproduce: cd {REPO} && .venv/bin/{cmd}")
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
