"""canary seed, canary trace, canary demo."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
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
from canary.errors import InputError
from canary.schema import ROLES
from canary.trace import trace


def _parse_map(values: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for item in values:
        role, sep, column = item.partition("=")
        if not sep or not column:
            raise InputError(f"--map {item!r} should be ROLE=COLUMN, e.g. --map phone=連絡先.")
        mapping[role.strip()] = column.strip()
    return mapping


@click.command("seed")
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "output",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the seeded copy (same format as IN).",
)
@click.option("--client", required=True, help="Organisation whose people are on the list.")
@click.option("--list", "list_name", required=True, help="Name of the list being handed over.")
@click.option("--account", required=True, help="Login that makes this export.")
@click.option("--recipient", help="Who receives the file (vendor, call center).")
@click.option("--requested-by", help="Who asked for the export (person or ticket).")
@click.option(
    "--canaries",
    type=int,
    help="How many canaries; default ~15·log10(rows), at most "
    "2% of rows (1,000 rows → 20, 100,000 → 76, 10 M → 106).",
)
@click.option(
    "--stable",
    type=int,
    help="How many of the canaries are the same rows in every export of this list by this "
    "account, so the account is still named after an insider diffs two exports; default a "
    "quarter (none below 4 canaries), 0 for none.",
)
@click.option(
    "--encoding", help="Input encoding if detection is wrong: utf-8, utf-8-sig, cp932, euc-jp."
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="ROLE=COLUMN",
    help=f"Say which column holds a role (by header or 1-based number). Roles: {', '.join(ROLES)}.",
)
@click.option(
    "--shared-by",
    "members",
    multiple=True,
    metavar="PERSON",
    help="The account is shared; a person known to use it (repeat).",
)
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
@handle_errors
def seed_cmd(
    app: AppContext,
    input_path: Path,
    output: Path,
    client: str,
    list_name: str,
    account: str,
    recipient: str | None,
    requested_by: str | None,
    canaries: int | None,
    stable: int | None,
    encoding: str | None,
    mapping: tuple[str, ...],
    members: tuple[str, ...],
    force: bool,
    as_json: bool,
) -> None:
    """Seed list IN with canaries and write it to --out.

    Every row of IN is kept byte for byte, in order (encoding, delimiter, quoting, line
    endings); canaries are extra rows at random places. Most are unique to this export;
    --stable of them are carried by every export of this list by this account. The export
    and its canaries are in the registry before the file appears. CSV/TSV in UTF-8, CP932 or
    EUC-JP, and XLSX.
    """
    from canary.seed import SeedRequest, seed

    req = SeedRequest(
        input=input_path,
        output=output,
        client=client,
        list_name=list_name,
        account=account,
        recipient=recipient,
        requested_by=requested_by,
        canaries=canaries,
        stable=stable,
        encoding=encoding,
        mapping=_parse_map(mapping),
        force=force,
        account_members=members,
    )
    require_role(app, "seed")
    registry = app.registry()
    if stderr_is_tty() and not as_json:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err_console(),
            transient=True,
        ) as bar:
            task = bar.add_task(f"seeding {input_path.name}", total=None)
            result = seed(
                registry,
                app.settings,
                req,
                lambda done, total: bar.update(task, completed=done, total=total),
            )
    else:
        result = seed(registry, app.settings, req)
    if as_json:
        print_json(result.as_json())
        return
    e = result.export
    out = console()
    out.print(
        f"Export [bold]{e.code}[/bold]: {e.canary_count} canaries in {e.rows_in:,} rows "
        f"→ {output} ({e.encoding or e.file_format})"
    )
    out.print(
        f"  client {e.client} / list {e.list_name} / account {e.account}"
        + (f" / to {e.recipient}" if e.recipient else "")
    )
    out.print(f"  sha256 {e.output_sha256}")
    out.print("  columns: " + result.schema.describe())


@click.command("trace")
@click.option("--phone", help="A phone number in any format (+81, full width, hyphens).")
@click.option("--email", help="An email address (any case or width).")
@click.option("--name", help="A name in kanji or kana (spaces and width ignored).")
@click.option("--json", "as_json", is_flag=True, help="Print matches as JSON.")
@click.pass_obj
@handle_errors
def trace_cmd(
    app: AppContext, phone: str | None, email: str | None, name: str | None, as_json: bool
) -> None:
    """Which export does a phone number, email address or name belong to?"""
    given = [x for x in (phone, email, name) if x]
    if len(given) != 1:
        raise click.UsageError("Give exactly one of --phone, --email or --name.")
    require_role(app, "canaries:read")
    result = trace(app.registry(), phone=phone, email=email, name=name)
    if as_json:
        print_json(result.as_json())
        return
    out = console()
    if not result.matches:
        out.print(f"No canary holds {result.query!r}: it is not one of our tokens.")
        return
    table = Table(
        "export",
        "client",
        "list",
        "account",
        "time (UTC)",
        "canary",
        "row",
        "by",
        title=f"{result.query}: {len(result.matches)} match(es)",
    )
    for m in result.matches:
        e = m.canary.export
        table.add_row(
            e.code,
            e.client,
            e.list_name,
            e.account + (" (shared)" if e.account_shared else ""),
            e.created_at.strftime("%Y-%m-%d %H:%M"),
            m.canary.name,
            str(m.canary.position + 1),
            m.key,
        )
    out.print(table)
    if result.note:
        out.print(result.note)


@click.command("demo")
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo registry and seeded files in this folder.",
)
@handle_errors
def demo_cmd(keep: Path | None) -> None:
    """Seed the sample list for three accounts and trace a canary back: a short story."""
    from canary.demo import run_demo

    run_demo(console(), keep)
