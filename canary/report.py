"""A self-contained HTML report of a scan that an investigator can hand on.

Everything shown is escaped; text that came from the scanned file (its name, its column
headers) is also defused against spreadsheet formula injection when copied into Excel.
Labels are in English and Japanese.
"""

from __future__ import annotations

import html
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from canary import __version__
from canary.attribute import P_FIXED, P_PHONE_ALONE, STRENGTH
from canary.errors import OutputError
from canary.scan import ScanResult

_CSS = """
body{font-family:system-ui,"Hiragino Sans","Noto Sans JP",sans-serif;margin:2em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}.yes{color:#b00;font-weight:bold}.mono{font-family:monospace}
.note{color:#555;font-size:.9em}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _untrusted(value: object) -> str:
    """Text from the scanned file: escaped, and never a live spreadsheet formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return _e(text)


def _row(cells: list[str], header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def render(result: ScanResult, generated: datetime | None = None) -> str:
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html><html lang='ja'><head><meta charset='utf-8'>",
        f"<title>Canary scan report / スキャン報告書 — {_untrusted(result.file_name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Canary scan report / 名簿スキャン報告書</h1>",
        f"<p class='note'>Generated {when} by canary {__version__}. "
        "This report holds no personal data from the scanned list: only its hash, counts and "
        "the canaries (fictitious people) found in it. / 本報告書には走査した名簿の個人情報は"
        "含まれません（ハッシュ値・件数・発見されたカナリア（架空の人物）のみ）。</p>",
        "<h2>What was scanned / 走査対象</h2><table>",
    ]
    for label, value in (
        ("File / ファイル名", _untrusted(result.file_name)),
        ("SHA-256", f"<span class='mono'>{_e(result.sha256)}</span>"),
        ("Size / サイズ", f"{result.size:,} bytes"),
        ("Format / 形式", _e(f"{result.kind} {result.encoding or ''}")),
        ("Rows / 行数", f"{result.rows:,}"),
        ("Rows matching a canary / カナリア該当行", f"{result.matched_rows:,}"),
        ("Rows with a pool number only / 番号のみ一致", f"{result.weak_rows:,}"),
        ("Canaries searched / 照合したカナリア数", f"{result.canaries_indexed:,}"),
        ("Attribution threshold / 判定閾値", _e(result.threshold)),
        ("Scan id / スキャンID", _e(result.scan_id or "(not recorded / 未記録)")),
    ):
        parts.append(_row([label, value]))
    parts.append("</table>")
    for w in result.warnings:
        parts.append(f"<p class='yes'>Warning / 注意: {_e(w)}</p>")
    parts.append("<h3>Columns read / 読み取った列</h3><table>")
    for sheet, plan in result.plans.items():
        for key, cols in plan.items():
            parts.append(_row([_untrusted(sheet), _e(key), ", ".join(_untrusted(c) for c in cols)]))
    parts.append("</table>")

    parts.append("<h2>Findings / 判定結果</h2>")
    if not result.exports:
        parts.append("<p>No canary was found. / カナリアは見つかりませんでした。</p>")
    else:
        parts.append(
            "<table>"
            + _row(
                [
                    "Export / 出力ID",
                    "Client / 委託元",
                    "List / 名簿",
                    "Account / アカウント",
                    "Exported / 出力日時",
                    "Recipient / 提供先",
                    "Found / 発見数",
                    "Probability / 漏えい確率",
                    "Attributed / 特定",
                ],
                header=True,
            )
        )
        for f in result.exports:
            m = f.meta
            members = (
                f"<br><small>shared by / 共有者: {_e(', '.join(m.account_members))}</small>"
                if m.account_members
                else ""
            )
            parts.append(
                _row(
                    [
                        f"<span class='mono'>{_e(m.code)}</span>",
                        _e(m.client),
                        _e(m.list_name),
                        _e(m.account) + members,
                        _e(m.created_at.strftime("%Y-%m-%d %H:%M UTC")),
                        _e(m.recipient),
                        f"{f.matched}/{m.canary_count}"
                        + (f" (+{len(f.weak_phones)} numbers)" if f.weak_phones else ""),
                        f"{f.confidence:.6f}",
                        "<span class='yes'>YES / 該当</span>" if f.attributed else "no / 非該当",
                    ]
                )
            )
        parts.append("</table>")
    if result.accounts:
        parts.append(
            "<h3>Accounts named without one export / 出力を特定できないアカウント</h3>"
            "<table>"
            + _row(
                [
                    "Account / アカウント",
                    "Client / 委託元",
                    "List / 名簿",
                    "Exports / 候補出力",
                    "Probability / 確率",
                    "Attributed / 特定",
                ],
                header=True,
            )
        )
        for a in result.accounts:
            parts.append(
                _row(
                    [
                        _e(a.account),
                        _e(a.client),
                        _e(a.list_name),
                        _e(", ".join(a.exports)),
                        f"{a.confidence:.6f}",
                        "YES / 該当" if a.attributed else "no / 非該当",
                    ]
                )
            )
        parts.append("</table>")
        stable = [(a, e) for a in result.accounts for e in a.evidence]
        if stable:
            parts.append(
                "<p>Stable canaries are the same rows in every export of one list by one "
                "account: they survive an insider's diff of two exports and name the account, "
                "not one export. / 固定カナリアは同じアカウントによる同じ名簿の"
                "すべての出力に同じ行で含まれ、出力どうしの差分を取っても残り、"
                "出力ではなくアカウントを示します。</p><table>"
                + _row(
                    [
                        "Account / アカウント",
                        "Canary / カナリア",
                        "Key / 照合キー",
                        "Chance / 偶然の確率",
                        "Rows / 行",
                    ],
                    header=True,
                )
            )
            for a, e in stable:
                parts.append(
                    _row(
                        [
                            _e(a.account),
                            _e(e.name),
                            _e(e.key),
                            f"{e.p:.1e}",
                            _e(", ".join(str(r) for r in e.rows[:20])),
                        ]
                    )
                )
            parts.append("</table>")

    parts.append("<h2>Evidence / 証拠</h2>")
    for f in result.exports:
        if not f.evidence:
            continue
        parts.append(
            f"<h3 class='mono'>{_e(f.meta.code)}</h3><table>"
            + _row(
                [
                    "Canary / カナリア",
                    "Key / 照合キー",
                    "Strength / 強度",
                    "Chance hit p / 偶然一致確率",
                    "Rows in the scanned file / 該当行",
                ],
                header=True,
            )
        )
        for ev in f.evidence:
            rows = ", ".join(str(r) for r in ev.rows[:30]) + (" …" if len(ev.rows) > 30 else "")
            parts.append(_row([_e(ev.name), _e(ev.key), _e(ev.strength), f"{ev.p:.2e}", _e(rows)]))
        if f.weak_phones:
            parts.append(
                _row(
                    [
                        "(pool numbers alone / 番号のみ)",
                        "phone",
                        "weak",
                        f"{P_PHONE_ALONE}",
                        _e(", ".join(f.weak_phones)),
                    ]
                )
            )
        parts.append("</table>")

    parts.append("<h2>Method / 判定方法</h2>")
    parts.append(
        "<p>Each export carries canaries unique to it. Rows of the scanned list are normalised "
        "(full-width characters, every kana form, spaces, hyphens, +81, variant kanji) and "
        "matched by keys of graded strength; a name alone never matches. The probability that "
        "export <i>i</i> leaked follows Papadimitriou and Garcia-Molina (IEEE TKDE 2011): "
        "Pr = 1 − ∏<sub>t</sub> (1 − (1 − p<sub>t</sub>)/|V<sub>t</sub>|), over the canaries "
        "and pool numbers t found, where p<sub>t</sub> is the chance that t was hit without a "
        "leak and V<sub>t</sub> the exports holding t. The threshold is family-wise: an export "
        "is attributed when 1 − Pr ≤ (1 − threshold)/E, E the number of exports in the "
        "registry, because a scan tests every export at once. "
        "/ 各出力には固有のカナリアを埋め込みます。"
        "照合は正規化後に強度別のキーで行い、氏名のみでは一致としません。</p><table>"
        + _row(["Key / キー", "Strength / 強度", "Chance hit p / 偶然一致確率"], header=True)
    )
    for key, strength in STRENGTH.items():
        if key in P_FIXED:
            p = f"{P_FIXED[key]:.0e}"
        else:
            p = (
                "1 − exp(−n·f): n rows at the postcode, f the name's frequency "
                "(×3 for kana, ÷100 for a full address)"
            )
        parts.append(_row([_e(key), _e(strength), _e(p)]))
    parts.append(_row(["pool phone number alone", "weak", f"{P_PHONE_ALONE} (shared by exports)"]))
    parts.append("</table></body></html>")
    return "\n".join(parts)


def check_report_path(path: Path) -> None:
    """Refuse, with the reason, a report path that cannot be written."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"The folder {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"Cannot write into {parent}; choose a folder you can write to.")


def write_report(result: ScanResult, path: Path) -> None:
    """Write the report atomically (never a half-written file)."""
    check_report_path(path)
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(render(result))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
