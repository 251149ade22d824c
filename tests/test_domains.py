"""Hostname tokens, domains dedicated to a client, and canary-domain health.

Health is checked with a real dnspython resolver against our own DNS listener on loopback
(healthy zone; a zone served with a wrong MX; a domain it does not serve; a name server
that does not answer), and expiry against an RDAP server on loopback. The scheduler's
``domains`` job asks the listener through ``CANARY_DNS_RESOLVER`` and alerts a blind
domain by mail (aiosmtpd on loopback). Registry parts run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.resolver
import pytest

from canary import jobruns
from canary.domainhealth import resolver_for
from canary.domains import (
    check_all,
    check_domain,
    create_token,
    dedicate_domain,
    hostname_holders,
    hostname_tokens,
    served_zones,
)
from canary.errors import CanaryError, InputError, NotFoundError, PoolError
from canary.registry import Registry
from canary.seed import SeedRequest, SeedResult, seed
from canary.settings import Settings
from jobs.scheduler import run_once
from server.dns import DnsListener
from tests.conftest import TEST_DOMAIN
from tests.listgen import people, write_csv
from tests.test_doctor import _closed_port
from tests.test_upkeep import _LoopbackController, _Mailbox

LABEL = re.compile(r"^[a-z]+-?[a-z]+\d{2,3}$")


def _seed(registry: Registry, settings: Settings, tmp: Path, client: str, no: int) -> SeedResult:
    src = tmp / "host.csv"
    if not src.exists():
        write_csv(src, people(300, seed=12))
    request = SeedRequest(
        input=src,
        output=tmp / f"out{no}.csv",
        client=client,
        list_name="b2b",
        account="op1",
        stable=0,
        rng_seed=no,
    )
    return seed(registry, settings, request)


def _dns(settings: Settings, **extra: str) -> Settings:
    values = {"dns_ipv4": "192.0.2.10", **extra}
    return dataclasses.replace(settings, **values)


def _resolver(listener: DnsListener) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = listener.port
    resolver.lifetime = 10.0
    return resolver


# -- hostname tokens ----------------------------------------------------------------------


def test_a_token_is_a_plausible_unique_host_under_a_zone_naming_its_export(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    export = _seed(registry, settings, tmp_path, "city", 1).export.code
    first = create_token(registry, settings, export, rng=random.Random(7))
    again = create_token(registry, settings, export, rng=random.Random(7))  # same first draw
    assert first.hostname != again.hostname
    for token in (first, again):
        label, _, zone = token.hostname.partition(".")
        assert zone == TEST_DOMAIN == token.zone
        assert LABEL.match(label), label
        assert export.lower().replace("-", "") not in token.hostname.replace("-", "")
        assert (token.export, token.client) == (export, "city")
    listed = hostname_tokens(registry)
    assert [t.hostname for t in listed] == [first.hostname, again.hostname]
    holders = hostname_holders(registry, f"WWW.{first.hostname}.")
    assert holders is not None and holders.exports == (export,) and holders.client == "city"
    assert hostname_holders(registry, f"other.{TEST_DOMAIN}") is None
    assert registry.verify_audit().ok


def test_tokens_refuse_unknown_exports_and_zones_we_do_not_serve(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    export = _seed(registry, settings, tmp_path, "city", 2).export.code
    with pytest.raises(NotFoundError):
        create_token(registry, settings, "EX-NONE-NONE")
    with pytest.raises(PoolError, match="does not serve"):
        create_token(registry, settings, export, zone="example.com")
    registry.set_export_status(export, "void")
    with pytest.raises(InputError, match="void"):
        create_token(registry, settings, export)


def test_configured_zones_are_served_first(registry: Registry, settings: Settings) -> None:
    configured = dataclasses.replace(settings, dns_zones="Tokens.Example.JP, ,")
    assert served_zones(registry, configured) == ["tokens.example.jp", TEST_DOMAIN]


def test_a_dedicated_domain_names_its_client_and_tokens_keep_off_other_clients_domains(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match="--create"):
        dedicate_domain(registry, TEST_DOMAIN, "town")
    with pytest.raises(PoolError, match="not an active pool domain"):
        dedicate_domain(registry, "example.com", "town", create=True)
    dedicated = dedicate_domain(registry, TEST_DOMAIN, "town", create=True)
    assert (dedicated.hostname, dedicated.client, dedicated.export) == (TEST_DOMAIN, "town", None)
    with pytest.raises(PoolError, match="already"):
        dedicate_domain(registry, TEST_DOMAIN, "town")
    holders = hostname_holders(registry, TEST_DOMAIN)
    assert holders is not None and holders.client == "town" and holders.exports == ()
    # Another client's export finds no zone of its own: the only one is town's.
    other = _seed(registry, settings, tmp_path, "city", 3).export.code
    with pytest.raises(PoolError, match="No zone"):
        create_token(registry, settings, other)
    # town's own export may use town's domain; the lookup names the export and the client.
    mine = _seed(registry, settings, tmp_path, "town", 4).export.code
    token = create_token(registry, settings, mine)
    holders = hostname_holders(registry, token.hostname)
    assert holders is not None and holders.exports == (mine,) and holders.client == "town"


# -- domain health ------------------------------------------------------------------------


@pytest.fixture
def listener(registry: Registry, settings: Settings) -> Iterator[DnsListener]:
    with DnsListener(registry, _dns(settings), "127.0.0.1", 0) as running:
        yield running


def test_a_zone_our_listener_serves_is_healthy(
    listener: DnsListener, registry: Registry, settings: Settings
) -> None:
    [health] = check_all(registry, _dns(settings), _resolver(listener))
    assert health.domain == TEST_DOMAIN
    assert not health.blind, health.as_json()
    assert {c.name: c.ok for c in health.checks} == {
        "soa": True,
        "ns": True,
        "mx": True,
        "spf": True,
        "dmarc": True,
        "expiry": None,  # RDAP is off by default
    }
    assert health.finding() is None and health.as_json()["finding_ja"] is None


def test_a_zone_served_with_a_wrong_mx_is_blind(registry: Registry, settings: Settings) -> None:
    wrong = _dns(settings, dns_mx_host="mail.elsewhere.example")
    with DnsListener(registry, wrong, "127.0.0.1", 0) as running:
        health = check_domain(TEST_DOMAIN, _dns(settings), _resolver(running))
    assert health.blind
    failed = [c.name for c in health.checks if c.ok is False]
    assert failed == ["mx"]
    finding = health.finding("en")
    assert finding is not None and finding.startswith(f"Canaries on {TEST_DOMAIN} are blind")
    assert "mail.elsewhere.example" in finding
    finding_ja = health.finding("ja")
    assert finding_ja is not None and "検知できない" in finding_ja


def test_a_domain_the_listener_does_not_serve_is_blind(
    listener: DnsListener, settings: Settings
) -> None:
    health = check_domain("not-ours.example.jp", _dns(settings), _resolver(listener))
    assert health.blind
    soa = next(c for c in health.checks if c.name == "soa")
    assert soa.ok is False and "refused" in soa.detail
    assert all(c.ok is not True for c in health.checks)


def test_our_addresses_must_be_where_the_mx_points(
    listener: DnsListener, settings: Settings
) -> None:
    moved = _dns(settings, dns_ipv4="198.51.100.7")  # we moved; the zone still says 192.0.2.10
    health = check_domain(TEST_DOMAIN, moved, _resolver(listener))
    mx = next(c for c in health.checks if c.name == "mx")
    assert mx.ok is False and "not to our addresses" in mx.detail


def test_a_name_server_that_does_not_answer_is_asked_once(settings: Settings) -> None:
    silent = resolver_for(f"127.0.0.1:{_closed_port()}", lifetime=1.0)
    health = check_domain(TEST_DOMAIN, _dns(settings), silent)
    assert health.blind
    assert [(c.name, c.ok) for c in health.checks] == [
        ("soa", False),
        ("ns", None),  # not asked: every lookup would wait as long to say nobody answers
        ("mx", None),
        ("spf", None),
        ("dmarc", None),
        ("expiry", None),
    ]
    finding = f"Canaries on {TEST_DOMAIN} are blind: no SOA record: the lookup timed out."
    assert health.finding() == finding


def test_the_resolver_setting_is_a_name_server_address(settings: Settings) -> None:
    ours = resolver_for("127.0.0.1:5053")
    assert (ours.nameservers, ours.port) == (["127.0.0.1"], 5053)
    v6 = resolver_for("[::1]:5353")
    assert (v6.nameservers, v6.port) == (["::1"], 5353)
    assert resolver_for("192.0.2.53").port == 53
    for wrong in ("127.0.0.1:dns", "resolver.example.jp:53", ":53"):
        with pytest.raises(CanaryError, match=re.escape("e.g. 127.0.0.1:5053")):
            resolver_for(wrong)
    with pytest.raises(CanaryError, match="CANARY_DNS_RESOLVER"):
        check_domain(TEST_DOMAIN, _dns(settings, dns_resolver="nowhere:x"))


def test_the_domains_job_asks_the_configured_resolver_and_alerts_a_blind_domain(
    registry: Registry, settings: Settings
) -> None:
    mailbox = _Mailbox()
    smtp = _LoopbackController(mailbox, hostname="127.0.0.1", port=0)
    smtp.start()
    try:
        with DnsListener(registry, _dns(settings), "127.0.0.1", 0) as world:
            asks_world = _dns(settings, dns_resolver=f"127.0.0.1:{world.port}")
            healthy = run_once(asks_world, "domains")
            # A zone whose delegation was lost: configured for tokens, but the world's name
            # server (our listener, which never heard of it) refuses it.
            lost = dataclasses.replace(
                asks_world,
                dns_zones="lost.example.jp",
                alert_email_to="soc@example.jp",
                alert_smtp=f"127.0.0.1:{smtp.port}",
            )
            failed = run_once(lost, "domains")
    finally:
        smtp.stop()
    assert healthy["outcome"] == "ok", healthy
    summary = healthy["summary"]
    assert isinstance(summary, dict) and summary["domains"] == 1 and summary["blind"] == []

    assert failed["outcome"] == "failed"
    error = str(failed["error"])
    assert error.startswith("Canaries on lost.example.jp are blind: no SOA record: no name server")
    summary = failed["summary"]
    assert isinstance(summary, dict)
    assert summary["blind"] == ["lost.example.jp"] and summary["alerted"] == ["email"]
    assert summary["domains"] == 2  # the pool domain stays healthy beside it
    [mail] = mailbox.messages
    assert "lost.example.jp are blind" in str(mail["Subject"])
    body = mail.get_content()
    assert "Canaries on lost.example.jp are blind" in body and "検知できない" in body

    # The failed run is what `jobs list`, `doctor` and the morning digest show.
    [last] = jobruns.runs(registry, job="domains", limit=1)
    assert last.outcome == "failed" and last.error == error
    digest = jobruns.build_digest(registry)
    assert [r.job for r in digest.failures] == ["domains"]
    text = digest.text("en")
    assert "FAILED domains" in text and "lost.example.jp are blind" in text
    assert "失敗 domains" in digest.text("ja")
    # Nobody contacted a canary: a blind domain is no event (the lookups are noise).
    assert all(e.classification == "noise" for e in registry.events(limit=None))


class _Rdap(BaseHTTPRequestHandler):
    expires = ""

    def do_GET(self) -> None:
        body = json.dumps(
            {"objectClassName": "domain", "events": [
                {"eventAction": "registration", "eventDate": "2020-01-01T00:00:00Z"},
                {"eventAction": "expiration", "eventDate": self.expires},
            ]}
        ).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/rdap+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def rdap() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Rdap)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/domain/"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("days, ok", [(400, True), (10, False), (-3, False)])
def test_expiry_is_read_over_rdap_when_configured(
    listener: DnsListener, settings: Settings, rdap: str, days: int, ok: bool
) -> None:
    expires = datetime.now(UTC) + timedelta(days=days)
    _Rdap.expires = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    health = check_domain(TEST_DOMAIN, _dns(settings, dns_rdap_url=rdap), _resolver(listener))
    expiry = next(c for c in health.checks if c.name == "expiry")
    assert expiry.ok is ok
    assert health.expires_at is not None and health.expires_at.date() == expires.date()
    assert health.blind is not ok


def test_an_unreachable_rdap_server_leaves_expiry_unchecked(
    listener: DnsListener, settings: Settings
) -> None:
    closed = "http://127.0.0.1:9/domain/"  # discard port: nothing listens
    health = check_domain(TEST_DOMAIN, _dns(settings, dns_rdap_url=closed), _resolver(listener))
    expiry = next(c for c in health.checks if c.name == "expiry")
    assert expiry.ok is None and "RDAP lookup failed" in expiry.detail
    assert not health.blind


# -- command line -------------------------------------------------------------------------


def test_cli_tokens_dedication_and_check(
    run: object,
    registry: Registry,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoke = run  # type: ignore[assignment]
    export = _seed(registry, settings, tmp_path, "city", 5).export.code
    made = invoke("dns", "token", export, "--json")  # type: ignore[operator]
    assert made.exit_code == 0, made.output
    token = json.loads(made.output)
    assert token["export_id"] == export and token["hostname"].endswith("." + TEST_DOMAIN)
    listed = json.loads(invoke("dns", "tokens", "--json").output)  # type: ignore[operator]
    assert [t["hostname"] for t in listed["tokens"]] == [token["hostname"]]
    missing = invoke("dns", "token", "EX-NONE-NONE")  # type: ignore[operator]
    assert missing.exit_code == 7 and "No export" in missing.output
    nozone = invoke("dns", "token", export, "--zone", "example.com")  # type: ignore[operator]
    assert nozone.exit_code == 4 and "does not serve" in nozone.output
    dedicated = invoke("dns", "dedicate", TEST_DOMAIN, "--client", "city")  # type: ignore[operator]
    assert dedicated.exit_code == 0 and "dedicated to client city" in dedicated.output

    monkeypatch.setenv("CANARY_DNS_IPV4", "192.0.2.10")
    with DnsListener(registry, _dns(settings), "127.0.0.1", 0) as running:
        server = f"127.0.0.1:{running.port}"
        healthy = invoke("dns", "check", "--server", server, "--json")  # type: ignore[operator]
        assert healthy.exit_code == 0, healthy.output
        [report] = json.loads(healthy.output)["domains"]
        assert report["domain"] == TEST_DOMAIN and report["blind"] is False
        blind = invoke("dns", "check", "not-ours.example.jp", "--server", server, "--lang", "ja")  # type: ignore[operator]
    assert blind.exit_code == 9
    assert "not-ours.example.jp のカナリアは何も検知できない状態です" in blind.output
