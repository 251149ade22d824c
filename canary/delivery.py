"""Delivering a seeded file atomically: a locked temporary file beside the output, the
registry commit, then a link (or rename with --force) into place; and recovery of seeds that
were interrupted between those steps.

A crash before the commit leaves only a temporary file, which ``recover`` removes once no
live process holds its lock; a crash after it leaves a sealed export whose file ``recover``
puts in place (or marks void if the file is gone).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import random
from pathlib import Path

from canary import csvfile
from canary.errors import OutputError
from canary.registry import Registry

TEMP_SUFFIX = ".canary-part"


class TempFile:
    """A locked, exclusive temporary file beside the output; removed unless kept."""

    def __init__(self, output: Path) -> None:
        name = f".{output.name}.{os.getpid()}-{random.randrange(16**8):08x}{TEMP_SUFFIX}"
        self.path = output.parent / name
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.fh = os.fdopen(fd, "wb", buffering=1024 * 1024)
        self.keep = False

    def seal(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.close()  # releases the lock
        if not self.keep:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def place_file(temp: Path, output: Path, force: bool) -> None:
    if force:
        os.replace(temp, output)
    else:
        try:
            os.link(temp, output)  # fails if the output appeared meanwhile: never clobber
        except FileExistsError as exc:
            raise OutputError(
                f"{output} appeared while seeding; the seeded copy is kept at {temp}."
            ) from exc
        temp.unlink()
    csvfile.fsync_dir(output.parent)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(4 * 1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def recover(registry: Registry, directory: Path | None = None) -> list[str]:
    """Finish or void interrupted seeds; remove abandoned temporary files.

    Returns a line per action taken.
    """
    actions: list[str] = []
    for export in registry.sealed_exports():
        out, temp = Path(export.output_path), Path(export.temp_path or "")
        if export.temp_path and temp.exists() and locked(temp):
            continue  # still being written by a live process
        if out.exists() and file_sha256(out) == export.output_sha256:
            registry.set_export_status(export.code, "delivered", "found in place on recovery")
            actions.append(f"{export.code}: file was in place; marked delivered")
        elif export.temp_path and temp.exists() and file_sha256(temp) == export.output_sha256:
            if out.exists():
                raise OutputError(
                    f"Recovering {export.code}: {out} exists but is not the sealed "
                    f"export; move it away and run `canary exports recover`."
                )
            place_file(temp, out, force=False)
            registry.set_export_status(export.code, "delivered", "rolled forward on recovery")
            actions.append(f"{export.code}: sealed file put in place at {out}")
        else:
            registry.set_export_status(export.code, "void", "file never appeared")
            actions.append(f"{export.code}: seeded file was lost before delivery; marked void")
    sealed_temps = {e.temp_path for e in registry.sealed_exports()}
    if directory is not None and directory.is_dir():
        for temp in directory.glob(f".*{TEMP_SUFFIX}"):
            if str(temp) in sealed_temps or locked(temp):
                continue
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                actions.append(f"removed abandoned partial file {temp.name}")
    return actions


def locked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
