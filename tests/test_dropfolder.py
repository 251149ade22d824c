"""Drop folder and outbox with real files on a real registry (SQLite and PostgreSQL).

A file counts as still being written when it was modified in the last ``settle`` seconds
or changes between two looks; the tests age files with ``os.utime`` and, for the second
look, hand in a ``sleep`` that lets another writer append to a file meanwhile.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from canary.dropfolder import import_folder, process_outbox, scan_drop_folder
from canary.dropfolder.folders import folder_lock
from canary.errors import InputError, RegistryError
from canary.events import EventDraft
from canary.registry import Registry
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from jobs.scheduler import run_once
from tests.helpers import files_in
from tests.listgen import people, write_csv


def _age(*paths: Path, seconds: float = 600) -> None:
    then = time.time() - seconds
    for p in paths:
        os.utime(p, (then, then))


def write_xlsx(path: Path) -> Path:
    """A real workbook of 200 people (openpyxl)."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["氏名", "電話番号", "住所"])
    for n in range(200):
        sheet.append([f"山田 太郎{n}", f"090-1234-{n:04d}", "大阪府堺市堺区1-1"])
    book.save(path)
    return path


def _seeded(registry: Registry, settings: Settings, tmp: Path) -> tuple[str, Path]:
    src = write_csv(tmp / "host.csv", people(300, seed=3))
    out = tmp / "seeded.csv"
    res = seed(
        registry,
        settings,
        SeedRequest(
            input=src, output=out, client="city", list_name="residents", account="op1", rng_seed=3
        ),
    )
    return res.export.code, out


