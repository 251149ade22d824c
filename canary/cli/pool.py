"""canary pool: the phone numbers and mail domains we own and watch."""

from __future__ import annotations

import click
from rich.table import Table

from canary.cli.common import AppContext, console, handle_errors, print_json
from canary.errors import InvalidDomainError, InvalidPhoneError
from canary.pools import PHONE_STATES, parse_owned_domain, parse_owned_phone


@click.group("pool")
def pool_group() -> None:
    """Owned phone numbers and mail domains that canary tokens are drawn from."""


@pool_group.command("add-phone")
@click.argument("numbers", nargs=-1, required=True)
@click.option(
    "--active",
    is_flag=True,
    help="Make the numbers usable at once instead of starting in quarantine "
    "(for numbers that have been watched and are known quiet).",
)
@click.pass_obj
@handle_errors
def add_phone(app: AppContext, numbers: tuple[str, ...], active: bool) -> None:
    """Add phone numbers we rent and watch (any common Japanese format).

    New numbers start in quarantine, so that calls meant for a previous owner are not taken
    for a leak; `canary pool activate` releases them.
    """
    parsed, problems = [], []
    for raw in numbers:
        try:
            parsed.append(parse_owned_phone(raw))
        except InvalidPhoneError as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidPhoneError(" ".join(problems) + " Nothing was added.")
    added, present = app.registry().add_phones(parsed, "active" if active else "quarantine")
    state = "active" if active else "quarantine"
    click.echo(
        f"Added {len(added)} number(s) in state {state}"
        + (f"; {len(present)} already in the pool." if present else ".")
    )


@pool_group.command("add-domain")
@click.argument("domains", nargs=-1, required=True)
@click.pass_obj
@handle_errors
def add_domain(app: AppContext, domains: tuple[str, ...]) -> None:
    """Add mail domains we control (their MX must reach our listener or mailbox)."""
    parsed, problems = [], []
    for raw in domains:
        try:
            parsed.append(parse_owned_domain(raw))
        except InvalidDomainError as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidDomainError(" ".join(problems) + " Nothing was added.")
    added, present = app.registry().add_domains(parsed)
    click.echo(
        f"Added {len(added)} domain(s)"
        + (f"; {len(present)} already in the pool." if present else ".")
    )


def _set_state(app: AppContext, numbers: tuple[str, ...], state: str) -> None:
    e164s = [parse_owned_phone(n).e164 for n in numbers]
    changed = app.registry().set_phone_state(e164s, state)
    click.echo(f"{len(changed)} number(s) now {state}.")


@pool_group.command("activate")
@click.argument("numbers", nargs=-1, required=True)
@click.pass_obj
@handle_errors
def activate(app: AppContext, numbers: tuple[str, ...]) -> None:
    """Release numbers from quarantine so that seeding may use them."""
    _set_state(app, numbers, "active")


@pool_group.command("set-state")
@click.argument("state", type=click.Choice(PHONE_STATES))
@click.argument("numbers", nargs=-1, required=True)
@click.pass_obj
@handle_errors
def set_state(app: AppContext, state: str, numbers: tuple[str, ...]) -> None:
    """Move numbers to STATE: quarantine, active, burnt (seen in a leak) or retired."""
    _set_state(app, numbers, state)


@pool_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the pool as JSON.")
@click.pass_obj
@handle_errors
def list_pool(app: AppContext, as_json: bool) -> None:
    """List owned numbers (with kind, state and how many exports use each) and domains."""
    registry = app.registry()
    phones, domains = registry.pool_phones(), registry.pool_domains()
    if as_json:
        print_json(
            {
                "phones": [
                    {
                        "number": p.e164,
                        "kind": p.kind,
                        "state": p.state,
                        "exports": p.use_count,
                        "added_at": p.added_at.isoformat(),
                    }
                    for p in phones
                ],
                "domains": [
                    {"domain": d.domain, "state": d.state, "added_at": d.added_at.isoformat()}
                    for d in domains
                ],
            }
        )
        return
    table = Table("number", "kind", "state", "exports", title="Phone numbers")
    for p in phones:
        table.add_row(p.e164, p.kind, p.state, str(p.use_count))
    out = console()
    out.print(table)
    dt = Table("domain", "state", title="Mail domains")
    for d in domains:
        dt.add_row(d.domain, d.state)
    out.print(dt)
    counts = {s: sum(1 for p in phones if p.state == s) for s in PHONE_STATES}
    out.print(", ".join(f"{v} {k}" for k, v in counts.items()) + f"; {len(domains)} domain(s)")
