"""Invariant 3: the registry never stores rows of real people, neither from a host list that
is seeded nor from a broker list that is scanned."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import sqlalchemy as sa

from canary.registry import Registry
from canary.scan import scan
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from tests.listgen import people, write_csv


def _everything_stored(registry: Registry) -> str:
    """Every value of every table of the registry, as one text."""
    meta = sa.MetaData()
    meta.reflect(registry.engine)
    parts = []
    with registry.engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(sa.select(table)):
                parts.append(json.dumps([str(v) for v in row], ensure_ascii=False))
    return "\n".join(parts)


def _person_traces(row: list[str]) -> list[str]:
    """What would identify a fake host person: their phone (any form) and email."""
    phone = row[7]
    out = [phone, phone.replace("-", ""), "+81" + phone.replace("-", "")[1:]]
    return out + ([row[8]] if row[8] else [])


def test_no_host_or_broker_person_is_stored(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    host_rows = people(800, seed=71)
    src = write_csv(tmp_path / "host.csv", host_rows)
    result = seed(
        registry,
        settings,
        SeedRequest(input=src, output=tmp_path / "out.csv", client="c", list_name="l", account="a"),
    )
    # A broker list: the seeded export merged with strangers, scanned and recorded.
    strangers = people(300, seed=72)
    text = (tmp_path / "out.csv").read_bytes().decode("cp932")
    rows = list(csv.reader(io.StringIO(text)))
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows + [[f"S{i}", *r[1:]] for i, r in enumerate(strangers)])
    broker = tmp_path / "broker.csv"
    broker.write_text(buf.getvalue(), encoding="utf-8")
    found = scan(registry, settings.seeds_dir, broker, record=True)
    assert found.scan_id and found.exports[0].meta.code == result.export.code

    stored = _everything_stored(registry)
    assert result.export.code in stored  # the dump does see the registry's contents
    leaked = [t for r in host_rows + strangers for t in _person_traces(r) if t in stored]
    assert leaked == []
