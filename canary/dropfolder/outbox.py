"""The outbox: a list dropped into ``<root>/<recipient>/`` is seeded for that recipient and
filed, with its seeded copy and a manifest, under ``sent/`` (README_TEXT says how, to the
stewards who live in Explorer)."""

from __future__ import annotations

import hashlib
import json
import os
import time
import tomllib
from pathlib import Path

from canary.dropfolder.folders import (
    GAP_SECONDS,
    LIST_SUFFIXES,
    SETTLE_SECONDS,
    FileOutcome,
    FolderReport,
    Sleep,
    file_away,
    folder_lock,
    free_name,
    is_candidate,
    left_waiting,
    ours,
    settled,
    unexpected,
    write_atomic,
)
from canary.errors import InputError
from canary.events import aware
from canary.registry import Registry
from canary.settings import Settings

OUTBOX_CONFIG = "outbox.toml"
OUTBOX_README = "README.txt"
# key -> type in outbox.toml; client and list are required (here or in the root's file)
OUTBOX_KEYS: dict[str, type] = {
    "client": str,
    "list": str,
    "account": str,
    "recipient": str,
    "canaries": int,
    "stable": int,
    "encoding": str,
}
NOT_RECIPIENTS = {"sent", "failed", "done", "original"}
README_TEXT = """\
Canary outbox / カナリア送付フォルダ

1. Make one folder here per recipient (e.g. "Call center A").
   受け渡し先ごとに、ここにフォルダを作ります（例:「コールセンターA」）。
2. Write outbox.toml into that folder (or here, for every recipient):
   そのフォルダ（全員分ならここ）に outbox.toml を置きます:
       client = "Sakura City"
       list = "Residents 2026"
   optional / 任意: account = "your login", canaries = 20
3. Drop the list (CSV, TSV, TXT or XLSX) into the recipient's folder.
   リスト（CSV・TSV・TXT・XLSX）を受け渡し先のフォルダに入れます。
4. A few minutes later it is in sent/ with canaries added: hand over sent/<name>.
   数分後、カナリア入りの写しが sent/ にできます。渡すのは sent/<名前> です。
   sent/<name>.manifest.json records the export (export id, SHA-256, canaries, time);
   sent/original/ keeps the list as you dropped it: never hand that one over.
   sent/<名前>.manifest.json に払い出しの記録、sent/original/ に元のリスト（渡さないこと）。
   A list that cannot be seeded goes to failed/ with <name>.reason.txt saying what to fix.
   処理できないリストは failed/ に移り、<名前>.reason.txt に直し方が書かれます。
"""


