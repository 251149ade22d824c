"""The SMTP listener for the pool domains: mail to a canary address becomes an ``email``
event, a probe of an address an ``smtp_probe`` event. It never relays.

- RCPT TO an assigned canary address: 250. The message that follows (DATA) is stored as one
  ``email`` event per assigned recipient; a session that ends (RSET, QUIT, HELO, a dropped
  connection) before DATA leaves one ``smtp_probe`` event per address it asked about.
- RCPT TO an unknown local part of a pool domain: 550 (the domains must not look catch-all),
  and the probe is stored; the events core classifies it as noise.
- RCPT TO any other domain: 550, relaying denied.
- Messages above ``settings.smtp_max_bytes`` are refused with 552 (SIZE is announced).

Events are written through the events core in a thread pool, off the asyncio loop. If the
registry cannot store a message the client gets 451 and delivers it again later.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from canary.events import EventDraft
from canary.mailbox import assigned_addresses, pool_domain_names
from canary.mailparse import email_drafts
from canary.normalize import email_key
from canary.registry import Registry
from canary.settings import Settings

log = logging.getLogger("canary.smtp")
T = TypeVar("T")

LINE_LIMIT = 128 * 1024  # spam breaks RFC 5321's 1,000 octets; SIZE still bounds the total


class CanarySMTP(SMTP):
    """aiosmtpd's SMTP with long lines tolerated and the assigned addresses a transaction
    asked for, so that a session ending without DATA can be recorded as a probe."""

    line_length_limit = LINE_LIMIT

    def __init__(self, handler: CanaryHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.canary_handler = handler
        self.probed: list[str] = []
        self.mail_from: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.canary_handler.sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.canary_handler.sessions.discard(self)
        if self.probed:
            self.canary_handler.flush_later(self)
        super().connection_lost(error)


class CanaryHandler:
    """aiosmtpd hooks: decide each recipient and turn what the client did into events."""

    def __init__(self, registry: Registry, settings: Settings, pool: ThreadPoolExecutor) -> None:
        self.registry = registry
        self.settings = settings
        self.pool = pool
        self.tasks: set[asyncio.Task[None]] = set()  # probes of sessions that ended
        self.sessions: set[CanarySMTP] = set()  # open connections

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def _record(self, drafts: list[EventDraft]) -> None:
        grace = timedelta(hours=self.settings.expect_grace_hours)
        for draft in drafts:
            self.registry.record_event(draft, grace=grace, threshold=self.settings.event_threshold)

    def _recipient(self, address: str) -> str:
        """assigned | unknown (a pool domain, no canary) | foreign."""
        key = email_key(address)
        local, _, domain = key.rpartition("@")
        if not local or domain not in pool_domain_names(self.registry):
            return "foreign"
        return "assigned" if assigned_addresses(self.registry, [key]) else "unknown"

    @staticmethod
    def _peer(session: Session) -> dict[str, object]:
        peer = session.peer
        ip = peer[0] if isinstance(peer, tuple) and peer else str(peer or "")
        return {"client_ip": ip, "helo": (session.host_name or "")[:255]}

    def _probe(self, server: CanarySMTP, session: Session, address: str) -> EventDraft:
        peer = self._peer(session)
        source = server.mail_from
        probe_id = uuid.uuid4().hex
        return EventDraft(
            channel="smtp_probe",
            target=address,
            occurred_at=datetime.now(UTC),
            provider="smtp",
            payload=f"{peer['client_ip']}|{peer['helo']}|{source}|{address}|{probe_id}".encode(
                "utf-8", "surrogateescape"
            ),
            source=source,
            provider_id=f"probe:{probe_id}",
            details=peer,
        )

    async def flush(self, server: CanarySMTP, session: Session) -> None:
        """Store the assigned addresses asked for without DATA as probes."""
        probed, server.probed = server.probed, []
        if probed:
            drafts = [self._probe(server, session, a) for a in probed]
            try:
                await self._run(self._record, drafts)
            except Exception:  # the client has gone; nothing to answer, so say it in the log
                log.exception("could not store %d SMTP probe(s)", len(drafts))

    def flush_later(self, server: CanarySMTP) -> None:
        """From connection_lost (not a coroutine): flush in a task the listener waits for."""
        assert server.session is not None
        task = asyncio.get_running_loop().create_task(self.flush(server, server.session))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- hooks ------------------------------------------------------------------------------

    async def handle_HELO(
        self, server: CanarySMTP, session: Session, _e: Envelope, name: str
    ) -> str:
        await self.flush(server, session)
        server.mail_from = None
        session.host_name = name
        return f"250 {server.hostname}"

    async def handle_EHLO(
        self, server: CanarySMTP, session: Session, _e: Envelope, name: str, lines: list[str]
    ) -> list[str]:
        await self.flush(server, session)
        server.mail_from = None
        session.host_name = name
        return lines

    async def handle_MAIL(
        self,
        server: CanarySMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        await self.flush(server, session)
        # MAIL FROM:<> (a bounce) has no sender; keep the bytes of an 8-bit address readable.
        sender = address.strip("<>").encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        server.mail_from = sender[:254] or None
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: CanarySMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        key = email_key(address.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        try:
            verdict = await self._run(self._recipient, key)
            if verdict == "unknown":
                await self._run(self._record, [self._probe(server, session, key)])
        except Exception:
            log.exception("could not check recipient %r", key)
            return "451 4.3.0 Temporary failure; try again later"
        if verdict == "foreign":
            return "550 5.7.1 Relaying denied"
        if verdict == "unknown":
            return "550 5.1.1 No such user here"
        if key not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(key)
            envelope.rcpt_options.extend(options)
            server.probed.append(key)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: CanarySMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        recipients, server.probed = list(server.probed), []
        drafts = email_drafts(
            raw,
            recipients,
            provider="smtp",
            source=server.mail_from,
            occurred_at=datetime.now(UTC),
            extra=self._peer(session),
        )
        try:
            await self._run(self._record, drafts)
        except Exception:
            log.exception("could not store a message for %s", ", ".join(recipients))
            return "451 4.3.0 Could not store the message; try again later"
        finally:
            server.mail_from = None
        return "250 2.0.0 OK"

    async def handle_RSET(self, server: CanarySMTP, session: Session, _e: Envelope) -> str:
        await self.flush(server, session)
        server.mail_from = None
        return "250 2.0.0 OK"

    async def handle_QUIT(self, server: CanarySMTP, session: Session, _e: Envelope) -> str:
        await self.flush(server, session)
        return "221 2.0.0 Bye"

    async def handle_VRFY(self, server: CanarySMTP, session: Session, _e: Envelope, _a: str) -> str:
        return "252 2.5.2 Cannot VRFY user; send mail and see"


class _Controller(Controller):
    """aiosmtpd's threaded controller, able to bind port 0 (tests) and tell the port."""

    def __init__(self, listener: SmtpListener, **kwargs: Any) -> None:
        super().__init__(listener.handler, **kwargs)
        self.listener = listener

    def factory(self) -> SMTP:
        return CanarySMTP(self.listener.handler, **self.SMTP_kwargs)

    def _create_server(self) -> Any:
        family = socket.AF_INET6 if ":" in self.hostname else socket.AF_INET
        sock = socket.create_server((self.hostname, self.port), family=family)
        self.port = sock.getsockname()[1]
        return self.loop.create_server(self._factory_invoker, sock=sock, ssl=self.ssl_context)


