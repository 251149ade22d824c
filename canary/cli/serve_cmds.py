"""canary serve: the webhooks, the API and the SMTP and DNS listeners in one command;
canary config: every CANARY_* variable and what it does."""

from __future__ import annotations

import os
import re

import click
from rich.table import Column, Table

from canary.cli.common import AppContext, console, handle_errors
from canary.settings import Settings

SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD")
URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]+@")


@click.command("serve")
@click.option(
    "--bind",
    metavar="HOST:PORT",
    help="Address the HTTP server listens on (default: CANARY_LISTEN, 127.0.0.1:8425).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=lambda: max(2, os.cpu_count() or 2),
    show_default="one per CPU, at least 2",
    help="HTTP worker processes (fewer, with more threads each, batch more events per "
    "commit: see server/README.md).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Threads per worker (gunicorn's gthread workers, with keep-alive); 1 for sync workers.",
)
@click.option(
    "--smtp/--no-smtp",
    default=None,
    help="Run the SMTP listener for the pool domains (default: on, at CANARY_SMTP_LISTEN).",
)
@click.option(
    "--dns/--no-dns",
    default=None,
    help="Run the DNS listener for the token hostnames (default: on, at CANARY_DNS_LISTEN).",
)
@click.pass_obj
@handle_errors
def serve_cmd(
    app: AppContext,
    bind: str | None,
    workers: int,
    threads: int,
    smtp: bool | None,
    dns: bool | None,
) -> None:
    """Run the server: provider webhooks, the API, the SMTP and DNS listeners and the
    sealer of events, until SIGTERM or Ctrl-C.

    \b
    Twilio:   set CANARY_TWILIO_AUTH_TOKEN and CANARY_PUBLIC_URL, then point the number's
              voice URL at /hooks/twilio/voice and messaging URL at /hooks/twilio/sms.
    Others:   set CANARY_WEBHOOK_SECRET and POST signed JSON to /hooks/events.
    See `canary config` for every variable and server/README.md for every endpoint.
    """
    from server.serve import ServeOptions, serve

    options = ServeOptions(
        bind=bind or app.settings.listen, workers=workers, threads=threads, smtp=smtp, dns=dns
    )
    serve(app.settings, options, say=lambda line: click.echo(f"canary: {line}", err=True))


def markdown_table() -> str:
    """The CANARY_* variables as a Markdown table (server/README.md holds a copy)."""
    lines = ["| variable | what it sets |", "|---|---|"]
    for env, text in Settings.help_table():
        lines.append(f"| `{env}` | {text.replace('|', '/')} |")
    return "\n".join(lines)


@click.command("config")
@click.option("--markdown", is_flag=True, help="Print the variables as a Markdown table.")
@click.pass_obj
def config_cmd(app: AppContext, markdown: bool) -> None:
    """Every CANARY_* variable, its help and whether it is set (secrets are never shown)."""
    if markdown:
        click.echo(markdown_table())
        return
    table = Table("value", "what it sets")
    table.columns.insert(0, Column("variable", no_wrap=True))
    for env, text in Settings.help_table():
        raw = os.environ.get(env)
        if raw in (None, ""):
            shown = "(default)"
        elif any(word in env for word in SECRET_WORDS):
            shown = "(set)"
        else:
            shown = URL_PASSWORD.sub(r"\1***@", raw)
        table.add_row(env, shown, text)
    console().print(table)
