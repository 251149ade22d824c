"""The DNS listener: authoritative for the canary zones, a recorder of every lookup in them.

It answers SOA, NS, MX, A/AAAA and TXT (SPF, DMARC) for each zone (the configured zones and
the active pool domains), A/AAAA for every hostname token, NXDOMAIN with the SOA for other
names inside a zone, and REFUSED for anything outside: it is no open resolver (RA clear, no
recursion). Against amplification, UDP answers are cut to 512 bytes (or the client's EDNS
size, at most 1232) with TC set, and ANY gets one synthesised HINFO (RFC 8482).

Every query inside a zone becomes a ``dns`` event. Its payload, whose SHA-256 is the
event's identity, is (name, type, resolver address, minute), so a resolver's retries within
one minute, over UDP or TCP, are stored once. Malformed packets are dropped (UDP) or close
the connection (TCP); nothing a peer sends stops the listener.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdatatype import RdataType

from canary.domains import (
    Holders,
    hostname_holders,
    mx_host,
    name_servers,
    our_addresses,
    served_zones,
)
from canary.errors import CanaryError
from canary.events import EventDraft
from canary.registry import Registry
from canary.settings import Settings

log = logging.getLogger(__name__)

TTL = 300
TOKEN_TTL = 60  # short, so that repeated lookups of a token reach us again
NEGATIVE_TTL = 60
MAX_UDP = 1232  # the largest UDP answer we send even when a client offers more (DNS flag day)
ZONE_REFRESH = 30.0  # seconds between re-reads of the pool domains
TCP_IDLE = 10.0  # seconds a TCP connection may wait between queries
MAX_TCP_CONNECTIONS = 64
_IN = dns.rdataclass.IN
_Records = dict[dns.name.Name, dict[dns.rdatatype.RdataType, list[str]]]


def split_listen(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host, port)."""
    host, _, port = value.strip().rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise CanaryError(f"{value!r} is not host:port; set CANARY_DNS_LISTEN so.") from None


