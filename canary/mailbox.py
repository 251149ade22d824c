"""Mail a provider hosts for the pool domains: a mailbox polled over IMAP, each unread
message to a canary address stored as ``email`` events (built by ``canary.mailparse``), and
the registry reads the SMTP listener shares (assigned addresses, pool domains).

Only the message's SHA-256, a few headers (capped), the body's hash and size and the first
characters of its text are kept.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from sqlalchemy import select

from canary.errors import CanaryError
from canary.mailparse import (  # noqa: F401  (re-exported: mail parsing lived here before)
    ParsedMail,
    decode_bytes,
    decode_header_value,
    email_drafts,
    iso2022jp_as_cp932,
    parse_message,
)
from canary.normalize import email_key
from canary.registry.models import Canary, Export
from canary.settings import Settings

if TYPE_CHECKING:
    from canary.registry import Registry


# -- registry reads ------------------------------------------------------------------------


def assigned_addresses(registry: Registry, addresses: Iterable[str]) -> set[str]:
    """The addresses (folded) that a canary of a live export holds."""
    keys = sorted({email_key(a) for a in addresses if a})
    found: set[str] = set()
    with registry._sessions() as s:
        for i in range(0, len(keys), 500):
            q = (
                select(Canary.email)
                .join(Export, Export.id == Canary.export_id)
                .where(Canary.email.in_(keys[i : i + 500]), Export.status != "void")
            )
            found.update(str(e) for (e,) in s.execute(q) if e)
    return found


def pool_domain_names(registry: Registry) -> set[str]:
    """The active pool domains, lower case."""
    return {d.domain.lower() for d in registry.pool_domains(state="active")}


@dataclass
class PollResult:
    """What one poll of a mailbox did."""

    seen: int = 0  # messages looked at
    stored: int = 0  # events stored for the first time
    duplicates: int = 0  # events already stored (a message seen before)
    failed: int = 0  # messages left unread for the next poll
    ignored: int = 0  # messages to no canary address
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return asdict(self)


# -- IMAP ----------------------------------------------------------------------------------

IMAP_TIMEOUT = 60.0  # seconds a silent IMAP server is waited for
IGNORED_KEYWORD = "$CanaryIgnored"  # marks mail to no canary, so it is not fetched again


@dataclass(frozen=True)
class FetchedMail:
    raw: bytes
    received_at: datetime | None  # the server's INTERNALDATE
    size: int  # the whole message's size; ``raw`` stops at the poll's limit


class MailboxClient(Protocol):
    """The few IMAP operations a poll needs; ``ImapMailbox`` speaks them to a real server."""

    def unseen(self) -> list[bytes]: ...
    def fetch(self, uid: bytes, limit: int) -> FetchedMail | None: ...
    def mark_seen(self, uid: bytes) -> None: ...
    def mark_ignored(self, uid: bytes) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class ImapTarget:
    secure: bool  # imaps: TLS from the start; imap: STARTTLS where the server offers it
    user: str
    host: str
    port: int
    mailbox: str

    @classmethod
    def parse(cls, url: str) -> ImapTarget:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
            raise CanaryError(
                f"CANARY_IMAP_URL={url!r} is not an IMAP mailbox; set it to "
                "imaps://user@host:993/INBOX (or imap://user@host:143/INBOX)."
            )
        try:
            port = parts.port or (993 if parts.scheme == "imaps" else 143)
        except ValueError:
            raise CanaryError(f"CANARY_IMAP_URL={url!r} has a bad port number.") from None
        return cls(
            parts.scheme == "imaps",
            unquote(parts.username),
            parts.hostname,
            port,
            unquote(parts.path.lstrip("/")) or "INBOX",
        )


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapMailbox:
    """One selected mailbox on a real IMAP server (standard library ``imaplib``)."""

    def __init__(self, conn: imaplib.IMAP4, target: ImapTarget, keywords: bool) -> None:
        self.conn = conn
        self.target = target
        self.keywords = keywords  # the server keeps our own keyword on messages

    @classmethod
    def connect(cls, settings: Settings) -> ImapMailbox:
        """Log in and select the mailbox of ``settings.imap_url``; CanaryError if it fails."""
        if not settings.imap_url:
            raise CanaryError(
                "No mailbox to poll: set CANARY_IMAP_URL to imaps://user@host:993/INBOX "
                "and CANARY_IMAP_PASSWORD to its password."
            )
        t = ImapTarget.parse(settings.imap_url)
        if not settings.imap_password:
            raise CanaryError(f"Set CANARY_IMAP_PASSWORD to the password of {t.user}@{t.host}.")
        where = f"{t.host}:{t.port}"
        try:
            if t.secure:
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    t.host, t.port, ssl_context=ssl.create_default_context(), timeout=IMAP_TIMEOUT
                )
            else:
                conn = imaplib.IMAP4(t.host, t.port, timeout=IMAP_TIMEOUT)
                if "STARTTLS" in conn.capabilities:
                    conn.starttls(ssl.create_default_context())
        except (OSError, imaplib.IMAP4.error) as exc:
            raise CanaryError(
                f"Cannot reach the IMAP server {where} ({exc}); check CANARY_IMAP_URL "
                "and that the server is up."
            ) from exc
        try:
            try:
                conn.login(t.user, settings.imap_password)
            except imaplib.IMAP4.error as exc:
                raise CanaryError(
                    f"The IMAP server {where} refused the login of {t.user}; check "
                    "CANARY_IMAP_PASSWORD and the user in CANARY_IMAP_URL."
                ) from exc
            typ, _ = conn.select(_quoted(t.mailbox))
            if typ != "OK":
                raise CanaryError(
                    f"There is no mailbox {t.mailbox!r} for {t.user} on {where}; "
                    "fix the path in CANARY_IMAP_URL."
                )
            _, flags = conn.response("PERMANENTFLAGS")
            keywords = any(f and b"\\*" in f for f in flags if isinstance(f, bytes))
        except CanaryError:
            _close(conn)
            raise
        except (OSError, imaplib.IMAP4.error) as exc:
            _close(conn)
            raise CanaryError(f"The IMAP server {where} failed: {exc}.") from exc
        return cls(conn, t, keywords)

    def _uid(self, *args: str) -> list[Any]:
        try:
            typ, data = self.conn.uid(*args)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise CanaryError(f"The IMAP server {self.target.host} failed: {exc}.") from exc
        if typ != "OK":
            raise CanaryError(f"The IMAP server {self.target.host} refused {args[0]}: {data}.")
        return list(data)

    def unseen(self) -> list[bytes]:
        criteria = ["UNSEEN", "UNKEYWORD", IGNORED_KEYWORD] if self.keywords else ["UNSEEN"]
        data = self._uid("SEARCH", *criteria)
        return [uid for line in data if line for uid in line.split()]

    def fetch(self, uid: bytes, limit: int) -> FetchedMail | None:
        # BODY.PEEK leaves \Seen alone: a message is marked only once its events are stored.
        data = self._uid(
            "FETCH", uid.decode(), f"(RFC822.SIZE INTERNALDATE BODY.PEEK[]<0.{limit}>)"
        )
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                head, raw = item
                size = re.search(rb"RFC822\.SIZE (\d+)", head)
                moment = imaplib.Internaldate2tuple(head)
                return FetchedMail(
                    raw=bytes(raw),
                    received_at=datetime.fromtimestamp(time.mktime(moment), UTC)
                    if moment
                    else None,
                    size=int(size.group(1)) if size else len(raw),
                )
        return None  # expunged by someone else meanwhile

    def mark_seen(self, uid: bytes) -> None:
        self._uid("STORE", uid.decode(), "+FLAGS.SILENT", "(\\Seen)")

    def mark_ignored(self, uid: bytes) -> None:
        if self.keywords:
            self._uid("STORE", uid.decode(), "+FLAGS.SILENT", f"({IGNORED_KEYWORD})")

    def close(self) -> None:
        _close(self.conn)


def _close(conn: imaplib.IMAP4) -> None:
    """Log out without expunging (CLOSE would expunge; a poll never deletes)."""
    with contextlib.suppress(OSError, imaplib.IMAP4.error):
        conn.logout()


def poll_mailbox(
    registry: Registry,
    settings: Settings,
    client_factory: Callable[[Settings], MailboxClient] | None = None,
) -> PollResult:
    """Store an ``email`` event for every canary recipient of every unread message, then
    mark the message \\Seen; mail to no canary is left unread (and tagged, so it is not
    fetched again). Idempotent: a message whose marking failed is a duplicate next time."""
    client = (client_factory or ImapMailbox.connect)(settings)
    result = PollResult()
    grace = timedelta(hours=settings.expect_grace_hours)
    try:
        for uid in client.unseen():
            result.seen += 1
            fetched = client.fetch(uid, settings.smtp_max_bytes)
            if fetched is None:
                continue
            try:
                mail = parse_message(fetched.raw)
                canaries = assigned_addresses(registry, mail.recipients)
                if not canaries:
                    result.ignored += 1
                    client.mark_ignored(uid)
                    continue
                extra: dict[str, object] = (
                    {"truncated": True} if fetched.size > len(fetched.raw) else {}
                )
                drafts = email_drafts(
                    fetched.raw,
                    [r for r in mail.recipients if r in canaries],
                    provider="imap",
                    source=mail.sender,
                    occurred_at=fetched.received_at or mail.date or datetime.now(UTC),
                    extra=extra,
                    parsed=mail,
                )
                for draft in drafts:
                    event = registry.record_event(
                        draft, grace=grace, threshold=settings.event_threshold
                    )
                    if event.duplicate:
                        result.duplicates += 1
                    else:
                        result.stored += 1
            except Exception as exc:  # this message waits for the next poll; others go on
                result.failed += 1
                result.errors.append(f"message UID {uid.decode()}: {exc}")
                continue
            client.mark_seen(uid)
    finally:
        client.close()
    return result
