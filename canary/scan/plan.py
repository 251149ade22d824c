"""Which columns of a broker list feed which matching key.

Brokers rename, merge and reorder columns, so a column's values decide more than its
header: any column whose values hold phone numbers is read for phones, any with emails for
emails, and so on. Headers only break ties (a kana column versus a kanji name column).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from canary.schema import PREFECTURES, Schema, role_from_header

_PHONE_FIND = re.compile(r"\+?\d[\d\-()\s.]{7,18}\d")
_EMAIL_RE = re.compile(r"[^@\s,;]+@[^@\s,;]+\.[a-z]{2,}", re.I)
_KANA_RE = re.compile(r"^[\u3041-\u3096\u30a1-\u30fa\u30fc\s・]+$")
_KANJI_NAME_RE = re.compile(
    r"^[\u3005\u4e00-\u9fff][\u3005\u4e00-\u9fff\u3041-\u3096\u30a1-\u30fa\u30fc]{0,5}"
    r"(?:\s?[\u3005\u4e00-\u9fff\u3041-\u3096\u30a1-\u30fa\u30fc]{1,6})?$"
)
_MERGED_RE = re.compile(r"^\S.*[(（][\u3041-\u3096\u30a1-\u30fa\u30fc\s・]+[)）]$")
_POSTCODE_RE = re.compile(r"^〒?\s*\d{3}-?\d{4}$")
_ADDRESS_RE = re.compile(r"(?:都|道|府|県|市|区|町|村|郡).*\d")


@dataclass
class KeyPlan:
    phones: list[int] = field(default_factory=list)
    emails: list[int] = field(default_factory=list)
    names: list[int] = field(default_factory=list)  # full kanji names
    name_parts: list[int] = field(default_factory=list)  # surname then given
    kanas: list[int] = field(default_factory=list)
    kana_parts: list[int] = field(default_factory=list)
    merged: list[int] = field(default_factory=list)  # 山田太郎（ヤマダタロウ）
    postcodes: list[int] = field(default_factory=list)
    address: list[int] = field(default_factory=list)  # parts in column order

    def describe(self, columns: Sequence[str]) -> dict[str, list[str]]:
        out = {}
        for key in (
            "phones",
            "emails",
            "names",
            "name_parts",
            "kanas",
            "kana_parts",
            "merged",
            "postcodes",
            "address",
        ):
            cols = getattr(self, key)
            if cols:
                out[key] = [columns[i] for i in cols]
        return out

    def columns(self) -> list[int]:
        """Every column a key is read from."""
        return sorted(
            set(
                self.phones
                + self.emails
                + self.names
                + self.name_parts
                + self.kanas
                + self.kana_parts
                + self.merged
                + self.postcodes
                + self.address
            )
        )

    @property
    def usable(self) -> bool:
        return bool(
            self.phones
            or self.emails
            or self.names
            or self.name_parts
            or self.kanas
            or self.kana_parts
            or self.merged
        )


def _has_phone(value: str) -> bool:
    for found in _PHONE_FIND.findall(value):
        digits = re.sub(r"[^\d]", "", found)
        if digits.startswith("81") and len(digits) in (11, 12):
            digits = "0" + digits[2:]
        if re.fullmatch(r"0\d{9,10}", digits):
            return True
    return False


def _share(values: Sequence[str], test: Callable[[str], object]) -> float:
    filled = [v for v in values if v]
    if not filled:
        return 0.0
    return sum(1 for v in filled if test(v)) / len(filled)


def plan_keys(
    columns: Sequence[str], sample: Sequence[Sequence[str]], schema: Schema | None
) -> KeyPlan:
    """Decide, from a sample of rows, which columns to read for each key."""
    plan = KeyPlan()
    for i, col in enumerate(columns):
        values = [unicodedata.normalize("NFKC", r[i]).strip() for r in sample if i < len(r)]
        hint = (schema.roles[i] if schema and i < len(schema.roles) else None) or role_from_header(
            col
        )
        if _share(values, _has_phone) > 0.3:
            plan.phones.append(i)
        if _share(values, lambda v: _EMAIL_RE.search(v) is not None) > 0.3:
            plan.emails.append(i)
            continue
        # IDs of seven digits look like postcodes: without a postcode header, a 〒 or a
        # hyphen is required.
        marked = _share(values, lambda v: re.match(r"^〒?\s*\d{3}-\d{4}$", v) is not None)
        if (hint == "postcode" and _share(values, _POSTCODE_RE.match) > 0.5) or marked > 0.7:
            plan.postcodes.append(i)
            continue
        if _share(values, _MERGED_RE.match) > 0.6:
            plan.merged.append(i)
            continue
        kana = _share(values, _KANA_RE.match)
        if kana > 0.8 and hint not in ("prefecture", "city", "town", "address", "category"):
            if hint in ("kana_surname", "kana_given"):
                plan.kana_parts.append(i)
            else:
                plan.kanas.append(i)
            continue
        is_address = (
            _share(
                values,
                lambda v: (
                    v[:3] in PREFECTURES
                    or v[:4] in PREFECTURES
                    or _ADDRESS_RE.search(v) is not None
                ),
            )
            > 0.6
        )
        if (
            hint
            in (
                "address",
                "address1",
                "address2",
                "prefecture",
                "city",
                "town",
                "street",
                "building",
            )
            or is_address
        ):
            plan.address.append(i)
            continue
        if hint in ("surname", "given"):
            plan.name_parts.append(i)
            continue
        if hint == "name" or (
            _share(values, _KANJI_NAME_RE.match) > 0.8
            and hint in (None, "other", "text", "category")
            and _share(values, lambda v: len(v) >= 3) > 0.5
        ):
            plan.names.append(i)
    if len(plan.name_parts) != 2:
        plan.names.extend(plan.name_parts)
        plan.name_parts = []
    if len(plan.kana_parts) != 2:
        plan.kanas.extend(plan.kana_parts)
        plan.kana_parts = []
    return plan
