"""The IMAP poller against a real Dovecot started by the test (its own config, users,
Maildir and port), with mail delivered by IMAP APPEND as a delivery agent would.

Runs on SQLite and PostgreSQL through the ``registry`` fixture. Needs the ``dovecot``
binary (Debian package dovecot-imapd, which .ci/run installs).
"""

from __future__ import annotations

import dataclasses
import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from canary.cli import cli
from canary.errors import CanaryError
from canary.mailbox import IGNORED_KEYWORD, poll_mailbox
from canary.registry import CanaryRecord, Registry
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from tests.listgen import people, write_csv

USER, PASSWORD = "canary", "s3cret pass"
SPAMMER = "sales@broker.example"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    """One Dovecot instance as a subprocess: IMAP on ``port``, IMAPS on ``tls_port``."""

    def __init__(self, conf_dir: Path, tls: bool) -> None:
        binary = shutil.which("dovecot", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if binary is None:
            pytest.skip("Dovecot is not installed; .ci/run installs it (apt-get dovecot-imapd)")
        # Runtime sockets, users and mail live in a short world-traversable folder: unix socket
        # paths are limited to 108 bytes, and Dovecot's unprivileged processes must reach them.
        self.base = Path(tempfile.mkdtemp(prefix="cdv-"))
        self.base.chmod(0o755)
        self.log = conf_dir / "dovecot.log"
        self.port, self.tls_port = _free_port(), _free_port()
        self.conf = conf_dir / "dovecot.conf"
        self.conf.write_text(self._config(conf_dir, tls))
        (self.base / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        self.proc = subprocess.Popen(
            [binary, "-F", "-c", str(self.conf)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_listening()

    def _users(self) -> tuple[str, str, int, int]:
        """(login user, internal user, mail uid, mail gid): Dovecot refuses root for all."""
        if os.getuid() != 0:
            me = pwd.getpwuid(os.getuid()).pw_name
            return me, me, os.getuid(), os.getgid()
        try:
            pwd.getpwnam("dovenull")
            pwd.getpwnam("dovecot")
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("Dovecot's users dovenull/dovecot are missing; reinstall dovecot-core")
        (self.base / "mail").mkdir()
        os.chown(self.base / "mail", nobody.pw_uid, nobody.pw_gid)
        return "dovenull", "dovecot", nobody.pw_uid, nobody.pw_gid

    def _config(self, conf_dir: Path, tls: bool) -> str:
        login, internal, uid, gid = self._users()
        (self.base / "mail").mkdir(exist_ok=True)
        ssl = "no"
        if tls:
            ssl = f"yes\nssl_cert = <{conf_dir / 'cert.pem'}\nssl_key = <{conf_dir / 'key.pem'}"
        return f"""
base_dir = {self.base}/run
state_dir = {self.base}/state
log_path = {self.log}
protocols = imap
listen = 127.0.0.1
ssl = {ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = {login}
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name}
first_valid_uid = {min(uid, 500)}
mail_location = maildir:{self.base}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.base}/passwd
  default_fields = uid={uid} gid={gid} home={self.base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port if tls else 0}
  }}
}}
"""

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 60  # start-up only; the tests themselves are untimed
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                log = self.log.read_text() if self.log.exists() else ""
                self.stop()
                pytest.fail(f"dovecot exited ({self.proc.returncode}): {out}\n{log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail("dovecot did not start listening")

    def session(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port)
        conn.login(USER, PASSWORD)
        conn.select("INBOX")
        return conn

    def deliver(self, raw: bytes) -> None:
        """Put a message into the INBOX, unread, as the delivery agent would."""
        conn = self.session()
        typ, _ = conn.append("INBOX", None, None, raw)
        assert typ == "OK"
        conn.logout()

    def flags(self) -> dict[str, set[str]]:
        """Message-ID -> flags of every message in the INBOX."""
        conn = self.session()
        _, data = conn.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        conn.logout()
        out = {}
        for item in data:
            if isinstance(item, tuple):
                flags = imaplib.ParseFlags(item[0])
                mid = item[1].decode().split(":", 1)[1].strip()
                out[mid] = {f.decode() for f in flags}
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    server = Dovecot(tmp_path, tls=False)
    yield server
    server.stop()


@pytest.fixture
def canaries(registry: Registry, settings: Settings, tmp_path: Path) -> list[CanaryRecord]:
    """Two canaries with email addresses, of a freshly seeded export."""
    src = tmp_path / "host.csv"
    write_csv(src, people(300, seed=5))  # canaries have mail as often as its people
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
    found = [c for c in registry.canaries_of(result.export.code) if c.email]
    assert len(found) >= 2
    return found[:2]


def _mail(mid: str, to: str, extra: str = "", body: str = "ご案内です") -> bytes:
    return (
        f"Return-Path: <{SPAMMER}>\r\n{extra}From: Broker <{SPAMMER}>\r\nTo: {to}\r\n"
        f"Subject: offer\r\nMessage-ID: <{mid}>\r\nDate: Tue, 03 Nov 2026 10:00:00 +0900\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
    ).encode()


def _settings(settings: Settings, dovecot: Dovecot, scheme: str = "imap") -> Settings:
    port = dovecot.tls_port if scheme == "imaps" else dovecot.port
    return dataclasses.replace(
        settings,
        imap_url=f"{scheme}://{USER}@127.0.0.1:{port}/INBOX",
        imap_password=PASSWORD,
    )


def test_polling_twice_stores_canary_mail_once_and_leaves_other_mail_alone(
    registry: Registry, settings: Settings, canaries: list[CanaryRecord], dovecot: Dovecot
) -> None:
    first, second = (c.email for c in canaries)
    assert first is not None and second is not None
    dovecot.deliver(_mail("a@broker.example", first.upper()))
    dovecot.deliver(_mail("b@shop.example", "someone@example.com"))  # not ours
    # Bcc'd: only the delivery agent's Delivered-To header names the canary.
    dovecot.deliver(
        _mail("c@broker.example", "undisclosed-recipients:;", f"Delivered-To: {second}\r\n")
    )
    config = _settings(settings, dovecot)

    result = poll_mailbox(registry, config)
    assert (result.seen, result.stored, result.duplicates, result.failed, result.ignored) == (
        3,
        2,
        0,
        0,
        1,
    )
    flags = dovecot.flags()
    assert "\\Seen" in flags["<a@broker.example>"] and "\\Seen" in flags["<c@broker.example>"]
    assert "\\Seen" not in flags["<b@shop.example>"], "mail to no canary stays unread"
    assert IGNORED_KEYWORD in flags["<b@shop.example>"]

    again = poll_mailbox(registry, config)
    assert (again.seen, again.stored) == (0, 0)

    # Someone marks the message unread again: polling it once more is a duplicate.
    conn = dovecot.session()
    conn.store("1", "-FLAGS", "(\\Seen)")
    conn.logout()
    third = poll_mailbox(registry, config)
    assert (third.seen, third.stored, third.duplicates) == (1, 0, 1)

    events = registry.events(limit=None)
    assert sorted(e.target for e in events) == sorted([first, second])
    for e in events:
        assert e.channel == "email" and e.provider == "imap"
        assert e.source == SPAMMER
        assert e.classification == "suspicious" and e.exports == [canaries[0].export.code]
        assert e.details["text"] == "ご案内です"
    assert {e.provider_id for e in events} == {
        f"<a@broker.example>:{first}",
        f"<c@broker.example>:{second}",
    }
    [incident] = registry.incidents()
    assert incident.export == canaries[0].export.code and incident.events == 2
    assert len(dovecot.flags()) == 3, "a poll never deletes"


def _cli(settings: Settings, *args: str, **env: str) -> object:
    base = {
        "CANARY_DB": settings.db,
        "CANARY_SEEDS_DIR": settings.seeds_dir,
        "CANARY_ACTOR": "pytest",
        "CANARY_IMAP_URL": "",
        "CANARY_IMAP_PASSWORD": "",
    }
    return CliRunner().invoke(cli, list(args), env={**base, **env}, catch_exceptions=False)


def test_mail_poll_command_prints_counts(
    settings: Settings, canaries: list[CanaryRecord], dovecot: Dovecot
) -> None:
    assert canaries[0].email is not None
    dovecot.deliver(_mail("a@broker.example", canaries[0].email))
    env = {"CANARY_IMAP_URL": _settings(settings, dovecot).imap_url}
    result = _cli(
        settings, "mail", "poll", "--once", "--json", CANARY_IMAP_PASSWORD=PASSWORD, **env
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert '"stored": 1' in result.output  # type: ignore[attr-defined]
    plain = _cli(settings, "mail", "poll", "--once", CANARY_IMAP_PASSWORD=PASSWORD, **env)
    assert plain.exit_code == 0  # type: ignore[attr-defined]
    assert "0 messages" in plain.output  # type: ignore[attr-defined]


def test_bad_mailbox_configuration_is_one_sentence_and_a_failure(
    registry: Registry, settings: Settings, dovecot: Dovecot
) -> None:
    url = _settings(settings, dovecot).imap_url
    closed = f"imap://{USER}@127.0.0.1:{_free_port()}/INBOX"
    cases = [
        ({}, "CANARY_IMAP_URL"),
        ({"CANARY_IMAP_URL": "http://x/"}, "is not an IMAP mailbox"),
        ({"CANARY_IMAP_URL": url}, "CANARY_IMAP_PASSWORD"),
        ({"CANARY_IMAP_URL": closed, "CANARY_IMAP_PASSWORD": "x"}, "Cannot reach the IMAP"),
        ({"CANARY_IMAP_URL": url[:-5] + "Nope", "CANARY_IMAP_PASSWORD": PASSWORD}, "no mailbox"),
        # Last: after a failed login Dovecot slows down further logins from the address.
        ({"CANARY_IMAP_URL": url, "CANARY_IMAP_PASSWORD": "wrong"}, "refused the login"),
    ]
    for env, words in cases:
        result = _cli(settings, "mail", "poll", "--once", **env)
        assert result.exit_code != 0, env  # type: ignore[attr-defined]
        message = result.output.strip()  # type: ignore[attr-defined]
        assert words in message and message.count("\n") == 0, message
    assert registry.events(limit=None) == []


@pytest.fixture
def tls_dovecot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dovecot]:
    """Dovecot with a self-signed certificate for 127.0.0.1, trusted via SSL_CERT_FILE."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    server = Dovecot(tmp_path, tls=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    yield server
    server.stop()


def test_imaps_and_starttls_verify_the_server_certificate(
    registry: Registry,
    settings: Settings,
    canaries: list[CanaryRecord],
    tls_dovecot: Dovecot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert canaries[0].email is not None
    tls_dovecot.deliver(_mail("a@broker.example", canaries[0].email))
    assert poll_mailbox(registry, _settings(settings, tls_dovecot, "imaps")).stored == 1
    # imap:// where the server offers STARTTLS: the password goes over TLS too.
    assert poll_mailbox(registry, _settings(settings, tls_dovecot, "imap")).seen == 0
    logins = [line for line in tls_dovecot.log.read_text().splitlines() if "Login: user=" in line]
    assert len(logins) >= 3 and all("TLS" in line for line in logins[-2:])
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(CanaryError, match=r"Cannot reach the IMAP server.*certificate"):
        poll_mailbox(registry, _settings(settings, tls_dovecot, "imaps"))
