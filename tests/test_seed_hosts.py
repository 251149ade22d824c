"""A canary never shares a key (name or reading with postcode, phone, email) with a real
person of its own list: the seed keeps the list's keys, hashed, for the length of one seed
(canary.hostkeys) and draws again when a canary would collide."""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

from canary import hostkeys
from canary.generate import CanaryFactory
from canary.normalize import kana_key, phone_e164
from canary.profile import profile_host
from canary.reference import Gazetteer, name_book
from canary.registry import Registry
from canary.schema import infer_schema
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from tests.conftest import REPO, TEST_DOMAIN, TEST_NUMBERS
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
    """The same factory, with and without the list's keys: the person it would make first
    is the list's own (by construction), and with the keys it makes someone else."""
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
    keys = hostkeys.from_rows(schema, [*rows, twin], len(rows) + 1)
    guarded = factory()
    guarded.set_hosts(keys)
    again = guarded.person()
    assert (kana_key(again.kana), again.place.postcode) != (
        kana_key(first.kana),
        first.place.postcode,
    )


HEADER_LISTGEN = [
    "顧客番号",
    "氏名",
    "フリガナ",
    "性別",
    "生年月日",
    "郵便番号",
    "住所",
    "電話番号",
    "メールアドレス",
    "備考",
]


def test_host_keys_fold_what_people_type() -> None:
    """A reading in hiragana or half-width kana, with any space, a postcode without its
    hyphen or in full width, a phone as +81 and an address in capitals are the same keys."""
    schema = infer_schema([HEADER_LISTGEN, *people(30, seed=1)])
    row = ["C1", "髙橋　一郎", "たかはし いちろう", "男", "1970/01/01", "１００－０００１", "x"]
    row += ["+81 90-7100-5100", "Ichiro.T@Example.JP", ""]
    keys = hostkeys.from_rows(schema, [row], 1)
    taken = keys.taken
    assert taken(hostkeys.Person("", "ﾀｶﾊｼ ｲﾁﾛｳ", "1000001"))
    assert taken(hostkeys.Person("高橋一郎", "", "100-0001"))
    assert taken(hostkeys.Person("", "", "", ("+819071005100",)))
    assert taken(hostkeys.Person("", "", "", (), "ichiro.t@example.jp"))
    assert not taken(hostkeys.Person("", "タカハシイチロウ", "1000002"))
    assert not taken(hostkeys.Person("", "", "", ("+819071005101",)))
    assert not taken(hostkeys.Person("", "", "", (), "ichiro@example.jp"))


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
