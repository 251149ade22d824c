"""Call-detail import: Asterisk Master.csv and the simple CSV, once per row, in any of the
encodings a Japanese PBX writes, rows that cannot be read reported by line.

Runs on SQLite and PostgreSQL through the ``registry`` and ``run`` fixtures.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from canary.cdr import import_cdr
from canary.registry import Registry
from canary.settings import Settings
from tests.helpers import seed_export

STRANGER = "090-1111-2222"


def pool_number_of(registry: Registry, code: str) -> str:
    number = next(c.phone_e164 for c in registry.canaries_of(code) if c.phone_e164)
    assert number is not None
    return number


def national(e164: str) -> str:
    """+8150… as a Japanese PBX writes it: 050…"""
    return "0" + e164[3:]


def asterisk_row(
    src: str, dst: str, start: str, uniqueid: str | None = None, clid: str | None = None
) -> str:
    """One Master.csv line as cdr_csv writes it: quoted strings, bare integers, an empty
    answer time for a call nobody answered."""
    fields = [
        '""',
        f'"{src}"',
        f'"{dst}"',
        '"from-trunk"',
        '"' + (clid or f'"""" <{src}>').replace('"', '""') + '"',
        '"SIP/trunk-0000001a"',
        '"SIP/200-0000001b"',
        '"Dial"',
        '"SIP/200,30"',
        f'"{start}"',
        "",
        f'"{start}"',
        "12",
        "0",
        '"NO ANSWER"',
        '"DOCUMENTATION"',
    ]
    if uniqueid is not None:
        fields += [f'"{uniqueid}"', '""']
    return ",".join(fields) + "\n"


def test_reimporting_the_same_file_or_an_overlapping_one_stores_nothing_twice(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    number = national(pool_number_of(registry, code))
    first = tmp_path / "Master.csv"
    first.write_text(
        asterisk_row(STRANGER, number, "2026-11-01 10:00:00", "1761958800.1")
        + asterisk_row(STRANGER, number, "2026-11-01 10:05:00", "1761959100.2")
        + asterisk_row(STRANGER, "0312345678", "2026-11-01 10:06:00", "1761959160.3")
    )
    result = import_cdr(registry, first, settings)
    assert (result.format, result.rows, result.stored, result.duplicates) == ("asterisk", 3, 3, 0)
    assert result.counts == {"suspicious": 2, "noise": 1, "expected": 0}
    again = import_cdr(registry, first, settings)
    assert (again.stored, again.duplicates) == (0, 3)
    later = tmp_path / "Master-2.csv"
    later.write_text(
        first.read_text().splitlines(keepends=True)[2]
        + asterisk_row(STRANGER, number, "2026-11-02 09:00:00", "1762041600.4")
    )
    overlap = import_cdr(registry, later, settings)
    assert (overlap.stored, overlap.duplicates) == (1, 1)
    events = registry.events(limit=None)
    assert len(events) == 4
    assert {e.provider_id for e in events} == {
        "1761958800.1",
        "1761959100.2",
        "1761959160.3",
        "1762041600.4",
    }
    # Asterisk wrote Tokyo time: 10:00 JST is 01:00 UTC.
    first_call = min(events, key=lambda e: e.occurred_at)
    assert first_call.occurred_at == datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
    assert first_call.source == "+819011112222"
    assert first_call.details["disposition"] == "NO ANSWER"
    # Stored in UTC, so each event still matches its own digest when sealed and verified.
    assert registry.seal_events() == 4
    assert registry.verify_event_seals() == (4, 0, [])


def test_rows_without_uniqueid_are_known_by_their_content_in_any_encoding(
    registry: Registry, settings: Settings, tmp_path: Path, run: object
) -> None:
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    number = national(pool_number_of(registry, code))
    rows = asterisk_row(
        STRANGER, number, "2026-11-01 10:00:00", clid='"株式会社ブローカー" <09011112222>'
    ) + asterisk_row(STRANGER, number, "2026-11-01 11:00:00")
    sjis = tmp_path / "Master-cp932.csv"
    sjis.write_bytes(rows.encode("cp932"))
    utf8 = tmp_path / "Master-utf8.csv"
    utf8.write_bytes(b"\xef\xbb\xbf" + rows.encode("utf-8"))
    result = run("import", "cdr", str(sjis), "--json")  # type: ignore[operator]
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["encoding"], data["stored"], data["suspicious"]) == ("cp932", 2, 2)
    # The same calls exported again as UTF-8 with a BOM are the same calls.
    again = json.loads(run("import", "cdr", str(utf8), "--json").output)  # type: ignore[operator]
    assert (again["encoding"], again["stored"], again["duplicates"]) == ("utf-8-sig", 0, 2)
    assert len(registry.events(limit=None)) == 2
    shown = run("import", "cdr", str(sjis))  # type: ignore[operator]
    assert "0 stored" in shown.output and "2 already stored" in shown.output


