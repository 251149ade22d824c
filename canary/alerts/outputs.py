"""Alert outputs: where a message goes, each behind the same small ``Output`` protocol.

- ``EmailOutput``: a mail through an SMTP relay (``CANARY_ALERT_SMTP``, ``…_EMAIL_TO``).
- ``WebhookOutput``: a JSON POST, SSRF-guarded (``CANARY_ALERT_WEBHOOKS``, kind=url): the
  kinds are ``json`` (the message's data with its subject and text), ``slack`` (an incoming
  webhook: ``text`` plus ``blocks``) and ``teams`` (an Adaptive Card in a message).
- ``JsonLinesOutput`` and ``SyslogOutput``: one JSON line per alert for a SIEM, on stdout or
  to syslog (``CANARY_ALERT_SIEM``: ``stdout``, ``syslog`` for the local /dev/log, or
  ``syslog://host:514`` over UDP).

Tests hand ``dispatch`` their own outputs (a fake that records messages), and also run
these against real SMTP, HTTP and syslog peers on loopback.
"""

from __future__ import annotations

import hashlib
import json
import os
import smtplib
import socket
import sys
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol, TextIO
from urllib.parse import urlsplit

from canary import __version__
from canary.alerts.messages import AlertMessage
from canary.alerts.ssrf import (
    Connect,
    DeliveryError,
    Resolve,
    post_json,
    system_connect,
    system_resolve,
)
from canary.errors import CanaryError
from canary.settings import Settings

WEBHOOK_KINDS = ("json", "slack", "teams")
TIMEOUT = 10.0
SLACK_TEXT = 2900  # a section's text may hold 3000 characters
_SYSLOG_PRI = 8 * 1 + 4  # facility user, severity warning


class Output(Protocol):
    """Somewhere alerts go. ``name`` is stable across runs (it records who got what);
    ``send`` raises DeliveryError when the message did not get there."""

    name: str

    def send(self, message: AlertMessage) -> None: ...


def _json_lines(message: AlertMessage) -> list[str]:
    """A SIEM wants one record per alert, digests included."""
    if message.items:
        return [
            json.dumps(
                {"type": "canary.alert", "digest_id": message.digest_id, **item.as_json()},
                ensure_ascii=False,
                default=str,
            )
            for item in message.items
        ]
    return [json.dumps(message.data, ensure_ascii=False, default=str)]


class EmailOutput:
    def __init__(
        self, host: str, port: int, sender: str, recipients: Sequence[str], timeout: float = TIMEOUT
    ) -> None:
        self.name = "email"
        self.host, self.port, self.sender = host, port, sender
        self.recipients = list(recipients)
        self.timeout = timeout

    def send(self, message: AlertMessage) -> None:
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        mail["X-Canary-Kind"] = message.kind
        mail.set_content(message.text)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"mail via {self.host}:{self.port} failed: {exc}") from None


def slack_body(message: AlertMessage) -> dict[str, object]:
    def esc(text: str) -> str:  # Slack reads &, < and > as markup (<!channel> pings all)
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    text = esc(message.text)
    if len(text) > SLACK_TEXT:
        text = text[:SLACK_TEXT] + "…"
    fields = [{"type": "mrkdwn", "text": f"*{esc(k)}*\n{esc(v)}"} for k, v in message.facts[:10]]
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    return {"text": message.subject, "blocks": blocks}


