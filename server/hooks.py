"""Webhooks: telephony providers and a generic signed JSON hook turn contacts into events.

    POST /hooks/twilio/voice   a call to a pool number (voice URL, status callback,
                               recording action, transcription callback)
    POST /hooks/twilio/sms     an SMS to a pool number (messaging URL, status callback)
    POST /hooks/events         any other provider: signed JSON, one event or {"events": [...]}

Every request is authenticated before anything is read into an event: a forged, unsigned
or replayed request is answered 403 with a reason, logged with the caller's address and
never stored. A signed but malformed one is answered 400 with a reason and nothing is stored.

Twilio sends one request per state of a call with the same CallSid, so a call's event id is
``<CallSid>:<CallStatus>`` (ringing for the first request): each state the investigator
may need (the call came in; it lasted 40 s; a message was left; what it said) is one event,
and a redelivery of the same state is a duplicate. The recording and its transcription are
``<CallSid>:recording`` and ``<CallSid>:transcription``. An inbound SMS is its MessageSid.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from canary.errors import InvalidEventError
from canary.events import CHANNELS, EventDraft, EventRecord, normalise_target
from server.app import events_of, settings_of
from server.auth import client_address
from server.signatures import ReplayGuard, generic_problem, replay_folder, twilio_valid

log = logging.getLogger("canary.server.hooks")
bp = Blueprint("hooks", __name__, url_prefix="/hooks")

HOOK_MAX_BYTES = 1024 * 1024  # a webhook is small; a batch of 1,000 events fits
BATCH_LIMIT = 1000
DETAILS_LIMIT = 4096  # characters of a generic event's details, as JSON
RESERVED_DETAILS = ("text", "p", "canaries")  # set by the events core
GENERIC_FIELDS = ("id", "channel", "to", "from", "time", "text", "details", "provider")
PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,19}$")

# A plain answering machine: the caller must not learn that the number is watched. Twilio's
# default voice speaks no Japanese (voice and language must match), so a Japanese Polly voice.
# Twilio's <Record> transcription is made for English: a Japanese message may come back with
# no usable text; the recording (kept at Twilio) is then the evidence an investigator hears.
VOICEMAIL = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    "<Response>"
    '<Say voice="Polly.Mizuki" language="ja-JP">ただいま電話に出ることができません。'
    "発信音のあとに、お名前とご用件をお話しください。</Say>"
    '<Record action="voice" method="POST" maxLength="60" playBeep="true" '
    'transcribe="true" transcribeCallback="voice"/>'
    "<Hangup/>"
    "</Response>"
)
HANGUP = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'
EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@bp.before_request
def _small_bodies() -> None:
    request.max_content_length = HOOK_MAX_BYTES


def refuse(reason: str, status: int = 403) -> tuple[Response, int]:
    log.warning("refused %s from %s: %s", request.path, client_address(), reason)
    return jsonify({"error": reason}), status


def record(draft: EventDraft) -> EventRecord:
    """Store one event; answered only once it is committed (with other requests' events)."""
    return events_of().record([draft])[0]


def _xml(body: str) -> Response:
    return Response(body, mimetype="text/xml")


# -- Twilio ---------------------------------------------------------------------------------


def called_url() -> str:
    """The URL as Twilio called it: CANARY_PUBLIC_URL + path + query, else the request's."""
    public = settings_of().public_url.rstrip("/")
    if not public:
        return request.url
    query = request.query_string.decode("utf-8", "replace")
    return public + request.path + (f"?{query}" if query else "")


def _twilio_refusal() -> tuple[Response, int] | None:
    token = settings_of().twilio_auth_token
    if not token:
        log.error("Twilio webhooks are refused: set CANARY_TWILIO_AUTH_TOKEN to the auth token.")
        return refuse("This server has no Twilio auth token; it refuses Twilio webhooks.")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return refuse("The request has no X-Twilio-Signature.")
    body = request.get_data(cache=True)
    params = list(request.form.items(multi=True))
    if not twilio_valid(token, called_url(), params, signature, body):
        return refuse(
            "X-Twilio-Signature does not match; check the auth token and CANARY_PUBLIC_URL."
        )
    return None


def _twilio_time(form: Mapping[str, str], now: datetime) -> datetime:
    """Twilio's ``Timestamp`` (RFC 2822, on status callbacks) where given, else now."""
    raw = (form.get("Timestamp") or "").strip()
    if raw:
        try:
            moment = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            try:
                moment = datetime.fromisoformat(raw)
            except ValueError:
                log.warning("unreadable Twilio Timestamp %r; using the time received", raw)
                return now
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    return now


def _need(form: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = (form.get(name) or "").strip()
        if value:
            return value
    raise InvalidEventError(f"The Twilio request has no {names[0]}.")


def _small(pairs: dict[str, str | None]) -> dict[str, object]:
    return {k: v for k, v in pairs.items() if v}


def voice_draft(form: Mapping[str, str], payload: bytes, now: datetime) -> tuple[str, EventDraft]:
    """(kind, event) of a Twilio voice request: kind is call, recording or transcription."""
    sid = _need(form, "CallSid")
    if form.get("TranscriptionSid") or form.get("TranscriptionStatus"):
        kind, pid = "transcription", f"{sid}:transcription"
    elif form.get("RecordingSid") or form.get("RecordingUrl"):
        kind, pid = "recording", f"{sid}:recording"
    else:
        kind, pid = "call", f"{sid}:{(form.get('CallStatus') or 'ringing').strip().lower()}"
    details = _small(
        {
            "status": form.get("CallStatus"),
            "direction": form.get("Direction"),
            "duration": form.get("CallDuration"),
            "recording_sid": form.get("RecordingSid"),
            "recording_duration": form.get("RecordingDuration"),
            "transcription_status": form.get("TranscriptionStatus"),
        }
    )
    draft = EventDraft(
        channel="call",
        target=_need(form, "To", "Called"),
        occurred_at=_twilio_time(form, now),
        provider="twilio",
        payload=payload,
        source=(form.get("From") or form.get("Caller") or "").strip() or None,
        provider_id=pid,
        text=(form.get("TranscriptionText") or "").strip() or None,
        details=details,
    )
    return kind, draft


def _media(count: str | None) -> str | None:
    """How many pictures an MMS carried (their URLs are the sender's data and not kept)."""
    return None if (count or "0").strip() == "0" else count


def sms_draft(form: Mapping[str, str], payload: bytes, now: datetime) -> EventDraft:
    """The event of a Twilio messaging request (inbound SMS or a status callback)."""
    sid = _need(form, "MessageSid", "SmsSid", "SmsMessageSid")
    status = (form.get("SmsStatus") or form.get("MessageStatus") or "received").strip().lower()
    return EventDraft(
        channel="sms",
        target=_need(form, "To"),
        occurred_at=_twilio_time(form, now),
        provider="twilio",
        payload=payload,
        source=(form.get("From") or "").strip() or None,
        provider_id=sid if status == "received" else f"{sid}:{status}",
        text=form.get("Body") or None,
        details=_small({"status": status, "media": _media(form.get("NumMedia"))}),
    )


@bp.post("/twilio/voice")
def twilio_voice() -> Any:
    refusal = _twilio_refusal()
    if refusal is not None:
        return refusal
    kind, draft = voice_draft(request.form, request.get_data(), datetime.now(UTC))
    event = record(draft)
    log.info("twilio %s %s: event %s %s", kind, draft.provider_id, event.id, event.classification)
    if kind == "recording":
        return _xml(HANGUP)
    if kind == "call" and (request.form.get("CallStatus") or "ringing") in ("ringing", "queued"):
        return _xml(VOICEMAIL)
    return _xml(EMPTY)


@bp.post("/twilio/sms")
def twilio_sms() -> Any:
    refusal = _twilio_refusal()
    if refusal is not None:
        return refusal
    draft = sms_draft(request.form, request.get_data(), datetime.now(UTC))
    event = record(draft)
    log.info("twilio sms %s: event %s %s", draft.provider_id, event.id, event.classification)
    return _xml(EMPTY)


# -- the generic signed JSON hook -----------------------------------------------------------


def _replays() -> ReplayGuard:
    guard: ReplayGuard | None = current_app.extensions.get("canary.replays")
    if guard is None:
        settings = settings_of()
        guard = ReplayGuard(replay_folder(settings.db, settings.webhook_secret))
        current_app.extensions["canary.replays"] = guard
    return guard


def _generic_time(raw: object, where: str, now: datetime) -> datetime:
    if not isinstance(raw, str):
        raise InvalidEventError(f'{where}"time" must be an ISO 8601 string with a UTC offset.')
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidEventError(f'{where}"time" {raw!r} is not an ISO 8601 time.') from None
    if moment.tzinfo is None:
        raise InvalidEventError(f'{where}"time" {raw!r} has no UTC offset; add Z or +09:00.')
    if moment > now + timedelta(days=1):
        raise InvalidEventError(f'{where}"time" {raw!r} is in the future; check the clock.')
    return moment.astimezone(UTC)  # stored and sealed in UTC


def generic_draft(item: object, payload: bytes, now: datetime, where: str = "") -> EventDraft:
    """One event of the generic hook; InvalidEventError says what is wrong with it."""
    if not isinstance(item, dict):
        raise InvalidEventError(f"{where}An event must be a JSON object.")
    unknown = sorted(set(item) - set(GENERIC_FIELDS))
    if unknown:
        raise InvalidEventError(
            f"{where}Unknown field(s) {', '.join(unknown)}; the fields are "
            f"{', '.join(GENERIC_FIELDS)}."
        )
    missing = [k for k in ("id", "channel", "to", "from", "time") if k not in item]
    if missing:
        raise InvalidEventError(f"{where}Missing field(s): {', '.join(missing)}.")
    pid = item["id"]
    if isinstance(pid, bool) or not isinstance(pid, str | int) or not str(pid).strip():
        raise InvalidEventError(f'{where}"id" must be the provider\'s id, a non-empty string.')
    if len(str(pid)) > 200:
        raise InvalidEventError(f'{where}"id" is longer than 200 characters.')
    channel, target, source = item["channel"], item["to"], item["from"]
    if not isinstance(channel, str) or channel not in CHANNELS:
        raise InvalidEventError(f'{where}"channel" must be one of {", ".join(CHANNELS)}.')
    if not isinstance(target, str):
        raise InvalidEventError(f'{where}"to" must be a string: the token contacted.')
    normalise_target(channel, target)  # refuses a bad number or address before storing
    if source is not None and not isinstance(source, str):
        raise InvalidEventError(f'{where}"from" must be a string or null.')
    text = item.get("text")
    if text is not None and not isinstance(text, str):
        raise InvalidEventError(f'{where}"text" must be a string.')
    details = item.get("details") or {}
    if not isinstance(details, dict):
        raise InvalidEventError(f'{where}"details" must be a JSON object.')
    if set(details) & set(RESERVED_DETAILS):
        raise InvalidEventError(f'{where}"details" may not use {", ".join(RESERVED_DETAILS)}.')
    if len(json.dumps(details, ensure_ascii=False)) > DETAILS_LIMIT:
        raise InvalidEventError(f'{where}"details" is over {DETAILS_LIMIT} characters.')
    provider = item.get("provider", "generic")
    if not isinstance(provider, str) or not PROVIDER_NAME.match(provider):
        raise InvalidEventError(f'{where}"provider" must be a short lower-case name.')
    return EventDraft(
        channel=channel,
        target=target,
        occurred_at=_generic_time(item["time"], where, now),
        provider=provider,
        payload=payload,
        source=(source or "").strip() or None,
        provider_id=str(pid).strip(),
        text=text or None,
        details=details,
    )


def generic_drafts(body: bytes, now: datetime) -> tuple[list[EventDraft], bool]:
    """(events, whether the body was a batch); every event is checked before any is kept."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEventError(f"The body is not JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise InvalidEventError('The body must be a JSON object: one event or {"events": [...]}.')
    if "events" not in data:
        return [generic_draft(data, body, now)], False
    items = data["events"]
    if not isinstance(items, list) or not items or len(items) > BATCH_LIMIT:
        raise InvalidEventError(f'"events" must be a list of 1 to {BATCH_LIMIT} events.')
    drafts = []
    for i, item in enumerate(items):
        payload = json.dumps(item, ensure_ascii=False, sort_keys=True).encode("utf-8")
        drafts.append(generic_draft(item, payload, now, where=f"Event {i}: "))
    return drafts, True


@bp.post("/events")
def generic_events() -> Any:
    settings = settings_of()
    if not settings.webhook_secret:
        log.error("The generic webhook is refused: set CANARY_WEBHOOK_SECRET to a shared secret.")
        return refuse("This server has no webhook secret; it refuses signed JSON webhooks.")
    body = request.get_data()
    stamp = request.headers.get("X-Canary-Timestamp")
    signature = request.headers.get("X-Canary-Signature")
    now = time.time()
    window = settings.webhook_window
    problem = generic_problem(settings.webhook_secret, stamp, signature, body, now, window)
    if problem is not None:
        return refuse(problem)
    assert stamp is not None and signature is not None
    replays, forget_at = _replays(), int(stamp.strip()) + window
    if not replays.claim(signature, forget_at, now):
        return refuse("This signed request was delivered before (a replay); sign each delivery.")
    try:
        drafts, batch = generic_drafts(body, datetime.fromtimestamp(now, UTC))
        events = events_of().record(drafts)  # one transaction: all of them or none
    except BaseException:
        # Not answered with an event: the sender may deliver the same request again.
        replays.release(signature, forget_at)
        raise
    new = sum(not e.duplicate for e in events)
    status = 201 if new else 200
    if not batch:
        return _json(events[0].as_json(), status)
    return _json(
        {"events": [e.as_json() for e in events], "stored": new, "duplicates": len(events) - new},
        status,
    )


def _json(payload: dict[str, Any], status: int) -> Response:
    """A JSON answer made by json.dumps itself (a quarter of the cost of ``jsonify``, which
    looks up the app's JSON provider and sorts the keys, on every webhook)."""
    return Response(json.dumps(payload), status=status, mimetype="application/json")
