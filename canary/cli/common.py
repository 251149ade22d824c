"""Shared plumbing of the CLI: the registry handle, error mapping, output helpers."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from canary import errors
from canary.registry import Registry
from canary.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes a script can rely on.
EXIT_CODES: list[tuple[type[errors.CanaryError], int]] = [
    (errors.NotInitialisedError, 6),
    (errors.NotFoundError, 7),
    (errors.InputError, 3),
    (errors.PoolError, 4),
    (errors.OutputError, 5),
    (errors.AuditError, 8),
    (errors.AccessError, 10),
    (errors.CanaryError, 1),
]


class CanaryClickError(click.ClickException):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        setattr(self, "exit_code", exit_code)  # noqa: B010  (a class variable in click)

    def show(self, file: Any = None) -> None:
        click.echo(f"canary: {self.format_message()}", err=True)


class AppContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._registry: Registry | None = None

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    def registry(self, ready: bool = True) -> Registry:
        if self._registry is None:
            self._registry = Registry(
                self.settings.db,
                actor=self.settings.actor,
                event_threshold=self.settings.event_threshold,
            )
        if ready:
            self._registry.require_ready()
        return self._registry


def handle_errors(fn: F) -> F:
    """Turn library errors into one sentence on stderr and the matching exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except errors.CanaryError as exc:
            code = next(c for cls, c in EXIT_CODES if isinstance(exc, cls))
            raise CanaryClickError(str(exc), code) from exc

    return wrapper  # type: ignore[return-value]


def print_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def err_console() -> Console:
    return Console(stderr=True, highlight=False)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