def teams_body(message: AlertMessage) -> dict[str, object]:
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": message.subject, "weight": "Bolder", "wrap": True},
            {"type": "TextBlock", "text": message.text, "wrap": True},
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in message.facts]},
        ],
    }
    return {
        "type": "message",
        "summary": message.subject,
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


class WebhookOutput:
    def __init__(
        self,
        kind: str,
        url: str,
        allow_private: bool = False,
        timeout: float = TIMEOUT,
        resolve: Resolve = system_resolve,
        connect: Connect = system_connect,
    ) -> None:
        if kind not in WEBHOOK_KINDS:
            raise CanaryError(
                f"Unknown alert webhook kind {kind!r}; use one of {', '.join(WEBHOOK_KINDS)}."
            )
        self.kind, self.url = kind, url
        self.name = f"{kind}-webhook:{hashlib.sha256(url.encode()).hexdigest()[:8]}"
        self.allow_private, self.timeout = allow_private, timeout
        self.resolve, self.connect = resolve, connect

    def body(self, message: AlertMessage) -> dict[str, object]:
        if self.kind == "slack":
            return slack_body(message)
        if self.kind == "teams":
            return teams_body(message)
        return {**message.data, "subject": message.subject, "text": message.text}

    def send(self, message: AlertMessage) -> None:
        data = json.dumps(self.body(message), ensure_ascii=False, default=str).encode("utf-8")
        post_json(
            self.url,
            data,
            allow_private=self.allow_private,
            timeout=self.timeout,
            resolve=self.resolve,
            connect=self.connect,
            user_agent=f"canary/{__version__}",
        )


class JsonLinesOutput:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.name = "stdout"
        self.stream = stream

    def send(self, message: AlertMessage) -> None:
        stream = self.stream or sys.stdout
        try:
            for line in _json_lines(message):
                stream.write(line + "\n")
            stream.flush()
        except OSError as exc:
            raise DeliveryError(f"writing JSON lines failed: {exc}") from None


class SyslogOutput:
    """RFC 3164 datagrams: to the local syslog socket, or to host:port over UDP."""

    def __init__(self, address: str | tuple[str, int] = "/dev/log") -> None:
        self.name = "syslog"
        self.address = address

    def send(self, message: AlertMessage) -> None:
        family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        if isinstance(self.address, tuple) and ":" in self.address[0]:
            family = socket.AF_INET6
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                for line in _json_lines(message):
                    record = f"<{_SYSLOG_PRI}>canary[{os.getpid()}]: {line}"
                    sock.sendto(record.encode("utf-8"), self.address)
        except OSError as exc:
            raise DeliveryError(f"syslog to {self.address} failed: {exc}") from None


def _webhooks(spec: str) -> list[tuple[str, str]]:
    """kind=url pairs; a comma inside a URL stays with its URL."""
    pairs: list[tuple[str, str]] = []
    for piece in spec.split(","):
        kind, eq, url = piece.strip().partition("=")
        if eq and kind.strip().lower() in WEBHOOK_KINDS:
            pairs.append((kind.strip().lower(), url.strip()))
        elif pairs and piece:
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + "," + piece)
        elif piece.strip():
            raise CanaryError(
                f"CANARY_ALERT_WEBHOOKS entry {piece.strip()!r} is not kind=url; kind is "
                f"{', '.join(WEBHOOK_KINDS)}."
            )
    return pairs


def _host_port(value: str, default_port: int, what: str) -> tuple[str, int]:
    parts = urlsplit("//" + value.strip())
    try:
        port = parts.port or default_port
    except ValueError:
        port = -1
    if not parts.hostname or port <= 0:
        raise CanaryError(f"{what}={value!r} is not host:port; set it like 127.0.0.1:25.")
    return parts.hostname, port


def outputs_from_settings(settings: Settings) -> list[Output]:
    """The outputs the settings configure; CanaryError with what to fix if one is wrong."""
    outputs: list[Output] = []
    if settings.alert_email_to or settings.alert_smtp:
        if not (settings.alert_email_to and settings.alert_smtp):
            raise CanaryError(
                "Alert mail needs both CANARY_ALERT_EMAIL_TO and CANARY_ALERT_SMTP; set both."
            )
        host, port = _host_port(settings.alert_smtp, 25, "CANARY_ALERT_SMTP")
        recipients = [a.strip() for a in settings.alert_email_to.split(",") if a.strip()]
        outputs.append(EmailOutput(host, port, settings.alert_from, recipients))
    for kind, url in _webhooks(settings.alert_webhooks):
        outputs.append(WebhookOutput(kind, url, allow_private=settings.alert_allow_private == 1))
    siem = settings.alert_siem.strip()
    if siem == "stdout":
        outputs.append(JsonLinesOutput())
    elif siem == "syslog":
        outputs.append(SyslogOutput())
    elif siem.startswith("syslog://"):
        outputs.append(SyslogOutput(_host_port(siem[9:], 514, "CANARY_ALERT_SIEM")))
    elif siem:
        raise CanaryError(
            f"CANARY_ALERT_SIEM={siem!r} is not stdout, syslog or syslog://host:port."
        )
    return outputs
