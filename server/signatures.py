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
refused by ``ReplayGuard``, which every worker process of the host shares (a file per
signature in a private folder); a replay that reaches another host behind a load balancer is
not refused, but is still stored only once, because events are idempotent on the provider's
id.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

log = logging.getLogger("canary.server.hooks")

DEFAULT_PORTS = {"https": 443, "http": 80}


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The signature Twilio sends for a request to ``url`` with these POST parameters (sorted
    by name, then value; a repeated pair counts once, as in Twilio's helper libraries)."""
    data = url + "".join(name + value for name, value in sorted(set(params)))
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


class ReplayGuard:
    """Signatures already answered, shared by every worker process of this host.

    One empty file per signature, created with ``O_EXCL`` so that of two workers only one
    can claim it, in a folder per minute in which its signatures leave the window; a folder
    whose minute has passed is removed whole. A claim costs a ``mkdir`` and an ``open``. The
    folder is private to the user (mode 0700); ``replay_folder`` names it per registry and
    secret, so two servers on one machine do not see each other's signatures."""

    SWEEP_EVERY = 60.0  # seconds between two sweeps of one process

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)  # paths as strings: pathlib cost more than the claim's syscalls
        self._next_sweep = 0.0
        self._made = ""  # the minute's folder this process made last
        self._lock = threading.Lock()

    def _path(self, signature: str, forget_at: float) -> tuple[str, str]:
        """(the minute's folder, the signature's file in it)."""
        name = hashlib.sha256(signature.strip().encode("utf-8", "replace")).hexdigest()[:40]
        folder = f"{self._root}/{int(forget_at // 60)}"
        return folder, f"{folder}/{name}"

    def claim(self, signature: str, forget_at: float, now: float) -> bool:
        """True for the first claim of a signature until ``forget_at``; False for a replay."""
        self._sweep(now)
        folder, path = self._path(signature, forget_at)
        for attempt in range(2):  # a sweep of another process may remove the minute's folder
            if attempt or folder != self._made:  # made once per minute, not per claim
                os.makedirs(folder, mode=0o700, exist_ok=True)
                self._made = folder
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                return True
            except FileExistsError:
                return False
            except FileNotFoundError:
                continue
        return True  # the minute is over as we speak: the window check has the last word

    def release(self, signature: str, forget_at: float) -> None:
        """Forget a claim whose request was not answered, so the sender may retry it as is."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(signature, forget_at)[1])

    def _sweep(self, now: float) -> None:
        """Remove the minutes that have passed, of this folder and of its siblings (the
        folders of registries or secrets no longer served), and siblings left empty."""
        with self._lock:
            if now < self._next_sweep:
                return
            self._next_sweep = now + self.SWEEP_EVERY
        try:
            folders = [self.root, *(p for p in self.root.parent.iterdir() if p != self.root)]
        except FileNotFoundError:
            return
        for folder in folders:
            with contextlib.suppress(OSError):
                for minute in list(folder.iterdir()):
                    if minute.name.isdigit() and (int(minute.name) + 1) * 60 <= now:
                        shutil.rmtree(minute, ignore_errors=True)  # all of it has expired
                if folder != self.root:
                    folder.rmdir()  # only if empty; a claim would make it again


def memory_folder() -> Path:
    """Where the replay guard keeps its files: a folder in memory if the system has one
    (the user's XDG_RUNTIME_DIR, else /dev/shm), else TMPDIR. A claim creates a file for
    every webhook; on a disk file system (ext4) that cost 170 µs of CPU, on tmpfs 45 µs."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR") or "", "/dev/shm"):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return Path(candidate)
    return Path(tempfile.gettempdir())


def replay_folder(db_url: str, secret: str) -> Path:
    """The folder of the replay guard of one registry and secret, under the user's private
    ``canary-replays-<uid>`` folder in ``memory_folder()`` (a fresh private folder in
    TMPDIR if another user holds that name: the guard then covers this process only)."""
    key = hashlib.sha256(f"{db_url}\0{secret}".encode()).hexdigest()[:16]
    base = memory_folder() / f"canary-replays-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        base.mkdir(mode=0o700)
    st = base.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        log.warning(
            "%s is not a private folder of this user; replays are refused per process", base
        )
        base = Path(tempfile.mkdtemp(prefix="canary-replays-"))
    return base / key
