"""Folders people drop files into: broker lists to scan, call-detail files to import, and
the outbox whose lists are seeded for their recipient (``canary.dropfolder.outbox``).

Every file ends in ``done/`` (``sent/`` in the outbox) or ``failed/`` with
``<name>.reason.txt`` beside it; see ``canary.dropfolder.folders``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from canary.dropfolder.folders import (
    GAP_SECONDS,
    SETTLE_SECONDS,
    FileOutcome,
    FolderReport,
    Sleep,
    process_folder,
)
from canary.dropfolder.outbox import process_outbox, read_outbox_config
from canary.registry import Registry
from canary.settings import Settings

__all__ = [
    "FileOutcome",
    "FolderReport",
    "import_folder",
    "process_folder",
    "process_outbox",
    "read_outbox_config",
    "scan_drop_folder",
]


def _scan_reason(result: object) -> tuple[str, dict[str, object]]:
    from canary.scan import ScanResult

    assert isinstance(result, ScanResult)
    head = f"Scan {result.scan_id}: {result.rows:,} rows, {result.matched_rows:,} with a canary."
    lines = [head]
    named = [f for f in result.exports if f.attributed]
    for f in named:
        m = f.meta
        lines.append(
            f"LEAKED FROM EXPORT {m.code} ({m.client} / {m.list_name}, account {m.account}, "
            f"to {m.recipient or '?'}), probability {f.confidence:.6f}. "
            f"漏えい元の払い出し: {m.code}"
        )
    accounts = [a for a in result.accounts if a.attributed]
    for a in accounts:
        lines.append(
            f"LEAKED BY ACCOUNT {a.account} ({a.client} / {a.list_name}; exports "
            f"{', '.join(a.exports)}), probability {a.confidence:.6f}. 漏えい元のアカウント: "
            f"{a.account}"
        )
    if not named and not accounts:
        lines.append("No export is named: this list shows no sure sign of our exports.")
        lines.append("払い出しの特定なし：このリストに確かなカナリアの痕跡はありません。")
    lines += [f"warning: {w}" for w in result.warnings]
    detail: dict[str, object] = {
        "scan_id": result.scan_id,
        "rows": result.rows,
        "matched_rows": result.matched_rows,
        "attributed_exports": [f.meta.code for f in named],
        "attributed_accounts": [a.account for a in accounts],
    }
    return "\n".join(lines), detail


def scan_drop_folder(
    registry: Registry,
    settings: Settings,
    folder: Path,
    *,
    settle: float = SETTLE_SECONDS,
    gap: float = GAP_SECONDS,
    sleep: Sleep = time.sleep,
) -> FolderReport:
    """Scan every broker list dropped into ``folder`` and record each scan."""
    from canary.attribute import DEFAULT_THRESHOLD
    from canary.scan import scan

    registry.require_ready()

    def handle(path: Path) -> tuple[str, dict[str, object]]:
        before = set(threading.enumerate())
        try:
            result = scan(
                registry,
                settings.seeds_dir,
                path,
                threshold=DEFAULT_THRESHOLD,
                record=True,
                cache_dir=settings.cache_dir,
            )
        except BaseException:
            # The scanner hashes the file on a thread it leaves running when it refuses the
            # file; let it finish before the file is moved away under it.
            for thread in set(threading.enumerate()) - before:
                thread.join()
            raise
        return _scan_reason(result)

    return process_folder(folder, handle, settle=settle, gap=gap, sleep=sleep)


def import_folder(
    registry: Registry,
    folder: Path,
    importer: Callable[[Path], object],
    *,
    settle: float = SETTLE_SECONDS,
    gap: float = GAP_SECONDS,
    sleep: Sleep = time.sleep,
) -> FolderReport:
    """Import every file dropped into ``folder`` with ``importer`` (call-detail records)."""
    registry.require_ready()

    def handle(path: Path) -> tuple[str, dict[str, object]]:
        result = importer(path)
        as_json = getattr(result, "as_json", None)
        detail = as_json() if callable(as_json) else result
        if not isinstance(detail, dict):
            detail = {"result": str(detail)}
        return f"Imported: {_brief(detail)}", detail

    return process_folder(folder, handle, settle=settle, gap=gap, sleep=sleep)


def _brief(detail: dict[str, object]) -> str:
    """The numbers of an import's summary, one line."""
    parts = [f"{k} {v}" for k, v in detail.items() if isinstance(v, int | float | str)]
    return ", ".join(parts[:8]) or "done"
