"""canary scan: readers, normalisation, matching and attribution on real files."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import threading
from collections import Counter
from pathlib import Path

import jaconv
import pytest

from benchmarks.leaksim import publish, read_seeded
from canary.registry import Registry
from canary.scan import scan
from canary.scan.match import EVIDENCE_SCHEMA
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from tests.listgen import people, write_csv


def _export(
    registry: Registry,
    settings: Settings,
    tmp: Path,
    rows: int = 1500,
    account: str = "a",
    seed_no: int = 1,
    src: Path | None = None,
) -> tuple[str, Path]:
    src = src or write_csv(tmp / f"host{seed_no}.csv", people(rows, seed=seed_no))
    out = tmp / f"export_{account}_{seed_no}.csv"
    res = seed(
        registry,
        settings,
        SeedRequest(
            input=src, output=out, client="c", list_name="l", account=account, rng_seed=seed_no
        ),
    )
    return res.export.code, out


def _broker(
    tmp: Path,
    name: str,
    header: list[str],
    rows: list[list[str]],
    encoding: str = "cp932",
    delimiter: str = ",",
) -> Path:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    path = tmp / name
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def test_seeded_file_is_attributed(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out = _export(registry, settings, tmp_path)
    result = scan(registry, settings.seeds_dir, out)
    [top, *_] = result.exports
    assert top.meta.code == code and top.attributed
    assert top.matched == top.meta.canary_count
    assert result.matched_rows == top.meta.canary_count
    assert result.scan_id is not None
    # The scan is recorded with its hash and findings, and audited.
    [recorded] = registry.scans()
    assert recorded["sha256"] == result.sha256 and recorded["rows"] == result.rows
    assert registry.verify_audit().ok


def test_broker_mangling_is_seen_through(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Half-width kana, no spaces, +81 and full-width phones, postcode in the address,
    no email column, renamed and reordered columns: still attributed."""
    code, out = _export(registry, settings, tmp_path, rows=800)
    _header, rows = read_seeded(out)
    mangled = []
    for i, r in enumerate(rows):
        phone = r[7]
        phone = (
            ("+81 " + phone[1:])
            if i % 2
            else phone.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))
        )
        mangled.append(
            [
                f"〒{r[5]} {r[6]}",
                jaconv.z2h(r[2], kana=True).replace("\u3000", " "),
                phone,
                r[1].replace("\u3000", ""),
            ]
        )
    broker = _broker(
        tmp_path,
        "broker.tsv",
        ["ご住所", "ﾖﾐｶﾞﾅ", "連絡先", "お名前"],
        mangled,
        encoding="utf-8",
        delimiter="\t",
    )
    result = scan(registry, settings.seeds_dir, broker, record=False)
    found = {f.meta.code: f for f in result.exports}
    assert found[code].attributed
    assert {e.strength for e in found[code].evidence} == {"strong"}


