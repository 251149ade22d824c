"""canary import cdr, canary event add, canary alerts send: contacts with canaries recorded
from files and by hand, and the alerts about them. ``GROUPS`` holds every events command
group the CLI registers (events list and incidents live in ``incident_cmds``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from canary.cli.common import AppContext, console, err_console, handle_errors, print_json
from canary.cli.incident_cmds import class_label, events_group, incidents_group
from canary.cli.roles import require_role
from canary.errors import CanaryError, InputError
from canary.events import PHONE_CHANNELS
from canary.normalize import phone_e164

MANUAL_CHANNELS = ("postal", "manual", "call", "sms", "email")


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

    require_role(app, "events:write")
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

    require_role(app, "events:write")
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
    out.print(f"{verb} event {event.id}: {class_label(event.classification)} — {event.reason}")
    if event.exports:
        out.print(f"  points at export(s) 該当エクスポート: {', '.join(event.exports)}")
    for code in incidents:
        out.print(f"  incident インシデント {code}: canary incidents show {code}")


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

    require_role(app, "events:read")
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
