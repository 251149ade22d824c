"""Bearer-token authentication, role checks, and who is really calling behind a proxy.

A view names the permission it needs (``canary.registry.access.PERMISSIONS``)::

    @bp.get("/trace")
    @require("canaries:read")
    def trace_view() -> Any:
        who = principal()  # the token's name and role

A missing, unknown or revoked token answers 401 with ``WWW-Authenticate: Bearer`` (RFC
6750); a known token whose role lacks the permission answers 403.

Forwarded headers (``X-Forwarded-For``, the forwarded user) are believed only when the
request comes from an address in ``settings.trusted_proxies``; anyone else could write them.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, g, jsonify, request

from canary.errors import AccessError
from canary.registry.access import Principal
from canary.settings import Settings
from server.app import registry_of, settings_of

F = TypeVar("F", bound=Callable[..., Any])
REALM = "canary"

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _unauthorized(message: str, error: str | None) -> Response:
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    response = jsonify({"error": message})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = challenge
    return response


def bearer_token() -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


def require(permission: str) -> Callable[[F], F]:
    """Authenticate the request's bearer token and require one permission of its role."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            secret = bearer_token()
            if secret is None:
                return _unauthorized(
                    "This needs a token: send `Authorization: Bearer <token>`.", None
                )
            try:
                who = registry_of().authenticate(secret)
            except AccessError:
                return _unauthorized(
                    "The token is unknown or revoked; ask an admin for a new one.",
                    "invalid_token",
                )
            g.canary_principal = who
            who.require(permission)  # AccessError -> 403 (server.app.HTTP_STATUSES)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def principal() -> Principal:
    """The authenticated caller of this request (inside a view under ``require``)."""
    who: Principal = g.canary_principal
    return who


# -- proxies ------------------------------------------------------------------------------


def trusted_networks(settings: Settings) -> list[IpNetwork]:
    """The trusted proxies of the settings: addresses or networks (10.0.0.0/8)."""
    out: list[IpNetwork] = []
    for item in settings.trusted_proxies.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue  # a typo must not trust everyone; the address is simply not trusted
    return out


def _is_trusted(address: str | None, networks: list[IpNetwork]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in n for n in networks)


def from_trusted_proxy() -> bool:
    """Whether the request's peer is one of the trusted proxies."""
    return _is_trusted(request.remote_addr, trusted_networks(settings_of()))


def client_address() -> str:
    """The caller's address: the peer, or behind a trusted proxy the nearest address in
    ``X-Forwarded-For`` that is not itself a trusted proxy (the leftmost entries are
    whatever the client chose to send, so they are not believed)."""
    peer = request.remote_addr or "unknown"
    networks = trusted_networks(settings_of())
    if not _is_trusted(peer, networks):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
    hops = [h for h in hops if h]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            return hop[:100]  # kept as evidence even if it is not an address
    return hops[0][:100] if hops else peer


def forwarded_user() -> str | None:
    """The logged-in user a trusted proxy names (``settings.forwarded_user_header``)."""
    if not from_trusted_proxy():
        return None
    value = request.headers.get(settings_of().forwarded_user_header, "").strip()
    # WSGI hands headers over as Latin-1; proxies send user names in UTF-8.
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("latin-1").decode("utf-8")
    return value[:200] or None
