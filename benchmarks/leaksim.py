"""A leak simulator: seeded exports published the way list brokers publish them.

Brokers rename and merge columns, drop the email or phone column, rewrite phones
(09012345678, +81 90-…, (090)…, full width), turn kana into half-width or hiragana, drop
the space in names, put the postcode inside the address, introduce typos, dedupe,
subsample, shuffle, merge several sources with strangers, and save as CP932 CSV, UTF-8
TSV, EUC-JP or XLSX. `publish` does all of that; `score` compares what `canary scan`
attributes with the truth.

    .venv/bin/python benchmarks/leaksim.py            # recall, precision, clean-list FPs
    .venv/bin/python benchmarks/leaksim.py --lists 60 --hosts 6 --exports 4
    .venv/bin/python benchmarks/leaksim.py --seed 2 --hosts 8 --lists 2000 --diffs 40  # ~30 min

Sixty lists hold about a hundred leaked exports, too few to tell 99 % recall from 98 %
or to bound precision near 99.9 %; the long run holds over three thousand.

An export is only attributed when at least one of its own canaries reached the broker:
where a 5 % sample kept only stable ones (held by every export of that list and
account), the account is named instead, with the export among its candidates, and the
simulator counts that leak as traced but not as attributed.

Every person here is fake: names from seeds/names, real postcode areas with random
blocks, phones in the unallocated 090-0xxx block, emails on example.com.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import jaconv  # noqa: E402

from canary.reference import Gazetteer, NameBook  # noqa: E402

HOST_HEADER = [
    "会員番号",
    "氏名",
    "フリガナ",
    "性別",
    "生年月日",
    "郵便番号",
    "住所",
    "電話番号",
    "メールアドレス",
    "区分",
]
AREAS = [
    ("大阪府", "堺市"),
    ("東京都", None),
    ("北海道", "札幌市"),
    ("福岡県", None),
    ("愛知県", "名古屋市"),
    ("宮城県", None),
    ("広島県", "広島市"),
    ("神奈川県", None),
]
FW = str.maketrans("0123456789-", "０１２３４５６７８９－")


def people(
    n: int,
    rng: random.Random,
    area: tuple[str, str | None],
    email_share: float = 0.4,
    id_base: int = 100000,
) -> list[list[str]]:
    names = NameBook(REPO / "seeds")
    pref, city = area
    places = [p for p in Gazetteer().in_area(pref) if city is None or p.city.startswith(city)]
    rows = []
    for i in range(n):
        sex = "M" if rng.random() < 0.48 else "F"
        year = int(rng.triangular(1935, 2004, 1970))
        birth = date(year, 1, 1) + timedelta(days=rng.randrange(365))
        s, g = names.surnames.draw(rng), names.given_for(sex, year).draw(rng)
        p = rng.choice(places)
        street = (
            f"{rng.randint(1, 6)}-{rng.randint(1, 28)}-{rng.randint(1, 24)}"
            if p.chome
            else f"{rng.randint(1, 1800)}-{rng.randint(1, 20)}"
        )
        mail = (
            f"{rng.choice(['taro', 'user', 'k', 'mail'])}{rng.randrange(10**6)}@example.com"
            if rng.random() < email_share
            else ""
        )
        rows.append(
            [
                str(id_base + i * 7),
                f"{s.kanji}\u3000{g.kanji}",
                f"{s.kana}\u3000{g.kana}",
                "男" if sex == "M" else "女",
                birth.strftime("%Y/%m/%d"),
                f"{p.postcode[:3]}-{p.postcode[3:]}",
                f"{p.prefecture}{p.city}{p.town}{street}",
                f"090-0{rng.randint(100, 999)}-{rng.randrange(10000):04d}",
                mail,
                rng.choice(["一般", "一般", "ゴールド"]),
            ]
        )
    return rows


def write_host(path: Path, rows: list[list[str]]) -> Path:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(HOST_HEADER)
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode("cp932"))
    return path


def read_seeded(path: Path) -> tuple[list[str], list[list[str]]]:
    text = path.read_bytes().decode("cp932")
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


# -- broker mangles ---------------------------------------------------------------------


def _phone_style(value: str, rng: random.Random) -> str:
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) < 10:
        return value
    style = rng.choice(["plain", "intl", "paren", "fullwidth", "keep", "dots"])
    national = value
    if style == "plain":
        return digits
    if style == "intl":
        return "+81 " + national[1:]
    if style == "paren":
        a, _, rest = national.partition("-")
        return f"({a}){rest}"
    if style == "fullwidth":
        return national.translate(FW)
    if style == "dots":
        return national.replace("-", ".")
    return national


def _kana_style(value: str, rng: random.Random) -> str:
    style = rng.choice(["half", "hira", "keep", "nospace"])
    if style == "half":
        return jaconv.z2h(value, kana=True, ascii=False, digit=False)
    if style == "hira":
        return jaconv.kata2hira(value)
    if style == "nospace":
        return value.replace("\u3000", "")
    return value


def _typo(value: str, rng: random.Random) -> str:
    """Replace one kana of a reading by a neighbour (a keying error)."""
    chars = list(value)
    spots = [i for i, c in enumerate(chars) if "\u30a1" <= c <= "\u30f6"]
    if not spots:
        return value
    i = rng.choice(spots)
    chars[i] = chr(ord(chars[i]) + rng.choice([-2, 2]))
    if not ("\u30a1" <= chars[i] <= "\u30f6"):
        return value
    return "".join(chars)


@dataclass
class BrokerList:
    path: Path
    truth: set[str]  # export codes whose rows are in it
    canaries_in: dict[str, int] = field(default_factory=dict)  # export → canary rows kept
    description: str = ""
    kept: dict[str, set[int]] = field(default_factory=dict)  # export → its rows published


def publish(
    sources: list[tuple[str, list[str], list[list[str]], set[int]]],
    strangers: list[list[str]],
    out_dir: Path,
    rng: random.Random,
    name: str,
) -> BrokerList:
    """Publish rows of seeded exports as a broker would.

    ``sources`` holds (export code, header, rows, indexes of canary rows) per export.
    """
    fraction = rng.uniform(0.05, 1.0)
    rows: list[tuple[str | None, bool, list[str]]] = []
    header = sources[0][1]
    for code, _, data, _canary_rows in sources:
        keep = [i for i in range(len(data)) if rng.random() < fraction]
        rows.extend((code, i, data[i]) for i in keep)
    noise = rng.sample(strangers, k=min(len(strangers), rng.randint(0, len(strangers))))
    rows.extend((None, -1, r) for r in noise)
    # Dedupe on name + phone, as brokers do when merging sources, then shuffle.
    seen: set[tuple[str, str]] = set()
    unique = []
    kept: dict[str, set[int]] = {code: set() for code, _, _, _ in sources}
    for code, i, r in rows:
        key = (r[1], r[7])
        if key in seen:
            continue
        seen.add(key)
        unique.append((code, i, r))
        if code is not None:
            kept[code].add(i)
    canaries_in = {code: len(kept[code] & canary_rows) for code, _, _, canary_rows in sources}
    rng.shuffle(unique)

    col = {h: i for i, h in enumerate(header)}
    drop_email = rng.random() < 0.5
    drop_phone = rng.random() < 0.25
    merge_name_kana = rng.random() < 0.2
    postcode_in_address = rng.random() < 0.5
    nospace_names = rng.random() < 0.5
    typo_rate = rng.choice([0.0, 0.02, 0.05])
    out_header = ["お名前", "ヨミ", "TEL", "E-Mail", "〒", "ご住所", "生年月日", "性別"]
    out_rows = []
    for _, _, r in unique:
        kanji = r[col["氏名"]]
        if nospace_names:
            kanji = kanji.replace("\u3000", "").replace(" ", "")
        kana = _kana_style(r[col["フリガナ"]], rng)
        if typo_rate and rng.random() < typo_rate:
            kana = _typo(unicodedata.normalize("NFKC", kana), rng)
        phone = _phone_style(r[col["電話番号"]], rng)
        address = r[col["住所"]]
        postcode = r[col["郵便番号"]]
        if postcode_in_address:
            address = f"〒{postcode} {address}"
        out_rows.append(
            [
                kanji,
                kana,
                phone,
                r[col["メールアドレス"]],
                postcode,
                address,
                r[col["生年月日"]],
                r[col["性別"]],
            ]
        )
    keep_cols = list(range(len(out_header)))
    if drop_email:
        keep_cols.remove(3)
    if drop_phone:
        keep_cols.remove(2)
    if postcode_in_address:
        keep_cols.remove(4)
    if merge_name_kana:
        out_header[0] = "氏名(フリガナ)"
        for r in out_rows:
            r[0] = f"{r[0]}（{r[1]}）"
        keep_cols.remove(1)
    rng.shuffle(keep_cols)
    header_out = [out_header[i] for i in keep_cols]
    body = [[r[i] for i in keep_cols] for r in out_rows]
    fmt = rng.choice(["cp932-csv", "utf8-tsv", "eucjp-csv", "xlsx", "utf8bom-csv"])
    path = out_dir / f"{name}.{'xlsx' if fmt == 'xlsx' else 'tsv' if 'tsv' in fmt else 'csv'}"
    _save(path, fmt, header_out, body)
    truth = {code for code, _, _, _ in sources}
    desc = (
        f"{fmt}, {fraction:.0%} sample, {len(noise)} strangers, "
        f"{'no email, ' if drop_email else ''}{'no phone, ' if drop_phone else ''}"
        f"{'merged name, ' if merge_name_kana else ''}typos {typo_rate:.0%}"
    )
    return BrokerList(path, truth, canaries_in, desc, kept)


def _save(path: Path, fmt: str, header: list[str], body: list[list[str]]) -> None:
    if fmt == "xlsx":
        from openpyxl import Workbook

        wb = Workbook(write_only=True)
        ws = wb.create_sheet("list")
        ws.append(header)
        for r in body:
            ws.append(r)
        wb.save(path)
        return
    delimiter = "\t" if "tsv" in fmt else ","
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n" if "cp932" in fmt else "\n")
    w.writerow(header)
    w.writerows(body)
    text = buf.getvalue()
    if fmt.startswith("eucjp"):
        # EUC-JP has no room for some CP932 extensions; a broker's converter drops them.
        data = text.encode("euc_jp", errors="replace")
    elif fmt.startswith("cp932"):
        data = text.encode("cp932", errors="replace")
    else:
        data = text.encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if fmt.startswith("utf8bom") else b"") + data)


# -- the whole simulation ---------------------------------------------------------------


@dataclass
class Score:
    lists: int = 0
    true_exports: int = 0
    found: int = 0  # true exports attributed
    false: int = 0  # attributed exports not in the list
    survivable: int = 0  # true exports with at least one canary row in the list
    found_survivable: int = 0
    own_survived: int = 0  # true exports with at least one of their own canaries in the list
    found_own: int = 0
    # Exports of which only stable canaries survived can only be traced to their account
    # (every export of the account holds those): traced when that account is attributed
    # with the export among its candidates.
    stable_only: int = 0
    stable_only_traced: int = 0
    clean_lists: int = 0
    clean_false: int = 0
    misses: list[str] = field(default_factory=list)
    # Insider diffs: two exports of one list by one account, only the rows both hold.
    diffs: int = 0
    diff_named: int = 0  # the account attributed
    diff_survivable: int = 0  # a stable canary row was still in the published list
    diff_named_survivable: int = 0
    diff_false: int = 0  # an export, or another account, attributed on a diff

    @property
    def recall(self) -> float:
        return self.found / self.true_exports if self.true_exports else 1.0

    @property
    def recall_survivable(self) -> float:
        return self.found_survivable / self.survivable if self.survivable else 1.0

    @property
    def recall_own(self) -> float:
        return self.found_own / self.own_survived if self.own_survived else 1.0

    @property
    def traced(self) -> int:
        return self.found + self.stable_only_traced

    @property
    def recall_traced(self) -> float:
        return self.traced / self.true_exports if self.true_exports else 1.0

    @property
    def precision(self) -> float:
        attributed = self.found + self.false
        return self.found / attributed if attributed else 1.0


def simulate(
    work: Path,
    *,
    hosts: int = 3,
    exports_per_host: int = 3,
    host_rows: int = 3000,
    lists: int = 12,
    diffs: int = 0,
    seed: int = 1,
    db_url: str | None = None,
    log: bool = False,
) -> Score:
    """Seed exports, publish broker lists from them, scan each, score attribution."""
    from canary.pools import parse_owned_domain, parse_owned_phone
    from canary.registry import Registry
    from canary.scan import scan
    from canary.seed import SeedRequest
    from canary.seed import seed as seed_list
    from canary.settings import Settings

    rng = random.Random(seed)
    settings = Settings(
        db=db_url or f"sqlite:///{work / 'registry.db'}",
        seeds_dir=str(REPO / "seeds"),
        actor="leaksim",
    )
    registry = Registry(settings.db, actor="leaksim")
    registry.init()
    numbers = [f"050-3{n:03d}-{4000 + n:04d}" for n in range(100, 220)] + [
        f"090-7{n:03d}-{5000 + n:04d}" for n in range(100, 160)
    ]
    registry.add_phones([parse_owned_phone(n) for n in numbers], "active")
    registry.add_domains([parse_owned_domain("canary-sim.example.jp")])

    exports: list[tuple[str, list[str], list[list[str]], set[int]]] = []
    account_of: dict[str, tuple[str, str, str]] = {}
    own_rows: dict[str, set[int]] = {}  # export → rows of its own (not stable) canaries
    host_files = []
    for h in range(hosts):
        area = AREAS[h % len(AREAS)]
        host = write_host(work / f"host{h}.csv", people(host_rows, rng, area, id_base=10**5))
        host_files.append(host)
        for x in range(exports_per_host):
            out = work / f"host{h}_export{x}.csv"
            res = seed_list(
                registry,
                settings,
                SeedRequest(
                    input=host,
                    output=out,
                    client=f"client{h}",
                    list_name=f"list{h}",
                    account=f"account{h}-{x % 2}",
                    recipient=f"vendor{x}",
                    rng_seed=rng.random(),
                ),
            )
            header, rows = read_seeded(out)
            carried = registry.canaries_of(res.export.code)
            positions = {c.position for c in carried}
            own_rows[res.export.code] = {c.position for c in carried if c.layer != "stable"}
            exports.append((res.export.code, header, rows, positions))
            account_of[res.export.code] = (f"client{h}", f"list{h}", f"account{h}-{x % 2}")
    strangers = people(400, random.Random(seed + 99), AREAS[0], id_base=9 * 10**5)

    score = Score()
    for n in range(lists):
        k = rng.choice([1, 1, 1, 2, 2, 3])
        sources = rng.sample(exports, k=min(k, len(exports)))
        broker = publish(sources, strangers, work, rng, f"broker{n}")
        result = scan(registry, settings.seeds_dir, broker.path, record=False)
        attributed = {f.meta.code for f in result.exports if f.attributed}
        candidates = {c for a in result.accounts if a.attributed for c in a.exports}
        score.lists += 1
        score.true_exports += len(broker.truth)
        score.found += len(attributed & broker.truth)
        score.false += len(attributed - broker.truth)
        own_in: dict[str, int] = {}
        for code in broker.truth:
            own_in[code] = len(broker.kept[code] & own_rows[code])
            if broker.canaries_in.get(code, 0) > 0:
                score.survivable += 1
                score.found_survivable += code in attributed
            if own_in[code]:
                score.own_survived += 1
                score.found_own += code in attributed
            elif broker.canaries_in.get(code, 0) and code not in attributed:
                score.stable_only += 1
                score.stable_only_traced += code in candidates
        missed = broker.truth - attributed
        if missed or attributed - broker.truth:
            score.misses.append(
                f"{broker.path.name} ({broker.description}): missed "
                f"{sorted(missed)} with canaries {broker.canaries_in} (own {own_in}), "
                f"account attributed for {sorted(missed & candidates)}, "
                f"false {sorted(attributed - broker.truth)}"
            )
        if log:
            print(
                f"  {broker.path.name}: {broker.description}; truth {len(broker.truth)}, "
                f"attributed {len(attributed)}",
                file=sys.stderr,
            )
    # Insider diffs: an account's two exports of one list, the rows both hold, published.
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, (code, _, _, _) in enumerate(exports):
        groups.setdefault(account_of[code], []).append(i)
    pairs = [g for g in groups.values() if len(g) >= 2]
    for n in range(diffs if pairs else 0):
        ia, ib = rng.sample(rng.choice(pairs), 2)
        code_a, header, rows_a, canaries_a = exports[ia]
        code_b, _, rows_b, _ = exports[ib]
        in_b = {tuple(r) for r in rows_b}
        kept = [(i, r) for i, r in enumerate(rows_a) if tuple(r) in in_b]
        source = (
            f"{code_a}∩{code_b}",
            header,
            [r for _, r in kept],
            {j for j, (i, _) in enumerate(kept) if i in canaries_a},
        )
        broker = publish([source], strangers, work, rng, f"diff{n}")
        result = scan(registry, settings.seeds_dir, broker.path, record=False)
        key = account_of[code_a]
        named = {(a.client, a.list_name, a.account) for a in result.accounts if a.attributed}
        wrong = sum(1 for f in result.exports if f.attributed) + len(named - {key})
        score.diffs += 1
        score.diff_named += key in named
        score.diff_false += wrong
        if broker.canaries_in.get(source[0], 0) > 0:
            score.diff_survivable += 1
            score.diff_named_survivable += key in named
        if key not in named or wrong:
            score.misses.append(
                f"{broker.path.name} ({broker.description}): diff of {code_a} and {code_b}, "
                f"account {'named' if key in named else 'MISSED'}, {wrong} false; "
                f"stable rows kept {broker.canaries_in}"
            )
        if log:
            print(
                f"  {broker.path.name}: diff of {code_a} and {code_b}, {broker.description}; "
                f"account named: {key in named}",
                file=sys.stderr,
            )
    # Clean lists: the unseeded host lists themselves, and strangers alone.
    strangers_file = work / "strangers.csv"
    write_host(strangers_file, strangers)
    for clean in [*host_files, strangers_file]:
        result = scan(registry, settings.seeds_dir, clean, record=False)
        score.clean_lists += 1
        score.clean_false += sum(1 for f in result.exports if f.attributed)
    registry.close()
    return score


def main() -> None:
    ap = argparse.ArgumentParser(description="Leak simulator: attribution recall and precision.")
    ap.add_argument("--hosts", type=int, default=4, help="Host lists to seed.")
    ap.add_argument("--exports", type=int, default=4, help="Exports per host list.")
    ap.add_argument("--rows", type=int, default=5000, help="Rows per host list.")
    ap.add_argument("--lists", type=int, default=60, help="Broker lists to publish and scan.")
    ap.add_argument(
        "--diffs", type=int, default=12, help="Insider diffs of two exports to publish and scan."
    )
    ap.add_argument("--seed", type=int, default=1, help="Random seed.")
    ap.add_argument("--db", help="Registry URL (default: a SQLite file in a temp folder).")
    args = ap.parse_args()
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="canary-leaksim-") as tmp:
        s = simulate(
            Path(tmp),
            hosts=args.hosts,
            exports_per_host=args.exports,
            host_rows=args.rows,
            lists=args.lists,
            diffs=args.diffs,
            seed=args.seed,
            db_url=args.db,
            log=True,
        )
    print(
        f"broker lists: {s.lists}; leaked exports in them: {s.true_exports} "
        f"({s.survivable} with at least one canary row kept)"
    )
    print(f"recall    {s.recall:.4f}  ({s.found}/{s.true_exports}): the export attributed")
    print(
        f"recall where a canary survived  {s.recall_survivable:.4f}  "
        f"({s.found_survivable}/{s.survivable})"
    )
    print(
        f"recall where one of the export's own canaries survived  {s.recall_own:.4f}  "
        f"({s.found_own}/{s.own_survived})"
    )
    print(
        f"leaks traced  {s.recall_traced:.4f}  ({s.traced}/{s.true_exports}): the export "
        f"attributed, or, where only stable canaries survived ({s.stable_only}), its account "
        f"attributed with it among the candidates ({s.stable_only_traced})"
    )
    print(f"precision {s.precision:.4f}  ({s.false} false attributions)")
    print(f"clean lists: {s.clean_lists}, exports attributed on them: {s.clean_false}")
    print(
        f"insider diffs: {s.diffs}; account attributed {s.diff_named}/{s.diffs}, "
        f"where a stable canary survived {s.diff_named_survivable}/{s.diff_survivable}; "
        f"false attributions {s.diff_false}"
    )
    for m in s.misses:
        print("  " + m)
    print(f"took {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
