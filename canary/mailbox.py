"""Mail as events: one RFC 5322 message becomes an ``email`` event per canary recipient,
and a mailbox a provider hosts for the pool domains is polled over IMAP.

The SMTP listener (``server/smtp.py``) and the IMAP poller both build their drafts here, so a
message reads the same whichever way it came in. Only the message's SHA-256, a few headers
(capped), the body's hash and size and the first characters of its text are kept.
"""

from __future__ import annotations

import contextlib
import email
import hashlib
import html
import imaplib
import re
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from sqlalchemy import select

from canary.errors import CanaryError
from canary.events import TEXT_LIMIT, EventDraft
from canary.normalize import email_key
from canary.registry.models import Canary, Export
from canary.settings import Settings

if TYPE_CHECKING:
    from canary.registry import Registry

HEADER_LIMIT = 300  # characters kept of one header value
DETAIL_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "Return-Path")
RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To")
# Shift_JIS as Japanese mailers write it is Microsoft's superset (cp932); ISO-2022-JP mail
# often holds NEC row-13 characters (①, ㈱) that Python's iso2022_jp codec refuses.
_CODECS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("shift_jis", "shift-jis", "sjis", "x-sjis", "windows-31j", "ms932"), ("cp932",)
    ),
    "iso-2022-jp": ("cp50220", "iso2022_jp_2004", "iso2022_jp_3"),
    "euc-jp": ("euc_jp", "euc_jis_2004"),
    "us-ascii": ("utf-8",),  # 8-bit bytes under a false ascii label are usually UTF-8
}
_FALLBACK = ("utf-8", "cp932", "euc_jp")
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.I | re.S)
_SPACE = re.compile(r"[ \t\r\f\v]+")


# -- decoding ------------------------------------------------------------------------------


