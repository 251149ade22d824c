"""Webhooks over real HTTP: the app runs in a thread on a loopback port (werkzeug), the
registry on SQLite and PostgreSQL. Twilio is the one peer that cannot run here; its requests
are built to its published signing spec and checked against its documented vectors.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from werkzeug.serving import make_server

from canary.registry import Registry
from canary.seed import SeedRequest, SeedResult, seed
from canary.settings import Settings
from server import create_app
from server.app import close_app
from server.signatures import (
    ReplayGuard,
    generic_signature,
    memory_folder,
    replay_folder,
    twilio_signature,
    twilio_valid,
    url_variants,
)
from tests.listgen import people, write_csv

TOKEN = "twilio-test-token"
SECRET = "generic-test-secret"
NOW = datetime.now(UTC).replace(microsecond=0)

# Twilio's documented vector (twilio-python tests/unit/test_request_validator.py).
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}


@dataclass
class Hook:
    base: str

    def post(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        parts = urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read(), dict(resp.getheaders())
        finally:
            conn.close()

    def twilio(
        self,
        path: str,
        params: dict[str, str],
        token: str = TOKEN,
        url: str | None = None,
        signature: str | None = None,
    ) -> tuple[int, bytes]:
        signed_url = url or self.base + path
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        sig = (
            signature
            if signature is not None
            else twilio_signature(token, signed_url, params.items())
        )
        if sig:
            headers["X-Twilio-Signature"] = sig
        status, body, _ = self.post(path, urlencode(params).encode(), headers)
        return status, body

    def generic(
        self, event: object, stamp: int | None = None, secret: str = SECRET
    ) -> tuple[int, dict[str, object], dict[str, str]]:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        ts = int(time.time()) if stamp is None else stamp
        headers = {
            "Content-Type": "application/json",
            "X-Canary-Timestamp": str(ts),
            "X-Canary-Signature": generic_signature(secret, ts, body),
        }
        status, data, _ = self.post("/hooks/events", body, headers)
        return status, json.loads(data), headers

    def replay(self, event: object, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
        status, data, _ = self.post("/hooks/events", json.dumps(event).encode(), headers)
        return status, json.loads(data)


def serve(settings: Settings, registry: Registry) -> Iterator[Hook]:
    app = create_app(settings, registry=registry)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Hook(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        close_app(app)


@pytest.fixture
def hook(registry: Registry, settings: Settings) -> Iterator[Hook]:
    yield from serve(replace(settings, twilio_auth_token=TOKEN, webhook_secret=SECRET), registry)


@pytest.fixture
def export(registry: Registry, settings: Settings, tmp_path: Path) -> SeedResult:
    src = tmp_path / "host.csv"
    write_csv(src, people(300, seed=3))
    return seed(
        registry,
        settings,
        SeedRequest(
            input=src,
            output=tmp_path / "out.csv",
            client="city",
            list_name="residents",
            account="op1",
            rng_seed=1,
            stable=0,
        ),
    )


def _number(registry: Registry, export: SeedResult) -> str:
    phone = next(c.phone_e164 for c in registry.canaries_of(export.export.code) if c.phone_e164)
    assert phone is not None
    return phone


def _event(pid: str, to: str, when: datetime = NOW, **extra: object) -> dict[str, object]:
    return {
        "id": pid,
        "channel": "call",
        "to": to,
        "from": "0120-00-1111",
        "time": when.isoformat(),
        **extra,
    }


# -- signatures --------------------------------------------------------------------------------


def test_twilio_signatures_match_the_documented_vectors() -> None:
    assert twilio_signature("12345", DOC_URL, DOC_PARAMS.items()) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio_valid("12345", DOC_URL, DOC_PARAMS.items(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    # Repeated parameters sort by value too.
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature("12345", DOC_URL, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    # A pair given twice counts once, as in Twilio's helper libraries.
    twice = [*repeated, ("Digits", "1234")]
    assert twilio_signature("12345", DOC_URL, twice) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    # The URL is accepted with or without the scheme's port, as Twilio's libraries do.
    port = DOC_URL.replace(".com", ".com:1234")
    assert twilio_valid("12345", port, DOC_PARAMS.items(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert twilio_valid("12345", DOC_URL, DOC_PARAMS.items(), "kvajT1Ptam85bY51eRf/AJRuM3w=")
    http_port = port.replace("https", "http")
    assert twilio_valid("12345", http_port, DOC_PARAMS.items(), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=")
    # A JSON body is covered by bodySHA256 in the URL.
    body = b'{"property": "value", "boolean": true}'
    digest = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    signed = DOC_URL + "&bodySHA256=" + digest
    assert twilio_valid("12345", signed, [], "a9nBmqA0ju/hNViExpshrM61xv4=", body)
    assert not twilio_valid("12345", signed, [], "a9nBmqA0ju/hNViExpshrM61xv4=", body + b" ")
    # Anything else fails: another token, a changed value, a missing parameter, no token.
    assert not twilio_valid("54321", DOC_URL, DOC_PARAMS.items(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    changed = {**DOC_PARAMS, "Digits": "1235"}
    assert not twilio_valid("12345", DOC_URL, changed.items(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio_valid("", DOC_URL, DOC_PARAMS.items(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert url_variants("http://[::1]:8080/x?y=1") == [
        "http://[::1]:8080/x?y=1",
        "http://[::1]/x?y=1",
    ]


def test_the_replay_guard_is_shared_by_processes_and_forgets_expired_minutes(
    tmp_path: Path,
) -> None:
    (tmp_path / "gone" / "10").mkdir(parents=True)  # a registry no longer served
    (tmp_path / "gone" / "10" / "sig").touch()
    one, two = ReplayGuard(tmp_path / "g"), ReplayGuard(tmp_path / "g")  # two workers
    assert one.claim("sha256=aa", forget_at=1_000, now=700)
    assert not two.claim("sha256=aa", forget_at=1_000, now=701)  # a replay, whoever gets it
    assert two.claim("sha256=bb", forget_at=1_000, now=701)
    two.release("sha256=bb", forget_at=1_000)  # not answered: may come again as it was
    assert one.claim("sha256=bb", forget_at=1_000, now=702)
    assert one.claim("sha256=cc", forget_at=5_000, now=4_000)  # sweeps the minute of 1,000
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["83"]
    assert [p.name for p in tmp_path.iterdir()] == ["g"]  # the sibling's minute and itself
    assert not two.claim("sha256=cc", forget_at=5_000, now=4_001)
    # The folder is private, and named per registry and secret.
    folder = replay_folder("sqlite:///x.db", "s1")
    assert folder != replay_folder("sqlite:///x.db", "s2")
    assert folder != replay_folder("sqlite:///y.db", "s1")
    assert folder.parent.stat().st_mode & 0o777 == 0o700
    # In memory where the system has a folder there (every claim creates a file).
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        assert folder.parent.parent == memory_folder()
        assert memory_folder() != Path(tempfile.gettempdir())


# -- Twilio ------------------------------------------------------------------------------------


def test_a_call_is_answered_by_voicemail_and_each_state_stored_once(
    hook: Hook, registry: Registry, export: SeedResult
) -> None:
    number = _number(registry, export)
    call = {"CallSid": "CA" + "1" * 32, "From": "+81312345678", "To": number}
    status, body = hook.twilio("/hooks/twilio/voice", {**call, "CallStatus": "ringing"})
    assert status == 200, body
    twiml = body.decode()
    # Twilio's default voice speaks no Japanese: the voice must be one that does.
    assert '<Say voice="Polly.Mizuki" language="ja-JP">ただいま電話に出ることができません' in twiml
    assert "<Record " in twiml and 'transcribe="true"' in twiml and 'maxLength="60"' in twiml
    assert "canary" not in twiml.lower()
    [event] = registry.events(limit=None)
    assert (event.channel, event.target, event.source) == ("call", number, "+81312345678")
    assert event.provider_id == call["CallSid"] + ":ringing"
    assert event.classification == "suspicious" and event.exports == [export.export.code]
    # Twilio retries: the same state again is the same event.
    assert hook.twilio("/hooks/twilio/voice", {**call, "CallStatus": "ringing"})[0] == 200
    # The status callback of the end carries Twilio's own time; it is another state.
    stamp = "Tue, 10 Nov 2026 03:45:01 +0000"
    done = {**call, "CallStatus": "completed", "CallDuration": "41", "Timestamp": stamp}
    status, body = hook.twilio("/hooks/twilio/voice", done)
    assert status == 200 and b"<Say" not in body
    # The recording's action answers hang-up; the transcription naming a canary is strong.
    canary = next(c for c in registry.canaries_of(export.export.code) if c.phone_e164 == number)
    rec = {**call, "CallStatus": "in-progress", "RecordingSid": "RE1", "RecordingDuration": "9"}
    assert b"<Hangup/>" in hook.twilio("/hooks/twilio/voice", rec)[1]
    said = f"{canary.name.replace(' ', '')}様のお宅でしょうか。投資のご案内です。"
    text = {**call, "TranscriptionSid": "TR1", "TranscriptionText": said, "RecordingSid": "RE1"}
    assert hook.twilio("/hooks/twilio/voice", text)[0] == 200
    events = {e.provider_id: e for e in registry.events(limit=None)}
    sid = call["CallSid"]
    assert set(events) == {
        f"{sid}:{s}" for s in ("ringing", "completed", "recording", "transcription")
    }
    assert events[f"{sid}:completed"].occurred_at == datetime(2026, 11, 10, 3, 45, 1, tzinfo=UTC)
    assert events[f"{sid}:completed"].details["duration"] == "41"
    assert events[f"{sid}:recording"].details["recording_sid"] == "RE1"
    strong = events[f"{sid}:transcription"]
    assert strong.strength == "strong" and strong.details["text"] == said


def test_an_sms_is_stored_with_its_text_and_answered_empty(
    hook: Hook, registry: Registry, export: SeedResult
) -> None:
    number = _number(registry, export)
    sms = {"MessageSid": "SM" + "2" * 32, "From": "+819011112222", "To": number}
    params = {**sms, "Body": "未公開株のご案内", "SmsStatus": "received", "NumMedia": "0"}
    status, body = hook.twilio("/hooks/twilio/sms", params)
    assert status == 200 and b"<Response/>" in body
    assert hook.twilio("/hooks/twilio/sms", params)[0] == 200  # redelivered
    [event] = registry.events(limit=None)
    assert event.channel == "sms" and event.provider_id == sms["MessageSid"]
    assert event.details["text"] == "未公開株のご案内" and "media" not in event.details


def test_twilio_signs_the_public_url_not_the_one_behind_the_proxy(
    registry: Registry, settings: Settings, export: SeedResult
) -> None:
    public = replace(settings, twilio_auth_token=TOKEN, public_url="https://canary.example.jp/")
    number = _number(registry, export)
    params = {"CallSid": "CA" + "3" * 32, "From": "+81312345678", "To": number}
    for hook in serve(public, registry):
        url = "https://canary.example.jp/hooks/twilio/voice?x=1"
        assert hook.twilio("/hooks/twilio/voice?x=1", params, url=url)[0] == 200
        local = hook.base + "/hooks/twilio/voice?x=1"
        assert hook.twilio("/hooks/twilio/voice?x=1", params, url=local)[0] == 403
    assert len(registry.events(limit=None)) == 1


def test_forged_unsigned_and_unconfigured_twilio_requests_are_refused_and_logged(
    hook: Hook,
    registry: Registry,
    settings: Settings,
    export: SeedResult,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="canary.server.hooks")
    params = {"CallSid": "CA" + "4" * 32, "From": "+81312345678", "To": _number(registry, export)}
    status, body = hook.twilio("/hooks/twilio/voice", params, token="wrong-token")
    assert status == 403 and "does not match" in json.loads(body)["error"]
    status, body = hook.twilio("/hooks/twilio/sms", params, signature="")
    assert status == 403 and "no X-Twilio-Signature" in json.loads(body)["error"]
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("127.0.0.1" in m and "/hooks/twilio/voice" in m for m in refused)
    for unconfigured in serve(replace(settings, twilio_auth_token=""), registry):
        assert unconfigured.twilio("/hooks/twilio/voice", params)[0] == 403
    assert any("CANARY_TWILIO_AUTH_TOKEN" in r.getMessage() for r in caplog.records)
    assert registry.events(limit=None) == []


def test_signed_but_malformed_twilio_requests_are_400_and_nothing_is_stored(
    hook: Hook, registry: Registry, export: SeedResult
) -> None:
    number = _number(registry, export)
    for path, params, reason in (
        ("/hooks/twilio/voice", {"From": "+81312345678", "To": number}, "no CallSid"),
        ("/hooks/twilio/voice", {"CallSid": "CA" + "5" * 32, "From": "+81312345678"}, "no To"),
        ("/hooks/twilio/voice", {"CallSid": "CA" + "6" * 32, "To": "12"}, "not a phone number"),
        ("/hooks/twilio/sms", {"From": "+819011112222", "To": number, "Body": "x"}, "MessageSid"),
    ):
        status, body = hook.twilio(path, params)
        assert status == 400 and reason in json.loads(body)["error"], (params, body)
    assert registry.events(limit=None) == []


# -- the generic hook --------------------------------------------------------------------------


def test_generic_events_are_stored_once_in_any_order(
    hook: Hook, registry: Registry, export: SeedResult
) -> None:
    number = _number(registry, export)
    later, earlier = _event("ev-2", number, NOW), _event("ev-1", number, NOW - timedelta(hours=2))
    status, stored, _ = hook.generic(later, stamp=int(time.time()) - 100)
    assert status == 201 and stored["duplicate"] is False and stored["provider_id"] == "ev-2"
    assert hook.generic(earlier)[0] == 201  # out of order: stored as it happened
    status, again, _ = hook.generic(later)  # redelivered, signed anew (another timestamp)
    assert status == 200 and again["duplicate"] is True
    assert again["event_id"] == stored["event_id"]
    batch = {"events": [earlier, _event("ev-3", number)]}
    status, answer, _ = hook.generic(batch)
    assert status == 201 and (answer["stored"], answer["duplicates"]) == (1, 1)
    events = registry.events(limit=None)
    assert sorted(str(e.provider_id) for e in events) == ["ev-1", "ev-2", "ev-3"]
    first = next(e for e in events if e.provider_id == "ev-1")
    assert first.occurred_at == NOW - timedelta(hours=2)


def test_the_servers_filer_files_a_suspicious_event_on_its_own(
    hook: Hook, registry: Registry, export: SeedResult
) -> None:
    """The answer comes once the event is stored and classified; its incident and alert are
    written by the worker's filer soon after, without any reader asking."""
    from sqlalchemy import func, select

    from canary.registry.models import Alert, FilingQueue, Incident

    status, stored, _ = hook.generic(_event("ev-filed", _number(registry, export)))
    assert status == 201 and stored["classification"] == "suspicious"

    def counts() -> tuple[int, int, int]:
        with registry._sessions() as s:
            return tuple(  # type: ignore[return-value]
                int(s.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (Incident, Alert, FilingQueue)
            )

    deadline = time.monotonic() + 30
    while counts() != (1, 1, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counts() == (1, 1, 0)
    [incident] = registry.incidents()
    assert incident.export == export.export.code and incident.events == 1


def test_a_webhook_is_stored_when_the_writers_connection_died_unseen(
    registry: Registry, settings: Settings, export: SeedResult
) -> None:
    """The writer checks out connections without a round trip: when PostgreSQL ended its
    connection in between, the batch fails on it and is stored again on a new one."""
    if not settings.db.startswith("postgresql"):
        pytest.skip("PostgreSQL ends a connection here; SQLite has none to lose")
    import uuid

    import sqlalchemy as sa

    name = f"canary-writer-{uuid.uuid4().hex[:8]}"
    own = replace(settings, db=f"{settings.db}&application_name={name}", webhook_secret=SECRET)
    app = create_app(own)  # its own registries, as canary serve makes them
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        hook = Hook(f"http://127.0.0.1:{server.server_port}")
        number = _number(registry, export)
        # A stray call (noise): no filing, so the writer's connection alone waits in its pool.
        assert hook.generic(_event("before", "03-9999-0000"))[0] == 201
        with registry.engine.begin() as conn:
            ended = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": name},
            ).scalar_one()
        assert ended >= 1  # the writer's, and the API registry's
        for n in range(3):  # the pool's connections are all gone: each is met and replaced
            status, answer, _ = hook.generic(_event(f"after-{n}", number))
            assert status == 201, answer
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        close_app(app)
        app.extensions["canary.registry"].close()
    ids = sorted(str(e.provider_id) for e in registry.events(limit=None))
    assert ids == ["after-0", "after-1", "after-2", "before"]


def test_concurrent_deliveries_of_one_event_store_it_once(
    hook: Hook, registry: Registry, export: SeedResult
) -> None:
    event = _event("ev-race", _number(registry, export))
    answers: list[int] = []
    stamp = int(time.time())

    def deliver(attempt: int) -> None:  # each delivery signed anew, as a provider retries
        answers.append(hook.generic(event, stamp=stamp - attempt)[0])

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200] * 7 + [201]
    assert len(registry.events(limit=None)) == 1


