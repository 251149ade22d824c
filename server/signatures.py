"""Webhook signatures: Twilio's ``X-Twilio-Signature`` and the generic hook's HMAC-SHA256.

Twilio (https://www.twilio.com/docs/usage/security#validating-requests) signs the full URL
it called (scheme, host, path and query) followed, for a form POST, by every POST parameter
name and value, sorted by name (repeated names by value), with HMAC-SHA1 keyed by the
account's auth token, base64-encoded. A JSON body is instead covered by a ``bodySHA256``
query parameter (hex SHA-256 of the body) and the URL alone is signed. Twilio's own helper
libraries accept the URL with or without the scheme's default port; so do we.

The generic hook (``POST /hooks/events``) is signed by the sender with

    X-Canary-Timestamp: <unix seconds>
    X-Canary-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

and is refused outside ``±window`` seconds of our clock. Replays inside the window are
refused by ``ReplayCache``, a bounded per-process memory of signatures already answered; a
replay that slips past it (another worker process, or the cache evicted it) is still stored
only once, because events are idempotent on the provider's id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

DEFAULT_PORTS = {"https": 443, "http": 80}


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The signature Twilio sends for a request to ``url`` with these POST parameters."""
    data = url + "".join(name + value for name, value in sorted(params))
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def url_variants(url: str) -> list[str]:
    """The URL as given, without its port, and with the scheme's default port added."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):  # an IPv6 literal: [::1]:8080
        host = hostport[: hostport.find("]") + 1]
    else:
        host = hostport.partition(":")[0]
    prefix = userinfo + at
    variants = [url, urlunsplit(parts._replace(netloc=prefix + host))]
    default = DEFAULT_PORTS.get(parts.scheme)
    if host == hostport and default is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    return list(dict.fromkeys(variants))


def twilio_valid(
    auth_token: str,
    url: str,
    params: Iterable[tuple[str, str]],
    signature: str,
    body: bytes = b"",
) -> bool:
    """Whether ``signature`` is Twilio's for this request (constant-time comparison).

    ``params`` are the form POST parameters; for a JSON body pass none and the raw ``body``:
    the URL's ``bodySHA256`` parameter must then be the body's hash."""
    if not auth_token or not signature:
        return False
    pairs = list(params)
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    if "bodySHA256" in query:
        if not hmac.compare_digest(query["bodySHA256"], hashlib.sha256(body).hexdigest()):
            return False
        pairs = []
    given = signature.strip().encode("ascii", "replace")
    ok = False
    for candidate in url_variants(url):
        expected = twilio_signature(auth_token, candidate, pairs).encode("ascii")
        ok |= hmac.compare_digest(expected, given)
    return ok


def generic_signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """``sha256=<hex>`` over ``"<timestamp>." + body``, as a sender of the generic hook signs."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, "sha256")
    return "sha256=" + mac.hexdigest()


def generic_problem(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    window: int,
) -> str | None:
    """Why a generic webhook's signature is not acceptable, or None when it is."""
    if not timestamp or not signature:
        return "The request is not signed: send X-Canary-Timestamp and X-Canary-Signature."
    try:
        moment = int(timestamp.strip())
    except ValueError:
        return "X-Canary-Timestamp is not a number of seconds since 1970."
    if abs(now - moment) > window:
        return (
            f"X-Canary-Timestamp is more than {window} seconds from the server's clock; "
            "sign with the current time (and check the sender's clock)."
        )
    expected = generic_signature(secret, timestamp.strip(), body).encode("ascii")
    if not hmac.compare_digest(expected, signature.strip().encode("ascii", "replace")):
        return "X-Canary-Signature does not match the body; check the shared secret."
    return None


class ReplayCache:
    """Signatures already answered, each kept until its timestamp leaves the window.

    Bounded: past ``limit`` entries the oldest are forgotten (idempotency still stores a
    forgotten replay only once). Thread-safe, for gthread workers."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> forget at
        self._lock = threading.Lock()

    def seen(self, signature: str, now: float) -> bool:
        with self._lock:
            self._expire(now)
            return signature in self._seen

    def remember(self, signature: str, forget_at: float, now: float) -> None:
        with self._lock:
            self._expire(now)
            self._seen[signature] = forget_at
            self._seen.move_to_end(signature)
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: float) -> None:
        # Entries are appended in arrival order; forget-at times are nearly ordered too, so
        # dropping from the front while expired is enough in practice.
        while self._seen:
            signature, forget_at = next(iter(self._seen.items()))
            if forget_at > now:
                return
            del self._seen[signature]
