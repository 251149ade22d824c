"""One typed settings object, read from ``CANARY_*`` environment variables in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path


def default_db_url() -> str:
    """The embedded default registry: a SQLite file in the user's data directory."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(base) / 'canary' / 'registry.db'}"


def _default_seeds_dir() -> str:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "seeds", here / "_seeds"):
        if candidate.is_dir():
            return str(candidate)
    return str(here.parent / "seeds")


@dataclass(frozen=True)
class Settings:
    """Configuration of a Canary process; every field has a default and a line of help."""

    db: str = field(
        default_factory=default_db_url,
        metadata={"env": "CANARY_DB", "help": "Registry database URL (SQLite file or PostgreSQL)."},
    )
    seeds_dir: str = field(
        default_factory=_default_seeds_dir,
        metadata={"env": "CANARY_SEEDS_DIR", "help": "Folder of reference data for canaries."},
    )
    actor: str = field(
        default_factory=lambda: os.environ.get("USER") or os.environ.get("USERNAME") or "unknown",
        metadata={"env": "CANARY_ACTOR", "help": "Who is acting, as written to the audit log."},
    )
    cache_dir: str = field(
        default_factory=lambda: str(
            Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "canary"
        ),
        metadata={
            "env": "CANARY_CACHE_DIR",
            "help": "Folder for the scan's canary index cache (rebuilt when canaries change).",
        },
    )
    max_numbers_per_export: int = field(
        default=24,
        metadata={
            "env": "CANARY_MAX_NUMBERS_PER_EXPORT",
            "help": "Most distinct pool phone numbers one export uses.",
        },
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``CANARY_*`` variables; keyword overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            if name in env and env[name] != "":
                raw = env[name]
                values[f.name] = int(raw) if f.type in ("int", int) else raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def help_table(cls) -> list[tuple[str, str]]:
        """(variable, help) pairs for documentation."""
        return [(f.metadata["env"], f.metadata["help"]) for f in fields(cls)]
