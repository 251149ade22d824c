"""A canary never shares a key (name or reading with postcode, phone, email) with a real
person of its own list: the seed's pass over the list finds the people near its canaries
(canary.hostkeys, canary.hostcheck), and a canary that would collide is changed."""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

import pytest

from canary import csvfile, hostkeys
from canary.generate import CanaryFactory
from canary.hostpass import find_hosts
from canary.normalize import kana_key, phone_e164
from canary.profile import profile_host
from canary.reference import Gazetteer, name_book
from canary.registry import Registry
from canary.schema import infer_schema
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from tests.conftest import REPO, TEST_DOMAIN, TEST_NUMBERS
from tests.listgen import HEADER as HEADER_LISTGEN
from tests.listgen import people, write_csv

HEADER = ["氏名", "フリガナ", "性別", "生年月日", "郵便番号", "住所", "電話番号", "メールアドレス"]


def _tiny_names(tmp: Path) -> Path:
    """A seeds folder whose names are one surname and two given names of each sex: four
    people in all, so that a canary at one of the list's postcodes collides by chance."""
    base = tmp / "seeds"
    shutil.copytree(REPO / "seeds" / "names", base / "names")
    (base / "names" / "surnames.csv").write_text(
        "kanji,kana,weight\n佐藤,サトウ,1\n", encoding="utf-8"
    )
    (base / "names" / "given_names.csv").write_text(
        "kanji,kana,sex,born_from,born_to,weight\n"
        "太郎,タロウ,M,1900,2030,1\n次郎,ジロウ,M,1900,2030,1\n"
        "花子,ハナコ,F,1900,2030,1\n桜,サクラ,F,1900,2030,1\n",
        encoding="utf-8",
    )
    return base