def test_name_and_postcode_without_tokens(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A broker who keeps only names and postcodes still names the export (medium keys)."""
    code, out = _export(registry, settings, tmp_path, rows=800)
    _, rows = read_seeded(out)
    broker = _broker(tmp_path, "names.csv", ["氏名", "郵便番号"], [[r[1], r[5]] for r in rows])
    result = scan(registry, settings.seeds_dir, broker, record=False)
    top = result.exports[0]
    assert top.meta.code == code and top.attributed
    assert {e.key for e in top.evidence} == {"name+postcode"}


def test_surname_namesake_does_not_match(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Real people sharing a canary's surname, or its full name elsewhere, never match."""
    code, _out = _export(registry, settings, tmp_path, rows=500)
    canaries = registry.canaries_of(code)
    rows = []
    for c in canaries:
        surname = c.name.split("\u3000")[0]
        rows.append([f"{surname}\u3000花子", "ハナコ", "090-0123-4567", c.postcode, c.address])
        rows.append([c.name, c.kana, "090-0999-0000", "0600000", "北海道札幌市中央区1-1"])
    broker = _broker(tmp_path, "namesakes.csv", ["氏名", "カナ", "電話", "郵便番号", "住所"], rows)
    result = scan(registry, settings.seeds_dir, broker, record=False)
    assert result.exports == []


def test_clean_host_list_attributes_nothing(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "host.csv", people(2000, seed=4))
    for i in range(3):
        _export(registry, settings, tmp_path, account=f"a{i}", seed_no=i + 10, src=src)
    result = scan(registry, settings.seeds_dir, src, record=False)
    assert [f for f in result.exports if f.attributed] == []


def test_merged_lists_name_each_export(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    codes, sources = [], []
    for i in range(3):
        src = write_csv(tmp_path / f"h{i}.csv", people(1200, seed=20 + i))
        code, out = _export(
            registry, settings, tmp_path, account=f"acct{i}", seed_no=i + 20, src=src
        )
        header, rows = read_seeded(out)
        positions = {c.position for c in registry.canaries_of(code)}
        codes.append(code)
        sources.append((code, header, rows, positions))
    strangers = people(300, seed=99)
    broker = publish(sources[:2], strangers, tmp_path, random.Random(3), "merged")
    result = scan(registry, settings.seeds_dir, broker.path, record=False)
    attributed = {f.meta.code for f in result.exports if f.attributed}
    survived = {c for c, n in broker.canaries_in.items() if n}
    assert survived <= attributed <= set(codes[:2])


def test_xlsx_broker_list(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from openpyxl import Workbook

    code, out = _export(registry, settings, tmp_path, rows=600)
    _header, rows = read_seeded(out)
    wb = Workbook()
    ws = wb.active
    ws.append(["名前", "携帯", "メモ"])
    for r in rows:
        ws.append([r[1], r[7], '=HYPERLINK("http://x")'])
    path = tmp_path / "broker.xlsx"
    wb.save(path)
    result = scan(registry, settings.seeds_dir, path, record=False)
    assert result.kind == "xlsx"
    assert result.exports[0].meta.code == code and result.exports[0].attributed


def test_phone_alone_is_weak(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        _export(registry, settings, tmp_path, account=f"a{i}", seed_no=30 + i, rows=400)
    phone = registry.pool_phones("active")[0].e164
    broker = _broker(
        tmp_path,
        "calls.csv",
        ["氏名", "電話"],
        [["鈴木　一郎", "0" + phone[3:]], ["田中　花子", "090-0123-4567"]],
    )
    result = scan(registry, settings.seeds_dir, broker, record=False)
    assert result.weak_rows == 1 and result.matched_rows == 0
    assert all(not f.attributed for f in result.exports)


def test_cli_scan_json_and_report(run, registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out = _export(registry, settings, tmp_path, rows=700)
    report = tmp_path / "report.html"
    res = run("scan", str(out), "--json", "--report", str(report))
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert {"rows", "matched_rows", "exports", "accounts"} <= set(data)
    first = data["exports"][0]
    assert {
        "export_id",
        "client",
        "list",
        "account",
        "matched",
        "seeded",
        "confidence",
        "attributed",
    } <= set(first)
    assert first["export_id"] == code and first["attributed"] is True
    page = report.read_text(encoding="utf-8")
    assert code in page and data["sha256"] in page and "判定結果" in page
    assert "<script" not in page
    listed = json.loads(run("scans", "list", "--json").output)
    assert listed["scans"][0]["sha256"] == data["sha256"]


def test_report_escapes_hostile_headers(run, registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _code, out = _export(registry, settings, tmp_path, rows=400)
    _header, rows = read_seeded(out)
    hostile = ["=cmd|' /C calc'!A0氏名", "<script>alert(1)</script>電話", "@SUM(1)"]
    broker = _broker(tmp_path, "<b>evil<b>.csv", hostile, [[r[1], r[7], "x"] for r in rows])
    report = tmp_path / "r.html"
    assert run("scan", str(broker), "--report", str(report)).exit_code == 0
    page = report.read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>evil" not in page
    assert "&lt;script&gt;" in page
    assert "&#x27;=cmd" in page  # a leading apostrophe: never a live formula in Excel


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty"),
        (b"\x00\x01\x02junk" * 100, "binary"),
        ("名前\n山田\n".encode(), "single column"),
        ("月,金額\n1月,100\n2月,200\n".encode(), "nothing to match"),
    ],
)
def test_bad_broker_files(run, registry, settings, tmp_path, content, message) -> None:  # type: ignore[no-untyped-def]
    _export(registry, settings, tmp_path, rows=300)
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    res = run("scan", str(path))
    assert res.exit_code == 3 and message in res.output
    assert registry.scans() == []
    # The file's hashing thread ends with the refusal: the caller may move the file now;
    # the index, loaded while the file's head was read, is not left loading either.
    assert not [
        t for t in threading.enumerate() if t.name.startswith(("canary-hash", "canary-index"))
    ]


def test_scan_with_no_exports(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run("init")
    path = write_csv(tmp_path / "l.csv", people(20))
    res = run("scan", str(path))
    assert res.exit_code == 1 and "seed exports" in res.output
    # An empty registry is said first, even of a file that would be refused as well.
    one_column = tmp_path / "one.csv"
    one_column.write_text("名前\n山田\n", encoding="utf-8")
    res = run("scan", str(one_column))
    assert res.exit_code == 1 and "seed exports" in res.output


def test_truncated_file_warns(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out = _export(registry, settings, tmp_path, rows=500)
    data = out.read_bytes()
    cut = tmp_path / "cut.csv"
    half = data.rfind(b"\n", 0, len(data) // 2) + 1  # cut between records, then mid-field
    cut.write_bytes(data[:half] + b'1,"unfinished')
    result = scan(registry, settings.seeds_dir, cut, record=False)
    assert any("cut off" in w for w in result.warnings)
    assert result.exports and result.exports[0].meta.code == code
    # The same in UTF-8: the streaming reader refuses it, the block reader reads it.
    utf8 = tmp_path / "cut-utf8.csv"
    utf8.write_bytes(cut.read_bytes().decode("cp932").encode("utf-8"))
    again = scan(registry, settings.seeds_dir, utf8, record=False)
    assert any("cut off" in w for w in again.warnings)
    assert again.rows == result.rows
    assert again.exports and again.exports[0].meta.code == code


def test_xlsx_bomb_refused(run, registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import zipfile

    _export(registry, settings, tmp_path, rows=300)
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", b"<" + b"a" * (300 * 1024 * 1024) + b">")
    res = run("scan", str(bomb))
    assert res.exit_code == 3 and "zip bomb" in res.output


def test_index_cache_follows_the_registry(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first, out1 = _export(registry, settings, tmp_path, rows=400, account="a", seed_no=41)
    built = scan(registry, settings.seeds_dir, out1, record=False, cache_dir=settings.cache_dir)
    assert built.exports[0].meta.code == first
    folders = sorted(Path(settings.cache_dir).glob("index-*"))
    assert len(folders) == 1 and (folders[0] / "complete").exists()
    files = {p.name for p in folders[0].iterdir()}
    # the frames, and the sorted lookups: two plain-rendering sets, four join keys
    assert {"canaries.arrow", "phones.arrow", "numbers.arrow", "carriers.arrow"} <= files
    assert len([f for f in files if f.endswith(".npy")]) == 2 * 3 + 4 * 3
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in folders[0].iterdir())
    # Read back from the cache, the scan finds the same canaries by the same keys.
    cached = scan(registry, settings.seeds_dir, out1, record=False, cache_dir=settings.cache_dir)
    assert cached.as_json()["exports"] == built.as_json()["exports"]
    # A damaged cache is rebuilt, not trusted.
    next(folders[0].glob("by-name-*.npy")).write_bytes(b"junk")
    again = scan(registry, settings.seeds_dir, out1, record=False, cache_dir=settings.cache_dir)
    assert again.as_json()["exports"] == built.as_json()["exports"]
    # A new export changes the canaries: the cache is rebuilt and finds the new one.
    second, out2 = _export(registry, settings, tmp_path, rows=400, account="b", seed_no=42)
    result = scan(registry, settings.seeds_dir, out2, record=False, cache_dir=settings.cache_dir)
    assert result.exports[0].meta.code == second and result.exports[0].attributed
    assert sorted(Path(settings.cache_dir).glob("index-*")) != folders


def test_a_row_is_one_canary(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A row matching canary A strongly and canary B only by name + postcode names A."""
    import polars as pl

    from canary.attribute import attribute

    evidence = pl.DataFrame(
        {
            "_row": [7, 7],
            "canary_id": [1, 2],
            "export_id": [10, 20],
            "key": ["phone+name", "name+postcode"],
            "postcode": ["1000001", "1000001"],
            "address": [None, None],
            "f_name": [1e-5, 1e-5],
        },
        schema=EVIDENCE_SCHEMA,
    )
    from datetime import UTC, datetime

    from canary.registry.scans import ExportMeta

    meta = {
        e: ExportMeta(
            e, f"EX-{e}", "c", "l", "a", False, [], None, datetime.now(UTC), 10, "delivered"
        )
        for e in (10, 20)
    }
    no_weak = pl.DataFrame(schema={"_row": pl.Int64, "phone": pl.String})
    findings, _ = attribute(evidence, no_weak, {1: "A", 2: "B"}, Counter(), {}, meta)
    assert [f.meta.code for f in findings] == ["EX-10"]


def test_account_named_when_no_single_export_is(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Pool numbers shared by two exports of one login name the login, not an export."""
    from datetime import UTC, datetime

    import polars as pl

    from canary.attribute import attribute
    from canary.registry.scans import ExportMeta

    meta = {
        e: ExportMeta(
            e,
            f"EX-{e}",
            "c",
            "l",
            "sysadmin" if e < 12 else "other",
            e < 12,
            ["佐藤", "鈴木"] if e < 12 else [],
            None,
            datetime.now(UTC),
            10,
            "delivered",
        )
        for e in (10, 11, 12)
    }
    numbers = {f"503100{i:04d}": [10, 11] for i in range(12)}  # significant numbers
    weak = pl.DataFrame(
        {"_row": list(range(12)), "phone": list(numbers)},
        schema={"_row": pl.Int64, "phone": pl.String},
    )
    empty = pl.DataFrame(schema=EVIDENCE_SCHEMA)
    exports, accounts = attribute(empty, weak, {}, Counter(), numbers, meta)
    assert {f.meta.code for f in exports} == {"EX-10", "EX-11"}
    assert not any(f.attributed for f in exports)
    [account] = accounts
    assert account.account == "sysadmin" and account.attributed
    assert account.exports == ["EX-10", "EX-11"] and account.members == ["佐藤", "鈴木"]


def test_canary_identities_are_unique(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No two canaries share a name (or reading) at one postcode, across exports."""
    import polars as pl

    src = write_csv(tmp_path / "h.csv", people(300, seed=50))
    for i in range(4):
        _export(registry, settings, tmp_path, rows=300, account=f"a{i}", seed_no=60 + i, src=src)
    from canary.scan.index import build_index

    canaries = build_index(registry, settings.seeds_dir).canaries
    assert canaries.height == canaries.select("name", "postcode").unique().height
    assert canaries.height == canaries.select("kana", "postcode").unique().height
    assert canaries.filter(pl.col("email").is_not_null()).select("email").is_unique().all()


def test_postcode_inside_address_is_not_a_postcode_column() -> None:
    from canary.scan.plan import plan_keys

    sample = [
        ["山田　太郎", "〒100-0001 東京都千代田区千代田1-1"],
        ["佐藤　花子", "〒530-0001 大阪府大阪市北区梅田1-2"],
    ] * 5
    plan = plan_keys(["氏名", "ご住所"], sample, None)
    assert plan.address == [1] and plan.postcodes == []
    ids = [["山田　太郎", "1000001", "100-0001"], ["佐藤　花子", "1000002", "530-0001"]] * 5
    plan = plan_keys(["氏名", "会員番号", "郵便番号"], ids, None)
    assert plan.postcodes == [2]


@pytest.mark.parametrize("encoding", ["cp932", "euc_jp", "utf-8"])
def test_headerless_broker_list(registry, settings, tmp_path, encoding) -> None:  # type: ignore[no-untyped-def]
    """No header at all: roles come from the values; phones as +81, names without spaces."""
    code, out = _export(registry, settings, tmp_path, rows=600)
    _, rows = read_seeded(out)
    body = [[r[1].replace("\u3000", ""), "+81 " + r[7][1:], r[6]] for r in rows]
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows(body)
    path = tmp_path / f"noheader_{encoding}.csv"
    path.write_bytes(buf.getvalue().encode(encoding, errors="replace"))
    result = scan(registry, settings.seeds_dir, path, record=False)
    assert result.rows == len(body)
    assert result.exports[0].meta.code == code and result.exports[0].attributed


def test_typo_in_reading_still_matches_with_phone(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A reading one keystroke off, on a pool number, is a medium match."""
    code, _out = _export(registry, settings, tmp_path, rows=600)
    canaries = [c for c in registry.canaries_of(code) if c.phone_e164]
    rows = []
    for c in canaries:
        kana = c.kana.replace("\u3000", "")
        typo = kana[:-1] + ("ア" if kana[-1] != "ア" else "イ")
        rows.append([typo, "0" + c.phone_e164[3:]])
    broker = _broker(tmp_path, "typos.csv", ["カナ", "電話"], rows)
    result = scan(registry, settings.seeds_dir, broker, record=False)
    top = result.exports[0]
    assert top.meta.code == code and top.attributed
    assert {e.key for e in top.evidence} == {"kana~phone"}


def test_report_into_missing_folder_is_refused_before_scanning(
    run, registry, settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    _code, out = _export(registry, settings, tmp_path, rows=300)
    res = run("scan", str(out), "--report", str(tmp_path / "missing" / "r.html"))
    assert res.exit_code == 5 and "does not exist" in res.output
    assert registry.scans() == []


@pytest.mark.parametrize("encoding", ["cp932", "euc_jp"])
def test_iconv_decodes_every_character_as_python_does(encoding) -> None:  # type: ignore[no-untyped-def]
    """The scanner decodes CP932 and EUC-JP blocks with iconv when it can: it must give the
    same text as Python's codec for every double-byte character, and hand a block with a
    byte it cannot decode back to Python (which replaces and counts it)."""
    from canary.scan import readers, transcode

    if not transcode.available(encoding):
        pytest.skip("no iconv in the C library here; the scanner falls back to Python's codecs")
    if encoding == "cp932":
        leads = [*range(0x81, 0xA0), *range(0xE0, 0xFD)]
        trails = [*range(0x40, 0x7F), *range(0x80, 0xFD)]
    else:
        leads = trails = list(range(0xA1, 0xFF))
    chars = []
    for lead in leads:
        for trail in trails:
            try:
                bytes([lead, trail]).decode(encoding)
            except UnicodeDecodeError:
                continue
            chars.append(bytes([lead, trail]))
    assert len(chars) > 6000
    block = b"\n".join(chars) + "\n山田,０９０\n".encode(encoding)
    assert transcode.to_utf8(block, encoding) == block.decode(encoding).encode("utf-8")
    # Half-width kana: one byte (CP932) or two (EUC-JP) become three, more than the
    # output buffer first holds; it grows.
    kana = "ｱｲｳｴｵｶﾞﾊﾟｰ,ﾔﾏﾀﾞ\n".encode(encoding) * 50_000
    assert transcode.to_utf8(kana, encoding) == kana.decode(encoding).encode("utf-8")
    stats = readers.ReadStats()
    broken = block + (b"\x81\n" if encoding == "cp932" else b"\xa1\n")  # a lead byte alone
    assert transcode.to_utf8(broken, encoding) is None
    assert readers._decode(broken, encoding, stats).endswith("\ufffd\n".encode())
    assert stats.replaced_bytes == 1


def test_only_rows_that_may_hold_a_canary_are_normalised(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The raw-text fast path: a canary written plainly (any spacing of its name, postcode
    with or without its dash) is a candidate, a plain stranger is not, and anything
    written oddly (half-width kana, variant kanji) is normalised to be sure."""
    import polars as pl

    from canary.scan.index import load_index
    from canary.scan.keys import candidate_rows, raw_shape
    from canary.scan.plan import KeyPlan

    _export(registry, settings, tmp_path, rows=400, seed_no=61)
    index = load_index(registry, settings.seeds_dir)
    canary = index.canaries.row(0, named=True)
    surname, given = canary["name_raw"].split("\u3000")
    kana_s, kana_g = canary["kana_raw"].split("\u3000")
    code = canary["postcode"]
    rows = [
        (f"{surname}\u3000{given}", "", f"{code[:3]}-{code[3:]}"),  # the canary, as seeded
        (f"{surname}{given}", "", code),  # no space, no dash
        ("", f"{kana_s} {kana_g}", code),  # reading only, ASCII space
        ("佐藤\u3000花子", "サトウ\u3000ハナコ", "100-0001"),  # a plain stranger
        ("佐藤\u3000花子", "ｻﾄｳ ﾊﾅｺ", "100-0001"),  # half-width kana: normalised
        ("髙橋\u3000一郎", "タカハシ\u3000イチロウ", "100-0001"),  # variant kanji: normalised
        (f"{surname}\u3000{given}", "", "999-9999"),  # the canary's name elsewhere
    ]
    frame = pl.DataFrame(
        {
            "c0": [r[0] or None for r in rows],
            "c1": [r[1] or None for r in rows],
            "c2": [r[2] for r in rows],
            "_row": list(range(1, len(rows) + 1)),
        }
    )
    plan = KeyPlan(names=[0], kanas=[1], postcodes=[2])
    shape = raw_shape(frame, plan)
    assert shape is not None
    mask = candidate_rows(frame, shape, index.plain, address=False)
    assert mask.tolist() == [True, True, True, False, True, True, False]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_streaming_reader_reads_what_the_block_reader_reads(tmp_path, newline, bom) -> None:  # type: ignore[no-untyped-def]
    """UTF-8 lists are read by polars' streaming engine; the block reader (used for other
    encodings and as the fallback) must see the same rows with the same row numbers:
    quoted fields with commas and newlines, doubled quotes, blank lines, short and long
    rows, CRLF or LF, with or without a BOM."""
    import polars as pl

    from canary.scan import readers

    lines = ["氏名,フリガナ,電話番号,備考"]
    for i in range(40000):
        note = f'"複数行{i}{newline}二行目, カンマ"' if i % 97 == 0 else f'"a ""q"" {i}"'
        if i % 211 == 0:
            lines.append("")  # a blank line
        if i % 389 == 0:
            lines.append(f"短い行{i}")  # a short row
        lines.append(f"山田\u3000太郎{i},ヤマダ\u3000タロウ,090-1234-{i:04d},{note},余分")
    body = (newline.join(lines) + newline).encode()
    path = tmp_path / "list.csv"
    path.write_bytes(bom + body)
    layout, start, head = readers.open_text(path)
    columns = list(range(4))
    seen = []
    for reader in (readers.stream_utf8, readers.read_text):
        stats = readers.ReadStats()
        frame = pl.concat([c.frame for c in reader(path, layout, start, head, stats, columns)])
        seen.append((frame.select(sorted(frame.columns)), stats.rows, stats.replaced_bytes))
    (streamed, rows_s, bad_s), (blocks, rows_b, bad_b) = seen
    assert rows_s == rows_b == streamed.height
    assert streamed.equals(blocks)
    assert bad_s == bad_b == 0
    first = streamed.filter(pl.col("c0") == "山田\u3000太郎0")
    assert first["c3"].item() == f"複数行0{newline}二行目, カンマ"
    # every record is a row, blank lines included, so row numbers are the file's records
    assert streamed.height == 40000 + len(range(0, 40000, 389)) + len(range(0, 40000, 211))


def test_a_quote_never_closed_before_the_last_line_break_is_read_with_a_warning(  # type: ignore[no-untyped-def]
    registry, settings, tmp_path
) -> None:
    code, out = _export(registry, settings, tmp_path, rows=300)
    text = out.read_bytes().decode("cp932")
    broken = tmp_path / "unclosed.csv"
    broken.write_bytes((text + '"never closed,0901234\n').encode("utf-8"))
    result = scan(registry, settings.seeds_dir, broken, record=False)
    assert any("cut off" in w for w in result.warnings)
    assert result.exports and result.exports[0].meta.code == code


def test_scan_keeps_its_allocator_pages() -> None:
    """Only `canary scan` asks polars' jemalloc to keep freed pages (set before polars
    loads, which a later setting could not do)."""
    import subprocess
    import sys

    from canary.cli._allocator import _subcommand

    assert _subcommand(["canary", "--db", "sqlite:///x.db", "scan", "f.csv"]) == "scan"
    assert _subcommand(["canary", "--db=sqlite:///x.db", "scan"]) == "scan"
    assert _subcommand(["canary", "seed", "scan.csv"]) == "seed"
    probe = (
        "import os, sys; sys.argv = ['canary', {args}]; import canary.cli, polars; "
        "print(os.environ.get('_RJEM_MALLOC_CONF', ''))"
    )
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    for args, kept in (("'scan', 'x.csv'", True), ("'seed', 'x.csv'", False)):
        out = subprocess.run(
            [sys.executable, "-c", probe.format(args=args)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
        assert ("dirty_decay_ms:-1" in out) is kept


def test_scan_pauses_the_cycle_collector_and_restores_it(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The collector is off while a scan runs (it walked every object the imports made,
    110 times a scan) and as it was afterwards: on, off, and after a refused file."""
    import gc

    from canary.errors import InputError

    code, out = _export(registry, settings, tmp_path)
    seen: list[bool] = []
    result = scan(registry, settings.seeds_dir, out, progress=lambda _: seen.append(gc.isenabled()))
    assert result.exports[0].meta.code == code
    assert seen and not any(seen)
    assert gc.isenabled()
    gc.disable()
    try:
        scan(registry, settings.seeds_dir, out, record=False)
        assert not gc.isenabled()
    finally:
        gc.enable()
    one_column = tmp_path / "one.csv"
    one_column.write_text("name\nfoo\n", encoding="utf-8")
    with pytest.raises(InputError):
        scan(registry, settings.seeds_dir, one_column)
    assert gc.isenabled()


@pytest.mark.parametrize("quoted", [False, True])
@pytest.mark.parametrize("encoding", ["cp932", "euc_jp"])
def test_blocks_cut_inside_a_character_decode_as_the_whole_file(  # type: ignore[no-untyped-def]
    tmp_path, monkeypatch, encoding, quoted
) -> None:
    """Reads end anywhere, inside a two-byte character too; a block is decoded from the
    slices of two reads (never joined), and the rows are those of the whole file decoded
    at once: unquoted lists, and quoted ones (whose blocks are cut by the CSV parser)."""
    import polars as pl

    from canary.scan import readers

    rows = [["氏名", "フリガナ", "電話番号", "住所"]]
    for i in range(3000):
        kana = "ﾔﾏﾀﾞ ﾀﾛｳ" if i % 7 == 0 else "ヤマダ　タロウ"
        address = f'"東京都千代田区{i}, 高島屋"' if quoted and i % 5 == 0 else f"大阪府堺市{i}"
        rows.append([f"山田　太郎{i}", kana, f"090-1234-{i:04d}", address])
    text = "\r\n".join(",".join(r) for r in rows) + "\r\n"
    path = tmp_path / "list.csv"
    path.write_bytes(text.encode(encoding))
    expected = pl.read_csv(
        text.encode("utf-8"),
        infer_schema=False,
        has_header=True,
        new_columns=["c0", "c1", "c2", "c3"],
    )
    for size in (997, 1000, 4096):  # odd sizes: reads end inside characters
        monkeypatch.setattr(readers, "BLOCK_BYTES", size)
        layout, start, head = readers.open_text(path, encoding)
        stats = readers.ReadStats()
        chunks = list(readers.read_text(path, layout, start, head, stats, [0, 1, 2, 3]))
        frame = pl.concat([c.frame for c in chunks]).select("c0", "c1", "c2", "c3")
        assert stats.replaced_bytes == 0 and stats.rows == 3000
        assert frame.equals(expected)
