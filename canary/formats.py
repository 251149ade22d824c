"""How a host list writes its values, learned from a sample, and canary values written alike.

Each ``*Style`` is learned from the host's own values of one column and renders a canonical
canary value (an E.164 number, an ISO date, a katakana reading) the way that column does.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import jaconv
import phonenumbers

_FW_DIGITS = str.maketrans("0123456789-", "０１２３４５６７８９－")


def _filled(values: Sequence[str]) -> list[str]:
    return [v.strip() for v in values if v and v.strip()]


def _majority(labels: Sequence[str], default: str) -> str:
    return Counter(labels).most_common(1)[0][0] if labels else default


def _shares(labels: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """Each label with its share, most common first."""
    counts = Counter(labels)
    return tuple((k, n / len(labels)) for k, n in counts.most_common())


def _pick(default: str, mix: tuple[tuple[str, float], ...], rng: random.Random | None) -> str:
    """A label drawn from ``mix`` (the majority ``default`` without a mix or an rng)."""
    if rng is None or len(mix) < 2:
        return default
    return rng.choices([k for k, _ in mix], weights=[w for _, w in mix])[0]


def has_fullwidth_digits(values: Sequence[str]) -> bool:
    vals = _filled(values)
    return bool(vals) and sum(1 for v in vals if re.search("[０-９]", v)) > len(vals) / 2


# -- phones -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PhoneStyle:
    kind: str = "hyphen"  # hyphen | plain | paren | e164 | intl
    fullwidth: bool = False

    @classmethod
    def learn(cls, values: Sequence[str]) -> PhoneStyle:
        labels = []
        for raw in _filled(values)[:500]:
            v = unicodedata.normalize("NFKC", raw)
            if v.startswith("+81") or v.startswith("81-"):
                labels.append("intl" if re.search(r"[\s\-]", v) else "e164")
            elif "(" in v:
                labels.append("paren")
            elif re.search(r"\d[-‐−ー]\d", v):
                labels.append("hyphen")
            else:
                labels.append("plain")
        return cls(_majority(labels, "hyphen"), has_fullwidth_digits(values))

    def render(self, e164: str) -> str:
        number = phonenumbers.parse(e164)
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        if self.kind == "plain":
            out = national.replace("-", "")
        elif self.kind == "paren":
            area, _, rest = national.partition("-")
            out = f"{area}({rest.replace('-', ')', 1)}" if "-" in rest else f"({area}){rest}"
        elif self.kind == "e164":
            out = e164
        elif self.kind == "intl":
            out = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        else:
            out = national
        return out.translate(_FW_DIGITS) if self.fullwidth else out


# -- postcodes --------------------------------------------------------------------------


@dataclass(frozen=True)
class PostcodeStyle:
    hyphen: bool = True
    mark: bool = False  # leading 〒
    fullwidth: bool = False

    @classmethod
    def learn(cls, values: Sequence[str]) -> PostcodeStyle:
        vals = _filled(values)[:500]
        if not vals:
            return cls()
        norm = [unicodedata.normalize("NFKC", v) for v in vals]
        return cls(
            hyphen=sum("-" in v for v in norm) > len(norm) / 2,
            mark=sum(v.startswith("〒") for v in norm) > len(norm) / 2,
            fullwidth=has_fullwidth_digits(vals),
        )

    def render(self, code: str) -> str:
        out = f"{code[:3]}-{code[3:]}" if self.hyphen else code
        if self.fullwidth:
            out = out.translate(_FW_DIGITS)
        return ("〒" + out) if self.mark else out


# -- dates ------------------------------------------------------------------------------

_ERAS = (
    ("R", "令和", date(2019, 5, 1)),
    ("H", "平成", date(1989, 1, 8)),
    ("S", "昭和", date(1926, 12, 25)),
    ("T", "大正", date(1912, 7, 30)),
    ("M", "明治", date(1868, 1, 25)),
)


@dataclass(frozen=True)
class DateStyle:
    pattern: str = "{y:04d}/{m:02d}/{d:02d}"
    era: str = ""  # "", "letter" (S60.03.12) or "kanji" (昭和60年3月12日)
    fullwidth: bool = False

    @classmethod
    def learn(cls, values: Sequence[str]) -> DateStyle:
        labels = []
        for raw in _filled(values)[:500]:
            v = unicodedata.normalize("NFKC", raw)
            era = ""
            m = re.match(r"^(明治|大正|昭和|平成|令和)\s*(\d+)年(\d+)月(\d+)日$", v)
            if m:
                labels.append(("{ey}年{m}月{d}日", "kanji"))
                continue
            m = re.match(r"^([MTSHR])\s*(\d+)([./\-])(\d+)\3(\d+)$", v)
            if m:
                sep = m.group(3)
                pad = len(m.group(4)) == 2
                labels.append(
                    (
                        f"{{ey:02d}}{sep}{{m:02d}}{sep}{{d:02d}}"
                        if pad
                        else f"{{ey}}{sep}{{m}}{sep}{{d}}",
                        "letter",
                    )
                )
                continue
            m = re.match(r"^(\d{4})年(\d{1,2})月(\d{1,2})日$", v)
            if m:
                pad = len(m.group(2)) == 2
                labels.append(("{y:04d}年{m:02d}月{d:02d}日" if pad else "{y}年{m}月{d}日", era))
                continue
            m = re.match(r"^(\d{4})([/\-.])(\d{1,2})\2(\d{1,2})(?:\s+0?0:00(?::00)?)?$", v)
            if m:
                sep = m.group(2)
                pad = len(m.group(3)) == 2 or len(m.group(4)) == 2
                labels.append(
                    (
                        f"{{y:04d}}{sep}{{m:02d}}{sep}{{d:02d}}"
                        if pad
                        else f"{{y}}{sep}{{m}}{sep}{{d}}",
                        era,
                    )
                )
                continue
            if re.match(r"^\d{8}$", v):
                labels.append(("{y:04d}{m:02d}{d:02d}", era))
        if not labels:
            return cls(fullwidth=has_fullwidth_digits(values))
        pattern, era = Counter(labels).most_common(1)[0][0]
        return cls(pattern, era, has_fullwidth_digits(values))

    def render(self, iso: str) -> str:
        y, m, d = (int(x) for x in iso.split("-"))
        fields: dict[str, object] = {"y": y, "m": m, "d": d}
        if self.era:
            for letter, kanji, start in _ERAS:
                if date(y, m, d) >= start:
                    fields["ey"] = y - start.year + 1
                    prefix = letter if self.era == "letter" else kanji
                    break
            out = prefix + self.pattern.format(**fields)
        else:
            out = self.pattern.format(**fields)
        return out.translate(_FW_DIGITS) if self.fullwidth else out


# -- sex --------------------------------------------------------------------------------

_SEX_TOKENS = {
    frozenset({"男", "女"}): ("男", "女"),
    frozenset({"男性", "女性"}): ("男性", "女性"),
    frozenset({"m", "f"}): ("M", "F"),
    frozenset({"male", "female"}): ("male", "female"),
    frozenset({"1", "2"}): ("1", "2"),
}


@dataclass(frozen=True)
class SexStyle:
    male: str = "男"
    female: str = "女"

    @classmethod
    def learn(cls, values: Sequence[str]) -> SexStyle:
        vals = _filled(values)
        counts = Counter(vals)
        for raw_pair, (male, female) in _SEX_TOKENS.items():
            seen = {v for v in counts if v.lower() in raw_pair}
            if seen and sum(counts[v] for v in seen) > 0.8 * len(vals):
                # Keep the host's own case (M/F versus m/f).
                lower = {v.lower(): v for v in seen}
                return cls(lower.get(male.lower(), male), lower.get(female.lower(), female))
        return cls()

    def render(self, sex: str) -> str:
        return self.male if sex == "M" else self.female


# -- names and kana ---------------------------------------------------------------------


@dataclass(frozen=True)
class NameStyle:
    separator: str = "\u3000"  # between surname and given name: full-width, ASCII or none
    # every separator the list uses, with its share: canaries follow the mix, since a list
    # typed by people (or merged from several systems) is rarely uniform
    mix: tuple[tuple[str, float], ...] = ()

    @classmethod
    def learn(cls, values: Sequence[str]) -> NameStyle:
        labels = []
        for v in _filled(values)[:500]:
            labels.append("\u3000" if "\u3000" in v else " " if " " in v else "")
        return cls(_majority(labels, "\u3000"), _shares(labels))

    def render(self, surname: str, given: str, rng: random.Random | None = None) -> str:
        return f"{surname}{_pick(self.separator, self.mix, rng)}{given}"


@dataclass(frozen=True)
class KanaStyle:
    script: str = "katakana"  # katakana | halfwidth | hiragana
    separator: str = "\u3000"
    scripts: tuple[tuple[str, float], ...] = ()  # the list's mix (see NameStyle.mix)
    separators: tuple[tuple[str, float], ...] = ()

    @classmethod
    def learn(cls, values: Sequence[str]) -> KanaStyle:
        scripts, seps = [], []
        for v in _filled(values)[:500]:
            if re.search("[\uff66-\uff9f]", v):
                scripts.append("halfwidth")
            elif re.search("[\u3041-\u3096]", v):
                scripts.append("hiragana")
            else:
                scripts.append("katakana")
            seps.append("\u3000" if "\u3000" in v else " " if " " in v else "")
        return cls(
            _majority(scripts, "katakana"),
            _majority(seps, "\u3000"),
            _shares(scripts),
            _shares(seps),
        )

    def convert(self, katakana: str, script: str | None = None) -> str:
        script = script or self.script
        if script == "halfwidth":
            return jaconv.z2h(katakana, kana=True, ascii=False, digit=False)
        if script == "hiragana":
            return jaconv.kata2hira(katakana)
        return katakana

    def pick_script(self, rng: random.Random | None = None) -> str:
        return _pick(self.script, self.scripts, rng)

    def render(self, surname: str, given: str, rng: random.Random | None = None) -> str:
        script = self.pick_script(rng)
        separator = _pick(self.separator, self.separators, rng)
        sep = " " if script == "halfwidth" and separator else separator
        return f"{self.convert(surname, script)}{sep}{self.convert(given, script)}"


@dataclass(frozen=True)
class RomajiStyle:
    order: str = "given_first"  # given_first | surname_first
    case: str = "title"  # title | upper | lower

    @classmethod
    def learn(cls, values: Sequence[str]) -> RomajiStyle:
        vals = [v for v in _filled(values)[:500] if re.match(r"^[A-Za-z][A-Za-z\s,.'-]*$", v)]
        if not vals:
            return cls()
        case = _majority(
            ["upper" if v.isupper() else "lower" if v.islower() else "title" for v in vals], "title"
        )
        return cls("given_first", case)

    def render(self, surname: str, given: str) -> str:
        text = f"{given} {surname}" if self.order == "given_first" else f"{surname} {given}"
        return (
            text.upper()
            if self.case == "upper"
            else text.lower()
            if self.case == "lower"
            else text.title()
        )


# -- ids --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdStyle:
    """IDs such as 12345, 000123 or C-0001234: a prefix, a width and the range seen."""

    prefix: str = ""
    width: int = 0  # zero-padded width, 0 for unpadded
    suffix: str = ""
    low: int = 1
    high: int = 999999
    numeric: bool = True

    @classmethod
    def learn(cls, values: Sequence[str]) -> IdStyle | None:
        parsed = []
        for v in _filled(values):
            m = re.fullmatch(r"([A-Za-z_\-]*)(\d+)([A-Za-z]?)", v)
            if m:
                parsed.append((m.group(1), m.group(2), m.group(3)))
        if len(parsed) < max(1, len(_filled(values)) * 0.8):
            return None
        prefix = _majority([p for p, _, _ in parsed], "")
        suffix = _majority([s for _, _, s in parsed], "")
        digits = [d for p, d, s in parsed if p == prefix]
        widths = Counter(len(d) for d in digits)
        padded = any(d.startswith("0") for d in digits) and len(widths) == 1
        numbers = [int(d) for d in digits]
        return cls(
            prefix,
            next(iter(widths)) if padded else 0,
            suffix,
            min(numbers),
            max(numbers),
            not prefix and not suffix,
        )

    def number(self, value: str) -> int | None:
        """The number inside an ID written in this style, or None."""
        value = value.strip()
        if not (value.startswith(self.prefix) and value.endswith(self.suffix)):
            return None
        digits = value[len(self.prefix) : len(value) - len(self.suffix) or None]
        return int(digits) if digits.isdigit() else None

    def render(self, number: int) -> str:
        digits = f"{number:0{self.width}d}" if self.width else str(number)
        return f"{self.prefix}{digits}{self.suffix}"