def test_forged_stale_and_replayed_generic_requests_are_refused_and_logged(
    hook: Hook,
    registry: Registry,
    settings: Settings,
    export: SeedResult,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="canary.server.hooks")
    event = _event("ev-9", _number(registry, export))
    status, data, _ = hook.generic(event, secret="not-the-secret")
    assert status == 403 and "does not match" in str(data["error"])
    status, data, _ = hook.generic(event, stamp=int(time.time()) - 301)
    assert status == 403 and "300 seconds" in str(data["error"])
    status, data, _ = hook.generic(event, stamp=int(time.time()) + 301)
    assert status == 403
    body = json.dumps(event).encode()
    status, raw, _ = hook.post("/hooks/events", body, {"Content-Type": "application/json"})
    assert status == 403 and "not signed" in json.loads(raw)["error"]
    assert registry.events(limit=None) == []
    status, _, headers = hook.generic(event)
    assert status == 201
    status, data = hook.replay(event, headers)  # the same signed request again
    assert status == 403 and "replay" in str(data["error"])
    # Another worker (another application on the same registry and secret) refuses it too.
    twin = replace(settings, twilio_auth_token=TOKEN, webhook_secret=SECRET)
    for other in serve(twin, registry):
        status, data = other.replay(event, headers)
        assert status == 403 and "replay" in str(data["error"])
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for reason in ("does not match", "300 seconds", "not signed", "a replay"):
        assert any("/hooks/events from 127.0.0.1" in m and reason in m for m in refused), reason
    huge = {**event, "text": "x" * (1024 * 1024)}
    status, data, _ = hook.generic(huge)
    assert status == 413
    for unconfigured in serve(replace(settings, webhook_secret=""), registry):
        assert unconfigured.generic(_event("ev-10", event["to"]))[0] == 403  # type: ignore[arg-type]
    assert len(registry.events(limit=None)) == 1


