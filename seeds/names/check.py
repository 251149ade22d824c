#!/usr/bin/env python3
"""Validate the seed name data in this directory (pure stdlib).

Usage: python3 seeds/names/check.py
Exits 0 when every file passes, 1 on any violation (all violations are printed).
"""
import csv
import io
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

MIN_SURNAMES = 400
MIN_GIVEN_PER_SEX = 350
MIN_PER_DECADE = 25
DECADES = range(1920, 2021, 10)  # 1920s .. 2020s
MIN_PATTERNS = 40
MIN_WORDS = 60
PLACEHOLDERS = {"place", "surname", "word", "n"}

KATAKANA_RE = re.compile(r"^[\u30A1-\u30FA\u30FC]+$")

errors = []


def err(msg):
    errors.append(msg)


def encodable(s):
    for enc in ("cp932", "euc_jp"):
        try:
            s.encode(enc)
        except UnicodeEncodeError:
            return enc
    return None


def load(name, header):
    path = HERE / name
    if not path.exists():
        err(f"{name}: missing")
        return []
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        err(f"{name}: starts with a UTF-8 BOM")
    if b"\r" in raw:
        err(f"{name}: contains CR characters (LF line endings required)")
    if not raw.endswith(b"\n"):
        err(f"{name}: does not end with a newline")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        err(f"{name}: not valid UTF-8 ({e})")
        return []
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or rows[0] != header:
        err(f"{name}: header {rows[0] if rows else None!r} != {header!r}")
        return []
    out = []
    for lineno, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            err(f"{name}:{lineno}: expected {len(header)} fields, got {len(row)}: {row!r}")
            continue
        if any(f != f.strip() or f == "" for f in row):
            err(f"{name}:{lineno}: empty field or surrounding whitespace: {row!r}")
        out.append((lineno, dict(zip(header, row))))
    return out


def check_text(name, lineno, col, value):
    bad = encodable(value)
    if bad:
        err(f"{name}:{lineno}: {col}={value!r} not encodable in {bad}")


def check_kana(name, lineno, value):
    if not KATAKANA_RE.match(value):
        err(f"{name}:{lineno}: kana={value!r} is not pure full-width katakana")
    check_text(name, lineno, "kana", value)


def positive_number(name, lineno, value, lo=None, hi=None):
    try:
        v = float(value)
    except ValueError:
        err(f"{name}:{lineno}: weight={value!r} is not a number")
        return None
    if not v > 0:
        err(f"{name}:{lineno}: weight={value!r} is not positive")
    if lo is not None and not (lo <= v <= hi):
        err(f"{name}:{lineno}: weight={value!r} outside {lo}..{hi}")
    return v


def check_surnames():
    name = "surnames.csv"
    rows = load(name, ["kanji", "kana", "weight"])
    seen = {}
    prev = None
    for lineno, r in rows:
        k = r["kanji"]
        check_text(name, lineno, "kanji", k)
        check_kana(name, lineno, r["kana"])
        if KATAKANA_RE.match(k):
            err(f"{name}:{lineno}: kanji column holds only katakana: {k!r}")
        if k in seen:
            err(f"{name}:{lineno}: duplicate kanji {k!r} (first at line {seen[k]})")
        seen[k] = lineno
        w = positive_number(name, lineno, r["weight"])
        if w is not None and prev is not None and w > prev:
            err(f"{name}:{lineno}: weight {w:g} > previous {prev:g} (rows must be in rank order)")
        if w is not None:
            prev = w
    if len(rows) < MIN_SURNAMES:
        err(f"{name}: {len(rows)} rows < {MIN_SURNAMES}")
    print(f"{name}: {len(rows)} rows")


