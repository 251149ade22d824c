"""Scan speed and memory on a 10 M-row broker list against 10^6 canaries in 10^5 exports.

Builds a registry of 100,000 exports holding 1,000,000 canaries (bulk-loaded for speed),
writes a 10 M-row broker list of fake people with the canaries of 5 exports hidden in it,
in CP932 and in UTF-8, and prints, in the same run: polars `read_csv` of the UTF-8 file,
`canary scan` of each version, the ratios, peak memory, and whether the 5 exports were
attributed (and nothing else).

    .venv/bin/python benchmarks/scan.py                    # 10 M rows, 10^6 canaries
    .venv/bin/python benchmarks/scan.py --rows 1000000 --exports 10000
    .venv/bin/python benchmarks/scan.py --keep DIR         # keep files between runs

Goals (issue 3): scan within 2x polars read_csv in UTF-8, within 3x in CP932; memory flat.
The baseline is timed both in this process and as a process of its own like the scans
(interpreter start and imports included); the ratio to the latter is the like-for-like one.
CPU seconds (user + system, all threads) of each process are printed with their ratio too:
on a machine others are loading, they move much less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.seed import make_list, peak_rss_of, settle  # noqa: E402


def build_registry(db: Path, exports: int, per_export: int, rng: random.Random) -> list[int]:
    """Bulk-load exports and canaries straight into the tables (the seeding path would take
    hours for 10^5 exports); returns the ids of exports whose canaries go into the list."""
    import sqlalchemy as sa

    from canary.normalize import address_key, kana_key, name_key
    from canary.reference import Gazetteer, NameBook
    from canary.registry import Registry
    from canary.registry import models as m

    reg = Registry(f"sqlite:///{db}", actor="bench")
    reg.init()
    names = NameBook(REPO / "seeds")
    places = Gazetteer().in_area("東京都") + Gazetteer().in_area("大阪府")
    now = datetime.now(UTC)
    numbers = [f"+8150{3000 + n // 10000}{n % 10000:04d}" for n in range(2000)]
    with reg.engine.begin() as c:
        c.execute(sa.insert(m.Client), [{"id": 1, "name": "bench", "created_at": now}])
        c.execute(
            sa.insert(m.PeopleList),
            [
                {"id": i + 1, "client_id": 1, "name": f"list{i}", "created_at": now}
                for i in range(1000)
            ],
        )
        c.execute(
            sa.insert(m.Account),
            [
                {"id": i + 1, "name": f"acct{i}", "shared": False, "members": [], "created_at": now}
                for i in range(500)
            ],
        )
        c.execute(
            sa.insert(m.PoolPhone),
            [
                {
                    "id": i + 1,
                    "e164": n,
                    "kind": "ip",
                    "state": "active",
                    "added_at": now,
                    "state_changed_at": now,
                    "use_count": 0,
                    "stray_events": 0,
                }
                for i, n in enumerate(numbers)
            ],
        )
        rows = []
        for e in range(exports):
            rows.append(
                {
                    "id": e + 1,
                    "code": f"EX-B{e:07d}",
                    "list_id": e % 1000 + 1,
                    "account_id": e % 500 + 1,
                    "created_at": now,
                    "status": "delivered",
                    "rows_in": 1000,
                    "rows_out": 1000 + per_export,
                    "canary_count": per_export,
                    "input_name": "x.csv",
                    "output_path": f"/x/{e}.csv",
                    "output_sha256": "0" * 64,
                    "file_format": "csv",
                    "expected_callers": [],
                    "expected_senders": [],
                    "columns": {},
                }
            )
            if len(rows) == 20000:
                c.execute(sa.insert(m.Export), rows)
                rows.clear()
        if rows:
            c.execute(sa.insert(m.Export), rows)
        batch = []
        cid = 0
        for e in range(exports):
            for _ in range(per_export):
                cid += 1
                sex = "M" if rng.random() < 0.5 else "F"
                year = rng.randint(1940, 2000)
                s, g = names.surnames.draw(rng), names.given_for(sex, year).draw(rng)
                p = rng.choice(places)
                address = f"{p.prefecture}{p.city}{p.town}{rng.randint(1, 5)}-{rng.randint(1, 28)}"
                phone = numbers[(e * 7 + cid) % len(numbers)]
                batch.append(
                    {
                        "id": cid,
                        "export_id": e + 1,
                        "position": cid % 1000,
                        "name": f"{s.kanji}\u3000{g.kanji}",
                        "kana": f"{s.kana}\u3000{g.kana}",
                        "romaji": "",
                        "sex": sex,
                        "birth_date": f"{year}-01-01",
                        "postcode": p.postcode,
                        "address": address,
                        "phone_e164": phone,
                        "phone2_e164": None,
                        "email": f"c{cid}.{rng.randrange(10**6)}@bench.example.jp"
                        if rng.random() < 0.4
                        else None,
                        "name_key": name_key(s.kanji + g.kanji),
                        "kana_key": kana_key(s.kana + g.kana),
                        "address_key": address_key(address),
                        "fields": {},
                    }
                )
                if len(batch) == 50000:
                    c.execute(sa.insert(m.Canary), batch)
                    batch.clear()
        if batch:
            c.execute(sa.insert(m.Canary), batch)
        c.execute(
            sa.insert(m.ExportPhone),
            [
                {"export_id": e + 1, "pool_phone_id": n + 1}
                for e in range(exports)
                for n in {(e * 7 + k) % len(numbers) for k in range(1, 4)}
            ],
        )
    reg.close()
    return rng.sample(range(1, exports + 1), 5)


def plant(
    src: Path, dst_cp932: Path, dst_utf8: Path, db: Path, export_ids: list[int], rng: random.Random
) -> int:
    """Copy the list with the canaries of ``export_ids`` spread through it, in two encodings."""
    import sqlite3

    con = sqlite3.connect(db)
    q = (
        "SELECT name, kana, postcode, address, phone_e164, email FROM canaries "
        f"WHERE export_id IN ({','.join('?' * len(export_ids))})"
    )
    planted = []
    for name, kana, postcode, address, phone, email in con.execute(q, export_ids):
        planted.append(
            f"9{rng.randrange(10**8)},{name},{kana},女,1970/01/01,"
            f"{postcode[:3]}-{postcode[3:]},{address},0{phone[3:]},{email or ''},\r\n"
        )
    con.close()
    lines_total = sum(1 for _ in src.open("rb"))
    spots = sorted(rng.sample(range(2, lines_total), len(planted)))
    with src.open("rb") as fin, dst_cp932.open("wb") as f1, dst_utf8.open("wb") as f2:
        k = 0
        for i, line in enumerate(fin):
            while k < len(spots) and spots[k] == i:
                row = planted[k].encode("utf-8").decode("utf-8")
                f1.write(row.encode("cp932"))
                f2.write(row.encode("utf-8"))
                k += 1
            f1.write(line)
            f2.write(line.decode("cp932").encode("utf-8"))
    return len(planted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="Broker list rows.")
    ap.add_argument("--exports", type=int, default=100_000, help="Exports in the registry.")
    ap.add_argument("--per-export", type=int, default=10, help="Canaries per export.")
    ap.add_argument("--keep", type=Path, help="Folder to keep generated files in.")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="canary-scanbench-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    try:
        db = work / f"registry_{args.exports}x{args.per_export}.db"
        ids_file = db.with_suffix(".planted.json")
        if not db.exists():
            t = time.perf_counter()
            ids = build_registry(db, args.exports, args.per_export, rng)
            ids_file.write_text(json.dumps(ids))
            print(
                f"built registry: {args.exports:,} exports, "
                f"{args.exports * args.per_export:,} canaries in "
                f"{time.perf_counter() - t:.0f}s",
                file=sys.stderr,
            )
        else:
            # A registry kept from an earlier run is brought to this version's schema, as
            # `canary init` would.
            from canary.registry import Registry

            Registry(f"sqlite:///{db}", actor="bench").init()
        ids = json.loads(ids_file.read_text())
        base = work / f"base_{args.rows}.csv"
        if not base.exists():
            make_list(base, args.rows)
        cp932 = work / f"broker_{args.rows}_cp932.csv"
        utf8 = work / f"broker_{args.rows}_utf8.csv"
        if not cp932.exists() or not utf8.exists():
            plant(base, cp932, utf8, db, ids, rng)
        import polars as pl

        # The baseline two ways: in this process (polars already imported), and as a
        # process of its own, timed like the scans (interpreter start and imports
        # included). Best of two runs each, to damp the noise of a shared machine.
        inproc = []
        for _ in range(2):
            settle()
            t = time.perf_counter()
            frame = pl.read_csv(utf8, infer_schema=False)
            inproc.append(time.perf_counter() - t)
            height = frame.height
            del frame
        polars_s = min(inproc)
        baseline = [
            sys.executable,
            "-c",
            f"import polars as pl; pl.read_csv({str(utf8)!r}, infer_schema=False)",
        ]
        runs = []
        for _ in range(2):
            settle()
            runs.append(peak_rss_of(baseline, dict(os.environ)))
        process_s, process_peak, _, _ = min(runs)
        process_cpu = min(r[3] for r in runs)
        env = {**os.environ, "CANARY_DB": f"sqlite:///{db}"}
        codes = {f"EX-B{i - 1:07d}" for i in ids}
        rows = []
        for label, path in (("utf-8", utf8), ("cp932", cp932)):
            best = None
            cpu = float("inf")
            for _ in range(2):
                settle()
                one = peak_rss_of(
                    [sys.executable, "-m", "canary", "scan", str(path), "--json", "--no-record"],
                    env,
                )
                best = one if best is None or one[0] < best[0] else best
                cpu = min(cpu, one[3])
            assert best is not None
            elapsed, peak, out, _ = best
            result = json.loads(out)
            attributed = {e["export_id"] for e in result["exports"] if e["attributed"]}
            rows.append(
                (
                    label,
                    path.stat().st_size,
                    elapsed,
                    cpu,
                    peak,
                    attributed == codes,
                    len(attributed - codes),
                    result["rows"],
                )
            )
        print(
            f"broker list: {height:,} rows; registry: {args.exports:,} exports, "
            f"{args.exports * args.per_export:,} canaries; 5 exports planted"
        )
        print(f"polars read_csv (UTF-8, all columns as strings), in process: {polars_s:.2f}s")
        print(
            f"polars read_csv as a process (like the scans): {process_s:.2f}s, "
            f"CPU {process_cpu:.2f}s, peak {process_peak / 1024:.0f} MiB"
        )
        print(
            "scan: best of 2 runs; ratio to read_csv as a process (and in process); "
            "CPU: user + system seconds of all threads, and its ratio"
        )
        print(
            f"{'file':>6} {'MiB':>6} {'scan s':>7} {'ratio':>6} {'(in)':>6} {'CPU s':>6} "
            f"{'ratio':>6} {'peak MiB':>9} {'found all 5':>11} {'false':>6} {'rows':>11}"
        )
        for label, size, elapsed, cpu_s, peak, ok, false, n in rows:
            print(
                f"{label:>6} {size / 2**20:>6.0f} {elapsed:>7.2f} {elapsed / process_s:>6.2f} "
                f"{elapsed / polars_s:>6.2f} {cpu_s:>6.2f} {cpu_s / process_cpu:>6.2f} "
                f"{peak / 1024:>9.0f} {'yes' if ok else 'NO':>11} {false:>6} {n:>11,}"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
