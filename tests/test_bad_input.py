"""Bad input: one clear sentence, a non-zero exit, no output file and no registry row."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from canary.registry import Registry
from tests.helpers import files_in
from tests.listgen import people, write_csv


def _seed(run, src: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run(
        "seed",
        str(src),
        "--out",
        str(out),
        "--client",
        "c",
        "--list",
        "l",
        "--account",
        "a",
        *extra,
    )


def _assert_nothing_written(registry: Registry, out_dir: Path, before: list[str]) -> None:
    assert registry.exports() == []
    assert files_in(out_dir) == before


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def test_empty_file(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "empty.csv"
    src.write_bytes(b"")
    res = _seed(run, src, out_dir / "o.csv")
    assert res.exit_code == 3 and "empty" in res.output
    _assert_nothing_written(registry, out_dir, [])


def test_header_only(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "h.csv", [])
    res = _seed(run, src, out_dir / "o.csv")
    assert res.exit_code != 0
    _assert_nothing_written(registry, out_dir, [])


def test_unknown_encoding(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "l.csv", people(20))
    res = _seed(run, src, out_dir / "o.csv", "--encoding", "klingon")
    assert res.exit_code == 3 and "Unknown encoding" in res.output
    _assert_nothing_written(registry, out_dir, [])


def test_undecodable_bytes(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "l.csv"
    write_csv(src, people(20))
    src.write_bytes(src.read_bytes() + b"\x81\x20\xff\xfe,\x85\r\n")
    res = _seed(run, src, out_dir / "o.csv")
    assert res.exit_code == 3 and "encoding" in res.output.lower()
    _assert_nothing_written(registry, out_dir, [])


def test_mixed_encodings(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    """A list joined from a CP932 file and a UTF-8 file is refused, not half-read."""
    first = write_csv(tmp_path / "a.csv", people(30000, seed=1), encoding="cp932")
    second = write_csv(tmp_path / "b.csv", people(30000, seed=2), encoding="utf-8")
    src = tmp_path / "mixed.csv"
    src.write_bytes(first.read_bytes() + second.read_bytes().split(b"\r\n", 1)[1])
    res = _seed(run, src, out_dir / "o.csv")
    assert res.exit_code == 3 and "mixes encodings" in res.output
    _assert_nothing_written(registry, out_dir, [])


def test_ragged_csv(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    rows = people(50)
    rows[10] = rows[10][:4] + ["x"] * 9
    src = write_csv(tmp_path / "r.csv", rows)
    res = _seed(run, src, out_dir / "o.csv")
    assert res.exit_code == 3 and "fields but the header has" in res.output
    _assert_nothing_written(registry, out_dir, [])


def test_not_a_list_of_people(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "sales.csv"
    src.write_text("month,amount,region\n2024-01,100,east\n2024-02,120,west\n")
    res = _seed(run, src, out_dir / "o.csv")
    assert res.exit_code == 3 and "does not look like a list of people" in res.output
    assert "--map" in res.output
    _assert_nothing_written(registry, out_dir, [])


def test_one_column_file(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "one.csv"
    src.write_text("氏名\n山田太郎\n佐藤花子\n", encoding="utf-8")
    res = _seed(run, src, out_dir / "o.csv")
    assert res.exit_code == 3 and "single column" in res.output
    _assert_nothing_written(registry, out_dir, [])


def test_binary_junk(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "junk.csv"
    src.write_bytes(os.urandom(4096) + b"\x00" * 100)
    res = _seed(run, src, out_dir / "o.csv")
    assert res.exit_code == 3
    _assert_nothing_written(registry, out_dir, [])


def test_xlsx_that_is_not_one(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "list.xlsx"
    src.write_text("this is not a workbook")
    res = _seed(run, src, out_dir / "o.xlsx")
    assert res.exit_code == 3 and "not a readable Excel workbook" in res.output
    zipped = tmp_path / "zip.xlsx"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("hello.txt", "hi")
    res = _seed(run, zipped, out_dir / "o.xlsx")
    assert res.exit_code == 3 and "not an Excel workbook" in res.output
    _assert_nothing_written(registry, out_dir, [])


def test_output_exists(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "l.csv", people(100))
    (out_dir / "o.csv").write_text("keep me")
    res = _seed(run, src, out_dir / "o.csv")
    assert res.exit_code == 5 and "--force" in res.output
    assert (out_dir / "o.csv").read_text() == "keep me"
    _assert_nothing_written(registry, out_dir, ["o.csv"])
    res = _seed(run, src, out_dir / "o.csv", "--force")
    assert res.exit_code == 0
    assert (out_dir / "o.csv").read_bytes() != b"keep me"


def test_unwritable_directory(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "l.csv", people(100))
    res = _seed(run, src, tmp_path / "missing" / "o.csv")
    assert res.exit_code == 5 and "does not exist" in res.output
    if os.geteuid() != 0:  # root can write anywhere; the permission check is then moot
        out_dir.chmod(0o500)
        res = _seed(run, src, out_dir / "o.csv")
        out_dir.chmod(0o700)
        assert res.exit_code == 5
    _assert_nothing_written(registry, out_dir, [])


def test_pool_too_small(run, settings, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    run("init")
    src = write_csv(tmp_path / "l.csv", people(200))
    res = _seed(run, src, out_dir / "o.csv")
    assert res.exit_code == 4 and "no active phone numbers" in res.output
    run("pool", "add-phone", "--active", "050-3100-4100", "050-3101-4101")
    res = _seed(run, src, out_dir / "o.csv")
    assert res.exit_code == 4 and "add-domain" in res.output
    run("pool", "add-domain", "canary-test.example.jp")
    assert _seed(run, src, out_dir / "o1.csv").exit_code == 0
    # Two numbers give three distinct sets of size two at most; the set is taken now.
    res = _seed(run, src, out_dir / "o2.csv")
    assert res.exit_code == 4 and "add at least" in res.output
    assert files_in(out_dir) == ["o1.csv"]
    reg = Registry(settings.db)
    assert len(reg.exports()) == 1
    reg.close()


def test_missing_input(run, registry, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    res = _seed(run, tmp_path / "nope.csv", out_dir / "o.csv")
    assert res.exit_code == 3 and "does not exist" in res.output


def test_quarantined_numbers_are_not_used(run, tmp_path, out_dir) -> None:  # type: ignore[no-untyped-def]
    run("init")
    run("pool", "add-phone", "050-3100-4100", "050-3101-4101")
    run("pool", "add-domain", "canary-test.example.jp")
    src = write_csv(tmp_path / "l.csv", people(200))
    res = _seed(run, src, out_dir / "o.csv")
    assert res.exit_code == 4 and "activate" in res.output