def test_malformed_generic_events_are_refused_with_a_reason_and_nothing_is_stored(
    hook: Hook, registry: Registry, export: SeedResult
) -> None:
    good = _event("ev-ok", _number(registry, export))
    short = {k: v for k, v in good.items() if k != "from"}
    cases: list[tuple[object, str]] = [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'["a list"]', "must be a JSON object"),
        ({k: v for k, v in good.items() if k != "id"}, "Missing field(s): id"),
        ({**good, "id": ""}, '"id" must be'),
        ({**good, "channel": "fax"}, '"channel" must be one of'),
        ({**good, "to": "12"}, "not a phone number"),
        ({**good, "channel": "email", "to": "nobody"}, "not an email address"),
        ({**good, "from": 5}, '"from" must be a string'),
        ({**good, "time": "yesterday"}, "not an ISO 8601 time"),
        ({**good, "time": "2026-11-01T10:00:00"}, "no UTC offset"),
        ({**good, "time": (NOW + timedelta(days=3)).isoformat()}, "in the future"),
        ({**good, "sender": "x"}, "Unknown field(s) sender"),
        ({**good, "details": {"p": 0}}, '"details" may not use'),
        ({**good, "details": ["x"]}, '"details" must be a JSON object'),
        ({"events": [good, short]}, "Event 1: Missing field(s): from"),
        ({"events": []}, '"events" must be a list'),
    ]
    for i, (payload, reason) in enumerate(cases):
        status, data, _ = hook.generic(payload, stamp=int(time.time()) - i)
        assert status == 400 and reason in str(data["error"]), (payload, data)
    assert registry.events(limit=None) == []


def test_the_recipients_campaign_is_expected_until_its_grace_ends_through_the_webhook(
    hook: Hook, registry: Registry, export: SeedResult
) -> None:
    number = _number(registry, export)
    start, until = NOW - timedelta(days=30), NOW - timedelta(days=20)
    registry.set_expectation(export.export.code, callers=["03-1234-5678"], start=start, until=until)
    grace = timedelta(hours=72)

    def call(pid: str, when: datetime) -> str:
        event = {**_event(pid, number, when), "from": "+81312345678"}
        status, data, _ = hook.generic(event)
        assert status == 201, data
        return str(data["classification"])

    assert call("in", until + grace - timedelta(minutes=1)) == "expected"
    assert call("after", until + grace + timedelta(minutes=1)) == "suspicious"
    assert call("before", start - timedelta(minutes=1)) == "suspicious"
