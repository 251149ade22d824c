"""Invariant 1: a seed killed at any point leaves the registry and the folder in agreement."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import canary.seed as seed_module
from canary.delivery import recover
from canary.registry import Registry
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from tests.listgen import people, write_csv


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_agree(registry: Registry, out_dir: Path) -> dict[str, int]:
    exports = registry.exports()
    visible = {p.name for p in out_dir.iterdir() if not p.name.startswith(".")}
    hidden = [p.name for p in out_dir.iterdir() if p.name.startswith(".")]
    assert hidden == [], f"partial files left behind: {hidden}"
    delivered = {Path(e.output_path).name: e for e in exports if e.status == "delivered"}
    assert set(delivered) == visible
    for name, e in delivered.items():
        assert _sha(out_dir / name) == e.output_sha256
    assert all(e.status in ("delivered", "void") for e in exports)
    assert registry.verify_audit().ok
    return {s: sum(1 for e in exports if e.status == s) for s in ("delivered", "void")}


def test_interrupted_after_commit_rolls_forward(
    registry: Registry, settings: Settings, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "l.csv", people(300))
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def crash(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(seed_module, "place_file", crash)
    with pytest.raises(KeyboardInterrupt):
        seed(
            registry,
            settings,
            SeedRequest(
                input=src, output=out_dir / "o.csv", client="c", list_name="l", account="a"
            ),
        )
    monkeypatch.undo()
    [sealed] = registry.sealed_exports()
    assert not (out_dir / "o.csv").exists()
    actions = recover(registry, out_dir)
    assert any("put in place" in a for a in actions)
    assert _assert_agree(registry, out_dir) == {"delivered": 1, "void": 0}
    assert _sha(out_dir / "o.csv") == sealed.output_sha256


def test_interrupted_before_commit_leaves_nothing(
    registry: Registry, settings: Settings, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "l.csv", people(300))
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def crash(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "seal_export", crash)
    with pytest.raises(KeyboardInterrupt):
        seed(
            registry,
            settings,
            SeedRequest(
                input=src, output=out_dir / "o.csv", client="c", list_name="l", account="a"
            ),
        )
    assert list(out_dir.iterdir()) == []
    assert registry.exports() == []


@pytest.mark.slow
def test_kill_at_random_points(registry: Registry, settings: Settings, tmp_path: Path) -> None:
    base = people(2000, seed=31)
    rows = [[f"C{i:08d}", *r[1:]] for i, r in enumerate(base * 150)]  # 300,000 rows
    src = write_csv(tmp_path / "big.csv", rows)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {**os.environ, "CANARY_DB": settings.db, "CANARY_SEEDS_DIR": settings.seeds_dir}
    cmd = [
        sys.executable,
        "-m",
        "canary",
        "seed",
        str(src),
        "--client",
        "c",
        "--list",
        "l",
        "--account",
        "a",
        "--json",
        "--out",
    ]

    started = time.perf_counter()
    subprocess.run([*cmd, str(out_dir / "timing.csv")], env=env, check=True, capture_output=True)
    duration = time.perf_counter() - started
    rng = random.Random(int(os.environ.get("CANARY_CRASH_SEED", "1")))
    outcomes = []
    for i in range(10):
        proc = subprocess.Popen(
            [*cmd, str(out_dir / f"o{i}.csv")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.05, duration * 1.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        outcomes.append(proc.returncode)
        recover(registry, out_dir)
        _assert_agree(registry, out_dir)
    counts = _assert_agree(registry, out_dir)
    assert counts["delivered"] >= 1  # the timing run at least
    assert any(code == -signal.SIGKILL for code in outcomes)  # some kills landed mid-seed
