"""Folder jobs: the drop folder of broker lists, the call-detail folder, the outbox."""

from __future__ import annotations

from pathlib import Path

from canary.dropfolder import (
    GAP_SECONDS,
    SETTLE_SECONDS,
    FolderReport,
    import_folder,
    process_outbox,
    scan_drop_folder,
)
from canary.errors import InputError
from canary.registry import Registry
from canary.settings import Settings
from jobs.run import Outcome, Unavailable, run_job


def _outcome(report: FolderReport) -> Outcome:
    if report.busy:
        return Outcome("skipped", {"folder": report.folder, "reason": "another run holds it"})
    # A file the folder could not take is the file's fault, not the job's: the run is ok,
    # the file is in failed/ with its reason, and the digest counts it.
    return Outcome("ok", report.as_json())


def _no_folder(name: str) -> Outcome:
    return Outcome("skipped", {"reason": f"no folder configured for {name}"})


def drop_folder(
    folder: str = "", settle: float = SETTLE_SECONDS, gap: float = GAP_SECONDS
) -> dict[str, object]:
    """Scan the broker lists dropped into the drop folder."""

    def work(registry: Registry, settings: Settings) -> Outcome:
        if not folder:
            return _no_folder("drop_folder")
        return _outcome(scan_drop_folder(registry, settings, Path(folder), settle=settle, gap=gap))

    return run_job("drop_folder", work)


def cdr_import(
    folder: str = "", settle: float = SETTLE_SECONDS, gap: float = GAP_SECONDS
) -> dict[str, object]:
    """Import the call-detail files dropped into the CDR folder."""

    def work(registry: Registry, settings: Settings) -> Outcome:
        if not folder:
            return _no_folder("cdr_import")
        try:
            from canary.cdr import import_cdr
        except ImportError as exc:
            raise Unavailable(
                f"Call-detail import is not part of this installation ({exc}); "
                "upgrade canary or turn the cdr_import job off."
            ) from None

        def importer(path: Path) -> object:
            result = import_cdr(registry, path, settings)
            if not result.ok:
                first = result.errors[0] if result.errors else None
                raise InputError(
                    result.stopped
                    or f"No row of {path.name} could be imported"
                    + (f" (line {first.line}: {first.reason})" if first else "")
                    + "; fix the file and drop it again."
                )
            return result

        return _outcome(import_folder(registry, Path(folder), importer, settle=settle, gap=gap))

    return run_job("cdr_import", work)


def outbox(
    folder: str = "", settle: float = SETTLE_SECONDS, gap: float = GAP_SECONDS
) -> dict[str, object]:
    """Seed the lists dropped into the outbox's recipient folders."""

    def work(registry: Registry, settings: Settings) -> Outcome:
        if not folder:
            return _no_folder("outbox")
        return _outcome(process_outbox(registry, settings, Path(folder), settle=settle, gap=gap))

    return run_job("outbox", work)