class Answerer:
    """Builds the answer to one query and records it as an event (no sockets here)."""

    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self.v4, self.v6 = our_addresses(settings)
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # tests set the time
        self._lock = threading.Lock()
        self._zones: dict[dns.name.Name, _Records] = {}
        self._loaded = float("-inf")

    def zones(self) -> dict[dns.name.Name, _Records]:
        """The zones' static records, re-read from the registry every ZONE_REFRESH seconds."""
        with self._lock:
            if time.monotonic() - self._loaded > ZONE_REFRESH:
                serial = int(datetime.now(UTC).strftime("%Y%m%d%H"))
                self._zones = {
                    dns.name.from_text(z): self._static(z, serial)
                    for z in served_zones(self.registry, self.settings)
                }
                self._loaded = time.monotonic()
            return self._zones

    def _static(self, zone: str, serial: int) -> _Records:
        apex = dns.name.from_text(zone)
        ns = [dns.name.from_text(n) for n in name_servers(zone, self.settings)]
        mx = dns.name.from_text(mx_host(zone, self.settings))
        addresses = {dns.rdatatype.A: self.v4, dns.rdatatype.AAAA: self.v6}
        records: _Records = {
            apex: {
                dns.rdatatype.SOA: [f"{ns[0]} hostmaster.{apex} {serial} 3600 600 604800 60"],
                dns.rdatatype.NS: [n.to_text() for n in ns],
                dns.rdatatype.MX: [f"10 {mx}"],
                dns.rdatatype.TXT: ['"v=spf1 mx -all"'],
                **addresses,
            },
            dns.name.from_text("_dmarc", apex): {dns.rdatatype.TXT: ['"v=DMARC1; p=reject"']},
        }
        for host in (mx, *ns):
            if host.is_subdomain(apex):
                records.setdefault(host, {}).update(addresses)
        return records

    def answer(self, wire: bytes, peer: tuple[Any, ...], transport: str) -> bytes | None:
        """The wire answer to one query, or None to drop it (malformed, or not a query)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # malformed, or signed with a key we do not hold
            return None
        if query.flags & dns.flags.QR:
            return None  # a response sent to us: never answer, no reflection loops
        response = dns.message.make_response(query, our_payload=MAX_UDP)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
        elif len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
        elif query.edns > 0:
            response.set_rcode(dns.rcode.BADVERS)
        else:
            self._fill(query, response, peer, transport)
        limit = 65535
        if transport == "udp":
            limit = max(512, min(query.payload, MAX_UDP)) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer, response.authority, response.additional = [], [], []
            response.flags |= dns.flags.TC
            return response.to_wire(max_size=limit)

    def _fill(
        self, query: dns.message.Message, response: dns.message.Message, peer: Any, how: str
    ) -> None:
        question = query.question[0]
        qname, rdtype = question.name, question.rdtype
        zones = self.zones()
        apex = next((z for z in _parents(qname) if z in zones), None)
        if question.rdclass != _IN or apex is None:
            response.set_rcode(dns.rcode.REFUSED)  # not ours: no recursion, no open resolver
            return
        response.flags |= dns.flags.AA
        name = qname.to_text(omit_final_dot=True).lower()
        holders = hostname_holders(self.registry, name)
        self._record(name, rdtype, peer, how, holders)
        records = zones[apex]
        node = records.get(qname)
        ttl = TTL
        if holders is not None and holders.hostname != apex.to_text(omit_final_dot=True):
            node, ttl = {dns.rdatatype.A: self.v4, dns.rdatatype.AAAA: self.v6}, TOKEN_TTL
        exists = node is not None or any(n.is_subdomain(qname) for n in records)
        soa = dns.rrset.from_text_list(
            apex, NEGATIVE_TTL, _IN, dns.rdatatype.SOA, records[apex][dns.rdatatype.SOA]
        )
        if not exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(soa)
        elif rdtype == dns.rdatatype.ANY:  # RFC 8482: one small answer, not the whole node
            response.answer.append(
                dns.rrset.from_text(qname, ttl, _IN, dns.rdatatype.HINFO, '"RFC8482" ""')
            )
        elif rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            response.set_rcode(dns.rcode.REFUSED)
        elif node and node.get(rdtype):
            response.answer.append(dns.rrset.from_text_list(qname, ttl, _IN, rdtype, node[rdtype]))
            self._glue(response, rdtype, node[rdtype], records)
        else:
            response.authority.append(soa)  # NODATA

    def _glue(
        self, response: dns.message.Message, rdtype: RdataType, values: list[str], records: _Records
    ) -> None:
        """Addresses of our own MX and NS hosts in the additional section."""
        if rdtype not in (dns.rdatatype.MX, dns.rdatatype.NS):
            return
        for value in values:
            host = dns.name.from_text(value.split()[-1])
            for kind, addresses in records.get(host, {}).items():
                if addresses:
                    response.additional.append(
                        dns.rrset.from_text_list(host, TTL, _IN, kind, addresses)
                    )

    def _record(
        self, name: str, rdtype: RdataType, peer: Any, transport: str, holders: Holders | None
    ) -> None:
        now = self.clock()
        minute = now.replace(second=0, microsecond=0).isoformat()
        qtype = dns.rdatatype.to_text(rdtype)
        details: dict[str, object] = {"qtype": qtype, "transport": transport, "port": peer[1]}
        if holders is not None:
            details["hostname_token"] = holders.as_json()
        draft = EventDraft(
            channel="dns",
            target=name,
            occurred_at=now,
            provider="dns",
            payload="\n".join((name, qtype, peer[0], minute)).encode(),
            source=peer[0],
            details=details,
        )
        try:
            self.registry.record_event(
                draft,
                grace=timedelta(hours=self.settings.expect_grace_hours),
                threshold=self.settings.event_threshold,
            )
        except Exception:  # the answer still goes out; the failure is in the log
            log.exception("could not record the DNS lookup of %s from %s", name, peer[0])


def _parents(name: dns.name.Name) -> list[dns.name.Name]:
    """The name and each of its parents, most specific first."""
    out = [name]
    while len(name) > 1:
        name = name.parent()
        out.append(name)
    return out


class DnsListener:
    """UDP and TCP on one port, served by threads; ``port`` is known after ``start()``."""

    def __init__(
        self,
        registry: Registry,
        settings: Settings,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        default_host, default_port = split_listen(settings.dns_listen)
        self.host = host or default_host
        self.port = default_port if port is None else port
        self.answerer = Answerer(registry, settings)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self._slots = threading.BoundedSemaphore(MAX_TCP_CONNECTIONS)
        self._conn_lock = threading.Lock()

    def start(self) -> DnsListener:
        """Bind UDP and TCP (port 0: a free port for both) and start serving."""
        self.answerer.zones()  # a bad zone setting fails here, not at the first query
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _attempt in range(20):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                udp.bind((self.host, self.port))
                tcp.bind((self.host, udp.getsockname()[1]))
                tcp.listen(64)
                break
            except OSError as exc:
                udp.close()
                tcp.close()
                if self.port:  # a fixed port: say so; port 0: another free one
                    raise CanaryError(
                        f"Cannot listen for DNS on {self.host}:{self.port} ({exc.strerror}); "
                        "free the port or set CANARY_DNS_LISTEN to another."
                    ) from exc
        else:
            raise CanaryError("Found no free port for the DNS listener on both UDP and TCP.")
        self.port = udp.getsockname()[1]
        self._udp, self._tcp = udp, tcp
        self._wake_r, self._wake_w = socket.socketpair()
        self._spawn(self._serve, "dns-listener")
        log.info("DNS listener on %s:%d (UDP and TCP)", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop serving, close every socket and wait for the threads."""
        self._stopping.set()
        self._wake_w.send(b"x")
        self._threads[0].join()  # the serving thread: no new connections after this
        with self._conn_lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            sessions = list(self._threads[1:])
        for thread in sessions:
            thread.join()
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> DnsListener:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._conn_lock:  # the serving thread first, then live TCP sessions
            self._threads = self._threads[:1] + [t for t in self._threads[1:] if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._udp, selectors.EVENT_READ, "udp")
            selector.register(self._tcp, selectors.EVENT_READ, "tcp")
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            while not self._stopping.is_set():
                for key, _events in selector.select():
                    if key.data == "udp":
                        self._udp_once()
                    elif key.data == "tcp":
                        self._accept()

    def _udp_once(self) -> None:
        try:
            wire, peer = self._udp.recvfrom(65535)
        except OSError:
            return
        reply = self._safe_answer(wire, peer, "udp")
        if reply is not None:
            with contextlib.suppress(OSError):
                self._udp.sendto(reply, peer)

    def _accept(self) -> None:
        try:
            conn, peer = self._tcp.accept()
        except OSError:
            return
        if not self._slots.acquire(blocking=False):
            conn.close()  # too many open connections: shed load rather than queue it
            return
        with self._conn_lock:
            self._connections.add(conn)
        self._spawn(self._tcp_session, "dns-tcp", conn, peer)

    def _tcp_session(self, conn: socket.socket, peer: tuple[Any, ...]) -> None:
        try:
            conn.settimeout(TCP_IDLE)
            while not self._stopping.is_set():
                head = _recv_exact(conn, 2)
                wire = _recv_exact(conn, int.from_bytes(head, "big")) if head else None
                reply = self._safe_answer(wire, peer, "tcp") if wire else None
                if reply is None:
                    return  # closed, idle too long, or malformed: close the connection
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            return
        finally:
            with self._conn_lock:
                self._connections.discard(conn)
            conn.close()
            self._slots.release()

    def _safe_answer(self, wire: bytes, peer: tuple[Any, ...], transport: str) -> bytes | None:
        try:
            return self.answerer.answer(wire, peer, transport)
        except Exception:  # a bug must not stop the listener; the query goes unanswered
            log.exception("DNS query from %s failed", peer[0])
            return None


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    """Exactly ``size`` bytes, or None if the peer closed or went quiet first."""
    chunks, left = [], size
    while left > 0:
        try:
            chunk = conn.recv(left)
        except (TimeoutError, OSError):
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
