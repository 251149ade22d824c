"""Schema inference from Japanese and English headers, from values, and by --map."""

from __future__ import annotations

import pytest

from canary.errors import SchemaError
from canary.normalize import email_key, kana_key, name_key, phone_e164
from canary.schema import infer_schema
from tests.listgen import HEADER, people


def test_japanese_header_after_title_rows() -> None:
    records = [["顧客リスト（2024年3月）"], [], HEADER, *people(30)]
    s = infer_schema(records)
    assert s.header_index == 2
    assert s.roles == (
        "id",
        "name",
        "kana",
        "sex",
        "birth_date",
        "postcode",
        "address",
        "phone",
        "email",
        "text",
    )


def test_english_header_and_split_names() -> None:
    header = [
        "Customer ID",
        "Last Name",
        "First Name",
        "Kana",
        "Gender",
        "ZIP",
        "Address",
        "Mobile",
        "E-mail",
    ]
    rows = [[r[0], *r[1].split("\u3000"), r[2], "F", r[5], r[6], r[7], r[8]] for r in people(20)]
    s = infer_schema([header, *rows])
    assert s.roles == (
        "id",
        "surname",
        "given",
        "kana",
        "sex",
        "postcode",
        "address",
        "mobile",
        "email",
    )


def test_headerless_roles_from_values() -> None:
    rows = [[r[1], r[2], r[5], r[6], r[7], f"u{i}@example.com"] for i, r in enumerate(people(40))]
    s = infer_schema(rows)
    assert s.header_index == -1
    assert s.roles == ("name", "kana", "postcode", "address", "mobile", "email")


def test_map_overrides() -> None:
    header = ["氏名", "連絡先A", "メモ"]
    rows = [[r[1], r[7], "x"] for r in people(10)]
    s = infer_schema([header, *rows], {"mobile": "連絡先A"})
    assert s.roles[1] == "mobile" and s.by[1] == "map"
    s = infer_schema([header, *rows], {"mobile": "2"})
    assert s.roles[1] == "mobile"
    with pytest.raises(SchemaError, match="no such column"):
        infer_schema([header, *rows], {"mobile": "電話"})
    with pytest.raises(SchemaError, match="Unknown role"):
        infer_schema([header, *rows], {"telephone": "2"})


def test_unrecognisable_list_is_refused_with_what_was_found() -> None:
    with pytest.raises(SchemaError, match=r"Found: .*month"):
        infer_schema([["month", "amount"], ["2024-01", "5"], ["2024-02", "7"]])


@pytest.mark.parametrize(
    "raw",
    [
        "090-1234-5678",
        "09012345678",
        "+81 90-1234-5678",
        "(090)1234-5678",
        "０９０－１２３４－５６７８",
        "81-90-1234-5678",
        "090‐1234‐5678",
        "090ー1234ー5678",
    ],
)
def test_phone_forms(raw: str) -> None:
    assert phone_e164(raw) == "+819012345678"


def test_name_and_email_keys() -> None:
    assert name_key("髙橋　一郎") == name_key("高橋一郎")
    assert name_key("山﨑 花子") == name_key("山崎花子")
    assert kana_key("ﾀｶﾊｼ ｲﾁﾛｳ") == kana_key("たかはし　いちろう") == "タカハシイチロウ"
    assert email_key(" Taro.Yamada＠Example.JP ") == "taro.yamada@example.jp"


def test_join_date_is_not_a_birth_date() -> None:
    header = ["顧客ID", "氏名", "生年月日", "電話番号", "入会日"]
    rows = [[r[0], r[1], r[4], r[7], "2019/04/01"] for r in people(20)]
    s = infer_schema([header, *rows])
    assert s.roles == ("id", "name", "birth_date", "phone", "other")
    unnamed = [[r[1], r[4], r[7], "2019/04/01"] for r in people(20)]
    s = infer_schema(unnamed)
    assert s.roles.count("birth_date") == 1


def test_size_estimate_of_a_small_list(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A list that fits in the head is measured from all its records, not the sample."""
    from canary.csvfile import read_head
    from tests.listgen import write_csv

    path = write_csv(tmp_path / "l.csv", people(10_000, seed=3))
    head = read_head(path)
    estimate = (head.size - head.ends[0]) / head.avg_record_bytes
    assert 9_500 < estimate < 10_500