class SmtpListener:
    """The SMTP listener in a thread of its own: ``start()``, ``stop()``, ``port``."""

    def __init__(
        self,
        registry: Registry,
        settings: Settings,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        default_host, _, default_port = settings.smtp_listen.rpartition(":")
        self.host = host or default_host.strip("[]") or "127.0.0.1"
        self.port = int(default_port) if port is None else port
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="canary-smtp")
        self.handler = CanaryHandler(registry, settings, self.pool)
        self.controller = _Controller(
            self,
            hostname=self.host,
            port=self.port,
            data_size_limit=settings.smtp_max_bytes,
            server_hostname=socket.gethostname(),
            ident="ESMTP",
            ready_timeout=60.0,
        )

    def start(self) -> None:
        self.controller.start()
        self.port = self.controller.port

    def stop(self) -> None:
        """Stop accepting, store the probes of sessions that just ended, and shut down."""
        loop = self.controller.loop
        if loop.is_running():
            server = self.controller.server
            if server is not None:
                loop.call_soon_threadsafe(server.close)
            asyncio.run_coroutine_threadsafe(self._drain(), loop).result()
        self.controller.stop()
        self.pool.shutdown(wait=True)

    async def _drain(self) -> None:
        for session in list(self.handler.sessions):
            if session.transport is not None:
                session.transport.close()  # connection_lost runs soon, and records probes
        for _ in range(100):  # each closed transport calls connection_lost on a later turn
            if not self.handler.sessions:
                break
            await asyncio.sleep(0)
        while self.handler.tasks:
            await asyncio.gather(*list(self.handler.tasks), return_exceptions=True)
