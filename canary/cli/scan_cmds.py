"""canary scan, canary scans list."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
from rich.table import Table

from canary.cli.common import (
    AppContext,
    console,
    err_console,
    handle_errors,
    print_json,
    stderr_is_tty,
)
from canary.cli.roles import require_role


@click.command("scan")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML report (English and Japanese).",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Probability above which an export is attributed (default 0.999).",
)
@click.option("--encoding", help="Force the encoding: utf-8, utf-8-sig, cp932, euc-jp.")
@click.option(
    "--no-record", is_flag=True, help="Do not record this scan in the registry (a dry run)."
)
@click.pass_obj
@handle_errors
def scan_cmd(
    app: AppContext,
    file: Path,
    as_json: bool,
    report: Path | None,
    threshold: float | None,
    encoding: str | None,
    no_record: bool,
) -> None:
    """Look for canaries in a broker list (CSV/TSV/XLSX, any common Japanese encoding).

    Prints the exports and accounts the list leaked from, most likely first, with the
    probability and the evidence: which canaries, found by which key, in which rows.
    Only counts, hashes and the matched canaries are recorded, never the list's people.
    """
    from canary.attribute import DEFAULT_THRESHOLD
    from canary.scan import ScanResult, scan

    require_role(app, "canaries:read")  # a scan names exports and shows their canaries
    registry = app.registry()
    if report is not None:
        from canary.report import check_report_path

        check_report_path(report)  # before scanning, so a bad path costs no recorded scan
    limit = threshold if threshold is not None else DEFAULT_THRESHOLD
    seeds = app.settings.seeds_dir

    def run(progress: Callable[[int], None] | None = None) -> ScanResult:
        return scan(
            registry,
            seeds,
            file,
            threshold=limit,
            encoding=encoding,
            record=not no_record,
            cache_dir=app.settings.cache_dir,
            progress=progress,
        )

    if stderr_is_tty() and not as_json:
        with err_console().status(f"scanning {file.name}…") as status:
            result = run(lambda n: status.update(f"scanning {file.name}: {n:,} rows"))
    else:
        result = run()
    if report is not None:
        from canary.report import write_report

        write_report(result, report)
    if as_json:
        print_json(result.as_json())
        return
    _print_summary(result, report)


def _print_summary(result: object, report: Path | None) -> None:
    from canary.scan import ScanResult

    assert isinstance(result, ScanResult)
    out = console()
    out.print(
        f"[bold]{result.file_name}[/bold]  {result.rows:,} rows  sha256 "
        f"{result.sha256[:16]}…  ({result.encoding or result.kind})"
    )
    for w in result.warnings:
        out.print(f"[yellow]warning:[/yellow] {w}")
    if not result.exports and not result.accounts:
        out.print(
            f"None of the registry's {result.canaries_indexed:,} canaries is in this list: "
            "it shows no sign of our exports."
        )
    attributed = [f for f in result.exports if f.attributed]
    # Attributed exports in full; when none is, the strongest candidates, so an
    # investigator sees what came close.
    shown = attributed or result.exports[:5]
    for f in shown:
        m = f.meta
        shared = f" (shared: {', '.join(m.account_members)})" if m.account_members else ""
        verdict = "[bold red]ATTRIBUTED[/bold red]" if f.attributed else "not attributed"
        weak = f" + {len(f.weak_phones)} pool number(s) alone" if f.weak_phones else ""
        out.print(
            f"[bold]{m.code}[/bold]  {m.client} / {m.list_name}  account "
            f"[bold]{m.account}[/bold]{shared}"
        )
        out.print(
            f"    exported {m.created_at:%Y-%m-%d %H:%M} UTC to {m.recipient or '?'}; "
            f"{f.matched}/{m.canary_count} canaries found{weak}; "
            f"probability {f.confidence:.6f}: {verdict}"
        )
        for e in f.evidence[:8]:
            rows = ", ".join(str(r) for r in e.rows[:5])
            out.print(f"      {e.name}: {e.key} ({e.strength}, chance {e.p:.0e}), row {rows}")
    others = len(result.exports) - len(shown)
    if others > 0:
        out.print(
            f"{others} other export(s) had weaker evidence and are not attributed "
            "(chance namesakes or shared pool numbers; see --json or --report)."
        )
    named = [a for a in result.accounts if a.attributed]
    for a in named:
        out.print(
            f"Account [bold]{a.account}[/bold] ({a.client} / {a.list_name}) across "
            f"{len(a.exports)} exports ({', '.join(a.exports)}): probability "
            f"{a.confidence:.6f} — [bold red]ATTRIBUTED[/bold red]"
        )
        if a.evidence:
            out.print(
                f"    {len(a.evidence)} stable canar{'y' if len(a.evidence) == 1 else 'ies'} "
                "of this account (carried by each of its exports of the list: the account, "
                "not one export)"
            )
        for e in a.evidence[:8]:
            rows = ", ".join(str(r) for r in e.rows[:5])
            out.print(f"      {e.name}: {e.key} ({e.strength}, chance {e.p:.0e}), row {rows}")
    if len(result.accounts) > len(named):
        out.print(
            f"{len(result.accounts) - len(named)} account(s) had weaker evidence across "
            "several exports; not attributed."
        )
    if result.scan_id:
        out.print(f"Recorded as scan {result.scan_id}.")
    if report:
        out.print(f"Report written to {report}.")


@click.group("scans")
def scans_group() -> None:
    """Broker lists scanned so far."""


@scans_group.command("list")
@click.option("--limit", type=int, default=20, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print scans as JSON.")
@click.pass_obj
@handle_errors
def scans_list(app: AppContext, limit: int, as_json: bool) -> None:
    """List recorded scans with their file hash and what they attributed."""
    require_role(app, "events:read")
    scans = app.registry().scans(limit)
    if as_json:
        print_json({"scans": scans})
        return
    table = Table("scan", "time (UTC)", "file", "rows", "matched rows", "attributed")
    for s in scans:
        result = s["result"] if isinstance(s["result"], dict) else {}
        exports = result.get("exports", [])
        attributed = ", ".join(e["export_id"] for e in exports if e.get("attributed"))
        table.add_row(
            str(s["scan_id"]),
            str(s["scanned_at"])[:16],
            str(s["file"]),
            f"{s['rows']:,}",
            str(s["matched_rows"]),
            attributed or "—",
        )
    console().print(table)
