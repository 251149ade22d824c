"""Mail as events: one RFC 5322 message, decoded the way Japanese mail needs, becomes an
``email`` event per canary recipient.

The SMTP listener (``server/smtp.py``) and the IMAP poller (``canary.mailbox``) both build
their drafts here, so a message reads the same whichever way it came in. Only the message's
SHA-256, a few headers (capped), the body's hash and size and the first characters of its
text are kept.
"""

from __future__ import annotations

import email
import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from canary.events import TEXT_LIMIT, EventDraft
from canary.normalize import email_key

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
