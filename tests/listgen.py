"""Host lists of fake people for tests and benchmarks, written like real exports.

Phone numbers are in the 090-0xxx block the Japanese numbering plan does not allocate and
emails use example.com, so no generated row can reach a real person.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta
from pathlib import Path

from canary.reference import Gazetteer, NameBook

HEADER = [
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


def people(n: int, seed: int = 1, seeds_dir: Path | None = None) -> list[list[str]]:
    rng = random.Random(seed)
    names = NameBook(seeds_dir or Path(__file__).resolve().parent.parent / "seeds")
    places = Gazetteer().in_area("東京都")[:400]
    rows = []
    for i in range(n):
        sex = "M" if rng.random() < 0.5 else "F"
        year = rng.randint(1940, 2003)
        birth = date(year, 1, 1) + timedelta(days=rng.randrange(365))
        s, g = names.surnames.draw(rng), names.given_for(sex, year).draw(rng)
        p = rng.choice(places)
        rows.append(
            [
                f"C{100000 + i * 3:07d}",
                f"{s.kanji}　{g.kanji}",
                f"{s.kana}　{g.kana}",
                "男" if sex == "M" else "女",
                birth.strftime("%Y/%m/%d"),
                f"{p.postcode[:3]}-{p.postcode[3:]}",
                f"{p.prefecture}{p.city}{p.town}{rng.randint(1, 5)}-{rng.randint(1, 20)}",
                f"090-0{rng.randint(100, 999)}-{rng.randint(0, 9999):04d}",
                f"user{i}@example.com" if rng.random() < 0.5 else "",
                rng.choice(["", "", "要確認", "DM不要"]),
            ]
        )
    return rows


def write_csv(
    path: Path,
    rows: list[list[str]],
    *,
    encoding: str = "cp932",
    newline: str = "\r\n",
    header: list[str] | None = None,
    bom: bool = False,
    quote_all: bool = False,
    delimiter: str = ",",
    final_newline: bool = True,
    title: str | None = None,
) -> Path:
    buf = io.StringIO(newline="")
    w = csv.writer(
        buf,
        lineterminator=newline,
        delimiter=delimiter,
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
    )
    if title:
        w.writerow([title])
    w.writerow(header or HEADER)
    w.writerows(rows)
    text = buf.getvalue()
    if not final_newline:
        text = text[: -len(newline)]
    data = text.encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path
