"""canary mail: poll the IMAP mailbox of the pool domains, or run their SMTP listener."""

from __future__ import annotations

import signal
import threading
import time

import click

from canary.cli.common import AppContext, handle_errors, print_json
from canary.cli.roles import require_role
from canary.errors import CanaryError


@click.group("mail")
def mail_group() -> None:
    """Mail to canary addresses: the IMAP mailbox poller and the SMTP listener."""


def _summary(result: object) -> str:
    from canary.mailbox import PollResult

    assert isinstance(result, PollResult)
    return (
        f"Polled {result.seen} messages: {result.stored} events stored, "
        f"{result.duplicates} already stored, {result.ignored} to no canary, "
        f"{result.failed} failed."
    )


@mail_group.command("poll")
@click.option("--once", is_flag=True, help="Poll once and exit (else poll until interrupted).")
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between polls when not --once.",
)
@click.option("--json", "as_json", is_flag=True, help="Print each poll's counts as JSON.")
@click.pass_obj
@handle_errors
def poll_cmd(app: AppContext, once: bool, every: int, as_json: bool) -> None:
    """Store an event for every unread message to a canary address in the mailbox
    CANARY_IMAP_URL (password CANARY_IMAP_PASSWORD), and mark it read.

    Mail to no canary is left unread. Safe to run again: a message already stored is a
    duplicate, never a second event. Messages are never deleted.
    """
    from canary.mailbox import poll_mailbox

    require_role(app, "events:write")
    registry = app.registry()
    while True:
        result = poll_mailbox(registry, app.settings)
        if as_json:
            print_json(result.as_json())
        else:
            click.echo(_summary(result))
        if result.failed:
            raise CanaryError(
                f"{result.failed} message(s) could not be stored and stay unread for the next "
                f"poll; first problem: {result.errors[0]}"
            )
        if once:
            return
        time.sleep(every)


@mail_group.command("listen")
@click.option(
    "--listen",
    "address",
    metavar="HOST:PORT",
    help="Address to bind (default: CANARY_SMTP_LISTEN); port 0 picks a free one.",
)
@click.pass_obj
@handle_errors
def listen_cmd(app: AppContext, address: str | None) -> None:
    """Run the SMTP listener for the pool domains until interrupted (Ctrl-C or SIGTERM).

    Mail to a canary address is stored as an event; other addresses on the pool domains
    are refused (550) and kept as probes; other domains are refused, never relayed.
    """
    from server.smtp import SmtpListener

    registry = app.registry()
    domains = sorted(d.domain for d in registry.pool_domains(state="active"))
    if not domains:
        raise CanaryError(
            "No active pool domain to receive mail for; add one with `canary pool add-domain`."
        )
    host, _, port = (address or app.settings.smtp_listen).rpartition(":")
    if not port.isdigit():
        raise CanaryError(f"{address!r} is not HOST:PORT; give e.g. 0.0.0.0:25.")
    listener = SmtpListener(registry, app.settings, host=host or "0.0.0.0", port=int(port))
    try:
        listener.start()
    except OSError as exc:
        raise CanaryError(
            f"Cannot listen on {host}:{port} ({exc.strerror or exc}); pick another address "
            "with --listen or CANARY_SMTP_LISTEN (port 25 needs privileges)."
        ) from exc
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(
        f"canary: SMTP listener on {listener.host}:{listener.port} for {', '.join(domains)}",
        err=True,
    )
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
    click.echo("canary: SMTP listener stopped", err=True)
