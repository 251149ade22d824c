"""The SMTP listener: real SMTP (smtplib and a raw socket) against the listener on loopback.

Runs on SQLite and PostgreSQL through the ``registry`` fixture.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import smtplib
import socket
import subprocess
import sys
from collections.abc import Iterator
from email.header import Header
from email.mime.text import MIMEText
from pathlib import Path

import pytest

from canary.registry import CanaryRecord, Registry
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from server.smtp import SmtpListener
from tests.conftest import TEST_DOMAIN
from tests.listgen import people, write_csv

SPAMMER = "sales@broker.example"


@pytest.fixture
def canary(registry: Registry, settings: Settings, tmp_path: Path) -> CanaryRecord:
    """A canary with an email address, of a freshly seeded export."""
    src = tmp_path / "host.csv"
    write_csv(src, people(120, seed=5))
    result = seed(
        registry,
        settings,
        SeedRequest(
            input=src,
            output=tmp_path / "out.csv",
            client="city",
            list_name="residents",
            account="op1",
            rng_seed=1,
            stable=0,
        ),
    )
    return next(c for c in registry.canaries_of(result.export.code) if c.email)


def _start(registry: Registry, settings: Settings) -> SmtpListener:
    listener = SmtpListener(registry, settings, host="127.0.0.1", port=0)
    listener.start()
    return listener


@pytest.fixture
def listener(registry: Registry, settings: Settings) -> Iterator[SmtpListener]:
    server = _start(registry, settings)
    yield server
    server.stop()


def _client(listener: SmtpListener) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", listener.port, local_hostname="mx.broker.example")
    client.ehlo()
    return client


def _mail(to: str, subject: str = "未公開株のご案内", body: str = "特別なご案内です。") -> bytes:
    msg = MIMEText(body, "plain", "iso-2022-jp")
    msg["Subject"] = Header(subject, "iso-2022-jp").encode()
    msg["From"] = f"Broker <{SPAMMER}>"
    msg["To"] = to
    msg["Message-ID"] = "<offer-1@broker.example>"
    msg["Date"] = "Tue, 03 Nov 2026 10:00:00 +0900"
    return msg.as_bytes().replace(b"\n", b"\r\n")


class RawSession:
    """SMTP spoken by hand over a socket: pipelining, 8-bit bytes, huge lines."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> bytes:
        lines = []
        while True:
            line = self.file.readline()
            assert line, "the listener closed the connection"
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def test_mail_to_a_canary_is_stored_once_and_names_its_export(
    registry: Registry, canary: CanaryRecord, listener: SmtpListener
) -> None:
    assert canary.email is not None
    message = _mail(canary.email)
    with _client(listener) as client:
        refused = client.sendmail(SPAMMER, [canary.email.upper()], message)
        assert refused == {}
        # The same message delivered again (a retry) is the same event.
        assert client.sendmail(SPAMMER, [canary.email], message) == {}
    [event] = registry.events(limit=None)
    assert event.channel == "email" and event.provider == "smtp"
    assert event.target == canary.email
    assert event.source == SPAMMER
    assert event.classification == "suspicious" and event.strength == "strong"
    assert event.exports == [canary.export.code]
    assert event.provider_id == f"<offer-1@broker.example>:{canary.email}"
    headers = event.details["headers"]
    assert isinstance(headers, dict)
    assert headers["Subject"] == "未公開株のご案内"
    assert headers["From"] == f"Broker <{SPAMMER}>"
    assert event.details["text"] == "特別なご案内です。"
    assert event.details["client_ip"] == "127.0.0.1"
    assert event.details["helo"] == "mx.broker.example"
    assert event.details["size"] == len(message) + 2  # smtplib ends the data with CRLF
    [incident] = registry.incidents()
    assert incident.export == canary.export.code and incident.attributed


def test_unknown_local_part_is_refused_and_kept_as_a_noise_probe(
    registry: Registry, canary: CanaryRecord, listener: SmtpListener
) -> None:
    stranger = f"no-such-canary@{TEST_DOMAIN}"
    with _client(listener) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.sendmail(SPAMMER, [stranger], _mail(stranger))
    assert refused.value.recipients[stranger][0] == 550
    [event] = registry.events(limit=None)
    assert event.channel == "smtp_probe" and event.target == stranger
    assert event.classification == "noise"
    assert event.source == SPAMMER
    assert registry.incidents() == []


def test_foreign_domains_are_never_relayed(
    registry: Registry, canary: CanaryRecord, listener: SmtpListener
) -> None:
    assert canary.email is not None
    with _client(listener) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail(SPAMMER, ["victim@example.org"], _mail("victim@example.org"))
        code, reply = refused.value.recipients["victim@example.org"]
        assert code == 550 and b"Relaying denied" in reply
        # A message to a canary and a stranger: the canary's copy is stored, nothing relayed.
        rest = client.sendmail(SPAMMER, ["victim@example.org", canary.email], _mail(canary.email))
        assert rest["victim@example.org"][0] == 550
        # The old tricks to be relayed through a domain's own server are refused too.
        domain = canary.email.rpartition("@")[2]
        client.mail(SPAMMER)
        for trick in (
            f"<victim%example.org@{domain}>",  # the percent hack
            f"<@{domain}:victim@example.org>",  # a source route
            f'<"victim@example.org"@{domain}>',  # a quoted local part
            "<victim@[127.0.0.1]>",  # an address literal
            "<postmaster>",
        ):
            code, _reply = client.docmd("RCPT TO:" + trick)
            assert code in (550, 553), trick
    [event] = registry.events(limit=None, channel="email")
    assert event.target == canary.email and event.channel == "email"


