"""Invariant 2: a seeded file holds every original row byte for byte, in order."""

from __future__ import annotations

import csv
import io
import itertools
import os
from pathlib import Path

import pytest

from canary.registry import Registry
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from tests.helpers import strip_canaries
from tests.listgen import HEADER, people, write_csv


def _seed(registry: Registry, settings: Settings, src: Path, tmp: Path, **kw: object):
    out = tmp / ("out" + src.suffix)
    req = SeedRequest(
        input=src, output=out, client="Client", list_name="List", account="acct", rng_seed=7, **kw
    )  # type: ignore[arg-type]
    return seed(registry, settings, req), out


def _tricky_rows() -> list[list[str]]:
    rows = people(300, seed=3)
    rows[5][9] = '改行を\r\n含む, 備考 "引用" あり'
    rows[17][9] = "line one\nline two"
    rows[40][1] = "髙橋　①子"
    rows[41][9] = "～㈱テスト～"
    rows[299][9] = "最後の行, with comma"
    return rows


CASES = {
    "cp932-crlf": dict(encoding="cp932", newline="\r\n"),
    "cp932-lf-no-final-newline": dict(encoding="cp932", newline="\n", final_newline=False),
    "utf8-bom-crlf": dict(encoding="utf-8", newline="\r\n", bom=True),
    "utf8-lf-quote-all": dict(encoding="utf-8", newline="\n", quote_all=True),
    "eucjp-lf": dict(encoding="euc_jp", newline="\n"),
    "utf8-tsv": dict(encoding="utf-8", newline="\n", delimiter="\t"),
    "cp932-title-row": dict(encoding="cp932", newline="\r\n", title="顧客名簿 2024年度"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_host_rows_untouched(
    case: str, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    opts = dict(CASES[case])
    rows = _tricky_rows()
    if opts.get("encoding") == "euc_jp":  # EUC-JP has no 髙, ①, ～ (U+FF5E) or ㈱
        rows[40][1], rows[41][9] = "高橋　一子", "〜テスト〜"
    src = write_csv(tmp_path / "in.csv", rows, **opts)  # type: ignore[arg-type]
    original = src.read_bytes()
    result, out = _seed(registry, settings, src, tmp_path, canaries=12)
    seeded = out.read_bytes()
    header_records = 1 + (1 if opts.get("title") else 0)
    stripped, canary_rows = strip_canaries(seeded, registry, result.export.code, header_records)
    assert stripped == original
    assert len(canary_rows) == 12
    assert result.export.rows_in == 300
    assert result.export.rows_out == 312
    # Canaries are written in the host's dialect and are never the last row.
    enc = {"cp932": "cp932", "euc_jp": "euc_jp", "utf-8": "utf-8"}[opts["encoding"]]
    newline = opts["newline"].encode()
    for row in canary_rows:
        assert row.endswith(newline)
        fields = next(
            csv.reader(io.StringIO(row.decode(enc)), delimiter=opts.get("delimiter", ","))
        )
        assert len(fields) == len(HEADER)
        if opts.get("quote_all"):
            assert row.startswith(b'"')
    assert not seeded.endswith(canary_rows[-1]) or seeded.endswith(original[-40:])
    last_original_record = original.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    assert seeded.rstrip(b"\r\n").endswith(last_original_record)


def test_canaries_spread_through_file(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    src = write_csv(tmp_path / "in.csv", people(2000, seed=5))
    result, _ = _seed(registry, settings, src, tmp_path, canaries=20)
    positions = sorted(result.positions)
    assert positions[0] < 2020 * 0.15
    assert positions[-1] > 2020 * 0.85
    gaps = [b - a for a, b in itertools.pairwise(positions)]
    assert max(gaps) < 2020 * 0.3


def test_positions_match_rows_in_output(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    src = write_csv(tmp_path / "in.csv", people(500, seed=9), encoding="utf-8", newline="\n")
    result, out = _seed(registry, settings, src, tmp_path, canaries=8)
    lines = out.read_text(encoding="utf-8").splitlines()[1:]
    for canary in registry.canaries_of(result.export.code):
        assert lines[canary.position].split(",")[1] == canary.name.replace("\u3000", "　")


_NOTE = {True: '"改行\r\nあり"', False: '"ｶﾅ,①～㈱"'}
SPLICED = (
    '"ID","名前","備考"\r\n'
    + "".join(f'{i},"髙橋 {i}",{_NOTE[i % 7 == 0]}\r\n' for i in range(1, 200))
    + "200,最後,終わり"  # no final newline
).encode("cp932")


class _Stream(io.RawIOBase):
    """A source with no file behind it: read, never mapped."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._data.readinto(buffer)


@pytest.mark.parametrize("chunk", [5, 64, 4096, 1 << 20])
def test_splice_mapped_and_read_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """A mapped file (copied by the kernel) and a stream (read) splice alike at any window
    size: windows that hold no record end (a quoted line break across them), rows at the
    same place, a row after the last record (it goes before it), no final newline; the
    host's bytes come out unchanged and the counts and hash are the output's."""
    import hashlib

    from canary import csvfile, pipeline

    monkeypatch.setattr(pipeline, "CHUNK_BYTES", chunk)
    copied: list[int] = []
    kernel_copy = os.copy_file_range

    def counted(*args: int) -> int:
        copied.append(n := kernel_copy(*args))
        return n

    monkeypatch.setattr(os, "copy_file_range", counted)
    src = tmp_path / "in.csv"
    src.write_bytes(SPLICED)
    header_end = SPLICED.index(b"\r\n") + 2
    rows = [
        csvfile.Insertion(t, f"C{t},カナリア,x\r\n".encode("cp932"))
        for t in (header_end, 40, 40, 333, 1000, 1001, 2500, len(SPLICED) - 3, len(SPLICED) + 50)
    ]
    outputs = []
    for mapped in (True, False):
        out = tmp_path / f"out-{mapped}.csv"
        digest = hashlib.sha256()
        with src.open("rb", buffering=0) as fh, out.open("wb") as dst:
            reader = fh if mapped else _Stream(fh.read())
            result = csvfile.splice(reader, dst, header_end, rows, 10, None, [digest])
        data = out.read_bytes()
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
        assert result.bytes_out == len(data) == len(SPLICED) + sum(len(r.row) for r in rows)
        outputs.append((data, result.rows_in, result.positions))
        # The mapped file's bytes went file to file: all but the canary rows.
        assert sum(copied) == (len(SPLICED) if mapped else 0)
        copied.clear()
    assert outputs[0] == outputs[1]
    data, rows_in, positions = outputs[0]
    assert rows_in == 200
    records = list(csv.reader(io.StringIO(data.decode("cp932"), newline="")))
    assert [records[p + 1][1] for p in positions] == ["カナリア"] * len(rows)
    kept = [r for r in records if r[1] != "カナリア"]
    assert kept == list(csv.reader(io.StringIO(SPLICED.decode("cp932"), newline="")))
    assert records[-1] == ["200", "最後", "終わり"]  # never appended after the last
