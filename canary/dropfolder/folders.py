"""Folder mechanics shared by the drop folder, the call-detail folder and the outbox.

Every file ends in ``done/`` (``sent/`` in the outbox) or ``failed/`` beside the folder's
files, with ``<name>.reason.txt`` saying what happened, so a steward working in Explorer
sees the result without a command line. A file still being written (modified in the last
``settle`` seconds, or changing size or time between two looks ``gap`` seconds apart) is
left for the next run. A registry that cannot be used stops the run and leaves the files:
the fault is ours, not the file's.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from canary.errors import CanaryError, InputError, RegistryError

LIST_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx")
# Files another program is still writing under a temporary name: never touched.
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", ".canary-part")
SETTLE_SECONDS = 10.0
GAP_SECONDS = 3.0
LOCK_NAME = ".canary.lock"
log = logging.getLogger("canary.dropfolder")

Handler = Callable[[Path], tuple[str, dict[str, object]]]  # file -> (reason, detail)
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class FileOutcome:
    name: str
    status: str  # done | failed | waiting
    reason: str
    moved_to: str | None = None
    detail: dict[str, object] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.name,
            "status": self.status,
            "reason": self.reason,
            "moved_to": self.moved_to,
            **({"detail": self.detail} if self.detail else {}),
        }


@dataclass
class FolderReport:
    folder: str
    files: list[FileOutcome] = field(default_factory=list)
    busy: bool = False  # another run holds the folder

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    def as_json(self) -> dict[str, object]:
        return {
            "folder": self.folder,
            "done": self.count("done"),
            "failed": self.count("failed"),
            "waiting": self.count("waiting"),
            "busy": self.busy,
            "files": [f.as_json() for f in self.files],
        }


def left_waiting(name: str, settle: float) -> FileOutcome:
    """A file left for the next run, with a reason a person at a terminal can act on."""
    why = f"still being written (changed in the last {settle:g} s); taken by a later run"
    return FileOutcome(name, "waiting", why)


def is_candidate(path: Path) -> bool:
    """A file a person dropped, not a hidden, lock or partial file, nor our own notes."""
    name = path.name
    if name.startswith((".", "~$")) or name.lower().endswith(PARTIAL_SUFFIXES):
        return False
    return path.is_file() and not name.endswith(".reason.txt")


def settled(
    paths: Sequence[Path], settle: float, gap: float, sleep: Sleep = time.sleep
) -> tuple[list[Path], list[Path]]:
    """(files whose writing has ended, files still being written)."""
    now = time.time()
    first = {}
    for p in paths:
        with contextlib.suppress(FileNotFoundError):  # taken away meanwhile
            first[p] = p.stat()
    # A time in the future (a file server's clock) is left to the second look.
    young = [p for p, st in first.items() if 0 <= now - st.st_mtime < settle]
    rest = [p for p in first if p not in young]
    if rest and gap > 0:
        sleep(gap)
    ready: list[Path] = []
    for p in rest:
        try:
            again = p.stat()
        except FileNotFoundError:
            continue  # taken away meanwhile
        before = first[p]
        if (again.st_size, again.st_mtime_ns) == (before.st_size, before.st_mtime_ns):
            ready.append(p)
        else:
            young.append(p)
    return ready, young


def free_name(name: str, taken: Callable[[str], bool]) -> str:
    """``name``, or ``stem (2).ext`` and so on: the first that ``taken`` says is free."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    n = 1
    while True:
        candidate = name if n == 1 else f"{stem} ({n}){'.' + ext if ext else ''}"
        if not taken(candidate):
            return candidate
        n += 1


def write_atomic(path: Path, text: str) -> None:
    """Write a small text file so that it appears whole or not at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def file_away(path: Path, directory: Path, reason: str) -> Path:
    """Move a dropped file into ``directory`` with ``<name>.reason.txt`` beside it."""
    directory.mkdir(exist_ok=True)
    name = free_name(
        path.name,
        lambda n: (directory / n).exists() or (directory / f"{n}.reason.txt").exists(),
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    write_atomic(directory / f"{name}.reason.txt", f"{stamp}  {path.name}\n{reason}\n")
    dest = directory / name
    os.replace(path, dest)
    return dest


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[bool]:
    """Hold the folder for one run; yields False if another run holds it."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def ours(exc: BaseException) -> bool:
    """Errors of the registry or the database: not the file's fault."""
    return isinstance(exc, RegistryError | SQLAlchemyError)


def unexpected(path: Path, exc: Exception) -> str:
    """The reason a file was not taken: the library's sentence, or for an error it did not
    foresee (a reader library choking on a corrupt file) its first line, with the whole of
    it in the log for whoever keeps the monitors."""
    if isinstance(exc, CanaryError):
        return str(exc)
    log.warning("%s: unexpected %s", path, type(exc).__name__, exc_info=True)
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return (
        f"{path.name} could not be read ({type(exc).__name__}: {first}); check the file, "
        "or save it again as CSV or XLSX, and drop it again."
    )


def handle_one(path: Path, handle: Handler, done: Path, failed: Path) -> FileOutcome:
    """Run the handler on one file and move it to ``done`` or ``failed`` with the reason."""
    try:
        reason, detail = handle(path)
    except Exception as exc:
        if ours(exc):
            raise
        why = unexpected(path, exc)
        dest = file_away(path, failed, why)
        return FileOutcome(path.name, "failed", why, str(dest))
    dest = file_away(path, done, reason)
    return FileOutcome(path.name, "done", reason, str(dest), detail)


def process_folder(
    folder: Path,
    handle: Handler,
    *,
    suffixes: Sequence[str] = LIST_SUFFIXES,
    settle: float = SETTLE_SECONDS,
    gap: float = GAP_SECONDS,
    sleep: Sleep = time.sleep,
) -> FolderReport:
    """Handle every settled file of one folder; see the module docstring."""
    if not folder.is_dir():
        raise InputError(f"The folder {folder} does not exist; create it or fix the setting.")
    report = FolderReport(str(folder))
    with folder_lock(folder) as mine:
        if not mine:
            report.busy = True
            return report
        dropped = sorted(p for p in folder.iterdir() if is_candidate(p))
        ready, waiting = settled(dropped, settle, gap, sleep)
        for p in waiting:
            report.files.append(left_waiting(p.name, settle))
        for p in ready:
            if p.suffix.lower() not in suffixes:
                why = f"{p.name} is not a kind of file this folder takes ({', '.join(suffixes)})."
                dest = file_away(p, folder / "failed", why)
                report.files.append(FileOutcome(p.name, "failed", why, str(dest)))
                continue
            report.files.append(handle_one(p, handle, folder / "done", folder / "failed"))
    return report
