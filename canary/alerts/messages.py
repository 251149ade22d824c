"""What an alert says, in English and Japanese: what happened, which export (account, client,
list) it points at, how sure we are, the incident, and the command that shows more.

One ``AlertMessage`` is rendered by every output in its own way (mail text, Slack blocks,
a Teams card, JSON lines); the wording lives here only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from canary.events import EventRecord
from canary.registry.incidents import IncidentRecord

CHANNEL_EN = {
    "call": "call",
    "sms": "SMS",
    "email": "mail",
    "smtp_probe": "SMTP probe",
    "dns": "DNS lookup",
    "postal": "letter",
    "manual": "reported contact",
}
CHANNEL_JA = {
    "call": "着信",
    "sms": "SMS",
    "email": "メール",
    "smtp_probe": "SMTP 確認",
    "dns": "DNS 照会",
    "postal": "郵便",
    "manual": "手動報告",
}
CLASS_JA = {"expected": "想定内", "suspicious": "不審", "noise": "ノイズ"}
STRENGTH_JA = {"strong": "強", "medium": "中", "weak": "弱", "none": "なし"}
DIGEST_LINES = 50  # events listed in a digest's text; the JSON carries all
_JST = ZoneInfo("Asia/Tokyo")


@dataclass(frozen=True)
class AlertItem:
    """One pending alert: the suspicious event and the incident it was filed into."""

    alert_id: int
    event: EventRecord
    incident: IncidentRecord | None

    def as_json(self) -> dict[str, object]:
        event = self.event.as_json()
        details = dict(self.event.details)
        details.pop("text", None)  # what a caller said stays in the registry
        event["details"] = details
        return {
            "alert_id": self.alert_id,
            "event": event,
            "incident": self.incident.as_json() if self.incident else None,
            "command": more_command(self),
        }


@dataclass(frozen=True)
class AlertMessage:
    """A message for humans (subject, text, facts) and machines (data)."""

    kind: str  # alert | digest | notice
    subject: str
    text: str  # English, then Japanese
    facts: list[tuple[str, str]] = field(default_factory=list)
    items: Sequence[AlertItem] = ()
    digest_id: str | None = None
    data: dict[str, object] = field(default_factory=dict)


def utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def jst(moment: datetime) -> str:
    return moment.astimezone(_JST).strftime("%Y-%m-%d %H:%M 日本時間")


def more_command(item: AlertItem) -> str:
    if item.incident is not None:
        return f"canary incidents show {item.incident.code}"
    return f"canary events list --channel {item.event.channel} --classification suspicious"


def _where(incident: IncidentRecord) -> tuple[str, str]:
    """The export (or account) an incident points at, in English and Japanese."""
    place = " / ".join(p for p in (incident.client, incident.list_name) if p)
    if incident.export:
        account = incident.account
        en = f"export {incident.export} ({place or 'unknown list'}, account {account})"
        ja = f"エクスポート {incident.export}（{place or '名簿不明'}、アカウント {account}）"
    else:
        codes = ", ".join(incident.candidates) or "?"
        en = f"account {incident.account}, one of its exports {codes}"
        ja = f"アカウント {incident.account}（候補のエクスポート {codes}）"
    return en, ja


def alert_message(item: AlertItem) -> AlertMessage:
    """The message of one alert, sent alone."""
    e, inc = item.event, item.incident
    what_en = f"Suspicious {CHANNEL_EN.get(e.channel, e.channel)}"
    what_ja = f"不審な{CHANNEL_JA.get(e.channel, e.channel)}"
    source = f" from {e.source}" if e.source else ""
    source_ja = f"（発信元 {e.source}）" if e.source else ""
    en = [f"{what_en} to the canary token {e.target}{source} at {utc(e.occurred_at)}."]
    ja = [f"{what_ja}: カナリアのトークン {e.target} への接触{source_ja}、{jst(e.occurred_at)}。"]
    en.append(f"Why ({e.strength} sign): {e.reason}")
    ja.append(f"理由: {e.reason}（証拠の強さ: {STRENGTH_JA.get(e.strength, e.strength)}）")
    facts = [
        ("What / 内容", f"{what_en} / {what_ja}"),
        ("Token / トークン", e.target),
        ("Source / 発信元", e.source or "—"),
        ("Time / 日時", f"{utc(e.occurred_at)} / {jst(e.occurred_at)}"),
    ]
    if inc is not None:
        where_en, where_ja = _where(inc)
        verdict_en = "attributed: the leak is named" if inc.attributed else "not yet attributed"
        verdict_ja = "漏えい元と判定" if inc.attributed else "まだ判定に至らず"
        en += [
            f"Points at {where_en}.",
            f"Confidence {inc.confidence:.3f} — {verdict_en}.",
            f"Incident {inc.code} ({inc.events} event(s)). More: {more_command(item)}",
        ]
        ja += [
            f"該当: {where_ja}。",
            f"確からしさ {inc.confidence:.3f} — {verdict_ja}。",
            f"インシデント {inc.code}（イベント {inc.events} 件）。詳細: {more_command(item)}",
        ]
        facts += [
            ("Points at / 該当", f"{where_en} / {where_ja}"),
            ("Confidence / 確からしさ", f"{inc.confidence:.3f} ({verdict_en} / {verdict_ja})"),
            ("Incident / インシデント", inc.code),
        ]
        subject_tail = f"{inc.export or 'account ' + inc.account}, incident {inc.code}"
    else:
        held = len(e.exports)
        en.append(
            f"No incident yet: {held} export(s) hold this token, too many to tell apart. "
            f"More: {more_command(item)}"
        )
        ja.append(
            f"インシデント未作成: このトークンを持つエクスポートが {held} 件あり、"
            f"まだ絞り込めません。詳細: {more_command(item)}"
        )
        subject_tail = f"{held} export(s) hold {e.target}"
    facts.append(("More / 詳細", more_command(item)))
    return AlertMessage(
        kind="alert",
        subject=f"[canary] {what_en}: {subject_tail} / {what_ja}",
        text="\n".join(en) + "\n\n" + "\n".join(ja) + "\n",
        facts=facts,
        items=[item],
        data={"type": "canary.alert", **item.as_json()},
    )


def digest_message(items: Sequence[AlertItem], digest_id: str) -> AlertMessage:
    """One message bundling the alerts past the hourly rate."""
    incidents = {i.incident.code: i.incident for i in items if i.incident is not None}
    attributed = [inc for inc in incidents.values() if inc.attributed]
    en = [
        f"{len(items)} suspicious event(s) in {len(incidents)} incident(s), bundled because "
        f"more alerts came in than the hourly rate allows; {len(attributed)} incident(s) "
        "attributed."
    ]
    ja = [
        f"不審なイベント {len(items)} 件（インシデント {len(incidents)} 件、うち漏えい元判定 "
        f"{len(attributed)} 件）。1 時間あたりの通知数を超えたため、まとめて通知します。"
    ]
    lines = []
    for inc in sorted(incidents.values(), key=lambda i: -i.confidence):
        where_en, _ = _where(inc)
        mark = "ATTRIBUTED" if inc.attributed else "open"
        lines.append(
            f"{inc.code}  {where_en}  confidence {inc.confidence:.3f} {mark}: "
            f"canary incidents show {inc.code}"
        )
    for it in list(items)[:DIGEST_LINES]:
        e = it.event
        lines.append(
            f"  {utc(e.occurred_at)}  {CHANNEL_EN.get(e.channel, e.channel)} to {e.target}"
            f"{' from ' + e.source if e.source else ''}  "
            f"{it.incident.code if it.incident else 'no incident'}"
        )
    if len(items) > DIGEST_LINES:
        lines.append(
            f"  … and {len(items) - DIGEST_LINES} more / ほか {len(items) - DIGEST_LINES} 件: "
            "canary events list --classification suspicious"
        )
    body = "\n".join(en) + "\n" + "\n".join(ja) + "\n\n" + "\n".join(lines) + "\n"
    return AlertMessage(
        kind="digest",
        subject=f"[canary] Digest: {len(items)} suspicious event(s) / 不審なイベント "
        f"{len(items)} 件のまとめ",
        text=body,
        facts=[
            ("Events / イベント", str(len(items))),
            ("Incidents / インシデント", ", ".join(incidents) or "—"),
            ("Attributed / 判定済み", ", ".join(i.code for i in attributed) or "—"),
            ("More / 詳細", "canary incidents list"),
        ],
        items=list(items),
        digest_id=digest_id,
        data={
            "type": "canary.digest",
            "digest_id": digest_id,
            "alerts": [i.as_json() for i in items],
        },
    )


def notice(subject: str, text: str, data: dict[str, object] | None = None) -> AlertMessage:
    """A message that is not about one event (a daily digest, a failing monitor)."""
    return AlertMessage(
        kind="notice",
        subject=subject,
        text=text,
        data={"type": "canary.notice", "subject": subject, "text": text, **(data or {})},
    )
