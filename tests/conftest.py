"""Fixtures: a real registry on SQLite (always) and PostgreSQL (when CANARY_TEST_PG_URL is set).

Each PostgreSQL test gets a schema of its own, dropped afterwards, so tests never see each
other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from canary.cli import cli
from canary.pools import parse_owned_domain, parse_owned_phone
from canary.registry import Registry
from canary.settings import Settings

PG_ENV = "CANARY_TEST_PG_URL"
REPO = Path(__file__).resolve().parent.parent

# Owned numbers used by the tests: valid Japanese numbers of every kind.
TEST_NUMBERS = (
    [f"050-3{n:03d}-{4000 + n:04d}" for n in range(100, 130)]
    + [f"090-7{n:03d}-{5000 + n:04d}" for n in range(100, 115)]
    + [f"06-6{n:03d}-{1000 + n:04d}" for n in range(100, 105)]
)
TEST_DOMAIN = "canary-test.example.jp"


def _pg_base() -> str | None:
    return os.environ.get(PG_ENV) or None


def _backends() -> list[object]:
    pg = pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            _pg_base() is None,
            reason=f"PostgreSQL tests need {PG_ENV} (e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test); .ci/run sets it",
        ),
    )
    return ["sqlite", pg]


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty registry URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    base = _pg_base()
    assert base is not None
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        db=db_url, seeds_dir=str(REPO / "seeds"), actor="pytest", cache_dir=str(tmp_path / "cache")
    )


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    """An initialised registry with an active pool of numbers and one mail domain."""
    reg = Registry(settings.db, actor=settings.actor)
    reg.init()
    reg.add_phones([parse_owned_phone(n) for n in TEST_NUMBERS], "active")
    reg.add_domains([parse_owned_domain(TEST_DOMAIN)])
    yield reg
    reg.close()


@pytest.fixture
def run(settings: Settings) -> object:
    """Invoke the CLI against the test registry; returns click's Result."""
    runner = CliRunner()

    def invoke(*args: str) -> object:
        env = {
            "CANARY_DB": settings.db,
            "CANARY_SEEDS_DIR": settings.seeds_dir,
            "CANARY_ACTOR": "pytest",
            "CANARY_CACHE_DIR": settings.cache_dir,
        }
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke
