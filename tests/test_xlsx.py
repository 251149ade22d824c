"""XLSX in, XLSX out: values and order of host rows kept, canaries between them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import openpyxl

from canary.registry import Registry
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from tests.listgen import HEADER, people


def _write_book(path: Path, rows: list[list[str]]) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "名簿"
    ws.append(HEADER)
    for r in rows:
        y, m, d = (int(x) for x in r[4].split("/"))
        ws.append(
            [
                int(r[0][1:]),
                r[1],
                r[2],
                r[3],
                datetime(y, m, d),
                r[5],
                r[6],
                r[7],
                r[8] or None,
                r[9] or None,
            ]
        )
    notes = wb.create_sheet("メモ")
    notes.append(["作成者", "営業部"])
    wb.save(path)


def test_xlsx_roundtrip(registry: Registry, settings: Settings, tmp_path: Path) -> None:
    rows = people(400, seed=12)
    src = tmp_path / "list.xlsx"
    _write_book(src, rows)
    res = seed(
        registry,
        settings,
        SeedRequest(
            input=src,
            output=tmp_path / "out.xlsx",
            client="c",
            list_name="l",
            account="a",
            canaries=9,
            rng_seed=1,
        ),
    )
    assert res.export.file_format == "xlsx" and res.export.rows_in == 400
    original = list(openpyxl.load_workbook(src).worksheets[0].iter_rows(values_only=True))
    book = openpyxl.load_workbook(tmp_path / "out.xlsx")
    assert book.sheetnames == ["名簿", "メモ"]
    seeded = list(book.worksheets[0].iter_rows(values_only=True))
    assert len(seeded) == len(original) + 9
    positions = {c.position for c in registry.canaries_of(res.export.code)}
    kept = [row for i, row in enumerate(seeded) if i == 0 or (i - 1) not in positions]
    assert kept == original
    assert seeded[-1] == original[-1]  # never appended
    canary_rows = [row for i, row in enumerate(seeded) if i > 0 and (i - 1) in positions]
    for row in canary_rows:
        assert isinstance(row[0], int)  # the host's ID column holds numbers
        assert isinstance(row[4], datetime)  # and its birth dates are dates
        assert isinstance(row[7], str) and row[7].startswith("0")
    assert list(book["メモ"].iter_rows(values_only=True)) == [("作成者", "営業部")]
