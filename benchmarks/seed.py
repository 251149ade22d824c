"""Seeding speed and memory against `cp` of the same file.

Generates CP932 lists of fake people (1 M and 10 M rows by default, Excel-style CRLF),
seeds each with the real `canary seed` command on a fresh SQLite registry and prints, per
size: the seed time, the time of `cp` of the same file (same run, warm page cache, best of
three), their ratio and the seed's peak memory (max RSS).

    .venv/bin/python benchmarks/seed.py                 # 1 M and 10 M rows
    .venv/bin/python benchmarks/seed.py --rows 1000000  # one size
    .venv/bin/python benchmarks/seed.py --keep DIR      # keep the generated lists
    .venv/bin/python benchmarks/seed.py --against /tmp/before  # and an earlier revision

Goal (issue 2): within 2x `cp` on 10 M rows, memory flat in the file size.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from canary.reference import Gazetteer, NameBook  # noqa: E402

HEADER = "顧客番号,氏名,フリガナ,性別,生年月日,郵便番号,住所,電話番号,メールアドレス,備考\r\n"


def make_list(path: Path, rows: int, seed: int = 1) -> None:
    """Write ``rows`` fake people: 50,000 distinct persons cycled with unique IDs."""
    rng = random.Random(seed)
    names = NameBook(REPO / "seeds")
    places = Gazetteer().in_area("東京都")
    base = []
    for _ in range(50_000):
        sex = rng.random() < 0.5
        year = rng.randint(1940, 2003)
        s = names.surnames.draw(rng)
        g = names.given_for("M" if sex else "F", year).draw(rng)
        p = rng.choice(places)
        mail = f"u{rng.randrange(10**7)}@example.com" if rng.random() < 0.4 else ""
        base.append(
            f",{s.kanji}　{g.kanji},{s.kana}　{g.kana},{'男' if sex else '女'},"
            f"{year}/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d},"
            f"{p.postcode[:3]}-{p.postcode[3:]},{p.prefecture}{p.city}{p.town}"
            f"{rng.randint(1, 5)}-{rng.randint(1, 20)}-{rng.randint(1, 15)},"
            f"090-0{rng.randint(100, 999)}-{rng.randint(0, 9999):04d},{mail},"
            f"{rng.choice(['', '', '', 'DM不要', '要確認'])}\r\n".encode("cp932")
        )
    with path.open("wb", buffering=8 * 1024 * 1024) as fh:
        fh.write(HEADER.encode("cp932"))
        block = []
        for i in range(rows):
            block.append(b"%d" % (1_000_000 + i) + base[i % len(base)])
            if len(block) == 100_000:
                fh.write(b"".join(block))
                block.clear()
        fh.write(b"".join(block))


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall time, peak RSS in KiB and stdout of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before), proc.stdout


def peak_rss_of(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str, float]:
    """Wall time, peak RSS in KiB, stdout and CPU seconds (user + system) of one command:
    under /usr/bin/time if present for a per-process peak; else getrusage. CPU seconds
    move less than wall time on a machine shared with other work."""
    gnu_time = shutil.which("time") if Path("/usr/bin/time").exists() else None
    if gnu_time:
        fd, report = tempfile.mkstemp()
        os.close(fd)
        elapsed, _, out = timed([gnu_time, "-f", "%M %U %S", "-o", report, *cmd], env)
        kib, user, system = Path(report).read_text().strip().splitlines()[-1].split()
        os.unlink(report)
        return elapsed, int(kib), out, float(user) + float(system)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed, kib, out = timed(cmd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, kib, out, cpu


def canary_command(tree: Path | None) -> list[str]:
    """``canary`` of this checkout, or of another one (an earlier revision, checked out with
    ``git worktree add``), run by the same Python."""
    if tree is None:
        return [sys.executable, "-m", "canary"]
    code = (
        f"import runpy, sys; sys.path.insert(0, {str(tree.resolve())!r}); "
        "sys.argv[0] = 'canary'; runpy.run_module('canary', run_name='__main__')"
    )
    return [sys.executable, "-c", code]


def bench(rows: int, work: Path, tree: Path | None = None) -> dict[str, object]:
    src = work / f"list_{rows}.csv"
    if not src.exists():
        t = time.perf_counter()
        make_list(src, rows)
        print(f"  generated {src.name} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    size = src.stat().st_size
    cp_times, cp_sync_times = [], []
    for _ in range(3):
        dst = work / "cp_copy.csv"
        settle()
        t, _, _ = timed(["cp", str(src), str(dst)])
        cp_times.append(t)
        dst.unlink()
        settle()
        t, _, _ = timed(["sh", "-c", f"cp '{src}' '{dst}' && sync '{dst}'"])
        cp_sync_times.append(t)
        dst.unlink()
    settle()
    started = time.perf_counter()
    digest = hashlib.sha256()
    with src.open("rb", buffering=0) as fh:
        while block := fh.read(16 * 1024 * 1024):
            digest.update(block)
    hash_s = time.perf_counter() - started
    db = work / f"registry_{rows}.db"
    db.unlink(missing_ok=True)
    env = {**os.environ, "CANARY_DB": f"sqlite:///{db}"}
    canary = canary_command(tree)
    subprocess.run([*canary, "init"], env=env, check=True, capture_output=True)
    numbers = [f"050-3{n:03d}-{4000 + n:04d}" for n in range(100, 180)]
    subprocess.run(
        [*canary, "pool", "add-phone", "--active", *numbers],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*canary, "pool", "add-domain", "bench.example.jp"],
        env=env,
        check=True,
        capture_output=True,
    )
    seed_times, peaks, cpus = [], [], []
    phases: dict[str, float] = {}
    for i in range(2):
        out = work / f"seeded_{rows}_{i}.csv"
        settle()
        t, peak, stdout, cpu = peak_rss_of(
            [
                *canary,
                "seed",
                str(src),
                "--out",
                str(out),
                "--client",
                "bench",
                "--list",
                "l",
                "--account",
                f"a{i}",
                "--json",
            ],
            env,
        )
        seed_times.append(t)
        peaks.append(peak)
        cpus.append(cpu)
        result = json.loads(stdout)
        assert result["rows_in"] == rows, result
        if t <= min(seed_times):
            phases = result.get("timings_s", {})
        out.unlink()
    # The seed runs a fresh Python each time; its start-up is part of the cost a user sees.
    startup, _, _ = timed([*canary, "--version"], env)
    best_seed, best_cp, best_cp_sync = min(seed_times), min(cp_times), min(cp_sync_times)
    return {
        "rows": rows,
        "bytes": size,
        "seed_s": round(best_seed, 3),
        "seed_cpu_s": round(min(cpus), 3),
        "cp_s": round(best_cp, 3),
        "ratio": round(best_seed / best_cp, 2),
        "cp_sync_s": round(best_cp_sync, 3),
        "ratio_sync": round(best_seed / best_cp_sync, 2),
        "startup_s": round(startup, 3),
        "peak_rss_mib": round(max(peaks) / 1024, 1),
        "canaries": result["canaries"],
        "phases": phases,
        "sha256_s": round(hash_s, 3),
    }


def _label(tree: Path | None) -> str:
    """The checkout's revision (its short hash), or ``this checkout``."""
    where = tree if tree is not None else REPO
    proc = subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    rev = proc.stdout.strip() or "?"
    return f"{rev} (this checkout)" if tree is None else f"{rev} ({tree})"


