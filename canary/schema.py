"""Schema inference: find the header row and the role of every column of a list of people.

Roles come from Japanese and English headers first, then from the values; ``--map`` overrides
both. A list without a name and a contact or address column is refused.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from canary.errors import SchemaError

ROLES = (
    "name",
    "surname",
    "given",
    "kana",
    "kana_surname",
    "kana_given",
    "romaji",
    "sex",
    "birth_date",
    "age",
    "postcode",
    "address",
    "address1",
    "address2",
    "prefecture",
    "city",
    "town",
    "street",
    "building",
    "phone",
    "mobile",
    "email",
    "url",
    "id",
    "text",
    "category",
    "other",
)

# Exact header names (NFKC, lower case, no spaces, brackets unified to ASCII).
_EXACT: dict[str, str] = {}
for _role, _names in {
    "name": "氏名 名前 お名前 顧客名 契約者名 会員名 漢字氏名 氏名(漢字) 名前(漢字) 利用者名 対象者名 "
    "宛名 受診者名 name fullname full_name customer_name customername 氏名漢字",
    "surname": "姓 氏 苗字 名字 姓(漢字) lastname last_name familyname family_name surname",
    "given": "名 下の名前 名(漢字) firstname first_name givenname given_name",
    "kana": "フリガナ ふりがな カナ 氏名カナ カナ氏名 氏名(カナ) 氏名(フリガナ) ヨミ よみ 読み "
    "よみがな ヨミガナ kana furigana name_kana 氏名フリガナ 名前(カナ) ﾌﾘｶﾞﾅ ｶﾅ",
    "kana_surname": "セイ 姓カナ 姓(カナ) フリガナ(姓) 姓(フリガナ) せい kana_last last_name_kana",
    "kana_given": "メイ 名カナ 名(カナ) フリガナ(名) 名(フリガナ) めい kana_first first_name_kana",
    "romaji": "ローマ字 氏名(ローマ字) 英字氏名 romaji name_en english_name",
    "sex": "性別 gender sex 男女",
    "birth_date": "生年月日 誕生日 birthday birthdate birth_date date_of_birth dob 生年月日(西暦)",
    "age": "年齢 age 満年齢",
    "postcode": "郵便番号 〒 郵便 zip zipcode zip_code postcode postal_code postalcode 郵便番号(7桁)",
    "address": "住所 所在地 address 現住所 住所(全体) 送付先住所 居住地",
    "address1": "住所1 住所① address1 address_1 住所(都道府県・市区町村)",
    "address2": "住所2 住所② address2 address_2 番地・建物名 住所(番地・建物)",
    "prefecture": "都道府県 県 prefecture state 都道府県名",
    "city": "市区町村 市区郡 市町村 city 市区町村名",
    "town": "町域 町名 町域名 town 大字・町名 町・丁目",
    "street": "番地 丁目・番地 番地等 street address_line 番地・号",
    "building": "建物名 建物 マンション名 建物名・部屋番号 building 建物・部屋番号 アパート・マンション名",
    "phone": "電話番号 電話 tel 自宅電話 固定電話 自宅電話番号 phone telephone phone_number 連絡先 tel番号",
    "mobile": "携帯電話 携帯 携帯番号 携帯電話番号 mobile cell cellphone mobile_phone 携帯tel",
    "email": "メールアドレス メール eメール e-mail email mail mail_address pcメール 携帯メール",
    "url": "url ホームページ hp webサイト website homepage ウェブサイト web サイト url(ホームページ) "
    "ホームページurl hpアドレス ホームページアドレス 会社url 企業url weburl site",
    "id": "id 顧客id 顧客番号 会員番号 番号 no no. 管理番号 customer_id 会員id 利用者番号 被保険者番号 "
    "整理番号 受付番号 宛名番号 個人番号 通し番号 顧客コード",
    "text": "備考 メモ コメント 特記事項 note notes memo remarks comment 自由記述 ご意見",
}.items():
    for _n in _names.split():
        _EXACT[_n] = _role

# Header fragments, tried in order when no exact name matches.
_CONTAINS: tuple[tuple[str, str], ...] = (
    # Dates that are not birth dates (joined, registered, updated) must not become one.
    ("入会", "other"),
    ("登録", "other"),
    ("更新", "other"),
    ("作成", "other"),
    ("受付日", "other"),
    ("契約日", "other"),
    ("来店", "other"),
    ("購入", "other"),
    ("joined", "other"),
    ("created", "other"),
    ("updated", "other"),
    # A company's website (B2B lists): before "mail" and "address" (ホームページアドレス).
    ("ホームページ", "url"),
    ("webサイト", "url"),
    ("ウェブサイト", "url"),
    ("website", "url"),
    ("homepage", "url"),
    ("url", "url"),
    ("携帯", "mobile"),
    ("mobile", "mobile"),
    ("メール", "email"),
    ("mail", "email"),
    ("フリガナ", "kana"),
    ("ふりがな", "kana"),
    ("カナ", "kana"),
    ("ｶﾅ", "kana"),
    ("電話", "phone"),
    ("tel", "phone"),
    ("phone", "phone"),
    ("郵便", "postcode"),
    ("zip", "postcode"),
    ("生年月日", "birth_date"),
    ("誕生", "birth_date"),
    ("birth", "birth_date"),
    ("年齢", "age"),
    ("性別", "sex"),
    ("住所", "address"),
    ("address", "address"),
    ("建物", "building"),
    ("番地", "street"),
    ("氏名", "name"),
    ("名前", "name"),
    ("name", "name"),
    ("番号", "id"),
    ("コード", "id"),
    ("id", "id"),
    ("備考", "text"),
    ("メモ", "text"),
    ("コメント", "text"),
)

PREFECTURES = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
]

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_POSTCODE_RE = re.compile(r"^〒?\s*\d{3}-?\d{4}$")
_DATE_RE = re.compile(
    r"^(?:(?:19|20)\d{2}[/\-.年]\d{1,2}[/\-.月]\d{1,2}日?|(?:19|20)\d{6}|"
    r"(?:[MTSHR]|明治|大正|昭和|平成|令和)\s*\d{1,2}[/\-.年]\d{1,2}[/\-.月]\d{1,2}日?)$"
)
_KANA_RE = re.compile(r"^[\u3041-\u3096\u30a1-\u30fa\u30fc\uff66-\uff9f\s\u3000・ー]+$")
_KANJI_NAME_RE = re.compile(
    r"^[\u3005\u4e00-\u9fff\u3041-\u3096\u30a1-\u30fa\u30fc]{1,6}"
    r"(?:[\s\u3000][\u3005\u4e00-\u9fff\u3041-\u3096\u30a1-\u30fa\u30fc]{1,6})?$"
)
_SEX_VALUES = {"男", "女", "男性", "女性", "m", "f", "male", "female", "1", "2", "9", "0"}
_ADDRESS_RE = re.compile(r"(?:都|道|府|県|市|区|町|村|郡).*\d")
_URL_RE = re.compile(r"^(?:https?://|www\.)[^\s/@]+\.[^\s@]+$", re.IGNORECASE)
_ID_RE = re.compile(r"^[A-Za-z]{0,4}[-_]?\d{2,}[A-Za-z]?$")


def header_key(cell: str) -> str:
    text = unicodedata.normalize("NFKC", cell).strip().lower()
    text = text.replace("（", "(").replace("）", ")")
    return re.sub(r"[\s\u3000]+", "", text)


def role_from_header(cell: str) -> str | None:
    key = header_key(cell)
    if not key:
        return None
    if key in _EXACT:
        return _EXACT[key]
    for fragment, role in _CONTAINS:
        if fragment in key:
            return role
    return None


def _phone_shaped(value: str) -> bool:
    if re.fullmatch(r"[\d\-()+\s.]{10,17}", value) is None:
        return False
    digits = re.sub(r"\D", "", value)
    if digits.startswith("81"):
        digits = "0" + digits[2:]
    return re.fullmatch(r"0\d{9,10}", digits) is not None


def _share(values: Sequence[str], test: Callable[[str], object]) -> float:
    filled = [v for v in values if v.strip()]
    if not filled:
        return 0.0
    return sum(1 for v in filled if test(v)) / len(filled)


def role_from_values(values: Sequence[str]) -> str | None:
    """Guess a column's role from its non-blank values alone."""
    filled = [unicodedata.normalize("NFKC", v).strip() for v in values if v.strip()]
    if not filled:
        return None
    if _share(filled, _URL_RE.match) > 0.8:
        return "url"
    if _share(filled, _EMAIL_RE.match) > 0.8:
        return "email"
    if _share(filled, _POSTCODE_RE.match) > 0.8:
        return "postcode"
    if _share(filled, _DATE_RE.match) > 0.8:
        return "birth_date"
    if set(v.lower() for v in filled) <= _SEX_VALUES and not set(filled) <= {"1", "2", "0", "9"}:
        return "sex"
    # Shape, not validity: real lists hold mistyped and unallocated numbers too.
    phones = _share(filled, _phone_shaped)
    if phones > 0.8:
        mobile = _share(filled, lambda v: re.sub(r"\D", "", v)[-10:][:2] in ("70", "80", "90"))
        return "mobile" if mobile > 0.9 else "phone"
    if _share(filled, lambda v: v[:4] in PREFECTURES or v[:3] in PREFECTURES) > 0.8:
        return "address" if _share(filled, _ADDRESS_RE.search) > 0.5 else "prefecture"
    if _share(filled, _KANA_RE.match) > 0.9:
        return "kana"
    if _share(filled, _ADDRESS_RE.search) > 0.8:
        return "address"
    if _share(filled, _KANJI_NAME_RE.match) > 0.9 and _share(filled, lambda v: len(v) >= 3) > 0.5:
        return "name"
    if _share(filled, lambda v: v.isdigit() and int(v) <= 120) > 0.95 and len(filled) >= 5:
        return "age" if max(int(v) for v in filled) > 15 else "category"
    distinct = len(set(filled))
    if _share(filled, _ID_RE.match) > 0.95 and distinct > 0.95 * len(filled):
        return "id"
    if distinct <= max(3, len(filled) // 10):
        return "category"
    if sum(len(v) for v in filled) / len(filled) > 15:
        return "text"
    return "other"


@dataclass(frozen=True)
class Schema:
    """Where the header is and what each column holds."""

    header_index: int  # index of the header record among the first records; -1 if none
    columns: tuple[str, ...]  # header cells (or "column N" when headerless)
    roles: tuple[str, ...]
    by: tuple[str, ...] = field(default=())  # "header", "values" or "map" per column

    def column_of(self, role: str) -> int | None:
        return self.roles.index(role) if role in self.roles else None

    def describe(self) -> str:
        return ", ".join(f"{c}={r}" for c, r in zip(self.columns, self.roles, strict=True))


def _find_header(records: Sequence[Sequence[str]]) -> int:
    best, best_score = -1, 0
    for i, rec in enumerate(records[:30]):
        score = sum(
            1
            for cell in rec
            if role_from_header(cell) is not None and not _EMAIL_RE.match(cell.strip())
        )
        # Values that look like data (dates, phones, emails) mean this is not a header.
        data_like = sum(
            1
            for cell in rec
            if _EMAIL_RE.match(cell.strip())
            or _DATE_RE.match(unicodedata.normalize("NFKC", cell).strip())
            or _POSTCODE_RE.match(unicodedata.normalize("NFKC", cell).strip())
        )
        if data_like:
            continue
        if score >= 2 and score > best_score:
            best, best_score = i, score
            if score >= max(2, len([c for c in rec if c.strip()]) // 2):
                break
    return best


def _looks_like_unknown_header(records: Sequence[Sequence[str]]) -> int:
    """Index of a first record of plain labels (no digits, no name-, kana- or contact-like
    values) above rows of data: an unrecognised header rather than a person."""
    for i, rec in enumerate(records[:30]):
        cells = [c.strip() for c in rec]
        if not any(cells):
            continue
        if len(cells) < 2 or not all(cells) or any(re.search(r"\d", c) for c in cells):
            return -1
        if any(role_from_values([c]) not in ("category", "other", "text", None) for c in cells):
            return -1
        return i
    return -1


def _refine_name_roles(roles: list[str]) -> None:
    """A 'name' role on two adjacent columns means surname + given; same for kana."""
    for whole, first, second in (
        ("name", "surname", "given"),
        ("kana", "kana_surname", "kana_given"),
    ):
        idx = [i for i, r in enumerate(roles) if r == whole]
        if len(idx) == 2 and idx[1] == idx[0] + 1:
            roles[idx[0]], roles[idx[1]] = first, second


def _one_birth_date(roles: list[str], by: list[str]) -> None:
    """Several date columns guessed from values: a header-named one (生年月日) is the birth
    date, the others are other dates (joined, visited), never a second birth date."""
    dates = [i for i, r in enumerate(roles) if r == "birth_date"]
    if len(dates) < 2:
        return
    keep = next((i for i in dates if by[i] == "header"), dates[0])
    for i in dates:
        if i != keep:
            roles[i] = "other"


def infer_schema(
    records: Sequence[Sequence[str]], overrides: Mapping[str, str] | None = None
) -> Schema:
    """Infer the header position and column roles from the first records of a list.

    ``overrides`` maps role to a column name (or 1-based column number) and wins.
    """
    if not records:
        raise SchemaError("The list has no rows.")
    header_index = _find_header(records)
    if header_index < 0:
        header_index = _looks_like_unknown_header(records)
    width = max(len(r) for r in records[max(header_index, 0) :][:200])
    if header_index >= 0:
        header = list(records[header_index]) + [""] * (width - len(records[header_index]))
        columns = tuple(h.strip() or f"column {i + 1}" for i, h in enumerate(header))
    else:
        columns = tuple(f"column {i + 1}" for i in range(width))
    body = [r for r in records[header_index + 1 :] if any(c.strip() for c in r)]
    samples = [[r[i] if i < len(r) else "" for r in body] for i in range(width)]

    roles: list[str] = []
    by: list[str] = []
    for i, col in enumerate(columns):
        from_header = role_from_header(col) if header_index >= 0 else None
        from_values = role_from_values(samples[i])
        role = from_header or from_values or "other"
        # Trust the values when the header's guess is contradicted by them.
        if from_header in ("phone", "mobile") and from_values == "email":
            role = "email"
        # (Not postcodes: seven-digit IDs are common and look like postcodes without 〒.)
        if from_header == "id" and from_values in ("phone", "mobile", "email"):
            role = from_values
        if from_header == "name" and from_values == "kana":
            role = "kana"
        roles.append(role)
        by.append("header" if from_header else "values")
    _refine_name_roles(roles)
    _one_birth_date(roles, by)

    for role, target in (overrides or {}).items():
        if role not in ROLES:
            raise SchemaError(f"Unknown role {role!r} in --map; roles are: {', '.join(ROLES)}.")
        if target.isdigit() and 1 <= int(target) <= len(columns):
            index = int(target) - 1
        elif target in columns:
            index = columns.index(target)
        else:
            raise SchemaError(
                f"--map {role}={target}: no such column; the columns are {', '.join(columns)}."
            )
        for j, r in enumerate(roles):
            if r == role and j != index:
                roles[j], by[j] = "other", "map"
        roles[index], by[index] = role, "map"

    schema = Schema(header_index, columns, tuple(roles), tuple(by))
    has_name = any(r in roles for r in ("name", "surname", "kana", "kana_surname"))
    has_contact = any(
        r in roles for r in ("phone", "mobile", "email", "address", "address1", "postcode", "city")
    )
    if not (has_name and has_contact):
        found = schema.describe() or "no columns"
        raise SchemaError(
            "This does not look like a list of people: it needs a name column and a phone, "
            f"email or address column. Found: {found}. Use --map role=column to say which "
            "column is which."
        )
    return schema
