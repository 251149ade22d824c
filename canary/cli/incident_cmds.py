"""canary events list, canary incidents list/show: what the monitors stored, as an
investigator reads it (a table on a wide terminal, two lines an event otherwise, or JSON)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.table import Table

from canary.alerts.messages import CHANNEL_JA, CLASS_JA, STRENGTH_JA
from canary.cli.common import AppContext, console, handle_errors, print_json
from canary.cli.roles import require_role
from canary.events import CHANNELS, CLASSIFICATIONS, EventRecord


def when_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _verdict(attributed: bool) -> str:
    return "[bold red]ATTRIBUTED 特定[/bold red]" if attributed else "not yet 未判定"


def class_label(classification: str) -> str:
    style = {"suspicious": "bold red", "expected": "green", "noise": "dim"}.get(classification)
    label = f"{classification} {CLASS_JA.get(classification, '')}".strip()
    return f"[{style}]{label}[/{style}]" if style else label


WIDE = 140  # columns from which events print as a table


def _print_events(events: list[EventRecord]) -> None:
    """A table on a wide terminal; else two lines per event, which read at any width:
    when, how, who → which token; then the verdict, how strong, why, and the exports."""
    out = console()
    exports = {
        e.id: ", ".join(e.exports[:5]) + (" …" if len(e.exports) > 5 else "") for e in events
    }
    if out.width >= WIDE:
        table = Table()
        for header, keep in (
            ("event", True),
            ("time (UTC) 日時", True),
            ("channel 経路", True),
            ("source 発信元", True),
            ("target 宛先", True),
            ("class / strength 判定 / 強さ", False),
            ("exports", False),
            ("reason 理由", False),
        ):
            table.add_column(header, no_wrap=keep)  # ids, times and tokens are never split
        for e in events:
            table.add_row(
                str(e.id),
                when_utc(e.occurred_at),
                f"{e.channel} {CHANNEL_JA.get(e.channel, '')}",
                e.source or "—",
                e.target,
                f"{class_label(e.classification)} / {e.strength} {STRENGTH_JA.get(e.strength, '')}",
                exports[e.id],
                e.reason,
            )
        out.print(table)
        return
    for e in events:
        out.print(
            f"[bold]#{e.id}[/bold]  {when_utc(e.occurred_at)} UTC  "
            f"{e.channel} {CHANNEL_JA.get(e.channel, '')}  {e.source or '—'} → {e.target}"
        )
        out.print(
            f"      {class_label(e.classification)}, {e.strength} "
            f"{STRENGTH_JA.get(e.strength, '')}: {e.reason}"
            + (f" (exports {exports[e.id]})" if exports[e.id] else "")
        )


# -- canary events list ----------------------------------------------------------------------


@click.group("events")
def events_group() -> None:
    """Stored events: every contact with a token, classified."""


@events_group.command("list")
@click.option(
    "--classification", type=click.Choice(CLASSIFICATIONS), help="Only events of this class."
)
@click.option("--channel", type=click.Choice(CHANNELS), help="Only events of this channel.")
@click.option("--export", "export_id", help="Only events pointing at this export.")
@click.option("--incident", help="Only the events of this incident.")
@click.option("--limit", type=int, default=50, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON.")
@click.pass_obj
@handle_errors
def events_list(
    app: AppContext,
    classification: str | None,
    channel: str | None,
    export_id: str | None,
    incident: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List events, newest first."""
    require_role(app, "events:read")
    events = app.registry().events(
        limit=limit if limit > 0 else None,
        classification=classification,
        channel=channel,
        export=export_id,
        incident=incident,
    )
    if as_json:
        print_json({"events": [e.as_json() for e in events]})
        return
    if not events:
        console().print("No events match. 該当するイベントはありません。")
        return
    _print_events(events)


# -- canary incidents ------------------------------------------------------------------------


@click.group("incidents")
def incidents_group() -> None:
    """Incidents: the suspicious events that point at one export or account."""


@incidents_group.command("list")
@click.option("--status", type=click.Choice(["open", "closed"]), help="Only incidents so.")
@click.option("--json", "as_json", is_flag=True, help="Print incidents as JSON.")
@click.pass_obj
@handle_errors
def incidents_list(app: AppContext, status: str | None, as_json: bool) -> None:
    """List incidents, most likely leak first."""
    require_role(app, "events:read")
    incidents = app.registry().incidents(status)
    if as_json:
        print_json({"incidents": [i.as_json() for i in incidents]})
        return
    if not incidents:
        console().print("No incidents. インシデントはありません。")
        return
    out = console()
    if out.width >= WIDE:
        table = Table()
        for header, keep in (
            ("incident", True),
            ("status 状態", False),
            ("export / account 該当", True),
            ("client / list 委託元 / 名簿", False),
            ("events", False),
            ("confidence 確からしさ", True),
            ("verdict 判定", False),
            ("last seen (UTC)", True),
        ):
            table.add_column(header, no_wrap=keep)
        for i in incidents:
            table.add_row(
                i.code,
                i.status,
                i.export or f"account {i.account}",
                " / ".join(p for p in (i.client, i.list_name) if p) or "—",
                str(i.events),
                f"{i.confidence:.6f}",
                _verdict(i.attributed),
                when_utc(i.last_seen),
            )
        out.print(table)
        return
    for i in incidents:
        place = " / ".join(p for p in (i.client, i.list_name) if p) or "?"
        subject = f"export {i.export}" if i.export else f"account {i.account} (several exports)"
        out.print(
            f"[bold]{i.code}[/bold]  {i.status}  {_verdict(i.attributed)}  "
            f"confidence 確からしさ {i.confidence:.6f}"
        )
        out.print(
            f"      {subject} — {place}, account {i.account}; {i.events} event(s), "
            f"last {when_utc(i.last_seen)} UTC"
        )


@incidents_group.command("show")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print the incident and its events as JSON.")
@click.pass_obj
@handle_errors
def incidents_show(app: AppContext, code: str, as_json: bool) -> None:
    """Show one incident: what it points at, how sure, and every event behind it."""
    require_role(app, "events:read")
    incident, events = app.registry().incident(code)
    if as_json:
        print_json(incident.as_json() | {"evidence": [e.as_json() for e in events]})
        return
    out = console()
    verdict = (
        "[bold red]ATTRIBUTED — the leak is named 漏えい元と判定[/bold red]"
        if incident.attributed
        else "not yet attributed 未判定"
    )
    out.print(f"[bold]{incident.code}[/bold]  {incident.status}  {verdict}")
    facts = Table.grid(padding=(0, 2))  # aligns Japanese labels by their display width
    for label, value in (
        ("subject 対象", incident.subject),
        ("export エクスポート", incident.export or "—"),
        ("candidates 候補", ", ".join(incident.candidates) or "—"),
        ("account アカウント", incident.account),
        ("client 委託元", incident.client or "—"),
        ("list 名簿", incident.list_name or "—"),
        ("confidence 確からしさ", f"{incident.confidence:.6f}"),
        ("first seen 初回 (UTC)", when_utc(incident.first_seen)),
        ("last seen 最終 (UTC)", when_utc(incident.last_seen)),
        ("events イベント数", str(incident.events)),
    ):
        facts.add_row(f"  {label}", value)
    out.print(facts)
    out.print(f"evidence 証拠: {len(events)} event(s)")
    _print_events(events)
    if incident.export:
        out.print(f"The export: canary exports show {incident.export}")