def settle() -> None:
    """Flush dirty pages of earlier runs so that one run's writeback does not slow the next."""
    os.sync()
    time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--rows",
        type=int,
        action="append",
        help="List size(s) to bench (default 1,000,000 and 10,000,000).",
    )
    ap.add_argument("--keep", type=Path, help="Folder for the generated lists (kept).")
    ap.add_argument(
        "--against",
        type=Path,
        action="append",
        default=[],
        help="Also seed with the canary of this checkout (e.g. `git worktree add /tmp/before "
        "REV`), in the same run, for a before-and-after.",
    )
    args = ap.parse_args()
    sizes = args.rows or [1_000_000, 10_000_000]
    work = args.keep or Path(tempfile.mkdtemp(prefix="canary-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"machine: {os.cpu_count()} cores; work folder {work}")
    print("seed s: whole `canary seed` command (start-up, read head, canaries, splice, fsync,")
    print("commit); cp s: `cp`; cp+sync s: `cp` then `sync` of the copy (seed fsyncs its output")
    print("before committing, cp does not); ratios are seed / baseline; cpu s: the seed's")
    print("user + system CPU seconds; best of runs.")
    print(
        f"{'rows':>12} {'MiB':>6} {'seed s':>7} {'cpu s':>6} {'cp s':>6} {'ratio':>6} "
        f"{'cp+sync s':>9} {'ratio':>6} {'start s':>7} {'peak MiB':>8} {'canaries':>8}  canary of"
    )
    results = []
    trees: list[Path | None] = [None, *args.against]
    try:
        for rows, tree in itertools.product(sizes, trees):
            r = bench(rows, work, tree)
            r["tree"] = _label(tree)
            results.append(r)
            print(
                f"{r['rows']:>12,} {r['bytes'] / 2**20:>6.0f} {r['seed_s']:>7.2f} "
                f"{r['seed_cpu_s']:>6.2f} {r['cp_s']:>6.2f} {r['ratio']:>6.2f} "
                f"{r['cp_sync_s']:>9.2f} "
                f"{r['ratio_sync']:>6.2f} {r['startup_s']:>7.2f} {r['peak_rss_mib']:>8.1f} "
                f"{r['canaries']:>8}  {r['tree']}",
                flush=True,
            )
        for r in results:
            print(
                f"floor at {r['rows']:,} rows: SHA-256 of the file alone (hashlib, one core) "
                f"{r['sha256_s']} s = {r['sha256_s'] / r['cp_s']:.2f}x cp"
            )
            print(
                f"phases at {r['rows']:,} rows, {r['tree']} (s): "
                + ", ".join(f"{k} {v}" for k, v in r["phases"].items())
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