def test_unreadable_rows_are_reported_by_line_and_the_rest_imported(
    registry: Registry, settings: Settings, tmp_path: Path, run: object
) -> None:
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    number = national(pool_number_of(registry, code))
    path = tmp_path / "Master.csv"
    path.write_text(
        asterisk_row(STRANGER, number, "2026-11-01 10:00:00", "A.1")
        + '"","090","0501",too,few\n'
        + asterisk_row(STRANGER, "s", "2026-11-01 10:01:00", "A.2")
        + asterisk_row(STRANGER, number, "yesterday", "A.3")
        + '"","an unclosed quote\n'
        + asterisk_row(STRANGER, number, "2026-11-01 10:02:00", "A.4")
    )
    result = run("import", "cdr", str(path))  # type: ignore[operator]
    assert result.exit_code == 0, result.output
    assert "2 stored" in result.output
    err = result.stderr
    assert "line 2: 5 fields where an Asterisk CDR has at least 16" in err
    assert "line 3: 's' is not a phone number" in err
    assert "line 4: start time 'yesterday' is not a date and time" in err
    assert "line 5: a quoted field is not closed" in err
    assert {e.provider_id for e in registry.events(limit=None)} == {"A.1", "A.4"}


def test_a_file_of_which_no_row_can_be_imported_fails_and_stores_nothing(
    registry: Registry, tmp_path: Path, run: object
) -> None:
    path = tmp_path / "calls.csv"
    path.write_text("time,from,to,duration,kind\nnot a time,0901111,0503,x,call\n")
    result = run("import", "cdr", str(path), "--json")  # type: ignore[operator]
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["rows"] == 1 and data["stored"] == 0
    assert data["errors"][0]["line"] == 2
    assert "No record of calls.csv could be imported" in result.stderr
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("time,from,to\n".encode("utf-16-le"))
    bad = run("import", "cdr", str(utf16))  # type: ignore[operator]
    assert bad.exit_code == 3 and "neither UTF-8 nor CP932" in bad.stderr
    utf16.write_bytes("time,from,to\n".encode("utf-16"))  # with its BOM
    bom = run("import", "cdr", str(utf16))  # type: ignore[operator]
    assert bom.exit_code == 3 and "is UTF-16" in bom.stderr
    missing = run("import", "cdr", str(tmp_path / "nope.csv"))  # type: ignore[operator]
    assert missing.exit_code == 3 and "is not a file" in missing.stderr
    zone = run("import", "cdr", str(path), "--tz", "Mars/Olympus")  # type: ignore[operator]
    assert zone.exit_code == 3 and "Unknown time zone" in zone.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("\n")
    for fmt in ("auto", "simple", "asterisk"):
        nothing = run("import", "cdr", str(empty), "--format", fmt)  # type: ignore[operator]
        assert nothing.exit_code == 3 and "holds no call records" in nothing.stderr
    noheader = tmp_path / "noheader.csv"
    noheader.write_text("2026-11-01T10:00,090,050\n")
    wrong = run("import", "cdr", str(noheader), "--format", "simple")  # type: ignore[operator]
    assert wrong.exit_code == 3 and "has no header" in wrong.stderr
    assert registry.events(limit=None) == []


def test_the_simple_format_reads_iso_times_sms_and_its_own_ids(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    canary = next(c for c in registry.canaries_of(code) if c.phone_e164)
    assert canary.phone_e164 is not None
    path = tmp_path / "log.csv"
    path.write_text(
        "Kind,Time,From,To,Duration,Text,ID\n"
        f"call,2026-11-01T10:00:00,{STRANGER},{national(canary.phone_e164)},30,,c-1\n"
        f"sms,2026-11-01T10:00:00Z,{STRANGER},{canary.phone_e164},,"
        f'"{canary.name.replace(" ", "")}様\n未公開株のご案内",s-1\n',
        encoding="utf-8",
    )
    result = import_cdr(registry, path, settings, tz="Asia/Tokyo")
    assert (result.format, result.stored, result.errors) == ("simple", 2, [])
    by_id = {e.provider_id: e for e in registry.events(limit=None)}
    assert by_id["c-1"].occurred_at == datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
    assert by_id["s-1"].occurred_at == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    assert by_id["s-1"].channel == "sms" and by_id["s-1"].strength == "strong"
    assert by_id["s-1"].exports == [code]
    assert import_cdr(registry, path, settings).duplicates == 2


def test_a_call_inside_the_campaign_window_and_grace_is_expected_and_after_it_suspicious(
    registry: Registry, settings: Settings, tmp_path: Path, run: object
) -> None:
    code = seed_export(registry, settings, tmp_path, "op1", 1).export.code
    number = national(pool_number_of(registry, code))
    result = run(  # type: ignore[operator]
        "exports", "expect", code, "--caller", "03-1234-5678",
        "--from", "2026-11-01", "--until", "2026-11-10", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["callers"] == ["+81312345678"]
    # A bare --until date is the end of that day in Tokyo: 14:59:59 UTC.
    assert data["until"].startswith("2026-11-10T14:59:59")
    # The grace is 72 hours: the campaign's calls are expected until 13 Nov 23:59 JST.
    path = tmp_path / "Master.csv"
    path.write_text(
        asterisk_row("0312345678", number, "2026-11-13 23:59:00", "W.1")
        + asterisk_row("0312345678", number, "2026-11-14 00:01:00", "W.2")
        + asterisk_row("0312345678", number, "2026-10-31 23:59:00", "W.3")
    )
    imported = json.loads(run("import", "cdr", str(path), "--json").output)  # type: ignore[operator]
    assert (imported["expected"], imported["suspicious"]) == (1, 2)
    by_id = {e.provider_id: e.classification for e in registry.events(limit=None)}
    assert by_id == {"W.1": "expected", "W.2": "suspicious", "W.3": "suspicious"}
