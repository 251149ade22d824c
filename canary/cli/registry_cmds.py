"""canary init, canary accounts, canary audit."""

from __future__ import annotations

import click

from canary.cli.common import AppContext, console, handle_errors, print_json


@click.command("init")
@click.pass_obj
@handle_errors
def init_cmd(app: AppContext) -> None:
    """Create the registry database, or upgrade it to this version's schema."""
    registry = app.registry(ready=False)
    before, after = registry.init()
    where = registry.url.rsplit("@", 1)[-1]
    if before == after:
        click.echo(f"Registry {where} is up to date (schema {after}).")
    elif before is None:
        click.echo(f"Created registry {where} (schema {after}).")
    else:
        click.echo(f"Upgraded registry {where} from schema {before} to {after}.")


@click.group("accounts")
def accounts_group() -> None:
    """Logins that make exports, and who shares them."""


@accounts_group.command("set")
@click.argument("name")
@click.option("--shared/--personal", default=True, help="Whether several people use the login.")
@click.option(
    "--member",
    "members",
    multiple=True,
    metavar="PERSON",
    help="A person known to use the login (repeat for each).",
)
@click.pass_obj
@handle_errors
def accounts_set(app: AppContext, name: str, shared: bool, members: tuple[str, ...]) -> None:
    """Record that login NAME is shared and by whom, so findings name the people."""
    app.registry().set_account(name, shared, members)
    who = ", ".join(members) or "no known members"
    click.echo(f"Account {name}: {'shared' if shared else 'personal'} ({who}).")


@click.group("audit")
def audit_group() -> None:
    """The append-only, hash-chained audit log."""


@audit_group.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
@handle_errors
def audit_verify(app: AppContext, as_json: bool) -> None:
    """Check every link of the audit chain; exit 8 if any entry was altered or removed."""
    result = app.registry().verify_audit()
    if as_json:
        print_json(
            {
                "ok": result.ok,
                "entries": result.entries,
                "head": result.head,
                "broken_at": result.broken_at,
                "reason": result.reason,
            }
        )
    elif result.ok:
        console().print(f"Audit chain intact: {result.entries} entries, head {result.head[:16]}…")
    if not result.ok:
        if not as_json:
            click.echo(
                f"canary: audit chain BROKEN at entry {result.broken_at}: {result.reason}.",
                err=True,
            )
        raise click.exceptions.Exit(8)


@audit_group.command("log")
@click.option("--limit", default=20, show_default=True, help="How many recent entries.")
@click.option("--json", "as_json", is_flag=True, help="Print entries as JSON.")
@click.pass_obj
@handle_errors
def audit_log(app: AppContext, limit: int, as_json: bool) -> None:
    """Show the most recent audit entries."""
    links = list(app.registry().audit_links())[-limit:]
    if as_json:
        print_json([link.__dict__ for link in links])
        return
    for link in links:
        click.echo(
            f"{link.seq:>6}  {link.at[:19]}  {link.actor:<12} {link.action:<18} {link.subject}"
        )