def test_broker_lists_are_scanned_and_filed_half_written_ones_wait(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    code, seeded = _seeded(registry, settings, tmp_path)
    drop = tmp_path / "drop"
    drop.mkdir()
    shutil.copy(seeded, drop / "purchased list.csv")
    (drop / "bad.csv").write_bytes(b"\x00\x01\x02junk" * 100)
    workbook = write_xlsx(tmp_path / "whole.xlsx")
    (drop / "cut off.xlsx").write_bytes(workbook.read_bytes()[:3000])  # a copy that broke off
    (drop / "empty.csv").write_bytes(b"")
    (drop / "notes.pdf").write_bytes(b"%PDF-1.4")
    (drop / "download.csv.part").write_bytes(b"a,b\n")  # a browser still downloading
    (drop / "~$book.xlsx").write_bytes(b"lock")  # Excel's lock file
    shutil.copy(seeded, drop / "growing.csv")
    _age(*drop.iterdir())
    write_csv(drop / "young.csv", people(20, seed=9))  # just copied in: too new to touch
    grown: list[float] = []

    def second_look(gap: float) -> None:
        # Another program is still copying growing.csv between the two looks.
        with (drop / "growing.csv").open("ab") as fh:
            fh.write(b"more,rows\r\n")
        grown.append(gap)

    report = scan_drop_folder(registry, settings, drop, settle=30, gap=0.01, sleep=second_look)
    assert grown == [0.01]
    status = {f.name: f.status for f in report.files}
    assert status == {
        "purchased list.csv": "done",
        "bad.csv": "failed",
        "cut off.xlsx": "failed",
        "empty.csv": "failed",
        "notes.pdf": "failed",
        "growing.csv": "waiting",
        "young.csv": "waiting",
    }
    assert files_in(drop) == [
        ".canary.lock",
        "done",
        "download.csv.part",
        "failed",
        "growing.csv",
        "young.csv",
        "~$book.xlsx",
    ]
    assert files_in(drop / "done") == ["purchased list.csv", "purchased list.csv.reason.txt"]
    reason = (drop / "done" / "purchased list.csv.reason.txt").read_text(encoding="utf-8")
    assert f"LEAKED FROM EXPORT {code}" in reason and "account op1" in reason
    assert (drop / "done" / "purchased list.csv").read_bytes() == seeded.read_bytes()
    [scan] = registry.scans()
    assert scan["file"] == "purchased list.csv"
    assert files_in(drop / "failed") == [
        "bad.csv",
        "bad.csv.reason.txt",
        "cut off.xlsx",
        "cut off.xlsx.reason.txt",
        "empty.csv",
        "empty.csv.reason.txt",
        "notes.pdf",
        "notes.pdf.reason.txt",
    ]
    why = (drop / "failed" / "bad.csv.reason.txt").read_text(encoding="utf-8")
    assert "binary" in why  # the scanner's own sentence
    why = (drop / "failed" / "cut off.xlsx.reason.txt").read_text(encoding="utf-8")
    assert "not a readable Excel workbook" in why
    assert "is empty" in (drop / "failed" / "empty.csv.reason.txt").read_text(encoding="utf-8")
    # The corrupt files are moved whole, byte for byte; nothing was recorded about them.
    assert (drop / "failed" / "cut off.xlsx").read_bytes() == workbook.read_bytes()[:3000]
    assert "not a kind of file" in (drop / "failed" / "notes.pdf.reason.txt").read_text()

    # Next run: the copies have finished; the same name again gets a name of its own.
    shutil.copy(seeded, drop / "purchased list.csv")
    _age(*drop.iterdir())
    again = scan_drop_folder(registry, settings, drop, settle=30, gap=0)
    assert {f.name: f.status for f in again.files} == {
        "growing.csv": "done",
        "purchased list.csv": "done",
        "young.csv": "done",
    }
    assert "purchased list (2).csv" in files_in(drop / "done")
    assert "No export is named" in (drop / "done" / "young.csv.reason.txt").read_text()
    assert len(registry.scans()) == 4


def test_an_unusable_registry_leaves_the_files_in_place(settings: Settings, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    write_csv(drop / "list.csv", people(20))
    _age(drop / "list.csv")
    bare = Registry(settings.db)
    try:
        with pytest.raises(RegistryError, match="canary init"):
            scan_drop_folder(bare, settings, drop, settle=1, gap=0)
        bare.init()  # initialised, but no export holds a canary yet
        with pytest.raises(RegistryError, match="seed exports"):
            scan_drop_folder(bare, settings, drop, settle=1, gap=0)
        with pytest.raises(InputError, match="does not exist"):
            scan_drop_folder(bare, settings, tmp_path / "nowhere")
    finally:
        bare.close()
    assert files_in(drop) == [".canary.lock", "list.csv"]


def test_call_detail_files_are_imported_and_filed(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "cdr"
    folder.mkdir()
    (folder / "calls.csv").write_text("+81312345678,0312345678\n", encoding="utf-8")
    (folder / "broken.csv").write_text("nonsense\n", encoding="utf-8")
    _age(*folder.iterdir())

    def importer(path: Path) -> dict[str, object]:
        stored = 0
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            fields = line.split(",")
            if len(fields) != 2:
                raise InputError(f"{path.name} line {n + 1} is not caller,number.")
            registry.record_event(
                EventDraft(
                    channel="call",
                    target=fields[1],
                    occurred_at=datetime(2026, 11, 1, tzinfo=UTC),
                    provider="cdr",
                    payload=line.encode(),
                    source=fields[0],
                )
            )
            stored += 1
        return {"events": stored}

    report = import_folder(registry, folder, importer, settle=1, gap=0)
    assert {f.name: f.status for f in report.files} == {"broken.csv": "failed", "calls.csv": "done"}
    assert len(registry.events(limit=None)) == 1
    assert "events 1" in (folder / "done" / "calls.csv.reason.txt").read_text()
    assert "line 1" in (folder / "failed" / "broken.csv.reason.txt").read_text()


def test_a_reader_that_chokes_leaves_one_line_of_reason_and_the_rest_in_the_log(
    registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "cdr"
    folder.mkdir()
    _age(write_csv(folder / "odd.csv", people(5)))

    def importer(path: Path) -> object:
        raise ValueError("could not parse column 'c0'\n\nYou might want to try:\n- this")

    report = import_folder(registry, folder, importer, settle=1, gap=0)
    [failed] = report.files
    assert failed.status == "failed"
    assert failed.reason == (
        "odd.csv could not be read (ValueError: could not parse column 'c0'); check the file, "
        "or save it again as CSV or XLSX, and drop it again."
    )
    assert "You might want to try" in caplog.text  # the whole error, for the operator


def test_a_folder_another_run_holds_is_skipped_and_its_files_stay(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    _age(write_csv(drop / "list.csv", people(20)))
    configured = dataclasses.replace(settings, drop_folder=str(drop))
    with folder_lock(drop) as mine:  # a run in another process, or a run still going
        assert mine
        report = scan_drop_folder(registry, settings, drop, settle=1, gap=0)
        result = run_once(configured, "drop_folder")
    assert report.busy and report.files == []
    assert result["outcome"] == "skipped"
    assert result["summary"] == {"folder": str(drop), "reason": "another run holds it"}
    assert files_in(drop) == [".canary.lock", "list.csv"]
    assert registry.scans() == []


def test_outbox_seeds_each_recipients_list_and_files_it_under_sent(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "outbox"
    box = root / "Call center A"
    box.mkdir(parents=True)
    (root / "outbox.toml").write_text('client = "Sakura City"\nlist = "Residents"\n')
    (box / "outbox.toml").write_text('account = "steward-tanaka"\ncanaries = 12\n')
    host = write_csv(box / "residents.csv", people(400, seed=4))
    original = host.read_bytes()
    typo = root / "Vendor B"
    typo.mkdir()
    (typo / "outbox.toml").write_text('lsit = "Residents"\n')
    write_csv(typo / "residents.csv", people(50, seed=5))
    nameless = root / "Vendor C"
    nameless.mkdir()
    (nameless / "outbox.toml").write_text('client = ""\n')
    write_csv(nameless / "people.csv", people(50, seed=6))
    (root / "loose.csv").write_bytes(original)
    _age(host, typo / "residents.csv", nameless / "people.csv", root / "loose.csv")

    report = process_outbox(registry, settings, root, settle=30, gap=0)
    status = {(Path(f.moved_to or "").parent.parent.name, f.name): f.status for f in report.files}
    assert sorted(status.values()) == ["done", "failed", "failed", "failed"]

    assert files_in(box) == ["outbox.toml", "sent"]
    assert files_in(box / "sent") == ["original", "residents.csv", "residents.csv.manifest.json"]
    assert (box / "sent" / "original" / "residents.csv").read_bytes() == original
    seeded = (box / "sent" / "residents.csv").read_bytes()
    manifest = json.loads((box / "sent" / "residents.csv.manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(seeded).hexdigest()
    assert manifest["canaries"] == 12 and manifest["rows_in"] == 400
    assert manifest["rows_out"] == 412
    assert manifest["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert datetime.fromisoformat(manifest["time"]).utcoffset() is not None
    export = registry.export(manifest["export_id"])
    assert (export.client, export.list_name) == ("Sakura City", "Residents")
    assert (export.account, export.recipient) == ("steward-tanaka", "Call center A")
    assert Path(export.output_path) == box / "sent" / "residents.csv"

    assert "unknown setting 'lsit'" in (typo / "failed" / "residents.csv.reason.txt").read_text()
    assert "No client" in (nameless / "failed" / "people.csv.reason.txt").read_text()
    assert "unknown" not in {e.account for e in registry.exports()}
    assert "no recipient's folder" in (root / "failed" / "loose.csv.reason.txt").read_text()
    readme = (root / "README.txt").read_text(encoding="utf-8")
    assert "sent/original/" in readme and "受け渡し先" in readme

    # The same list dropped again is a second hand-over: a new export, its own names.
    (box / "residents.csv").write_bytes(original)
    _age(box / "residents.csv")
    [second] = process_outbox(registry, settings, root, settle=30, gap=0).files
    assert second.status == "done" and second.moved_to == str(box / "sent" / "residents (2).csv")
    assert second.detail["export_id"] != manifest["export_id"]
    assert len(registry.exports()) == 2

    # No account anywhere: the export would name nobody, so the list is refused.
    anonymous = root / "Vendor D"
    anonymous.mkdir()
    _age(write_csv(anonymous / "people.csv", people(50, seed=6)))
    nobody = dataclasses.replace(settings, actor="unknown")
    [refused] = process_outbox(registry, nobody, root, settle=30, gap=0).files
    assert refused.status == "failed" and refused.reason.startswith("No account for Vendor D")