def check_given():
    name = "given_names.csv"
    rows = load(name, ["kanji", "kana", "sex", "born_from", "born_to", "weight"])
    seen = {}
    per_sex = {"M": 0, "F": 0}
    decade_names = {(s, d): set() for s in per_sex for d in DECADES}
    for lineno, r in rows:
        k, kana, sex = r["kanji"], r["kana"], r["sex"]
        check_text(name, lineno, "kanji", k)
        check_kana(name, lineno, kana)
        if sex not in per_sex:
            err(f"{name}:{lineno}: sex={sex!r} not in M/F")
            continue
        per_sex[sex] += 1
        key = (k, kana, sex)
        if key in seen:
            err(f"{name}:{lineno}: duplicate {key!r} (first at line {seen[key]})")
        seen[key] = lineno
        positive_number(name, lineno, r["weight"], 1, 100)
        try:
            a, b = int(r["born_from"]), int(r["born_to"])
        except ValueError:
            err(f"{name}:{lineno}: born_from/born_to not integers: {r!r}")
            continue
        if not (1900 <= a <= b <= 2025):
            err(f"{name}:{lineno}: need 1900 <= born_from({a}) <= born_to({b}) <= 2025")
            continue
        # Katakana-only given names are acceptable only for pre-war women.
        if KATAKANA_RE.match(k) and not (sex == "F" and b <= 1945):
            err(f"{name}:{lineno}: katakana-only name {k!r} allowed only for women born <= 1945")
        for d in DECADES:
            if a <= d + 9 and b >= d:
                decade_names[(sex, d)].add(k)
    for sex, n in per_sex.items():
        if n < MIN_GIVEN_PER_SEX:
            err(f"{name}: {n} rows with sex={sex} < {MIN_GIVEN_PER_SEX}")
    print(f"{name}: {len(rows)} rows (M={per_sex['M']}, F={per_sex['F']})")
    print("  distinct names per birth decade:")
    print("  decade    M    F")
    for d in DECADES:
        m, f = len(decade_names[("M", d)]), len(decade_names[("F", d)])
        flag = "" if min(m, f) >= MIN_PER_DECADE else "   <-- below minimum"
        print(f"  {d}s {m:4d} {f:4d}{flag}")
        for sex, c in (("M", m), ("F", f)):
            if c < MIN_PER_DECADE:
                err(f"{name}: only {c} distinct {sex} names overlap {d}s (< {MIN_PER_DECADE})")


def check_buildings():
    name = "buildings.csv"
    rows = load(name, ["pattern", "weight"])
    seen = {}
    for lineno, r in rows:
        p = r["pattern"]
        check_text(name, lineno, "pattern", p)
        if p in seen:
            err(f"{name}:{lineno}: duplicate pattern {p!r}")
        seen[p] = lineno
        names = re.findall(r"\{([^{}]*)\}", p)
        unknown = set(names) - PLACEHOLDERS
        if unknown:
            err(f"{name}:{lineno}: unknown placeholder(s) {sorted(unknown)} in {p!r}")
        if names.count("n") != 1:
            err(f"{name}:{lineno}: pattern must contain {{n}} exactly once: {p!r}")
        if re.sub(r"\{[^{}]*\}", "", p).count("{") or re.sub(r"\{[^{}]*\}", "", p).count("}"):
            err(f"{name}:{lineno}: unbalanced braces in {p!r}")
        positive_number(name, lineno, r["weight"])
    if len(rows) < MIN_PATTERNS:
        err(f"{name}: {len(rows)} rows < {MIN_PATTERNS}")
    print(f"{name}: {len(rows)} rows")


def check_words():
    name = "building_words.csv"
    rows = load(name, ["word"])
    seen = {}
    for lineno, r in rows:
        w = r["word"]
        check_text(name, lineno, "word", w)
        if not KATAKANA_RE.match(w):
            err(f"{name}:{lineno}: word={w!r} is not pure full-width katakana")
        if w in seen:
            err(f"{name}:{lineno}: duplicate word {w!r}")
        seen[w] = lineno
    if len(rows) < MIN_WORDS:
        err(f"{name}: {len(rows)} rows < {MIN_WORDS}")
    print(f"{name}: {len(rows)} rows")


def main():
    check_surnames()
    check_given()
    check_buildings()
    check_words()
    if errors:
        print(f"\nFAILED: {len(errors)} violation(s)")
        for e in errors:
            print("  " + e)
        return 1
    print("\nOK: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
