"""The application factory: one registry per application, blueprints per area, library
errors mapped to HTTP statuses with a JSON reason."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException

from canary import errors
from canary.registry import Registry
from canary.settings import Settings
from server.filer import Filer
from server.groupcommit import GroupCommit

log = logging.getLogger("canary.server")
T = TypeVar("T")
R = TypeVar("R")

# Library errors as HTTP statuses; the first class that matches wins.
HTTP_STATUSES: list[tuple[type[errors.CanaryError], int]] = [
    (errors.AccessError, 403),
    (errors.NotFoundError, 404),
    (errors.NotInitialisedError, 503),
    (errors.RegistryError, 503),  # e.g. a concurrent seed took the same tokens: try again
    (errors.InputError, 400),
    (errors.PoolError, 409),
    (errors.CanaryError, 500),
]


def create_app(
    settings: Settings | None = None, registry: Registry | None = None, filer: bool = True
) -> Flask:
    """Build the application from settings (default: the ``CANARY_*`` environment). With
    ``filer``, a thread of each process that runs it files the suspicious events its hooks
    queued (``canary serve`` runs one filer for all its workers instead: ``filer=False``)."""
    settings = settings or Settings.from_env()
    app = Flask("canary")
    app.config["CANARY_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = 512 * 1024 * 1024  # the seeding gateway takes lists
    reg = registry or Registry(
        settings.db, actor="server", event_threshold=settings.event_threshold
    )
    reg.require_ready()
    app.extensions["canary.registry"] = reg
    # The hooks' events are stored by one writer thread per process, in group commits, and
    # their suspicious ones filed into incidents by a filer, many commits at once.
    # Their registry checks out connections without a round trip (a fifth of a small
    # batch's cost); a batch whose connection had died unseen is stored again on a new one.
    writer = (
        Registry(
            settings.db, actor="server", event_threshold=settings.event_threshold, pre_ping=False
        )
        if registry is None
        else reg
    )
    app.extensions["canary.writer"] = writer
    own = (
        Filer(partial(writer.file_all_queued, settings.event_threshold, wait=False))
        if filer
        else None
    )
    app.extensions["canary.filer"] = own
    app.extensions["canary.events"] = GroupCommit(
        again_if_disconnected(
            partial(
                writer.record_events,
                grace=timedelta(hours=settings.expect_grace_hours),
                threshold=settings.event_threshold,
                file=False,
            )
        ),
        committed=own.committed if own is not None else None,
    )

    from server import api, hooks

    app.register_blueprint(hooks.bp)
    app.register_blueprint(api.bp)

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"ok": True, "schema": registry_of().revision()})

    @app.errorhandler(errors.CanaryError)
    def canary_error(exc: errors.CanaryError) -> Any:
        status = next(code for cls, code in HTTP_STATUSES if isinstance(exc, cls))
        return jsonify({"error": str(exc)}), status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return jsonify({"error": exc.description}), exc.code or 500

    return app


def close_app(app: Flask) -> None:
    """Stop the application's filer thread and close the registries it opened (a test's
    server, or any caller that makes apps and outlives them)."""
    if app.extensions["canary.filer"] is not None:
        app.extensions["canary.filer"].stop()
    writer = app.extensions["canary.writer"]
    if writer is not app.extensions["canary.registry"]:
        writer.close()


def disconnected(exc: BaseException) -> bool:
    """Whether an error (or one it arose from) is a lost database connection."""
    from psycopg import OperationalError as DriverError
    from sqlalchemy.exc import DBAPIError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DriverError) or (
            isinstance(current, DBAPIError) and current.connection_invalidated
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def again_if_disconnected(store: Callable[[Sequence[T]], R]) -> Callable[[Sequence[T]], R]:
    """``store``, called a second time if the first lost its connection (nothing of it was
    committed; the dead connection is gone from the pool)."""

    def once_more(items: Sequence[T]) -> R:
        try:
            return store(items)
        except Exception as exc:
            if not disconnected(exc):
                raise
            log.warning("the database connection was lost (%s); storing the batch again", exc)
            return store(items)

    return once_more


def registry_of() -> Registry:
    """The application's registry (one engine and connection pool per process)."""
    reg: Registry = current_app.extensions["canary.registry"]
    return reg


def events_of() -> GroupCommit:
    """The application's writer of events (a group commit per process)."""
    events: GroupCommit = current_app.extensions["canary.events"]
    return events


def settings_of() -> Settings:
    settings: Settings = current_app.config["CANARY_SETTINGS"]
    return settings
