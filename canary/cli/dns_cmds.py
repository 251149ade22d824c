"""canary dns: hostname tokens, domains dedicated to a client, canary-domain health, and the
DNS listener in the foreground."""

from __future__ import annotations

import click
from rich.table import Table

from canary import domains
from canary.cli.common import AppContext, console, handle_errors, print_json
from canary.errors import CanaryError

EXIT_BLIND = 9  # `canary dns check`: at least one domain is blind


@click.group("dns")
def dns_group() -> None:
    """Hostname tokens, canary-domain health and the DNS listener."""


@dns_group.command("token")
@click.argument("export_id")
@click.option("--zone", metavar="ZONE", help="Zone to put the hostname in (default: the first).")
@click.option("--json", "as_json", is_flag=True, help="Print the token as JSON.")
@click.pass_obj
@handle_errors
def token_cmd(app: AppContext, export_id: str, zone: str | None, as_json: bool) -> None:
    """Make a hostname token for an export, to put in a B2B list's URL column."""
    token = domains.create_token(app.registry(), app.settings, export_id, zone)
    if as_json:
        print_json(token.as_json())
        return
    console().print(
        f"{token.hostname}  (export {token.export}, client {token.client}); "
        f"a lookup of it names the export. Put https://{token.hostname}/ in the URL column."
    )


@dns_group.command("tokens")
@click.option("--json", "as_json", is_flag=True, help="Print the tokens as JSON.")
@click.pass_obj
@handle_errors
def tokens_cmd(app: AppContext, as_json: bool) -> None:
    """List hostname tokens and domains dedicated to a client."""
    tokens = domains.hostname_tokens(app.registry())
    if as_json:
        print_json({"tokens": [t.as_json() for t in tokens]})
        return
    # One line each, the hostname whole: stewards copy it into a list.
    for t in tokens:
        holder = f"export {t.export}" if t.export else "client domain"
        click.echo(
            f"{t.hostname}\t{holder}\tclient {t.client or '-'}\t{t.created_at:%Y-%m-%d %H:%M}"
        )
    if not tokens:
        click.echo("No hostname tokens yet; make one with `canary dns token EXPORT_ID`.")


@dns_group.command("dedicate")
@click.argument("domain")
@click.option("--client", "client", required=True, help="Client whose lists use the domain.")
@click.option("--create", is_flag=True, help="Create the client if the registry lacks it.")
@click.option("--json", "as_json", is_flag=True, help="Print the dedication as JSON.")
@click.pass_obj
@handle_errors
def dedicate_cmd(app: AppContext, domain: str, client: str, create: bool, as_json: bool) -> None:
    """Dedicate a pool domain to one client: an MX lookup of it names the client."""
    token = domains.dedicate_domain(app.registry(), domain, client, create)
    if as_json:
        print_json(token.as_json())
        return
    console().print(f"{token.hostname} is dedicated to client {token.client}.")


@dns_group.command("check")
@click.argument("domain_names", nargs=-1, metavar="[DOMAIN]...")
@click.option(
    "--server",
    metavar="HOST[:PORT]",
    help="Ask this name server (e.g. our listener) instead of CANARY_DNS_RESOLVER or the "
    "system's resolver.",
)
@click.option("--lang", type=click.Choice(["en", "ja"]), default="en", help="Language.")
@click.option("--json", "as_json", is_flag=True, help="Print the health of each domain as JSON.")
@click.pass_obj
@handle_errors
def check_cmd(
    app: AppContext, domain_names: tuple[str, ...], server: str | None, lang: str, as_json: bool
) -> None:
    """Check that every canary domain still reaches us (SOA, NS, MX, SPF, DMARC, expiry);
    exit 9 if any is blind."""
    from canary import domainhealth  # dnspython: loaded by the commands that ask DNS

    resolver = domainhealth.resolver_for(server or app.settings.dns_resolver)
    if domain_names:
        results = [domainhealth.check_domain(d, app.settings, resolver) for d in domain_names]
    else:
        results = domainhealth.check_all(app.registry(), app.settings, resolver)
    if not results:
        raise CanaryError("No canary domain to check; add one with `canary pool add-domain`.")
    if as_json:
        print_json({"domains": [r.as_json() for r in results]})
    else:
        heads = (
            ("ドメイン", "確認", "結果", "詳細")
            if lang == "ja"
            else ("domain", "check", "ok", "detail")
        )
        table = Table(*heads)
        marks = {True: "ok", False: "FAIL", None: "-"}
        for r in results:
            for c in r.checks:
                detail = c.detail_ja if lang == "ja" else c.detail
                table.add_row(r.domain, c.name, marks[c.ok], detail)
        console().print(table)
    blind = [r for r in results if r.blind]
    for r in blind:
        click.echo(f"canary: {r.finding(lang)}", err=True)
    if blind:
        raise click.exceptions.Exit(EXIT_BLIND)


@dns_group.command("serve")
@click.option("--listen", metavar="HOST:PORT", help="Address to bind (default CANARY_DNS_LISTEN).")
@click.pass_obj
@handle_errors
def serve_cmd(app: AppContext, listen: str | None) -> None:
    """Run the DNS listener in the foreground until interrupted (Ctrl-C or SIGTERM)."""
    import signal
    import threading

    from server.dns import DnsListener, split_listen

    host, port = split_listen(listen or app.settings.dns_listen)
    listener = DnsListener(app.registry(), app.settings, host=host, port=port).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    zones = ", ".join(domains.served_zones(app.registry(), app.settings)) or "none yet"
    click.echo(f"DNS listener on {listener.host}:{listener.port} (UDP and TCP) for {zones}.")
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
