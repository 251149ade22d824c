"""canary import cdr, canary event add, canary events list, canary incidents list/show,
canary alerts send: contacts with canaries, as stored events and incidents."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.table import Table

from canary.alerts.messages import CHANNEL_JA, CLASS_JA, STRENGTH_JA
from canary.cli.common import AppContext, console, err_console, handle_errors, print_json
from canary.errors import CanaryError, InputError
from canary.events import CHANNELS, CLASSIFICATIONS, PHONE_CHANNELS, EventRecord
from canary.normalize import phone_e164

MANUAL_CHANNELS = ("postal", "manual", "call", "sms", "email")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _verdict(attributed: bool) -> str:
    return "[bold red]ATTRIBUTED 特定[/bold red]" if attributed else "not yet 未判定"


def _class_label(classification: str) -> str:
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
                _when(e.occurred_at),
                f"{e.channel} {CHANNEL_JA.get(e.channel, '')}",
                e.source or "—",
                e.target,
                f"{_class_label(e.classification)} / {e.strength} "
                f"{STRENGTH_JA.get(e.strength, '')}",
                exports[e.id],
                e.reason,
            )
        out.print(table)
        return
    for e in events:
        out.print(
            f"[bold]#{e.id}[/bold]  {_when(e.occurred_at)} UTC  "
            f"{e.channel} {CHANNEL_JA.get(e.channel, '')}  {e.source or '—'} → {e.target}"
        )
        out.print(
            f"      {_class_label(e.classification)}, {e.strength} "
            f"{STRENGTH_JA.get(e.strength, '')}: {e.reason}"
            + (f" (exports {exports[e.id]})" if exports[e.id] else "")
        )


# -- canary import cdr -----------------------------------------------------------------------


@click.group("import")
def import_group() -> None:
    """Import contacts with canaries from files other systems write."""


@import_group.command("cdr")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "asterisk", "simple"]),
    default="auto",
    show_default=True,
    help="asterisk: a Master.csv of cdr_csv (no header); simple: a CSV with the header "
    "time,from,to,duration,kind; auto: tell by the first line.",
)
@click.option(
    "--tz",
    default="Asia/Tokyo",
    show_default=True,
    help="Time zone of times written without an offset (Asterisk writes local time).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts and row errors as JSON.")
@click.pass_obj
@handle_errors
def import_cdr_cmd(app: AppContext, file: Path, fmt: str, tz: str, as_json: bool) -> None:
    """Record every call or SMS of a call-detail file (CDR) as an event, once.

    Importing the same file again, or a later file that overlaps it, stores nothing twice.
    Rows that cannot be read are listed with their line number; the others are imported.
    Files may be UTF-8 or CP932 (Shift_JIS).
    """
    from canary.cdr import import_cdr

    result = import_cdr(app.registry(), file, app.settings, fmt=fmt, tz=tz)
    if as_json:
        print_json(result.as_json())
    else:
        c = result.counts
        console().print(
            f"[bold]{result.file}[/bold] ({result.format}, {result.encoding}): "
            f"{result.rows:,} record(s); {result.stored:,} stored — "
            f"{c.get('suspicious', 0):,} suspicious 不審, "
            f"{c.get('expected', 0):,} expected 想定内, {c.get('noise', 0):,} noise ノイズ; "
            f"{result.duplicates:,} already stored 登録済み."
        )
        err = err_console()
        for e in result.errors:
            err.print(f"line {e.line}: {e.reason}", markup=False, highlight=False)
        if c.get("suspicious"):
            console().print("See the incidents: canary incidents list")
    if result.stopped:
        raise CanaryError(
            f"The import stopped at {result.stopped}; run the same command again: rows "
            "already stored are not stored twice."
        )
    if not result.ok:
        raise InputError(
            f"No record of {result.file} could be imported ({len(result.errors)} unreadable); "
            "check the format (--format) and the reasons above."
        )


# -- canary event add ------------------------------------------------------------------------


@click.group("event")
def event_group() -> None:
    """Record one contact with a canary by hand (a letter, a call reported by phone)."""


@event_group.command("add")
@click.option(
    "--channel",
    type=click.Choice(MANUAL_CHANNELS),
    required=True,
    help="postal: a letter addressed to a canary's name; manual: any other report; "
    "call, sms, email: a contact seen outside the monitors.",
)
@click.option(
    "--to",
    "target",
    required=True,
    help="The token contacted: the canary's name on a letter, a phone number, an address.",
)
@click.option("--from", "source", help="Who made the contact: caller ID, sender, company.")
@click.option(
    "--at",
    "when",
    help="When it happened, ISO 8601 (e.g. 2026-11-01T10:00); without an offset in "
    "Asia/Tokyo. Default: now.",
)
@click.option("--text", help="What the contact said or wrote (kept as evidence, capped).")
@click.option("--note", help="A note of the person recording it.")
@click.option("--address", help="The postal address the letter was sent to.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored event as JSON.")
@click.pass_obj
@handle_errors
def event_add(
    app: AppContext,
    channel: str,
    target: str,
    source: str | None,
    when: str | None,
    text: str | None,
    note: str | None,
    address: str | None,
    as_json: bool,
) -> None:
    """Record one contact with a canary; a suspicious one opens or joins an incident."""
    from canary.alerts.store import incidents_of_event
    from canary.cdr import DEFAULT_TZ, parse_time, zone
    from canary.events import EventDraft

    if when:
        try:
            moment = parse_time(when, zone(DEFAULT_TZ))
        except ValueError:
            raise InputError(
                f"--at {when!r} is not an ISO 8601 time, e.g. 2026-11-01T10:00."
            ) from None
    else:
        moment = datetime.now(UTC)
    details = {k: v for k, v in (("note", note), ("address", address)) if v}
    if source and channel in PHONE_CHANNELS:
        # One caller is one source across channels: the same form as webhooks and CDRs.
        source = phone_e164(source) or source.strip()
    # No provider id: the event is known by the hash of what was entered.
    payload = json.dumps(
        {"channel": channel, "to": target, "from": source, "at": moment.isoformat(), "text": text}
        | details,
        sort_keys=True,
        ensure_ascii=False,
    ).encode("utf-8")
    draft = EventDraft(
        channel=channel,
        target=target,
        occurred_at=moment,
        provider="manual",
        payload=payload,
        source=source,
        text=text,
        details=details,
    )
    settings = app.settings
    registry = app.registry()
    event = registry.record_event(
        draft,
        grace=timedelta(hours=settings.expect_grace_hours),
        threshold=settings.event_threshold,
    )
    incidents = incidents_of_event(registry, event.id)
    if as_json:
        print_json(event.as_json() | {"incidents": incidents})
        return
    out = console()
    verb = "Already recorded as" if event.duplicate else "Recorded"
    out.print(f"{verb} event {event.id}: {_class_label(event.classification)} — {event.reason}")
    if event.exports:
        out.print(f"  points at export(s) 該当エクスポート: {', '.join(event.exports)}")
    for code in incidents:
        out.print(f"  incident インシデント {code}: canary incidents show {code}")


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
                _when(i.last_seen),
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
            f"last {_when(i.last_seen)} UTC"
        )


@incidents_group.command("show")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print the incident and its events as JSON.")
@click.pass_obj
@handle_errors
def incidents_show(app: AppContext, code: str, as_json: bool) -> None:
    """Show one incident: what it points at, how sure, and every event behind it."""
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
        ("first seen 初回 (UTC)", _when(incident.first_seen)),
        ("last seen 最終 (UTC)", _when(incident.last_seen)),
        ("events イベント数", str(incident.events)),
    ):
        facts.add_row(f"  {label}", value)
    out.print(facts)
    out.print(f"evidence 証拠: {len(events)} event(s)")
    _print_events(events)
    if incident.export:
        out.print(f"The export: canary exports show {incident.export}")


# -- canary alerts send ----------------------------------------------------------------------


@click.group("alerts")
def alerts_group() -> None:
    """Alerts about suspicious events: mail, Slack, Teams, JSON webhooks, a SIEM."""


@alerts_group.command("send")
@click.option("--json", "as_json", is_flag=True, help="Print what was sent as JSON.")
@click.pass_obj
@handle_errors
def alerts_send(app: AppContext, as_json: bool) -> None:
    """Deliver the pending alerts once (the scheduler does this by itself).

    At most CANARY_ALERT_RATE alerts go out one by one per hour and output; the rest go as
    one digest. An alert an output did not take stays pending and is retried next time.
    With CANARY_ALERT_SIEM=stdout the JSON lines go to stdout and this summary to stderr.
    """
    from canary.alerts import dispatch

    result = dispatch(app.registry(), app.settings)
    # With CANARY_ALERT_SIEM=stdout, stdout carries the SIEM's JSON lines only.
    siem_on_stdout = app.settings.alert_siem.strip() == "stdout"
    out = err_console() if siem_on_stdout else console()
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False, indent=2), err=siem_on_stdout)
    else:
        for o in result.outputs:
            line = f"{o.name}: {o.alone} alone, {o.digests} digest(s) of {o.in_digests}"
            if o.error:
                line += f"; {o.failed} not delivered: {o.error}"
            out.print(line, markup=False)
        out.print(
            f"{result.delivered} alert(s) delivered 送信済み, {result.pending_after} pending "
            "未送信.",
        )
    if result.skipped:
        raise CanaryError(f"No alert was sent: {result.skipped}.")
    if result.failed:
        raise CanaryError(
            "Some alerts were not delivered and stay pending; fix the output named above "
            "and run `canary alerts send` again."
        )


GROUPS = (import_group, event_group, events_group, incidents_group, alerts_group)
