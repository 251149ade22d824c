"""The application factory: one registry per application, blueprints per area, library
errors mapped to HTTP statuses with a JSON reason."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException

from canary import errors
from canary.registry import Registry
from canary.settings import Settings
from server.filer import Filer
from server.groupcommit import GroupCommit

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


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> Flask:
    """Build the application from settings (default: the ``CANARY_*`` environment)."""
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
    # their suspicious ones filed into incidents by a filer thread, many commits at once.
    filer = Filer(partial(reg.file_queued, settings.event_threshold))
    app.extensions["canary.filer"] = filer
    app.extensions["canary.events"] = GroupCommit(
        partial(
            reg.record_events,
            grace=timedelta(hours=settings.expect_grace_hours),
            threshold=settings.event_threshold,
            file=False,
        ),
        committed=filer.committed,
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
