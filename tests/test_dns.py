"""The DNS listener, queried with dnspython over UDP and TCP on loopback.

Each test runs a real listener on a free port against a real registry (SQLite and
PostgreSQL through the ``registry`` fixture) and checks answers, flags and stored events.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from canary.domains import create_token, dedicate_domain
from canary.registry import Registry
from canary.seed import SeedRequest, SeedResult, seed
from canary.settings import Settings
from server.dns import TOKEN_TTL, DnsListener
from tests.conftest import TEST_DOMAIN
from tests.listgen import people, write_csv

ZONE = TEST_DOMAIN
T0 = datetime(2026, 11, 1, 10, 0, 5, tzinfo=UTC)


def _settings(settings: Settings, **extra: str) -> Settings:
    values = {"dns_ipv4": "192.0.2.10", "dns_ipv6": "2001:db8::10", **extra}
    return dataclasses.replace(settings, **values)


@pytest.fixture
def listener(registry: Registry, settings: Settings) -> Iterator[DnsListener]:
    with DnsListener(registry, _settings(settings), host="127.0.0.1", port=0) as running:
        running.answerer.clock = lambda: T0
        yield running


def _ask(
    listener: DnsListener, name: str, rdtype: str, tcp: bool = False, **query: object
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **query)  # type: ignore[arg-type]
    send = dns.query.tcp if tcp else dns.query.udp
    return send(q, "127.0.0.1", port=listener.port, timeout=10)


def _texts(answer: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in answer.answer for rd in rrset)


def _seed(registry: Registry, settings: Settings, tmp: Path) -> SeedResult:
    src = write_csv(tmp / "host.csv", people(300, seed=11))
    request = SeedRequest(
        input=src, output=tmp / "out.csv", client="city", list_name="b2b", account="op1", stable=0
    )
    return seed(registry, settings, request)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_the_zone_apex_is_answered_with_authority(listener: DnsListener, tcp: bool) -> None:
    expected = {
        "SOA": f"ns1.{ZONE}. hostmaster.{ZONE}.",
        "NS": f"ns1.{ZONE}.",
        "MX": f"10 mx.{ZONE}.",
        "A": "192.0.2.10",
        "AAAA": "2001:db8::10",
        "TXT": '"v=spf1 mx -all"',
    }
    for rdtype, text in expected.items():
        answer = _ask(listener, ZONE, rdtype, tcp=tcp)
        assert answer.rcode() == dns.rcode.NOERROR
        assert answer.flags & dns.flags.AA
        assert not answer.flags & dns.flags.RA  # no recursion offered
        [record] = _texts(answer)
        assert record.startswith(text), (rdtype, record)
    dmarc = _ask(listener, f"_dmarc.{ZONE}", "TXT", tcp=tcp)
    assert _texts(dmarc) == ['"v=DMARC1; p=reject"']
    mx_host = _ask(listener, f"mx.{ZONE}", "A", tcp=tcp)
    assert _texts(mx_host) == ["192.0.2.10"]


def test_mx_and_ns_answers_carry_the_addresses_of_our_hosts(listener: DnsListener) -> None:
    answer = _ask(listener, ZONE, "MX")
    glue = {(r.name.to_text(), rd.to_text()) for r in answer.additional for rd in r}
    assert (f"mx.{ZONE}.", "192.0.2.10") in glue
    assert (f"mx.{ZONE}.", "2001:db8::10") in glue


def test_unknown_names_inside_are_nxdomain_with_the_soa(listener: DnsListener) -> None:
    answer = _ask(listener, f"nobody.{ZONE}", "A")
    assert answer.rcode() == dns.rcode.NXDOMAIN
    assert answer.flags & dns.flags.AA
    [soa] = answer.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == f"{ZONE}."
    nodata = _ask(listener, ZONE, "SRV")  # the name exists, the type does not
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA


def test_names_outside_the_zones_are_refused_and_not_recorded(
    listener: DnsListener, registry: Registry
) -> None:
    for name in ("example.com", "www.google.com", "example.jp"):
        answer = _ask(listener, name, "A")  # RD is set: a resolver would recurse; we do not
        assert answer.rcode() == dns.rcode.REFUSED
        assert not answer.flags & (dns.flags.AA | dns.flags.RA)
        assert not answer.answer
    assert registry.events(limit=None) == []


def test_any_gets_one_small_answer(listener: DnsListener) -> None:
    answer = _ask(listener, ZONE, "ANY")
    [rrset] = answer.answer
    assert rrset.rdtype == dns.rdatatype.HINFO
    assert _texts(answer) == ['"RFC8482" ""']


def test_big_answers_over_udp_without_edns_are_truncated(
    registry: Registry, settings: Settings
) -> None:
    many = ",".join(f"192.0.2.{n}" for n in range(1, 61))  # 60 addresses: about 1 KB
    with DnsListener(registry, _settings(settings, dns_ipv4=many), "127.0.0.1", 0) as big:
        plain = _ask(big, ZONE, "A")
        assert plain.flags & dns.flags.TC and not plain.answer
        assert len(plain.to_wire()) <= 512
        with_edns = _ask(big, ZONE, "A", use_edns=0, payload=1232)
        assert not with_edns.flags & dns.flags.TC
        assert len(_texts(with_edns)) == 60
        over_tcp = _ask(big, ZONE, "A", tcp=True)
        assert len(_texts(over_tcp)) == 60


def test_a_token_lookup_is_an_event_naming_its_export(
    listener: DnsListener, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    export = _seed(registry, settings, tmp_path).export.code
    token = create_token(registry, settings, export)
    asked = token.hostname.upper()  # resolvers may randomise case (0x20)
    answer = _ask(listener, asked, "A")
    assert answer.flags & dns.flags.AA
    assert answer.question[0].name.to_text() == f"{asked}."
    [rrset] = answer.answer
    assert rrset.ttl == TOKEN_TTL and _texts(answer) == ["192.0.2.10"]
    [event] = registry.events(limit=None, channel="dns")
    assert event.target == token.hostname  # lower case, no final dot
    assert event.source == "127.0.0.1"
    assert event.provider == "dns" and event.provider_id is None
    assert event.details["qtype"] == "A" and event.details["transport"] == "udp"
    assert isinstance(event.details["port"], int)
    assert event.details["hostname_token"] == {
        "hostname": token.hostname,
        "exports": [export],
        "client": "city",
    }
    # A lookup is a weak sign: it names the export and opens its incident, unattributed.
    assert event.classification == "suspicious" and event.strength == "weak"
    assert event.exports == [export]
    [incident] = registry.incidents()
    assert incident.export == export and not incident.attributed
    assert incident.confidence == pytest.approx(0.5)
    below = _ask(listener, f"www.{token.hostname}", "AAAA")  # any name under the token
    assert _texts(below) == ["2001:db8::10"]


def test_an_mx_lookup_of_a_dedicated_domain_names_the_client(
    listener: DnsListener, registry: Registry
) -> None:
    dedicate_domain(registry, ZONE, "city", create=True)
    _ask(listener, ZONE, "MX")
    [event] = registry.events(limit=None)
    assert event.details["hostname_token"] == {"hostname": ZONE, "exports": [], "client": "city"}


def test_one_resolver_repeating_a_lookup_within_a_minute_is_one_event(
    listener: DnsListener, registry: Registry
) -> None:
    name = f"probe.{ZONE}"
    for second, tcp in ((0, False), (20, False), (40, True), (54, False)):
        listener.answerer.clock = lambda s=second: T0 + timedelta(seconds=s)  # type: ignore[misc]
        _ask(listener, name, "A", tcp=tcp)
    assert len(registry.events(limit=None)) == 1
    listener.answerer.clock = lambda: T0 + timedelta(minutes=1)
    _ask(listener, name, "A")  # the next minute: a new event
    _ask(listener, name, "MX")  # another type: a new event
    assert len(registry.events(limit=None)) == 3


def test_malformed_packets_do_not_stop_the_listener(
    listener: DnsListener, registry: Registry
) -> None:
    good = dns.message.make_query(ZONE, "SOA")
    reply = dns.message.make_response(good).to_wire()  # QR set: never answered
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(10)
        for junk in (b"", b"\x12", b"\x00\x01garbage", b"\xff" * 600, reply):
            udp.sendto(junk, ("127.0.0.1", listener.port))
        udp.sendto(good.to_wire(), ("127.0.0.1", listener.port))
        data, _ = udp.recvfrom(4096)  # the only answer is to the good query
    assert dns.message.from_wire(data).id == good.id
    for junk in (b"\x00\x05abcde", b"\x00\x00", b"\x10\x00short"):
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as tcp:
            tcp.sendall(junk)
            tcp.shutdown(socket.SHUT_WR)
            assert tcp.recv(100) == b""  # closed without an answer
    assert _ask(listener, ZONE, "SOA", tcp=True).rcode() == dns.rcode.NOERROR
    update = dns.message.make_query(ZONE, "SOA")
    update.set_opcode(dns.opcode.UPDATE)
    assert _ask_raw(listener, update).rcode() == dns.rcode.NOTIMP


def _ask_raw(listener: DnsListener, query: dns.message.Message) -> dns.message.Message:
    return dns.query.udp(query, "127.0.0.1", port=listener.port, timeout=10)


def test_tcp_answers_several_queries_on_one_connection(listener: DnsListener) -> None:
    queries = [dns.message.make_query(ZONE, t) for t in ("SOA", "MX", "NS")]
    wire = b"".join(len(w).to_bytes(2, "big") + w for w in (q.to_wire() for q in queries))
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as tcp:
        tcp.sendall(wire)  # pipelined
        answers = []
        for _ in queries:
            answer, _ = dns.query.receive_tcp(tcp, expiration=None)
            answers.append(answer)
    assert [a.id for a in answers] == [q.id for q in queries]
    assert [a.answer[0].rdtype for a in answers] == [
        dns.rdatatype.SOA,
        dns.rdatatype.MX,
        dns.rdatatype.NS,
    ]


def test_canary_serve_dns_answers_over_udp_and_tcp_and_records_the_lookup(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    from tests.test_serve import Served

    export = _seed(registry, settings, tmp_path).export.code
    token = create_token(registry, settings, export)
    server = Served(settings, "--workers", "1", "--no-smtp", "--dns", CANARY_DNS_IPV4="192.0.2.10")
    try:
        port = int(server.wait_for(r"DNS listener on port (\d+)")[1])
        for send in (dns.query.udp, dns.query.tcp):
            answer = send(
                dns.message.make_query(token.hostname, "A"), "127.0.0.1", port=port, timeout=10
            )
            assert answer.flags & dns.flags.AA and _texts(answer) == ["192.0.2.10"]
        refused = dns.query.udp(
            dns.message.make_query("example.com", "A"), "127.0.0.1", port=port, timeout=10
        )
        assert refused.rcode() == dns.rcode.REFUSED
        assert server.stop() == 0, server.text()
    finally:
        server.close()
    # Both lookups came from one resolver within a minute: one event, naming the export.
    [event] = registry.events(limit=None, channel="dns")
    assert event.target == token.hostname and event.exports == [export]
