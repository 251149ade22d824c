"""``canary demo``: the whole idea in one minute, on a throw-away registry.

Nothing here is real: the list is fake people (seeds/demo), the pool numbers and the
example.jp mail domain are illustrative and the registry lives in a temporary folder.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from canary.pools import parse_owned_domain, parse_owned_phone
from canary.registry import Registry
from canary.scan import scan
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from canary.trace import trace

DEMO_NUMBERS = [f"050-5{n:03d}-{7000 + n:04d}" for n in range(101, 113)] + [
    f"090-6{n:03d}-{3000 + n:04d}" for n in range(201, 205)
]
DEMO_DOMAIN = "canary.example.jp"
EXPORTS = [  # (account, members of a shared account, recipient)
    ("tanaka", (), "コールセンターA社"),
    ("sysadmin", ("佐々木", "田村", "小川", "中島"), "システムベンダーB社"),
    ("suzuki", (), "DM発送C社"),
]


def _as_a_broker_would(seeded: Path, dest: Path) -> Path:
    """Half the rows of a seeded export, mangled the way list brokers publish them."""
    import csv
    import io
    import random

    import jaconv

    rng = random.Random(5)
    rows = list(csv.reader(io.StringIO(seeded.read_bytes().decode("cp932"))))[3:]
    kept = [r for r in rows if rng.random() < 0.5]
    rng.shuffle(kept)
    out = io.StringIO(newline="")
    w = csv.writer(out, delimiter="\t", lineterminator="\n")
    w.writerow(["お名前", "ﾌﾘｶﾞﾅ", "TEL", "ご住所"])
    for r in kept:
        w.writerow(
            [
                r[1].replace("\u3000", ""),
                jaconv.z2h(r[2], kana=True),
                r[7].replace("-", ""),
                f"〒{r[5]} {r[6]}",
            ]
        )
    dest.write_text(out.getvalue(), encoding="utf-8")
    return dest


def run_demo(out: Console, keep: Path | None = None) -> None:
    base = Settings.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="canary-demo-")) if keep is None else keep
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        _story(out, base, workdir)
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if keep is not None:
        out.print(
            f"\nThe demo registry and files are kept in {workdir} "
            f"(CANARY_DB=sqlite:///{workdir / 'registry.db'})."
        )


def _story(out: Console, base: Settings, workdir: Path) -> None:
    settings = Settings(
        db=f"sqlite:///{workdir / 'registry.db'}", seeds_dir=base.seeds_dir, actor="demo-steward"
    )
    registry = Registry(settings.db, actor=settings.actor)
    registry.init()
    source = Path(settings.seeds_dir) / "demo" / "customers_cp932.csv"
    out.rule("[bold]Canary demo")
    out.print(
        f"1. A steward creates a registry ({workdir / 'registry.db'}) and a pool of "
        f"{len(DEMO_NUMBERS)} phone numbers and the mail domain {DEMO_DOMAIN} "
        "(illustrative; in real use, numbers you rent and a domain you control)."
    )
    registry.add_phones([parse_owned_phone(n) for n in DEMO_NUMBERS], "active")
    registry.add_domains([parse_owned_domain(DEMO_DOMAIN)])

    out.print(
        f"2. The member list {source.name} (500 fake people, CP932, as Excel saves it) is "
        "handed over three times, each export seeded with its own canaries:"
    )
    results = []
    for i, (account, members, recipient) in enumerate(EXPORTS, start=1):
        dest = workdir / f"members_{account}.csv"
        result = seed(
            registry,
            settings,
            SeedRequest(
                input=source,
                output=dest,
                client="さかい生活館",
                list_name="会員名簿",
                account=account,
                recipient=recipient,
                account_members=members,
                requested_by="営業部",
                rng_seed=1000 + i,
            ),
        )
        results.append(result)
    table = Table("export", "account", "recipient", "rows in → out", "canaries", "sha256")
    for r in results:
        e = r.export
        shared = f" (shared by {', '.join(e.account_members)})" if e.account_members else ""
        table.add_row(
            e.code,
            e.account + shared,
            e.recipient or "",
            f"{e.rows_in} → {e.rows_out}",
            str(e.canary_count),
            e.output_sha256[:12],
        )
    out.print(table)
    same = source.read_bytes()
    seeded = (workdir / "members_sysadmin.csv").read_bytes()
    out.print(
        f"   Every original row is still there byte for byte: the seeded file is "
        f"{len(seeded) - len(same):,} bytes longer, nothing else changed."
    )

    leaked = results[1]
    own = leaked.own()  # canaries unique to the leaked export
    canary = next((c for c in own if c.person.email), own[0])
    person = canary.person
    out.print("\n3. Months later, an 'investment seminar' mail arrives for a canary:")
    out.print(f"   To: {person.email or '(no email)'}   ({person.name}, {person.kana})")
    found = (
        trace(registry, email=person.email) if person.email else trace(registry, name=person.name)
    )
    for m in found.matches:
        e = m.canary.export
        out.print(
            f"   [bold]→ export {e.code}[/bold]: list {e.list_name} of {e.client}, "
            f"account [bold]{e.account}[/bold] (shared by "
            f"{', '.join(e.account_members) or 'nobody'}), to {e.recipient}, "
            f"{e.created_at:%Y-%m-%d %H:%M} UTC on {e.host}."
        )
    if person.phone is not None:
        by_phone = trace(registry, phone=person.phone.e164)
        codes = sorted({m.canary.export.code for m in by_phone.matches})
        out.print(
            f"4. A call to the canary's number {person.phone.e164} alone points at "
            f"{len(codes)} export(s) ({', '.join(codes)}): pool numbers are shared, so a "
            "phone is weak evidence; the caller asking for "
            f"'{person.surname}' makes it strong."
        )
    broker = _as_a_broker_would(workdir / "members_sysadmin.csv", workdir / "業者名簿.tsv")
    found_in_list = scan(registry, settings.seeds_dir, broker)
    out.print(
        "5. A broker's list turns up (UTF-8 TSV, columns renamed, no email, half-width "
        "kana, phones rewritten, half the rows, shuffled). `canary scan` says:"
    )
    for f in found_in_list.exports:
        if f.attributed:
            meta = f.meta
            keys = sorted({ev.key for ev in f.evidence})
            out.print(
                f"   [bold]→ export {meta.code}[/bold] (account {meta.account}): "
                f"{f.matched} of {meta.canary_count} canaries found by {', '.join(keys)}; "
                f"probability {f.confidence:.6f}."
            )
    verdict = registry.verify_audit()
    out.print(
        f"6. Every step is in the hash-chained audit log: {verdict.entries} entries, "
        f"{'intact' if verdict.ok else 'BROKEN'}."
    )
    out.rule()
    registry.close()