def test_messages_above_the_size_cap_are_refused_with_552(
    registry: Registry, settings: Settings, canary: CanaryRecord
) -> None:
    assert canary.email is not None
    listener = _start(registry, dataclasses.replace(settings, smtp_max_bytes=4096))
    try:
        big = _mail(canary.email, body="あ" * 6000)
        with _client(listener) as client:
            assert client.has_extn("size") and client.esmtp_features["size"] == "4096"
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail(SPAMMER, [canary.email], big)  # announces SIZE=...
            assert refused.value.smtp_code == 552
        # A client that does not announce the size is refused after DATA.
        raw = RawSession(listener.port)
        raw.send(b"HELO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<" + canary.email.encode())
        raw.send(b">\r\nDATA\r\n")
        assert [raw.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
        raw.send(big.replace(b"\n", b"\r\n") + b"\r\n.\r\nQUIT\r\n")
        assert raw.reply()[:3] == b"552"
        assert raw.reply()[:3] == b"221"
        raw.close()
    finally:
        listener.stop()
    events = registry.events(limit=None)
    assert [e.channel for e in events] == ["smtp_probe"], "no message stored, the try kept"


def test_rcpt_without_data_is_a_probe_of_the_canary(
    registry: Registry, canary: CanaryRecord, listener: SmtpListener
) -> None:
    assert canary.email is not None
    with _client(listener) as client:
        client.mail("harvester@list.example")
        assert client.rcpt(canary.email)[0] == 250
        client.rset()
        client.mail("harvester@list.example")
        assert client.rcpt(canary.email)[0] == 250
    probes = registry.events(limit=None, channel="smtp_probe")
    assert len(probes) == 2
    for probe in probes:
        assert probe.target == canary.email
        assert probe.source == "harvester@list.example"
        assert probe.details["client_ip"] == "127.0.0.1"
        assert probe.details["helo"] == "mx.broker.example"
        assert probe.classification == "suspicious" and probe.exports == [canary.export.code]
    assert registry.events(limit=None, channel="email") == []


def test_a_dropped_connection_after_rcpt_is_a_probe_too(
    registry: Registry, settings: Settings, canary: CanaryRecord
) -> None:
    assert canary.email is not None
    listener = _start(registry, settings)
    raw = RawSession(listener.port)
    raw.send(b"EHLO scanner\r\nMAIL FROM:<>\r\nRCPT TO:<" + canary.email.encode() + b">\r\n")
    assert [raw.reply()[:3] for _ in range(3)] == [b"250", b"250", b"250"]
    raw.close()  # no DATA, no QUIT
    listener.stop()  # stores what sessions that ended left behind
    [probe] = registry.events(limit=None)
    assert probe.channel == "smtp_probe" and probe.target == canary.email
    assert probe.source is None  # MAIL FROM:<> names no sender
    assert probe.details["helo"] == "scanner"


def test_japanese_mail_in_every_common_encoding_is_read_as_text(
    registry: Registry, canary: CanaryRecord, listener: SmtpListener
) -> None:
    assert canary.email is not None
    name = canary.name.replace(" ", "").replace("　", "")
    sjis = (
        f"From: 投資顧問 <{SPAMMER}>\r\nTo: {canary.email}\r\nSubject: ①ご案内～\r\n"
        "Message-ID: <sjis-1@broker.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=Shift_JIS\r\nContent-Transfer-Encoding: 8bit\r\n"
        f"\r\n{name}様　①特別枠～のご案内\r\n"
    ).encode("cp932")
    # ISO-2022-JP as Outlook writes it: NEC's ㈱ (JIS 2D6A) and ① (JIS 2D21) included.
    jis = (
        (b"From: " + "投資顧問".encode("iso2022_jp") + f" <{SPAMMER}>\r\n".encode())
        + (  # a raw JIS header, as old Japanese mailers wrote them
            f"To: {canary.email}\r\nMessage-ID: <jis-1@broker.example>\r\n"
            "Subject: =?ISO-2022-JP?B?GyRCLSEbKEI=?=\r\n"
            "Content-Type: text/plain; charset=ISO-2022-JP\r\n\r\n"
        ).encode()
        + (
            f"{name}様 ".encode("iso2022_jp")
            + b"\x1b$B-j\x1b(B"
            + "未公開株".encode("iso2022_jp")
            + b"\x1b$B-!\x1b(B\r\n"
        )
    )
    utf8 = MIMEText(f"{name}様 ご案内", "plain", "utf-8")  # base64
    utf8["Message-ID"] = "<utf8-1@broker.example>"
    utf8["To"] = canary.email
    qp = (
        f"To: {canary.email}\r\nMessage-ID: <qp-1@broker.example>\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "<p>=E3=81=94=E6=A1=88=E5=86=85 &amp; <b>more</b></p>\r\n"
    ).encode()
    with _client(listener) as client:
        for message in (sjis, jis, utf8.as_bytes(), qp):
            assert client.sendmail(SPAMMER, [canary.email], message) == {}
    texts = {e.provider_id: e for e in registry.events(limit=None)}
    sjis_event = texts[f"<sjis-1@broker.example>:{canary.email}"]
    assert sjis_event.details["text"] == f"{name}様　①特別枠～のご案内"
    assert sjis_event.details["headers"]["Subject"] == "①ご案内～"  # type: ignore[index]
    assert texts[f"<jis-1@broker.example>:{canary.email}"].details["text"] == (
        f"{name}様 ㈱未公開株①"
    )
    jis_headers = texts[f"<jis-1@broker.example>:{canary.email}"].details["headers"]
    assert jis_headers["Subject"] == "①"  # type: ignore[index]
    assert jis_headers["From"] == f"投資顧問 <{SPAMMER}>"  # type: ignore[index]
    assert texts[f"<utf8-1@broker.example>:{canary.email}"].details["text"] == f"{name}様 ご案内"
    assert texts[f"<qp-1@broker.example>:{canary.email}"].details["text"] == "ご案内 & more"
    # The sender named the canary: the strongest sign there is.
    assert all(e.strength == "strong" for e in texts.values())


def test_pipelined_8bit_garbage_and_huge_headers_are_stored_capped(
    registry: Registry, canary: CanaryRecord, listener: SmtpListener
) -> None:
    assert canary.email is not None
    garbage = bytes(range(128, 256))
    message = (
        b"From: =?ISO-2022-JP?B?GyRCRWo7cR\xe4oQg==?= \xff\xfe<bad@@broker>\r\n"
        + b"Content-Type: text/plain; charset*=u\x00tf-8''x\r\n"
        + b"Subject: "
        + b"x" * 60_000
        + b"\r\nReferences: "
        + b" ".join(b"<%d@x>" % i for i in range(5000))
        + b"\r\nReceived: from a\r\nReceived: from b\r\n\r\n"
        + garbage
        + b"\r\n..leading dot\r\n"
    )
    raw = RawSession(listener.port)
    # Every command in one write, as a pipelining client sends them.
    raw.send(
        b"EHLO \xe3\x81\x82.example\r\nMAIL FROM:<>\r\nRCPT TO:<"
        + canary.email.encode()
        + b">\r\nRCPT TO:<x@example.org>\r\nDATA\r\n"
    )
    replies = [raw.reply()[:3] for _ in range(5)]
    assert replies == [b"250", b"250", b"250", b"550", b"354"]
    raw.send(message + b".\r\nQUIT\r\n")
    assert raw.reply()[:3] == b"250"
    assert raw.reply()[:3] == b"221"
    raw.close()
    [event] = registry.events(limit=None)
    assert event.channel == "email" and event.source is None
    headers = event.details["headers"]
    assert isinstance(headers, dict)
    assert len(headers["Subject"]) == 300
    assert event.details["received"] == 2
    assert event.details["size"] == len(message) - 1  # the transparent dot is removed
    assert "leading dot" in str(event.details["text"])
    assert event.provider_id is not None and event.provider_id.startswith("sha256:")


def test_mail_listen_runs_the_listener_until_sigterm(
    registry: Registry, settings: Settings, canary: CanaryRecord
) -> None:
    assert canary.email is not None
    env = {**os.environ, "CANARY_DB": settings.db, "CANARY_SEEDS_DIR": settings.seeds_dir}
    proc = subprocess.Popen(
        [sys.executable, "-m", "canary", "mail", "listen", "--listen", "127.0.0.1:0"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert f"for {TEST_DOMAIN}" in line, line + proc.stderr.read()
        port = int(line.split(" for ")[0].rsplit(":", 1)[1])
        with smtplib.SMTP("127.0.0.1", port) as client:
            assert client.sendmail(SPAMMER, [canary.email], _mail(canary.email)) == {}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    [event] = registry.events(limit=None)
    assert event.channel == "email" and event.exports == [canary.export.code]


def test_a_registry_that_cannot_be_read_makes_senders_retry(tmp_path: Path) -> None:
    broken = Registry(f"sqlite:///{tmp_path / 'never-initialised.db'}")
    listener = SmtpListener(broken, Settings(db=broken.url), host="127.0.0.1", port=0)
    listener.start()
    try:
        with _client(listener) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail(SPAMMER, [f"someone@{TEST_DOMAIN}"], b"Subject: x\r\n\r\nx\r\n")
        code, reply = refused.value.recipients[f"someone@{TEST_DOMAIN}"]
        assert code == 451 and b"try again later" in reply  # temporary: the mail comes back
    finally:
        listener.stop()
        broken.close()
