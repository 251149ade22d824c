"""Hostname tokens in a B2B list's URL column: a seed writes each canary's website as a token
under the first configured DNS zone, stored with the export in the transaction that seals
it, so that a lookup of the website (through the real DNS listener) names the export.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import openpyxl
import pytest

import canary.domains
from canary.domains import create_token, hostname_holders, hostname_tokens
from canary.errors import RegistryError
from canary.registry import Registry
from canary.seed import SeedRequest, SeedResult, seed
from canary.settings import Settings
from server.dns import DnsListener
from tests.helpers import files_in, split_records, strip_canaries
from tests.listgen import people, write_csv

ZONE = "b2b-canary.example.jp"  # a configured zone, not a pool domain
T0 = datetime(2026, 11, 1, 10, 0, 5, tzinfo=UTC)
B2B_HEADER = ["会社名", "担当者氏名", "フリガナ", "郵便番号", "住所", "電話番号", "メールアドレス"]
_URL_PARTS = re.compile(r"^(https?://)?(www\.)?([^/]+)(/?)$")


def _zoned(settings: Settings, **extra: str) -> Settings:
    values = {"dns_zones": ZONE, "dns_ipv4": "192.0.2.10", **extra}
    return dataclasses.replace(settings, **values)


def _b2b(path: Path, url_header: str, url_of: object, n: int = 300, seed: int = 3) -> Path:
    """A B2B host list: people() columns reshaped as company contacts with a website."""
    rng = random.Random(seed)
    rows = []
    for i, p in enumerate(people(n, seed=seed)):
        company = f"株式会社テスト{i:04d}"
        site = url_of(f"firm{i:04d}.example.co.jp", rng)  # type: ignore[operator]
        rows.append([company, p[1], p[2], p[5], p[6], p[7], p[8], site])
    return write_csv(path, rows, header=[*B2B_HEADER, url_header])


def _full(host: str, rng: random.Random) -> str:
    return f"https://www.{host}/"


def _bare(host: str, rng: random.Random) -> str:
    return f"www.{host}" if rng.random() < 0.9 else ""  # some firms have no website


def _seed(registry: Registry, settings: Settings, src: Path, out: Path) -> SeedResult:
    request = SeedRequest(
        input=src,
        output=out,
        client="商工会",
        list_name="会員企業",
        account="op1",
        stable=0,
        rng_seed=5,  # which canaries leave the website blank is drawn: one fixed draw
    )
    return seed(registry, settings, request)


def _url_cells(seeded: bytes, registry: Registry, code: str) -> list[str]:
    _, rows = strip_canaries(seeded, registry, code, header_records=1)
    return [r.decode("cp932").rstrip("\r\n").split(",")[-1] for r in rows]


@pytest.mark.parametrize(
    ("header", "url_of", "shape"),
    [
        ("URL", _full, ("https://", "www.", "/")),
        ("ホームページ", _bare, ("", "www.", "")),
        ("会社サイト", _full, ("https://", "www.", "/")),  # found by its values
    ],
    ids=["url-full", "hp-bare", "by-values"],
)
def test_each_canary_gets_a_website_that_is_a_token_of_its_export(
    registry: Registry,
    settings: Settings,
    tmp_path: Path,
    header: str,
    url_of: object,
    shape: tuple[str, str, str],
) -> None:
    src = _b2b(tmp_path / "members.csv", header, url_of)
    result = _seed(registry, _zoned(settings), src, tmp_path / "out.csv")
    code = result.export.code
    assert result.schema.roles[-1] == "url"
    seeded = (tmp_path / "out.csv").read_bytes()

    # Host rows are untouched, byte for byte.
    kept, _ = strip_canaries(seeded, registry, code, header_records=1)
    assert kept == src.read_bytes()

    tokens = {t.hostname: t for t in hostname_tokens(registry)}
    cells = _url_cells(seeded, registry, code)
    # As many canaries as firms leave the website blank (at most half); the others' are
    # tokens.
    filled = [c for c in cells if c]
    assert len(cells) == result.export.canary_count
    assert len(filled) == len(tokens) > len(cells) // 2
    for cell in filled:
        match = _URL_PARTS.match(cell)
        assert match is not None, cell
        scheme, www, host, slash = match.groups()
        assert ((scheme or ""), (www or ""), slash) == shape  # written like the list's values
        assert host.endswith(f".{ZONE}") and host in tokens
        assert tokens[host].export == code and tokens[host].zone == ZONE
        holders = hostname_holders(registry, f"{www or ''}{host}")
        assert holders is not None and holders.exports == (code,)

    # Recorded in the audit chain like `canary dns token`, and the chain still verifies.
    assert registry.verify_audit().ok


def test_a_lookup_of_a_seeded_website_is_a_suspicious_event_naming_the_export(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    zoned = _zoned(settings)
    src = _b2b(tmp_path / "members.csv", "URL", _full)
    code = _seed(registry, zoned, src, tmp_path / "out.csv").export.code
    cell = _url_cells((tmp_path / "out.csv").read_bytes(), registry, code)[0]
    asked = cell.removeprefix("https://").rstrip("/")  # www.<token>, as a browser asks
    with DnsListener(registry, zoned, host="127.0.0.1", port=0) as listener:
        listener.answerer.clock = lambda: T0
        query = dns.message.make_query(asked, "A")
        answer = dns.query.udp(query, "127.0.0.1", port=listener.port, timeout=10)
    assert answer.rcode() == dns.rcode.NOERROR
    assert [rd.to_text() for rrset in answer.answer for rd in rrset] == ["192.0.2.10"]
    [event] = registry.events(limit=None, channel="dns")
    assert event.target == asked
    assert event.classification == "suspicious" and event.exports == [code]
    assert event.details["hostname_token"]["exports"] == [code]  # type: ignore[index]
    [incident] = registry.incidents()
    assert incident.export == code


def test_without_a_zone_the_url_column_is_a_free_column(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    src = _b2b(tmp_path / "members.csv", "URL", _full)
    result = _seed(registry, settings, src, tmp_path / "out.csv")
    assert result.schema.roles[-1] == "url"
    assert hostname_tokens(registry) == []
    seeded = (tmp_path / "out.csv").read_bytes()
    kept, _ = strip_canaries(seeded, registry, result.export.code, header_records=1)
    assert kept == src.read_bytes()
    # Each host website is its own (shared by no two rows): canaries leave the cell blank
    # rather than copy a real firm's site.
    assert set(_url_cells(seeded, registry, result.export.code)) == {""}


def test_a_list_without_a_url_column_is_unaffected_by_a_zone(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    src = write_csv(tmp_path / "host.csv", people(300, seed=5))
    result = _seed(registry, _zoned(settings), src, tmp_path / "out.csv")
    assert "url" not in result.schema.roles
    assert hostname_tokens(registry) == []
    seeded = (tmp_path / "out.csv").read_bytes()
    kept, rows = strip_canaries(seeded, registry, result.export.code, header_records=1)
    assert kept == src.read_bytes()
    assert len(rows) == result.export.canary_count
    assert all(ZONE not in r.decode("cp932") for r in split_records(seeded))


def test_a_taken_hostname_at_seal_time_leaves_no_file_no_export_and_no_token(
    registry: Registry, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invariant 1 with tokens: another seed taking the same hostname between the draw and
    the seal (forced here: the draw always makes one name and believes it free) rolls the
    whole export back; the file never appears."""
    zoned = _zoned(settings)
    src = _b2b(tmp_path / "members.csv", "URL", _full)
    first = _seed(registry, zoned, src, tmp_path / "first.csv").export.code
    monkeypatch.setattr(canary.domains, "token_label", lambda _rng: "asahi-shoji27")
    monkeypatch.setattr(canary.domains, "_hostname_taken", lambda _reg, _name: False)
    held = create_token(registry, zoned, first)
    assert held.hostname == f"asahi-shoji27.{ZONE}"
    before = [t.hostname for t in hostname_tokens(registry)]
    request = SeedRequest(
        input=src,
        output=tmp_path / "second.csv",
        client="商工会",
        list_name="会員企業",
        account="op2",
        canaries=1,
        stable=0,
    )
    with pytest.raises(RegistryError):
        seed(registry, zoned, request)
    assert [f for f in files_in(tmp_path) if "csv" in f] == ["first.csv", "members.csv"]
    assert [e.code for e in registry.exports()] == [first]
    assert [t.hostname for t in hostname_tokens(registry)] == before
    assert Counter(t.export for t in hostname_tokens(registry))[first] == len(before)


