"""Katakana to Hepburn romaji, as Japanese people write their names in email addresses."""

from __future__ import annotations

import jaconv

_DIGRAPHS = {
    "キャ": "kya",
    "キュ": "kyu",
    "キョ": "kyo",
    "シャ": "sha",
    "シュ": "shu",
    "ショ": "sho",
    "チャ": "cha",
    "チュ": "chu",
    "チョ": "cho",
    "ニャ": "nya",
    "ニュ": "nyu",
    "ニョ": "nyo",
    "ヒャ": "hya",
    "ヒュ": "hyu",
    "ヒョ": "hyo",
    "ミャ": "mya",
    "ミュ": "myu",
    "ミョ": "myo",
    "リャ": "rya",
    "リュ": "ryu",
    "リョ": "ryo",
    "ギャ": "gya",
    "ギュ": "gyu",
    "ギョ": "gyo",
    "ジャ": "ja",
    "ジュ": "ju",
    "ジョ": "jo",
    "ビャ": "bya",
    "ビュ": "byu",
    "ビョ": "byo",
    "ピャ": "pya",
    "ピュ": "pyu",
    "ピョ": "pyo",
    "ヂャ": "ja",
    "ヂュ": "ju",
    "ヂョ": "jo",
    "ティ": "ti",
    "ディ": "di",
    "ファ": "fa",
    "フィ": "fi",
    "フェ": "fe",
    "フォ": "fo",
    "ウィ": "wi",
    "ウェ": "we",
    "ヴァ": "va",
    "ジェ": "je",
    "シェ": "she",
    "チェ": "che",
}
_MONO = dict(
    zip(
        "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヰヱヲン"
        "ガギグゲゴザジズゼゾダヂヅデドバビブベボパピプペポヴァィゥェォャュョ",
        [
            "a",
            "i",
            "u",
            "e",
            "o",
            "ka",
            "ki",
            "ku",
            "ke",
            "ko",
            "sa",
            "shi",
            "su",
            "se",
            "so",
            "ta",
            "chi",
            "tsu",
            "te",
            "to",
            "na",
            "ni",
            "nu",
            "ne",
            "no",
            "ha",
            "hi",
            "fu",
            "he",
            "ho",
            "ma",
            "mi",
            "mu",
            "me",
            "mo",
            "ya",
            "yu",
            "yo",
            "ra",
            "ri",
            "ru",
            "re",
            "ro",
            "wa",
            "i",
            "e",
            "o",
            "n",
            "ga",
            "gi",
            "gu",
            "ge",
            "go",
            "za",
            "ji",
            "zu",
            "ze",
            "zo",
            "da",
            "ji",
            "zu",
            "de",
            "do",
            "ba",
            "bi",
            "bu",
            "be",
            "bo",
            "pa",
            "pi",
            "pu",
            "pe",
            "po",
            "vu",
            "a",
            "i",
            "u",
            "e",
            "o",
            "ya",
            "yu",
            "yo",
        ],
        strict=True,
    )
)


def to_romaji(kana: str, long_vowels: bool = False) -> str:
    """Romanise a katakana (or hiragana) reading in passport-style Hepburn.

    Long vowels are dropped as on passports (オオノ → ono, ユウキ → yuki) unless
    ``long_vowels``, which keeps them (ohno-style spellings are chosen by callers).
    """
    text = jaconv.hira2kata(kana)
    out: list[str] = []
    i = 0
    geminate = False
    while i < len(text):
        pair = text[i : i + 2]
        if pair in _DIGRAPHS:
            syl = _DIGRAPHS[pair]
            i += 2
        elif text[i] == "ッ":
            geminate = True
            i += 1
            continue
        elif text[i] == "ー":
            i += 1
            continue
        elif text[i] in _MONO:
            syl = _MONO[text[i]]
            i += 1
        else:
            syl = text[i].lower() if text[i].isascii() else ""
            i += 1
        if geminate and syl:
            syl = ("t" + syl) if syl.startswith("ch") else syl[0] + syl
            geminate = False
        if syl == "n" or not out:
            out.append(syl)
            continue
        if not long_vowels:
            prev = out[-1]
            # ou / oo / uu collapse to one vowel, as passports write them.
            if (syl in ("u", "o") and prev.endswith("o")) or (syl == "u" and prev.endswith("u")):
                continue
        out.append(syl)
    return "".join(out)
