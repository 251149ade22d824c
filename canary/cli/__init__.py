"""The ``canary`` command line: the front door for stewards, monitors and investigators.

Each command opens the registry, calls one library function and formats the result; library
errors become one sentence on stderr and a non-zero exit (see ``EXIT_CODES``).
"""

from __future__ import annotations

import click

from canary import __version__
from canary.cli import (
    _allocator,  # first: before anything loads polars or the other imports
    events_cmds,
    token_cmds,
)
from canary.cli.common import AppContext
from canary.cli.dns_cmds import dns_group
from canary.cli.doctor_cmds import doctor_cmd
from canary.cli.exports import exports_group
from canary.cli.jobs_cmds import jobs_group
from canary.cli.mail_cmds import mail_group
from canary.cli.pool import pool_group
from canary.cli.registry_cmds import accounts_group, audit_group, init_cmd
from canary.cli.scan_cmds import scan_cmd, scans_group
from canary.cli.seed_cmds import demo_cmd, seed_cmd, trace_cmd
from canary.cli.serve_cmds import config_cmd, serve_cmd
from canary.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="canary")
@click.option(
    "--db",
    metavar="URL",
    help="Registry database URL (default: env CANARY_DB, "
    "else a SQLite file in ~/.local/share/canary).",
)
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Canary: seed list exports with fake people and trace leaks back to the export.

    \b
    Stewards:       canary init; canary pool add-phone/add-domain; canary seed
    Investigators:  canary scan; canary trace; canary exports show; canary audit verify
    Try it:         canary demo
    """
    ctx.obj = AppContext(Settings.from_env(db=db))
    ctx.call_on_close(ctx.obj.close)


cli.add_command(init_cmd)
cli.add_command(pool_group)
cli.add_command(seed_cmd)
cli.add_command(trace_cmd)
cli.add_command(scan_cmd)
cli.add_command(scans_group)
cli.add_command(exports_group)
cli.add_command(accounts_group)
cli.add_command(audit_group)
cli.add_command(demo_cmd)
cli.add_command(dns_group)
cli.add_command(jobs_group)
cli.add_command(doctor_cmd)
cli.add_command(mail_group)
cli.add_command(serve_cmd)
cli.add_command(config_cmd)
for _group in (*events_cmds.GROUPS, token_cmds.token_group):
    cli.add_command(_group)


_allocator.imports_done()


def main() -> None:
    cli(prog_name="canary")