def _sheet_rows(path: Path) -> list[tuple[object, ...]]:
    sheet = openpyxl.load_workbook(path).worksheets[0]
    return list(sheet.iter_rows(values_only=True))


def test_an_excel_list_gets_website_tokens_too(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    csv_src = _b2b(tmp_path / "members.csv", "URL", _full, n=200)
    records = [
        r.decode("cp932").rstrip("\r\n").split(",") for r in split_records(csv_src.read_bytes())
    ]
    src = tmp_path / "members.xlsx"
    book = openpyxl.Workbook()
    for record in records:
        book.worksheets[0].append(record)
    book.save(src)
    result = _seed(registry, _zoned(settings), src, tmp_path / "out.xlsx")
    code = result.export.code
    original, seeded = _sheet_rows(src), _sheet_rows(tmp_path / "out.xlsx")
    positions = {c.position for c in registry.canaries_of(code)}
    assert [r for i, r in enumerate(seeded) if i == 0 or i - 1 not in positions] == original
    tokens = {t.hostname: t.export for t in hostname_tokens(registry)}
    urls = [str(r[-1]) for i, r in enumerate(seeded) if i > 0 and i - 1 in positions]
    assert len(urls) == len(tokens) == result.export.canary_count
    for url in urls:
        host = url.removeprefix("https://www.").rstrip("/")
        assert url == f"https://www.{host}/" and tokens[host] == code
