"""Outbound webhooks that cannot be turned against the inside network (SSRF).

A webhook URL comes from configuration, but a mistaken or malicious one could point the
alert sender at an internal service. As canarytokens does, the host is resolved and *every*
address it resolves to must be a public one (not private, loopback, link-local, reserved,
multicast or shared address space, also when wrapped in IPv4-mapped, 6to4, Teredo or NAT64
IPv6); the connection then goes to the address that was checked, so a second DNS answer
cannot swap it (DNS rebinding). Redirects are followed only when method-preserving (307,
308), and each hop is checked the same way. ``allow_private`` lifts the address check, for
a webhook receiver on the operator's own network.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from urllib.parse import urljoin, urlsplit

from canary.errors import CanaryError

Resolve = Callable[[str, int], Sequence[str]]
Connect = Callable[[tuple[str, int], float], socket.socket]
MAX_REDIRECTS = 3
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class DeliveryError(CanaryError):
    """An alert output could not deliver a message."""


class UnsafeTargetError(DeliveryError):
    """A webhook points at an address alerts may not reach (private, loopback, …)."""


def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryError(f"cannot resolve {host}: {exc.strerror}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def system_connect(address: tuple[str, int], timeout: float) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


def refusal(address: str) -> str | None:
    """Why an alert may not be sent to this address, or None if it is a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    inner: list[ipaddress.IPv4Address] = []
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            inner.append(ip.ipv4_mapped)
        if ip.sixtofour:
            inner.append(ip.sixtofour)
        if ip.teredo:
            inner.append(ip.teredo[1])
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip, *inner]
    if isinstance(ip, ipaddress.IPv6Address) and ip in _NAT64:
        # A NAT64 gateway reaches the IPv4 address inside: that one decides.
        candidates = [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    for candidate in candidates:
        for test, what in (
            ("is_loopback", "a loopback"),
            ("is_link_local", "a link-local"),
            ("is_private", "a private"),
            ("is_multicast", "a multicast"),
            ("is_reserved", "a reserved"),
            ("is_unspecified", "an unspecified"),
        ):
            if getattr(candidate, test):
                return f"{address} is {what} address"
        if not candidate.is_global:
            return f"{address} is not a public address"
    return None


def checked_target(url: str, allow_private: bool, resolve: Resolve) -> tuple[str, int, str]:
    """(host, port, address to connect to) of a webhook URL; UnsafeTargetError if any address
    the host resolves to is not public (unless allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTargetError(f"{url!r} is not an http(s) URL")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeTargetError(f"{url!r} has a bad port") from None
    addresses = list(resolve(host, port))
    if not addresses:
        raise DeliveryError(f"{host} resolves to no address")
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why:
                raise UnsafeTargetError(
                    f"refused {host}: {why} (set CANARY_ALERT_ALLOW_PRIVATE=1 to allow "
                    "webhooks on your own network)"
                )
    return host, port, addresses[0]


def post_json(
    url: str,
    body: bytes,
    *,
    allow_private: bool = False,
    timeout: float = 10.0,
    resolve: Resolve = system_resolve,
    connect: Connect = system_connect,
    user_agent: str = "canary-alerts",
) -> int:
    """POST a JSON body; returns the HTTP status. DeliveryError on a refusal, a network
    error, a redirect that is not method-preserving, or a status outside 2xx."""
    for _hop in range(MAX_REDIRECTS + 1):
        host, port, address = checked_target(url, allow_private, resolve)
        parts = urlsplit(url)
        try:
            sock = connect((address, port), timeout)
            conn: http.client.HTTPConnection
            if parts.scheme == "https":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
                conn = http.client.HTTPSConnection(host, port, timeout=timeout)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conn.sock = sock  # the checked address, not a second lookup
            try:
                path = parts.path or "/"
                conn.request(
                    "POST",
                    path + (f"?{parts.query}" if parts.query else ""),
                    body=body,
                    headers={"Content-Type": "application/json", "User-Agent": user_agent},
                )
                response = conn.getresponse()
                response.read(65536)
                status, location = response.status, response.getheader("Location")
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            raise DeliveryError(f"POST to {host} failed: {exc}") from None
        if status in (307, 308) and location:
            url = urljoin(url, location)
            continue
        if 300 <= status < 400:
            raise DeliveryError(
                f"{host} answered HTTP {status} (moved to {location or '?'}); "
                "put the new URL in CANARY_ALERT_WEBHOOKS"
            )
        if not 200 <= status < 300:
            raise DeliveryError(f"{host} answered HTTP {status}")
        return status
    raise DeliveryError(f"more than {MAX_REDIRECTS} redirects from {url}")
