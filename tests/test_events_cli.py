"""The investigator's commands: event add, events list, incidents list/show, token, and
exports expect, through the CLI on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from canary.errors import AccessError
from canary.registry import Registry
from canary.settings import Settings
from tests.helpers import seed_export

Run = Any  # the ``run`` fixture: invoke(*args) -> click.testing.Result


def test_a_letter_to_a_canary_opens_an_incident_that_shows_its_evidence(
    registry: Registry, settings: Settings, tmp_path: Path, run: Run
) -> None:
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    seed_export(registry, settings, tmp_path, "op2", 2)
    canary = registry.canaries_of(code)[0]
    args = (
        "event", "add", "--channel", "postal", "--to", canary.name,
        "--at", "2026-11-05T09:30", "--address", canary.address,
        "--note", "DM from an investment firm", "--json",
    )  # fmt: skip
    added = run(*args)
    assert added.exit_code == 0, added.output
    event = json.loads(added.output)
    assert event["classification"] == "suspicious"
    assert event["exports"] == [code]
    assert event["provider"] == "manual" and event["provider_id"] is None
    assert event["occurred_at"] == "2026-11-05T00:30:00+00:00"  # 09:30 in Tokyo
    assert event["details"]["address"] == canary.address
    [incident_code] = event["incidents"]
    # The same letter entered twice is one event.
    again = json.loads(run(*args).output)
    assert again["duplicate"] and again["event_id"] == event["event_id"]

    listed = json.loads(run("incidents", "list", "--json").output)["incidents"]
    assert [i["incident_id"] for i in listed] == [incident_code]
    assert listed[0]["export_id"] == code and listed[0]["account"] == "op1"
    assert listed[0]["client"] == "city" and listed[0]["list"] == "residents"
    shown = json.loads(run("incidents", "show", incident_code, "--json").output)
    assert shown["export_id"] == code and shown["events"] == 1
    [evidence] = shown["evidence"]
    assert evidence["event_id"] == event["event_id"]
    assert evidence["channel"] == "postal" and evidence["strength"] == "strong"
    table = run("incidents", "show", incident_code.lower())
    assert table.exit_code == 0, table.output
    for expected in (incident_code, code, "op1", "city", "residents", "postal 郵便", "不審"):
        assert expected in table.output
    assert run("incidents", "list", "--status", "closed", "--json").output.count("IN-") == 0
    assert incident_code in run("incidents", "list").output


def test_events_list_filters_by_class_channel_and_export(
    registry: Registry,
    settings: Settings,
    tmp_path: Path,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    canary = next(c for c in registry.canaries_of(code) if c.phone_e164 and c.email)
    assert canary.phone_e164 and canary.email
    assert run("event", "add", "--channel", "email", "--to", canary.email).exit_code == 0
    call = run(
        "event", "add", "--channel", "call", "--to", canary.phone_e164,
        "--from", "0120-00-1111", "--text", f"{canary.name}さんはいますか",
    )  # fmt: skip
    assert call.exit_code == 0 and "Recorded event" in call.output
    stray = run("event", "add", "--channel", "call", "--to", "03-9999-0000")
    assert stray.exit_code == 0 and "noise" in stray.output

    def ids(*args: str) -> list[int]:
        result = run("events", "list", "--json", *args)
        assert result.exit_code == 0, result.output
        return [e["event_id"] for e in json.loads(result.output)["events"]]

    assert len(ids()) == 3
    assert len(ids("--classification", "suspicious")) == 2
    assert len(ids("--classification", "noise", "--channel", "call")) == 1
    assert len(ids("--export", code)) == 2
    assert len(ids("--limit", "1")) == 1
    lines = run("events", "list", "--channel", "call")
    assert "strong" in lines.output and "0120-00-1111" not in lines.output  # source in E.164
    assert "+81120001111" in lines.output
    monkeypatch.setenv("COLUMNS", "160")  # a wide terminal gets a table
    table = run("events", "list", "--channel", "call").output
    assert "┃ event" in table and canary.phone_e164 in table and "+81120001111" in table
    assert run("events", "list", "--export", "EX-NONE-NONE").exit_code == 7


def test_bad_manual_events_are_refused_and_nothing_is_stored(registry: Registry, run: Run) -> None:
    bad_number = run("event", "add", "--channel", "call", "--to", "not a number")
    assert bad_number.exit_code == 3 and "is not a phone number" in bad_number.stderr
    bad_time = run("event", "add", "--channel", "postal", "--to", "山田太郎", "--at", "soon")
    assert bad_time.exit_code == 3 and "--at 'soon' is not an ISO 8601 time" in bad_time.stderr
    assert run("incidents", "show", "IN-NONE-NONE").exit_code == 7
    assert registry.events(limit=None) == []


def test_tokens_are_shown_once_and_stored_only_as_hashes(
    registry: Registry, settings: Settings, run: Run
) -> None:
    created = run("token", "create", "ci-bot", "--role", "investigator")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("cnry_") and "not shown again" in created.stderr
    assert registry.authenticate(secret).role == "investigator"
    with registry.engine.connect() as conn:
        for table in ("api_tokens", "audit_log"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                assert all(secret not in str(v) for v in row), f"secret stored in {table}"
    if settings.db.startswith("sqlite"):
        database = Path(settings.db.split("///", 1)[1])
        for path in database.parent.glob(database.name + "*"):  # the db, its WAL
            assert secret.encode() not in path.read_bytes()
    listed = json.loads(run("token", "list", "--json").output)["tokens"]
    assert [(t["name"], t["role"], t["revoked"]) for t in listed] == [
        ("ci-bot", "investigator", False)
    ]
    assert secret not in run("token", "list").output
    bad_role = run("token", "create", "x", "--role", "root")
    assert bad_role.exit_code == 2
    revoked = run("token", "revoke", "ci-bot")
    assert revoked.exit_code == 0 and "Revoked 1" in revoked.output
    try:
        registry.authenticate(secret)
        raise AssertionError("a revoked token still authenticates")
    except AccessError:
        pass
    assert run("token", "revoke", "ci-bot").exit_code == 7


def test_exports_expect_needs_something_to_expect_and_valid_times(
    registry: Registry, settings: Settings, tmp_path: Path, run: Run
) -> None:
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    nothing = run("exports", "expect", code)
    assert nothing.exit_code == 3 and "nothing was changed" in nothing.stderr
    bad = run("exports", "expect", code, "--from", "next week")
    assert bad.exit_code == 3 and "--from 'next week'" in bad.stderr
    backwards = run("exports", "expect", code, "--from", "2026-11-10", "--until", "2026-11-01")
    assert backwards.exit_code == 3 and "ends before it starts" in backwards.stderr
    unknown = run("exports", "expect", "EX-NONE-NONE", "--sender", "callcenter.example.jp")
    assert unknown.exit_code == 7
    ok = run("exports", "expect", code, "--sender", "mail.callcenter.example.jp")
    assert ok.exit_code == 0 and "mail.callcenter.example.jp" in ok.output


def test_with_canary_token_set_the_cli_acts_with_that_tokens_role(
    registry: Registry,
    settings: Settings,
    tmp_path: Path,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    canary = registry.canaries_of(code)[0]
    steward = registry.create_token("list-server", "steward")
    investigator = registry.create_token("inv-sato", "investigator")
    admin = registry.create_token("root-admin", "admin")

    monkeypatch.setenv("CANARY_TOKEN", steward)
    for args, needed in (
        (("events", "list"), "an investigator's token"),
        (("incidents", "list", "--json"), "an investigator's token"),
        (("incidents", "show", "IN-NONE-NONE"), "an investigator's token"),
        (("event", "add", "--channel", "postal", "--to", canary.name), "an investigator's"),
        (("alerts", "send"), "an investigator's token"),
        (("token", "list"), "an admin's token"),
        (("token", "create", "mine", "--role", "admin"), "an admin's token"),
        (("trace", "--name", canary.name), "an investigator's token"),
        (("scans", "list"), "an investigator's token"),
    ):
        refused = run(*args)
        assert refused.exit_code == 10, (args, refused.output)
        assert "CANARY_TOKEN is the steward token 'list-server'" in refused.stderr, args
        assert needed in refused.stderr and "unset CANARY_TOKEN" in refused.stderr, args
    assert registry.events(limit=None) == [] and len(registry.tokens()) == 3
    # A steward lists exports and sets campaigns, under its own name, but sees no canaries.
    assert [
        e["export_id"] for e in json.loads(run("exports", "list", "--json").output)["exports"]
    ] == [code]
    narrow = run("exports", "list").output  # 80 columns: two lines an export, id whole
    assert code in narrow and "city / residents, account op1" in narrow
    shown = run("exports", "show", code, "--json")
    assert shown.exit_code == 0 and "canary_records" not in json.loads(shown.output)
    table = run("exports", "show", code)
    assert table.exit_code == 0 and code in table.output and canary.name not in table.output
    assert run("exports", "expect", code, "--sender", "callco.example.jp").exit_code == 0
    [expect] = [link for link in registry.audit_links() if link.action == "export.expect"]
    assert expect.actor == "list-server"

    monkeypatch.setenv("CANARY_TOKEN", investigator)
    assert run("events", "list", "--json").exit_code == 0
    records = json.loads(run("exports", "show", code, "--json").output)["canary_records"]
    assert canary.name in [r["name"] for r in records]
    assert "an admin's token" in run("token", "revoke", "list-server").stderr
    monkeypatch.setenv("CANARY_TOKEN", admin)
    assert run("token", "revoke", "inv-sato").exit_code == 0
    monkeypatch.setenv("CANARY_TOKEN", investigator)  # revoked now
    gone = run("events", "list")
    assert gone.exit_code == 10 and "CANARY_TOKEN is unknown or revoked" in gone.stderr
    monkeypatch.delenv("CANARY_TOKEN")  # the database's holder acts as an admin
    assert run("token", "list", "--json").exit_code == 0
