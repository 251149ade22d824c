"""canary exports: what was handed over, to whom, by which account."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from canary.cli.common import AppContext, console, handle_errors, print_json
from canary.cli.roles import require_role

WIDE = 120  # columns from which exports print as a table


@click.group("exports")
def exports_group() -> None:
    """Exports (one hand-over of one list) recorded in the registry."""


@exports_group.command("list")
@click.option("--limit", type=int, default=None, help="Show only the most recent N.")
@click.option("--json", "as_json", is_flag=True, help="Print exports as JSON.")
@click.pass_obj
@handle_errors
def list_exports(app: AppContext, limit: int | None, as_json: bool) -> None:
    """List exports, newest first."""
    require_role(app, "exports:read")
    exports = app.registry().exports(limit)
    if as_json:
        print_json({"exports": [e.as_json() for e in exports]})
        return
    out = console()
    if not exports:
        out.print("No exports yet. Seed one: canary seed IN --out OUT --client C --list L ...")
        return
    if out.width < WIDE:  # two lines an export: the id is never cut, at any width
        for e in exports:
            shared = " (shared)" if e.account_shared else ""
            out.print(
                f"[bold]{e.code}[/bold]  {e.created_at.strftime('%Y-%m-%d %H:%M')} UTC  "
                f"{e.status}  {e.rows_in:,} rows, {e.canary_count} canaries"
            )
            out.print(
                f"      {e.client} / {e.list_name}, account {e.account}{shared}"
                + (f" → {e.recipient}" if e.recipient else ""),
                markup=False,
            )
        return
    table = Table()
    for header, keep in (
        ("export", True),
        ("time (UTC)", True),
        ("client", False),
        ("list", False),
        ("account", False),
        ("recipient", False),
        ("rows", True),
        ("canaries", True),
        ("status", True),
    ):
        table.add_column(header, no_wrap=keep)
    for e in exports:
        table.add_row(
            e.code,
            e.created_at.strftime("%Y-%m-%d %H:%M"),
            e.client,
            e.list_name,
            e.account + (" (shared)" if e.account_shared else ""),
            e.recipient or "",
            f"{e.rows_in:,}",
            str(e.canary_count),
            e.status,
        )
    out.print(table)


@exports_group.command("show")
@click.argument("export_id")
@click.option("--json", "as_json", is_flag=True, help="Print the export and its canaries as JSON.")
@click.pass_obj
@handle_errors
def show_export(app: AppContext, export_id: str, as_json: bool) -> None:
    """Show one export: who, when, where from, the file's hash and its canaries (not to a
    steward's CANARY_TOKEN, as the API shows a steward no canaries)."""
    who = require_role(app, "exports:read")
    registry = app.registry()
    export = registry.export(export_id)
    hidden = who is not None and not who.may("canaries:read")
    canaries = [] if hidden else registry.canaries_of(export.code)
    if as_json:
        data = export.as_json()
        if hidden:
            print_json(data)
            return
        data["canary_records"] = [c.as_json() for c in canaries]
        print_json(data)
        return
    out = console()
    members = f" — used by {', '.join(export.account_members)}" if export.account_members else ""
    out.print(f"[bold]{export.code}[/bold]  {export.status}")
    for label, value in (
        ("client", export.client),
        ("list", export.list_name),
        ("account", export.account + (" (shared)" if export.account_shared else "") + members),
        ("recipient", export.recipient),
        ("requested by", export.requested_by),
        ("host / terminal", f"{export.host or '?'} / {export.terminal or '?'}"),
        ("time (UTC)", export.created_at.isoformat(timespec="seconds")),
        ("input", f"{export.input_name} ({export.encoding or export.file_format})"),
        ("output", export.output_path),
        ("sha256", export.output_sha256),
        ("rows", f"{export.rows_in:,} in, {export.rows_out:,} out"),
    ):
        out.print(f"  {label:<16} {value or ''}")
    if hidden:
        out.print(f"{export.canary_count} canaries (CANARY_TOKEN's role does not see them)")
        return
    table = Table("row", "name", "kana", "phone", "email", title=f"{len(canaries)} canaries")
    for c in canaries:
        table.add_row(str(c.position + 1), c.name, c.kana, c.phone_e164 or "", c.email or "")
    out.print(table)


@exports_group.command("recover")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also remove abandoned partial files from this output folder.",
)
@click.pass_obj
@handle_errors
def recover_cmd(app: AppContext, directory: Path | None) -> None:
    """Finish or void seeds that were interrupted (seeding does this by itself too)."""
    from canary.delivery import recover

    require_role(app, "seed")
    actions = recover(app.registry(), directory)
    for line in actions:
        click.echo(line)
    if not actions:
        click.echo("Nothing to recover.")


@exports_group.command("expect")
@click.argument("export_id")
@click.option(
    "--caller",
    "callers",
    multiple=True,
    metavar="NUMBER",
    help="A caller ID the recipient's own campaign calls from (repeatable).",
)
@click.option(
    "--sender",
    "senders",
    multiple=True,
    metavar="DOMAIN",
    help="A mail domain the recipient's own campaign sends from (repeatable).",
)
@click.option(
    "--from",
    "start",
    metavar="ISO",
    help="When the campaign starts, ISO 8601; without an offset in Asia/Tokyo.",
)
@click.option(
    "--until",
    metavar="ISO",
    help="When it ends, ISO 8601 (a bare date means the end of that day); contacts stay "
    "expected for CANARY_EXPECT_GRACE_HOURS more.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the export's expectation as JSON.")
@click.pass_obj
@handle_errors
def expect_cmd(
    app: AppContext,
    export_id: str,
    callers: tuple[str, ...],
    senders: tuple[str, ...],
    start: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Record the recipient's own campaign, so that its calls and mail to the canaries are
    expected, not suspicious. Adds to what was set before."""
    from canary.cdr import DEFAULT_TZ, parse_time, zone
    from canary.errors import InvalidEventError

    require_role(app, "exports:expect")
    tz = zone(DEFAULT_TZ)
    moments = []
    for option, value, end in (("--from", start, False), ("--until", until, True)):
        try:
            moments.append(parse_time(value, tz, end_of_day=end) if value else None)
        except ValueError:
            raise InvalidEventError(
                f"{option} {value!r} is not an ISO 8601 time, e.g. 2026-11-01T09:00."
            ) from None
    if not (callers or senders or start or until):
        raise InvalidEventError(
            "Give the campaign's --caller, --sender, --from or --until; nothing was changed."
        )
    result = app.registry().set_expectation(
        export_id, callers=callers, senders=senders, start=moments[0], until=moments[1]
    )
    if as_json:
        print_json(result)
        return
    out = console()
    out.print(f"[bold]{result['export_id']}[/bold] expects its own campaign 想定される接触:")
    facts = Table.grid(padding=(0, 2))  # aligns Japanese labels by their display width
    for label, key in (
        ("callers 発信番号", "callers"),
        ("senders 送信ドメイン", "senders"),
        ("from 開始 (UTC)", "from"),
        ("until 終了 (UTC)", "until"),
    ):
        held = result[key]
        shown = ", ".join(held) if isinstance(held, list) else str(held or "")
        facts.add_row(f"  {label}", shown or "—")
    out.print(facts)
