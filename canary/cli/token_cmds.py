"""canary token create/list/revoke: bearer tokens of the HTTP API.

Whoever can run these holds the registry's database, so they act as admin; the API checks
each token's role (see canary/registry/access.py). With CANARY_TOKEN set, the command line
acts with that token's role too, and only an admin's token may manage tokens
(canary/cli/roles.py).
"""

from __future__ import annotations

import click
from rich.table import Table

from canary.cli.common import AppContext, console, err_console, handle_errors, print_json
from canary.cli.roles import require_role
from canary.registry.access import ROLES


@click.group("token")
def token_group() -> None:
    """API tokens: create one per person or system, revoke it when they leave.

    \b
    steward       seed (POST /api/exports), list exports, set campaigns
    investigator  also read canaries, events and incidents, trace
    admin         also manage tokens

    The API takes a token as `Authorization: Bearer <token>`. The command line acts as an
    admin (it holds the database), unless CANARY_TOKEN is set: then the commands of
    events, incidents, exports, alerts, mail poll, import and token act with that token's
    role and write its name to the audit log, so a list server's shell with a steward
    token cannot read events, incidents or an export's canaries.
    """


@token_group.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    required=True,
    help="steward: seed and list exports; investigator: also read events, incidents and "
    "canaries; admin: also manage tokens.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the name, role and secret as JSON.")
@click.pass_obj
@handle_errors
def token_create(app: AppContext, name: str, role: str, as_json: bool) -> None:
    """Create a token; its secret is printed once and never stored nor shown again."""
    require_role(app, "tokens:admin")
    secret = app.registry().create_token(name, role)
    if as_json:
        print_json({"name": name.strip(), "role": role, "token": secret})
    else:
        click.echo(secret)
    err_console().print(
        f"Token {name.strip()!r} ({role}) created. Copy the secret now: only its hash is "
        "kept and it is not shown again. 秘密の値は二度と表示されません。今すぐ控えてください。",
        markup=False,
    )


@token_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print tokens as JSON (never secrets).")
@click.pass_obj
@handle_errors
def token_list(app: AppContext, as_json: bool) -> None:
    """List tokens: name, role, who created them, when last used, revoked or not."""
    require_role(app, "tokens:admin")
    tokens = app.registry().tokens()
    if as_json:
        print_json({"tokens": tokens})
        return
    if not tokens:
        console().print("No tokens. Create one: canary token create NAME --role investigator")
        return
    table = Table("name", "role", "created (UTC)", "by", "last used (UTC)", "state")
    for t in tokens:
        table.add_row(
            str(t["name"]),
            str(t["role"]),
            str(t["created_at"])[:16].replace("T", " "),
            str(t["created_by"]),
            str(t["last_used_at"] or "—")[:16].replace("T", " "),
            "[dim]revoked[/dim]" if t["revoked"] else "live",
        )
    console().print(table)


@token_group.command("revoke")
@click.argument("name")
@click.pass_obj
@handle_errors
def token_revoke(app: AppContext, name: str) -> None:
    """Revoke every live token of that name; the API refuses it from now on."""
    require_role(app, "tokens:admin")
    count = app.registry().revoke_token(name)
    console().print(f"Revoked {count} token(s) named {name!r}.", markup=False)