def read_outbox_config(path: Path) -> dict[str, object]:
    """The settings of one outbox.toml ({} if there is none)."""
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{path} is not valid TOML ({exc}); fix it and drop the list again."
        ) from None
    for key, value in data.items():
        kind = OUTBOX_KEYS.get(key)
        if kind is None:
            raise InputError(
                f"{path} has an unknown setting {key!r}; use {', '.join(OUTBOX_KEYS)}."
            )
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InputError(f"{key} in {path} should be a {kind.__name__}, not {value!r}.")
    return data


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _send(registry: Registry, settings: Settings, root: Path, box: Path, path: Path) -> FileOutcome:
    """Seed one list of an outbox folder and file it under sent/ (or failed/)."""
    from canary.seed import SeedRequest, seed

    sent = box / "sent"
    try:
        if path.suffix.lower() not in LIST_SUFFIXES:
            raise InputError(f"{path.name} is not a list ({', '.join(LIST_SUFFIXES)}).")
        cfg = {
            **read_outbox_config(root / OUTBOX_CONFIG),
            **read_outbox_config(box / OUTBOX_CONFIG),
        }
        missing = [k for k in ("client", "list") if not cfg.get(k)]
        if missing:
            raise InputError(
                f'No {" or ".join(missing)} for {box.name}: write client = "..." and '
                f'list = "..." into {box / OUTBOX_CONFIG}, then drop the list again.'
            )
        account = str(cfg.get("account") or settings.actor)
        if account == "unknown":  # Settings' default when no user is known
            raise InputError(
                f'No account for {box.name}: write account = "..." (the login that hands the '
                f"list over) into {box / OUTBOX_CONFIG}, or set CANARY_ACTOR for the scheduler."
            )
        (sent / "original").mkdir(parents=True, exist_ok=True)
        name = free_name(
            path.name,
            lambda n: any(
                p.exists() for p in (sent / n, sent / f"{n}.manifest.json", sent / "original" / n)
            ),
        )
        result = seed(
            registry,
            settings,
            SeedRequest(
                input=path,
                output=sent / name,
                client=str(cfg["client"]),
                list_name=str(cfg["list"]),
                account=account,
                recipient=str(cfg.get("recipient") or box.name),
                requested_by=f"outbox {box.name}",
                canaries=cfg.get("canaries"),  # type: ignore[arg-type]
                stable=cfg.get("stable"),  # type: ignore[arg-type]
                encoding=cfg.get("encoding"),  # type: ignore[arg-type]
            ),
        )
    except Exception as exc:
        if ours(exc):
            raise
        why = unexpected(path, exc)
        dest = file_away(path, box / "failed", why)
        return FileOutcome(path.name, "failed", why, str(dest))
    e = result.export
    manifest: dict[str, object] = {
        "export_id": e.code,
        "recipient": e.recipient,
        "client": e.client,
        "list": e.list_name,
        "account": e.account,
        "canaries": e.canary_count,
        "rows_in": e.rows_in,
        "rows_out": e.rows_out,
        "sha256": e.output_sha256,
        "original_sha256": e.input_sha256 or _sha256(path),
        "seeded_file": name,
        "original_file": f"original/{name}",
        "format": e.file_format,
        "encoding": e.encoding,
        "time": aware(e.created_at).isoformat(),
    }
    write_atomic(
        sent / f"{name}.manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"
    )
    os.replace(path, sent / "original" / name)
    reason = f"Seeded as export {e.code} for {e.recipient}: {e.canary_count} canaries."
    return FileOutcome(path.name, "done", reason, str(sent / name), manifest)


def process_outbox(
    registry: Registry,
    settings: Settings,
    root: Path,
    *,
    settle: float = SETTLE_SECONDS,
    gap: float = GAP_SECONDS,
    sleep: Sleep = time.sleep,
) -> FolderReport:
    """Seed every list dropped into ``root/<recipient>/`` for that recipient (README_TEXT)."""
    registry.require_ready()
    if not root.is_dir():
        raise InputError(f"The outbox {root} does not exist; create it or fix the setting.")
    if not (root / OUTBOX_README).exists():
        write_atomic(root / OUTBOX_README, README_TEXT)
    report = FolderReport(str(root))
    with folder_lock(root) as mine:
        if not mine:
            report.busy = True
            return report
        ours = {OUTBOX_CONFIG, OUTBOX_README}
        loose = [p for p in root.iterdir() if is_candidate(p) and p.name not in ours]
        boxes = [
            d
            for d in sorted(root.iterdir())
            if d.is_dir() and not d.name.startswith(".") and d.name.lower() not in NOT_RECIPIENTS
        ]
        dropped = loose + [
            p for d in boxes for p in sorted(d.iterdir()) if is_candidate(p) and p.name not in ours
        ]
        ready, waiting = settled(dropped, settle, gap, sleep)
        for p in waiting:
            report.files.append(left_waiting(p.name, settle))
        for p in ready:
            if p.parent == root:
                why = f"{p.name} is in no recipient's folder; move it into one (see README.txt)."
                dest = file_away(p, root / "failed", why)
                report.files.append(FileOutcome(p.name, "failed", why, str(dest)))
                continue
            report.files.append(_send(registry, settings, root, p.parent, p))
    return report