def _host_rows(n: int, numbers: list[str]) -> list[list[str]]:
    """``n`` people at eight postcodes, named as three of the four names the tiny seeds
    make (佐藤 桜 is not among them) at each, holding the pool ``numbers`` and addresses
    on the pool domain; written as people type them (hiragana, half-width)."""
    rng = random.Random(2)
    places = Gazetteer().in_area("東京都")[:8]
    names = [("佐藤　太郎", "サトウ　タロウ", "男"), ("佐藤次郎", "さとう じろう", "男")]
    names.append(("佐藤　花子", "ｻﾄｳ ﾊﾅｺ", "女"))
    rows = []
    for i in range(n):
        name, kana, sex = names[i % 3]
        place = places[i // 3 % len(places)]
        phone = numbers[i] if i < len(numbers) else f"090-0{rng.randint(100, 999)}-{i:04d}"
        local = ["sakura.sato", "sato.sakura", "sakurasato", "ssato"][i % 4]
        rows.append(
            [
                name,
                kana,
                sex,
                f"{rng.randint(1950, 2000)}/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}",
                f"{place.postcode[:3]}-{place.postcode[3:]}",
                f"{place.prefecture}{place.city}{place.town}{rng.randint(1, 9)}-{i % 20 + 1}",
                phone,
                f"{local}{i // 4 or ''}@{TEST_DOMAIN}" if i < 200 else "",
            ]
        )
    return rows


def test_a_canary_takes_no_key_of_a_real_person_of_its_list(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    seeds = _tiny_names(tmp_path)
    tiny = Settings(
        db=settings.db, seeds_dir=str(seeds), actor="pytest", cache_dir=settings.cache_dir
    )
    free = TEST_NUMBERS[-1]  # the one pool number no person of the list holds
    rows = _host_rows(300, TEST_NUMBERS[:-1])
    src = write_csv(tmp_path / "l.csv", rows, header=HEADER)
    hosts = {(kana_key(r[1]), r[4]) for r in rows}
    hosts_phones = {phone_e164(r[6]) for r in rows}
    hosts_emails = {r[7] for r in rows if r[7]}
    for k in range(5):
        out = tmp_path / f"o{k}.csv"
        res = seed(
            registry,
            tiny,
            SeedRequest(
                input=src,
                output=out,
                client="c",
                list_name=f"l{k}",
                account="a",
                canaries=1,
                rng_seed=k,
            ),
        )
        with out.open(encoding="cp932", newline="") as fh:
            seeded = list(csv.reader(fh))[1:]
        (pos,) = res.positions
        canary = seeded[pos]
        # Three of the four names live at each of the list's postcodes: the canary takes
        # the fourth (a draw of one of them and a name would collide 3 times in 4).
        assert (kana_key(canary[1]), canary[4]) not in hosts
        assert kana_key(canary[1]) == "サトウサクラ"
        assert canary[4] in {r[4] for r in rows}
        if canary[6]:
            assert phone_e164(canary[6]) not in hosts_phones
            assert phone_e164(canary[6]) == phone_e164(free)
        assert canary[7] not in hosts_emails


def test_the_first_draw_that_collides_is_drawn_again() -> None:
    """The same factory, with and without what the pass found: the person it would make
    first is the list's own (by construction), and knowing it, it makes someone else."""
    rows = people(400, seed=3)
    schema = infer_schema([HEADER_LISTGEN, *rows])
    profile = profile_host(schema, rows)
    names, places = name_book(str(REPO / "seeds")), Gazetteer()

    def factory() -> CanaryFactory:
        return CanaryFactory(profile, names, places, [], [TEST_DOMAIN], random.Random(11))

    first = factory().person()
    assert factory().person() == first  # the draw is repeatable: the test can fail
    # A real person of the list who happens to be the first draw's reading and postcode.
    twin = list(rows[0])
    twin[2] = f"{first.surname_kana} {first.given_kana}"  # typed with an ASCII space
    twin[5] = f"{first.place.postcode[:3]}-{first.place.postcode[3:]}"
    cols = hostkeys.Columns.of(schema)
    found = hostkeys.Found()
    probe = hostkeys.Probe(postcodes=frozenset({first.place.postcode}))
    hostkeys.python_found([*rows, twin], cols, probe, found)
    guarded = factory()
    guarded.name_clear = hostkeys.Checker(found, cols, "utf-8").name_clear
    again = guarded.person()
    assert (kana_key(again.kana), again.place.postcode) != (
        kana_key(first.kana),
        first.place.postcode,
    )


@pytest.mark.parametrize("encoding", ["cp932", "utf-8", "euc_jp"])
def test_the_pass_finds_people_as_they_are_typed(tmp_path: Path, encoding: str) -> None:
    """One pass over a list finds the person at a canary's postcode however the list
    writes them (a reading in hiragana or half-width kana with any space, a variant kanji,
    a postcode without its hyphen or in full width), a pool number written as +81 and a
    pool address in capitals; read lossy for CP932 and EUC-JP, exactly for UTF-8."""
    rows = people(30, seed=1)
    # EUC-JP has no 髙 and its full-width digits do not survive the lossy read.
    euc = encoding == "euc_jp"
    row = ["C1", "高橋　一郎" if euc else "髙橋　一郎", "ﾀｶﾊｼ ｲﾁﾛｳ", "男", "1970/01/01"]
    row += ["1000001" if euc else "１００－０００１", "x", "+81 90-7100-5100"]
    row += ["Ichiro.T@Example.JP", ""]
    other = list(row)
    other[1], other[2], other[5] = "高橋　二郎", "たかはし　じろう", "100-0002"
    src = write_csv(
        tmp_path / "l.csv", [*rows, row, other], header=HEADER_LISTGEN, encoding=encoding
    )
    head = csvfile.read_head(src, None)
    schema = infer_schema(head.records)
    cols = hostkeys.Columns.of(schema)
    found = hostkeys.Found()
    probe = hostkeys.Probe(
        postcodes=frozenset({"1000001"}),
        phones=hostkeys.national_forms(["+819071005100", "+819071005101"]),
        domains=("example.jp",),
    )
    find_hosts(src, head.dialect, schema, 1, probe, found)
    check = hostkeys.Checker(found, cols, encoding)
    assert not check.name_clear("1000001", "高橋", "一郎", "", "")
    assert not check.name_clear("1000001", "髙橋", "一郎", "", "")
    assert not check.name_clear("1000001", "", "", "タカハシ", "イチロウ")
    # Another person is clear (in CP932 and EUC-JP only when the lossy forms differ too:
    # 高橋 次郎's do not always; a false collision only costs the canary a redraw).
    assert check.name_clear("1000001", "佐藤", "花子", "サトウ", "ハナコ")
    assert check.name_clear("1000002", "高橋", "一郎", "タカハシ", "イチロウ")  # not looked for
    assert check.phone_held("+819071005100")
    assert not check.phone_held("+819071005101")
    assert check.email_held("ichiro.t@example.jp")
    assert not check.email_held("ichiro@example.jp")
    # Only the rows the probe asked for were kept: one person at one postcode.
    assert set(found.names) == set(found.kanas) == {"1000001"}


def test_a_held_pool_number_is_not_used(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    """Four pool numbers in five are real people's (written as people write them): the
    canaries' phones are all of the fifth (most of the export's numbers are held, so
    without the check most canaries would take one)."""
    held = [n for i, n in enumerate(TEST_NUMBERS) if i % 5]
    rows = people(300, seed=5)
    for i, n in enumerate(held):
        rows[i * 5][7] = n.replace("-", "") if i % 2 else n
    src = write_csv(tmp_path / "l.csv", rows, header=HEADER_LISTGEN)
    out = tmp_path / "o.csv"
    req = SeedRequest(
        input=src, output=out, client="c", list_name="l", account="a", canaries=8, rng_seed=1
    )
    res = seed(registry, settings, req)
    with out.open(encoding="cp932", newline="") as fh:
        seeded = list(csv.reader(fh))[1:]
    phones = {phone_e164(seeded[p][7]) for p in res.positions if seeded[p][7]}
    assert phones
    assert not phones & {phone_e164(n) for n in held}


def test_a_carried_stable_canary_that_now_collides_is_replaced(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    """The list gains a person with a stable canary's name and postcode: the next export
    of the account does not carry that canary (a new one takes its place); the other is
    carried as before."""
    rows = people(300, seed=6)
    src = write_csv(tmp_path / "l.csv", rows, header=HEADER_LISTGEN)

    def export(k: int, path: Path) -> list[list[str]]:
        out = tmp_path / f"o{k}.csv"
        req = SeedRequest(
            input=path,
            output=out,
            client="c",
            list_name="l",
            account="a",
            canaries=4,
            stable=2,
            rng_seed=k,
        )
        res = seed(registry, settings, req)
        with out.open(encoding="cp932", newline="") as fh:
            seeded = list(csv.reader(fh))[1:]
        return [seeded[p] for p in res.positions[: res.stable]]

    first = export(0, src)
    twin = list(rows[0])
    twin[1], twin[2], twin[5] = first[0][1], first[0][2], first[0][5]  # name, kana, postcode
    grown = write_csv(tmp_path / "l2.csv", [*rows, twin], header=HEADER_LISTGEN)
    assert export(1, src) == first  # unchanged list: both carried (the test can fail)
    again = export(2, grown)
    assert first[1] in again
    assert first[0] not in again
    assert all((kana_key(r[2]), r[5]) != (kana_key(twin[2]), twin[5]) for r in again)


def test_canaries_of_two_exports_of_a_list_take_different_free_ids(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    """A list of consecutive customer numbers with ten freed: two exports by one account
    never show two people under one number side by side."""
    rows = people(400, seed=4)
    freed = set(random.Random(4).sample(range(20, 380), 10))
    number = 100000
    for r in rows:
        number += 2 if number - 100000 in freed else 1
        r[0] = f"C{number:07d}"
    src = write_csv(tmp_path / "l.csv", rows)
    hosts = {r[0] for r in rows}
    ids = []
    for k in range(2):
        out = tmp_path / f"o{k}.csv"
        req = SeedRequest(
            input=src, output=out, client="c", list_name="l", account="a", rng_seed=k, stable=0
        )
        res = seed(registry, settings, req)
        with out.open(encoding="cp932", newline="") as fh:
            seeded = list(csv.reader(fh))[1:]
        ids.append({seeded[p][0] for p in res.positions})
        assert not ids[-1] & hosts
    assert len(ids[0]) == len(ids[1]) == 8
    assert not ids[0] & ids[1]


def test_people_after_a_quoted_line_break_are_found_lossy(tmp_path: Path) -> None:
    """A note with a line break moves every later row off the line the pass counted: the
    people at the postcode are then read in a second, lossy pass, and still found."""
    rows = people(30, seed=2)
    rows[3][9] = "電話は夕方\n以降"
    row = ["C1", "髙橋　一郎", "ﾀｶﾊｼ ｲﾁﾛｳ", "男", "1970/01/01", "100-0001", "x", "", "", ""]
    src = write_csv(tmp_path / "l.csv", [*rows, row], header=HEADER_LISTGEN)
    head = csvfile.read_head(src, None)
    schema = infer_schema(head.records)
    found = hostkeys.Found()
    find_hosts(
        src, head.dialect, schema, 1, hostkeys.Probe(postcodes=frozenset({"1000001"})), found
    )
    assert not found.names and set(found.lossy_names) == {"1000001"}
    check = hostkeys.Checker(found, hostkeys.Columns.of(schema), "cp932")
    assert not check.name_clear("1000001", "高橋", "一郎", "", "")
    assert not check.name_clear("1000001", "", "", "タカハシ", "イチロウ")
    assert check.name_clear("1000001", "佐藤", "花子", "サトウ", "ハナコ")


@pytest.mark.parametrize("encoding", ["cp932", "utf-8", "euc_jp"])
def test_the_quick_tests_keep_every_row_the_exact_ones_keep(tmp_path: Path, encoding: str) -> None:
    """The pass tests every row quickly and the rows kept exactly (canary.hostfilter): a
    postcode, an ID or a pool number written in any way the exact tests find is kept,
    whatever its cell holds around it, and the rows kept are those of the exact tests."""
    import polars as pl

    from canary import hostfilter, hostpass

    postcodes = ["100-0001", "1000001", "〒100-0001", " 1000001", "1000001 ", "-1000001"]
    postcodes += ["1000001x", "x1000001", "100 0001", "１００－０００１", "100ー0001", "〒1000001"]
    postcodes += ["100-0002", "1000002", "10000012", "100-00012", "", "1-000-001", "10-00001"]
    phones = ["090-7100-5100", "+81 90-7100-5100", "(090)7100-5100", "７１００－５１００"]
    phones += ["090-7100-5101", "09071005100", "7100.5100 内線", "", "090-1234-5100"]
    ids = ["C0001", " C0001", "C0001 ", "C00010", "C0002", "C0001\u3000", "XC0001"]
    postcodes, phones = (
        [c for c in cells if hostfilter._encodes(c, encoding)] for cells in (postcodes, phones)
    )
    rows = []
    for i in range(len(postcodes) * len(phones) * len(ids)):
        person = [ids[i % len(ids)], "高橋　一郎", "タカハシ　イチロウ", "男", "1970/01/01"]
        rows.append([*person, postcodes[i % len(postcodes)], "x", phones[i % len(phones)], "", ""])
    src = write_csv(tmp_path / "l.csv", rows, header=HEADER_LISTGEN, encoding=encoding)
    head = csvfile.read_head(src, None)
    schema = infer_schema(head.records)
    cols = hostkeys.Columns.of(schema)
    probe = hostkeys.Probe(
        ids=frozenset({"C0001"}),
        postcodes=frozenset({"1000001"}),
        phones=hostkeys.national_forms(["+819071005100"]),
        domains=("example.jp",),
    )
    kept = hostpass._kept_rows(src, head.dialect, schema, 1, probe, cols)
    everyone = hostpass._kept_rows(src, head.dialect, schema, 1, hostkeys.Probe(), cols)
    assert everyone.height == 0  # nothing looked for, nothing kept
    quick, exact = hostfilter.conditions(probe, cols, head.dialect.encoding, names=False)
    scan = hostpass._scan(src, head.dialect, len(schema.columns), 1).with_row_index("row")
    shown = {"id": cols.id, "pc0": cols.postcodes[0], "ph0": cols.phones[0], "em0": cols.emails[0]}
    frame = scan.select("row", *(pl.col(f"c{c}").alias(n) for n, c in shown.items())).collect()
    wanted = frame.filter(pl.any_horizontal(exact))
    assert frame.filter(pl.any_horizontal(exact) & ~pl.any_horizontal(quick)).height == 0
    assert kept["row"].to_list() == wanted["row"].to_list()
    assert 0 < wanted.height < frame.height


def test_the_lines_of_the_people_are_read_however_the_file_ends(tmp_path: Path) -> None:
    """The lines of the rows the pass kept are read from the file a block at a time: any
    block size, line ends LF, CR or CRLF, with or without a last line end."""
    from canary.hostpass import _joined_lines

    rng = random.Random(1)
    for trial in range(300):
        end = rng.choice([b"\n", b"\r", b"\r\n"])
        lines = [
            bytes(rng.choice(b"ab,\xe3\x82") for _ in range(rng.randrange(40)))
            for _ in range(rng.randrange(1, 60))
        ]
        lines[-1] += b"a"  # an empty last line would be no line
        data = end.join(lines) + (end if rng.random() < 0.5 else b"")
        src = tmp_path / f"{trial}.csv"
        src.write_bytes(data)
        wanted = sorted(rng.sample(range(len(lines)), rng.randrange(len(lines) + 1)))
        block = rng.choice([1, 2, 3, 7, 64, 1 << 12])
        read = list(_joined_lines(src, end[-1], wanted, block))
        assert sum(n for n, _ in read) == len(wanted)
        assert b"\n".join(t for _, t in read) == b"\n".join(lines[i] for i in wanted)
