"""Normalisation of token values: one canonical form for emails, phones, names and kana.

Used for the registry's lookup keys and by ``trace``; the broker-list scanner applies the
same rules column-wise.
"""

from __future__ import annotations

import re
import unicodedata

import jaconv
import phonenumbers

# Every hyphen, dash and minus a Japanese list writes between digits.
_DASHES = "-‐‑‒–—―−－ｰー─━"
_DASH_RE = re.compile(f"[{re.escape(_DASHES)}]")
_SPACES_RE = re.compile(r"[\s\u3000]+")
# Common itaiji (variant kanji) in names, folded to the standard form for matching.
_KANJI_VARIANTS = str.maketrans(
    {
        "髙": "高",
        "﨑": "崎",
        "嵜": "崎",
        "邊": "辺",
        "邉": "辺",
        "齋": "斎",
        "齊": "斉",
        "濵": "浜",
        "濱": "浜",
        "澤": "沢",
        "櫻": "桜",
        "廣": "広",
        "國": "国",
        "德": "徳",
        "惠": "恵",
        "眞": "真",
        "瀨": "瀬",
        "冨": "富",
        "槇": "槙",
        "籠": "篭",
        "曻": "昇",
    }
)


def email_key(value: str) -> str:
    """An email address folded for comparison: NFKC (full width to ASCII), trimmed, lower."""
    return unicodedata.normalize("NFKC", value).strip().lower()


def phone_e164(value: str, region: str = "JP") -> str | None:
    """A phone number in E.164 (+81...), or None when it is not a valid number.

    Accepts full-width digits, any dash, parentheses, dots, spaces, +81 or 81 prefixes and a
    trailing extension.
    """
    text = unicodedata.normalize("NFKC", value).strip()
    text = _DASH_RE.sub("-", text)
    text = re.split(r"(?i)\s*(?:ext\.?|x|内線)\s*\d+$", text)[0]
    digits = re.sub(r"[^\d+]", "", text)
    if not digits:
        return None
    if digits.startswith("81") and len(digits) in (11, 12):
        digits = "+" + digits
    try:
        number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def name_key(value: str) -> str:
    """A kanji (or any) name folded for matching: NFKC, no spaces, variant kanji folded."""
    text = unicodedata.normalize("NFKC", value)
    text = _SPACES_RE.sub("", text)
    return text.translate(_KANJI_VARIANTS)


def kana_key(value: str) -> str:
    """A kana reading folded for matching: half-width and hiragana to katakana, no spaces."""
    text = unicodedata.normalize("NFKC", value)
    text = _SPACES_RE.sub("", text)
    return jaconv.hira2kata(text)


def address_key(value: str) -> str:
    """An address folded for matching: NFKC, no spaces, dashes unified, 丁目/番/号 as dashes."""
    text = unicodedata.normalize("NFKC", value)
    text = _SPACES_RE.sub("", text)
    text = _DASH_RE.sub("-", text)
    text = re.sub(r"(\d+)丁目(\d)", r"\1-\2", text)
    text = re.sub(r"(\d+)番地?(\d)", r"\1-\2", text)
    text = re.sub(r"(\d+)号", r"\1", text)
    return text.translate(_KANJI_VARIANTS)


def postcode_key(value: str) -> str | None:
    """Seven postcode digits, or None."""
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", value))
    return digits if len(digits) == 7 else None