def iso2022jp_as_cp932(data: bytes) -> str:
    """ISO-2022-JP read as Microsoft's CP50220 does: each JIS X 0208 pair moved to its
    Shift_JIS code and decoded as cp932, so NEC's ① and ㈱ come through (Outlook writes them)."""
    out = bytearray()
    mode, i = "ascii", 0
    while i < len(data):
        if data[i] == 0x1B:
            seq = data[i + 1 : i + 3]
            modes = {b"$B": "jis", b"$@": "jis", b"(B": "ascii", b"(J": "ascii", b"(I": "kana"}
            if seq not in modes:
                raise UnicodeDecodeError("iso-2022-jp", data, i, i + 3, "unknown escape")
            mode, i = modes[seq], i + 3
            continue
        j1 = data[i]
        if mode == "jis" and j1 > 0x20 and i + 1 < len(data):
            j2 = data[i + 1]
            s1 = ((j1 + 1) >> 1) + 0x70
            s1 += 0x40 if s1 >= 0xA0 else 0
            s2 = j2 + 0x1F + (1 if j2 + 0x1F >= 0x7F else 0) if j1 & 1 else j2 + 0x7E
            out += bytes((s1, s2))
            i += 2
            continue
        out.append(j1 | 0x80 if mode == "kana" and 0x21 <= j1 <= 0x5F else j1)
        i += 1
    return out.decode("cp932")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text of ``data`` in its declared charset, with the fallbacks Japanese mail needs."""
    declared = (charset or "").strip().strip('"').lower()
    codecs = [*_CODECS.get(declared, (declared,) if declared else ()), *_FALLBACK]
    for codec in codecs:
        try:
            return iso2022jp_as_cp932(data) if codec == "cp50220" else data.decode(codec)
        except (LookupError, ValueError):  # unknown codec, bad bytes, a NUL in the name
            continue
    return data.decode("utf-8", errors="replace")


def decode_header_value(value: object) -> str:
    """A header as text: RFC 2047 words decoded, raw 8-bit bytes read as UTF-8 or cp932."""
    text = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):  # raw 8-bit bytes, surrogate-escaped
        text = decode_bytes(text.encode("ascii", "surrogateescape"), None)
    elif "\x1b$" in text:  # raw ISO-2022-JP, as old Japanese mailers wrote headers
        text = decode_bytes(text.encode("ascii", "replace"), "iso-2022-jp")
    try:
        parts = decode_header(text)
        if any(cs for _, cs in parts):
            text = "".join(
                decode_bytes(chunk, cs) if isinstance(chunk, bytes) else chunk
                for chunk, cs in parts
            )
        else:
            text = str(make_header(parts))
    except (ValueError, LookupError, UnicodeError, MessageError):  # a malformed encoded word
        pass  # keep the header as written
    return " ".join(text.split())


def _text_of(msg: Message) -> str:
    """The first text/plain part (else text/html without tags), decoded."""
    html_text = None
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html"):
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # a broken transfer encoding: the part holds nothing we can read
            continue
        if not isinstance(payload, bytes):
            continue
        try:
            charset = part.get_content_charset()
        except (ValueError, LookupError):  # an RFC 2231 charset of garbage
            charset = None
        text = decode_bytes(payload, charset)
        if kind == "text/plain":
            return text
        if html_text is None:
            html_text = html.unescape(_TAGS.sub(" ", text))
    return _SPACE.sub(" ", html_text or "")


@dataclass(frozen=True)
class ParsedMail:
    """What a message says about itself, decoded, before any event is built."""

    message_id: str | None
    headers: dict[str, str]  # DETAIL_HEADERS present, decoded and capped
    received: int  # Received headers: hops the message took
    recipients: tuple[str, ...]  # addresses in RECIPIENT_HEADERS, folded
    sender: str | None  # Return-Path, else the From address
    date: datetime | None
    text: str
    body_sha256: str
    size: int


def parse_message(raw: bytes) -> ParsedMail:
    """Parse one message; never raises on malformed input (it keeps what it can read)."""
    try:
        return _parse(raw)
    except Exception:  # the standard library's parser has corners; the hash is still evidence
        body = hashlib.sha256(raw).hexdigest()
        return ParsedMail(None, {}, 0, (), None, None, "", body, len(raw))


def _parse(raw: bytes) -> ParsedMail:
    msg = email.message_from_bytes(raw)
    fields: dict[str, list[str]] = {}
    for name, value in msg.raw_items():  # raw: 8-bit bytes still surrogate-escaped
        fields.setdefault(name.lower(), []).append(str(value))
    headers = {
        name: decode_header_value(fields[name.lower()][0])[:HEADER_LIMIT]
        for name in DETAIL_HEADERS
        if name.lower() in fields
    }
    values = [decode_header_value(v) for n in RECIPIENT_HEADERS for v in fields.get(n.lower(), [])]
    recipients = tuple(dict.fromkeys(email_key(a) for _, a in getaddresses(values) if "@" in a))
    from_addr = [a for _, a in getaddresses([headers.get("From", "")]) if "@" in a]
    return_path = headers.get("Return-Path", "").strip().strip("<>").strip()
    try:
        date = parsedate_to_datetime(headers["Date"]) if "Date" in headers else None
    except (TypeError, ValueError, IndexError):
        date = None
    split = re.search(rb"\r?\n\r?\n", raw)
    body = raw[split.end() :] if split else b""
    message_id = headers.get("Message-ID", "").strip() or None
    return ParsedMail(
        message_id=message_id,
        headers=headers,
        received=len(fields.get("received", [])),
        recipients=recipients,
        sender=return_path or (from_addr[0] if from_addr else None),
        date=date,
        text=_text_of(msg).replace("\r\n", "\n").replace("\r", "\n").strip()[:TEXT_LIMIT],
        body_sha256=hashlib.sha256(body).hexdigest(),
        size=len(raw),
    )


def email_drafts(
    raw: bytes,
    recipients: Sequence[str],
    *,
    provider: str,
    source: str | None,
    occurred_at: datetime,
    extra: dict[str, object] | None = None,
    parsed: ParsedMail | None = None,
) -> list[EventDraft]:
    """One ``email`` event per recipient; the provider id is the Message-ID (else the
    message's hash) plus the recipient, so a redelivery is a duplicate and each recipient
    is an event of its own."""
    mail = parsed or parse_message(raw)
    mid = mail.message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    details: dict[str, object] = {
        "headers": mail.headers,
        "received": mail.received,
        "body_sha256": mail.body_sha256,
        "size": mail.size,
        **(extra or {}),
    }
    return [
        EventDraft(
            channel="email",
            target=rcpt,
            occurred_at=occurred_at,
            provider=provider,
            payload=raw,
            source=source or None,
            provider_id=f"{mid}:{email_key(rcpt)}",
            text=mail.text or None,
            details=details,
        )
        for rcpt in dict.fromkeys(recipients)
    ]


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
