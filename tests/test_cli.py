"""The command-line contract of DESIGN.md, end to end through click."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from canary.cli import cli
from canary.registry import Registry
from tests.conftest import TEST_DOMAIN, TEST_NUMBERS
from tests.listgen import people, write_csv


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((f"{prefix}{name}", cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, f"{prefix}{name} "))
    return out


@pytest.mark.parametrize("name,command", _commands(cli))
def test_every_command_has_help(name: str, command: click.Command) -> None:
    assert command.help, f"`canary {name}` has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"`canary {name}` option {param.name} has no help"


def test_version_and_help(run) -> None:  # type: ignore[no-untyped-def]
    assert "canary, version" in run("--version").output
    assert "seed" in run("--help").output


def _setup(run) -> None:  # type: ignore[no-untyped-def]
    assert run("init").exit_code == 0
    assert run("pool", "add-phone", "--active", *TEST_NUMBERS[:20]).exit_code == 0
    assert run("pool", "add-domain", TEST_DOMAIN).exit_code == 0


def test_steward_flow(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _setup(run)
    src = write_csv(tmp_path / "list.csv", people(1000, seed=11))
    res = run(
        "seed",
        str(src),
        "--out",
        str(tmp_path / "seeded.csv"),
        "--client",
        "Sakai",
        "--list",
        "health-check",
        "--account",
        "admin01",
        "--recipient",
        "CallCo",
        "--json",
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert {"export_id", "canaries", "rows_in", "rows_out", "sha256"} <= set(data)
    assert data["rows_in"] == 1000 and data["canaries"] == 20
    assert data["rows_out"] == 1020

    shown = json.loads(run("exports", "show", data["export_id"], "--json").output)
    assert shown["recipient"] == "CallCo" and len(shown["canary_records"]) == 20
    canary = next(c for c in shown["canary_records"] if c["email"])

    # An email names exactly one export, in any case or width.
    wide = canary["email"].upper().replace("@", "＠")
    traced = json.loads(run("trace", "--email", wide, "--json").output)
    assert [m["export_id"] for m in traced["matches"]] == [data["export_id"]]
    assert traced["matches"][0]["account"] == "admin01"

    # A phone in another format lists every export holding it, with the canary's name.
    national = canary["phone"].replace("+81", "0")
    fullwidth = national.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    by_phone = json.loads(run("trace", "--phone", fullwidth, "--json").output)
    assert data["export_id"] in {m["export_id"] for m in by_phone["matches"]}
    assert canary["name"] in {m["canary"] for m in by_phone["matches"]}
    plus = json.loads(run("trace", "--phone", "+81 " + national[1:], "--json").output)
    assert plus["matches"] == by_phone["matches"]

    by_name = json.loads(
        run("trace", "--name", canary["kana"].replace("\u3000", ""), "--json").output
    )
    assert data["export_id"] in {m["export_id"] for m in by_name["matches"]}

    listed = json.loads(run("exports", "list", "--json").output)
    assert [e["export_id"] for e in listed["exports"]] == [data["export_id"]]
    assert run("audit", "verify").exit_code == 0
    pool = json.loads(run("pool", "list", "--json").output)
    assert sum(p["exports"] for p in pool["phones"]) > 0


def test_trace_unknown_token(run) -> None:  # type: ignore[no-untyped-def]
    _setup(run)
    res = run("trace", "--email", "nobody@example.com", "--json")
    assert res.exit_code == 0 and json.loads(res.output)["matches"] == []
    assert run("trace").exit_code == 2


def test_invalid_phone_rejected_with_reason(run) -> None:  # type: ignore[no-untyped-def]
    run("init")
    res = run("pool", "add-phone", "090-0000-1234", "050-3100-4100")
    assert res.exit_code == 4
    assert "not a valid Japanese number" in res.output
    assert json.loads(run("pool", "list", "--json").output)["phones"] == []
    res = run("pool", "add-phone", "0120-123-456")
    assert "toll-free" in res.output


def test_pool_kinds_and_states(run) -> None:  # type: ignore[no-untyped-def]
    run("init")
    assert (
        run(
            "pool", "add-phone", "050-3100-4100", "０９０－７１００－５１００", "+81 6-6100-1100"
        ).exit_code
        == 0
    )
    phones = {p["number"]: p for p in json.loads(run("pool", "list", "--json").output)["phones"]}
    assert phones["+815031004100"]["kind"] == "ip"
    assert phones["+819071005100"]["kind"] == "mobile"
    assert phones["+81661001100"]["kind"] == "landline"
    assert {p["state"] for p in phones.values()} == {"quarantine"}
    assert run("pool", "activate", "050-3100-4100").exit_code == 0
    assert run("pool", "set-state", "burnt", "050-3100-4100").exit_code == 0
    res = run("pool", "activate", "050-3100-4100")
    assert res.exit_code != 0 and "burnt" in res.output


def test_registry_not_initialised(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "list.csv", people(50))
    res = run(
        "seed",
        str(src),
        "--out",
        str(tmp_path / "o.csv"),
        "--client",
        "c",
        "--list",
        "l",
        "--account",
        "a",
    )
    assert res.exit_code == 6
    assert "canary init" in res.output
    assert not (tmp_path / "o.csv").exists()


def test_shared_account_members(run, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _setup(run)
    assert run("accounts", "set", "sysadmin", "--member", "佐藤", "--member", "鈴木").exit_code == 0
    src = write_csv(tmp_path / "list.csv", people(300))
    out = json.loads(
        run(
            "seed",
            str(src),
            "--out",
            str(tmp_path / "o.csv"),
            "--client",
            "c",
            "--list",
            "l",
            "--account",
            "sysadmin",
            "--json",
        ).output
    )
    shown = json.loads(run("exports", "show", out["export_id"], "--json").output)
    assert shown["account_shared"] is True
    assert shown["account_members"] == ["佐藤", "鈴木"]
    reg = Registry(settings.db)
    assert reg.export(out["export_id"]).account_members == ["佐藤", "鈴木"]
    reg.close()


def test_demo_runs(tmp_path: Path) -> None:
    from click.testing import CliRunner

    res = CliRunner().invoke(
        cli, ["demo", "--keep", str(tmp_path / "demo")], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    assert "account sysadmin" in res.output
    assert "intact" in res.output


def test_audit_verify_exit_code_when_broken(run, settings) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    assert run("init").exit_code == 0
    assert run("pool", "add-domain", "a.example.jp").exit_code == 0
    reg = Registry(settings.db)
    with reg.engine.begin() as c:
        if reg.engine.dialect.name == "postgresql":
            c.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
            c.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1"))
            c.execute(sa.text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
        else:
            c.execute(sa.text("DROP TRIGGER audit_log_no_update"))
            c.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1"))
    reg.close()
    res = run("audit", "verify")
    assert res.exit_code == 8 and "BROKEN at entry 1" in res.output
    res = run("audit", "verify", "--json")
    assert res.exit_code == 8 and json.loads(res.output)["ok"] is False


def test_imports_run_without_the_cycle_collector_which_then_runs_again() -> None:
    """The command line's imports run with the cycle collector off (it walked everything
    imported so far, dozens of times); afterwards it is on again and skips what the
    imports made."""
    import subprocess
    import sys

    probe = "import gc, canary.cli._allocator as a; print(gc.isenabled(), gc.get_freeze_count())"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "True"
    assert int(out[1]) > 10_000  # click, SQLAlchemy, polars… frozen
