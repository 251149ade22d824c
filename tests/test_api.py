"""The investigator API over real HTTP: tokens, roles, reads, audit entries, expectations.

A werkzeug server on a free loopback port serves ``server.create_app(settings, registry)``;
every test runs on SQLite and on PostgreSQL through the ``registry`` fixture.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from werkzeug.serving import make_server

from canary.events import EventDraft
from canary.registry import Registry
from canary.seed import SeedRequest, SeedResult, seed
from canary.settings import Settings
from server import create_app
from server.app import close_app
from tests.listgen import people, write_csv

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        """The JSON object of the body."""
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


@dataclass
class Live:
    """A running server and a way to call it."""

    port: int

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        chunks: list[bytes] | None = None,
    ) -> Reply:
        """One request on a fresh connection; ``chunks`` sends the body chunked."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port)
        try:
            sent = dict(headers or {})
            if token is not None:
                sent["Authorization"] = f"Bearer {token}"
            url = path + ("?" + urlencode(query) if query else "")
            if chunks is not None:
                conn.request(method, url, body=iter(chunks), headers=sent, encode_chunked=True)
            else:
                conn.request(method, url, body=body, headers=sent)
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def get(self, path: str, token: str | None = None, **query: str) -> Reply:
        return self.call("GET", path, token, query=query)


@contextmanager
def serving(settings: Settings, registry: Registry, threaded: bool = True) -> Iterator[Live]:
    """Serve the application on 127.0.0.1 on a free port while the block runs (one request
    at a time unless ``threaded``)."""
    app = create_app(settings, registry)
    server = make_server("127.0.0.1", 0, app, threaded=threaded)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Live(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        close_app(app)


@pytest.fixture
def live(settings: Settings, registry: Registry) -> Iterator[Live]:
    with serving(settings, registry) as running:
        yield running


def seed_one(registry: Registry, settings: Settings, tmp: Path, account: str = "op1") -> SeedResult:
    src = tmp / "host.csv"
    if not src.exists():
        write_csv(src, people(300, seed=7))
    return seed(
        registry,
        settings,
        SeedRequest(
            input=src,
            output=tmp / f"out-{account}.csv",
            client="city",
            list_name="residents",
            account=account,
            rng_seed=3,
        ),
    )


def api_reads(registry: Registry) -> list[tuple[str, dict[str, object]]]:
    """(subject, payload) of every ``api.read`` entry of the audit chain."""
    return [
        (link.subject, json.loads(link.payload))
        for link in registry.audit_links()
        if link.action == "api.read"
    ]


def test_no_token_or_an_unknown_or_revoked_one_is_401_with_a_bearer_challenge(
    live: Live, registry: Registry
) -> None:
    revoked = registry.create_token("old-laptop", "investigator")
    registry.revoke_token("old-laptop")
    for token in (None, "cnry_not-a-token", revoked):
        for path in ("/api/trace?email=a@b.jp", "/api/exports", "/api/incidents"):
            reply = live.call("GET", path, token)
            assert reply.status == 401, (token, path)
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
            assert "token" in str(reply.json()["error"])
    reply = live.call("GET", "/api/exports", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert reply.status == 401
    assert api_reads(registry) == []


def test_a_steward_reads_exports_but_never_canaries_events_or_traces(
    live: Live, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_one(registry, settings, tmp_path)
    canary = next(c for c in registry.canaries_of(result.export.code) if c.email)
    steward = registry.create_token("list-server", "steward")
    for path, query in (
        ("/api/trace", {"email": str(canary.email)}),
        ("/api/events", {}),
        ("/api/incidents", {}),
        ("/api/incidents/IN-XXXX-XXXX", {}),
    ):
        reply = live.get(path, steward, **query)
        assert reply.status == 403, path
        assert "steward" in str(reply.json()["error"])
    listed = live.get("/api/exports", steward).json()["exports"]
    assert [e["export_id"] for e in listed] == [result.export.code]
    shown = live.get(f"/api/exports/{result.export.code.lower()}", steward)
    assert shown.status == 200
    data = shown.json()
    assert data["export_id"] == result.export.code and data["account"] == "op1"
    assert "canary_records" not in data
    assert canary.name not in shown.body.decode() and str(canary.email) not in shown.body.decode()
    assert api_reads(registry) == []


def test_an_investigator_traces_a_canary_and_the_read_is_audited_with_the_token_name(
    live: Live, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_one(registry, settings, tmp_path)
    canary = next(c for c in registry.canaries_of(result.export.code) if c.email)
    token = registry.create_token("inv-sato", "investigator")
    reply = live.get("/api/trace", token, email=str(canary.email).upper())
    assert reply.status == 200
    [match] = reply.json()["matches"]
    assert match["export_id"] == result.export.code
    assert match["canary"] == canary.name and match["account"] == "op1"
    miss = live.get("/api/trace", token, phone="090-0000-0000")
    assert miss.status == 200 and miss.json()["matches"] == []
    [(who, hit), (who2, nothing)] = api_reads(registry)
    assert who == who2 == "inv-sato"
    assert hit["read"] == "trace" and hit["role"] == "investigator"
    assert hit["exports"] == [result.export.code] and hit["query"] == canary.email
    # A query that matched no canary may be a real person's: only its hash is kept.
    assert nothing["exports"] == [] and "query" not in nothing
    assert "query_sha256" in nothing and "0000" not in json.dumps(nothing)
    assert registry.verify_audit().ok


def test_an_investigator_sees_an_exports_canaries_a_steward_does_not(
    live: Live, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_one(registry, settings, tmp_path)
    token = registry.create_token("inv-sato", "investigator")
    data = live.get(f"/api/exports/{result.export.code}", token).json()
    records = data["canary_records"]
    assert isinstance(records, list)
    expected = registry.canaries_of(result.export.code)
    assert [r["name"] for r in records] == [c.name for c in expected]
    assert [r["phone"] for r in records] == [c.phone_e164 for c in expected]
    [(who, entry)] = api_reads(registry)
    assert who == "inv-sato" and entry["export"] == result.export.code
    assert entry["canaries"] == len(expected)


def test_events_and_incidents_are_listed_filtered_and_audited(
    live: Live, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_one(registry, settings, tmp_path)
    canary = next(c for c in registry.canaries_of(result.export.code) if c.email)
    event = registry.record_event(
        EventDraft(
            channel="email",
            target=str(canary.email),
            occurred_at=T0,
            provider="smtp",
            payload=b"Message-ID: <1@spam>\r\n\r\nbuy now",
            source="sales@broker.example",
            provider_id="<1@spam>",
        )
    )
    registry.record_event(
        EventDraft(
            channel="call", target="03-9999-0000", occurred_at=T0, provider="t", payload=b"x"
        )
    )
    token = registry.create_token("inv-sato", "investigator")
    everything = live.get("/api/events", token).json()["events"]
    assert len(everything) == 2
    suspicious = live.get("/api/events", token, classification="suspicious").json()["events"]
    assert [e["event_id"] for e in suspicious] == [event.id]
    by_export = live.get("/api/events", token, export=result.export.code.lower(), limit="5")
    assert [e["event_id"] for e in by_export.json()["events"]] == [event.id]
    calls = live.get("/api/events", token, channel="call").json()["events"]
    assert [e["classification"] for e in calls] == ["noise"]

    [incident] = live.get("/api/incidents", token, status="open").json()["incidents"]
    assert incident["export_id"] == result.export.code and incident["attributed"]
    assert live.get("/api/incidents", token, status="closed").json()["incidents"] == []
    detail = live.get(f"/api/incidents/{incident['incident_id']}", token).json()
    assert [e["event_id"] for e in detail["event_records"]] == [event.id]
    code = str(incident["incident_id"]).lower()
    filed = live.get("/api/events", token, incident=code).json()["events"]
    assert [e["event_id"] for e in filed] == [event.id]
    reads = api_reads(registry)
    assert [r["read"] for _, r in reads] == ["events"] * 4 + ["incident", "events"]
    assert reads[1][1]["classification"] == "suspicious" and reads[1][1]["events"] == [event.id]
    assert reads[-1][1]["incident"] == incident["incident_id"]


def test_bad_parameters_are_400_with_a_reason_and_unknown_codes_404(
    live: Live, registry: Registry
) -> None:
    token = registry.create_token("inv-sato", "investigator")
    for path, query in (
        ("/api/trace", {}),
        ("/api/trace", {"phone": "0312345678", "email": "a@b.jp"}),
        ("/api/events", {"limit": "many"}),
        ("/api/events", {"limit": "0"}),
        ("/api/events", {"classification": "odd"}),
        ("/api/events", {"channel": "fax"}),
        ("/api/incidents", {"status": "maybe"}),
        ("/api/exports", {"limit": "-3"}),
    ):
        reply = live.get(path, token, **query)
        assert reply.status == 400, (path, query)
        assert reply.json()["error"], (path, query)
    for path, query in (
        ("/api/exports/EX-NONE-NONE", {}),
        ("/api/incidents/IN-NONE-NONE", {}),
        ("/api/events", {"export": "EX-NONE-NONE"}),
    ):
        reply = live.get(path, token, **query)
        assert reply.status == 404, path
        assert "No " in str(reply.json()["error"])
    assert api_reads(registry) == []


def test_a_steward_sets_the_recipients_campaign_and_bad_bodies_are_400(
    live: Live, registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    result = seed_one(registry, settings, tmp_path)
    steward = registry.create_token("list-server", "steward")
    path = f"/api/exports/{result.export.code}/expect"
    body = {
        "callers": ["03-1234-5678"],
        "senders": ["info@callco.example.jp"],
        "from": "2026-11-01T09:00:00+09:00",
        "until": "2026-11-10T18:00:00Z",
    }
    headers = {"Content-Type": "application/json"}
    reply = live.call("POST", path, steward, json.dumps(body).encode(), headers)
    assert reply.status == 200
    data = reply.json()
    assert data["callers"] == ["+81312345678"] and data["senders"] == ["callco.example.jp"]
    assert data["from"] == "2026-11-01T00:00:00+00:00"
    assert data["until"] == "2026-11-10T18:00:00+00:00"
    expects = [link for link in registry.audit_links() if link.action == "export.expect"]
    assert [link.subject for link in expects] == [result.export.code]
    for bad in (
        b"not json",
        b"[]",
        json.dumps({"callers": "not a phone"}).encode(),
        json.dumps({"callers": [5]}).encode(),
        json.dumps({"from": "tomorrow"}).encode(),
        json.dumps({"from": "2026-11-10T00:00:00Z", "until": "2026-11-01T00:00:00Z"}).encode(),
        json.dumps({"caller": ["03-1234-5678"]}).encode(),
        json.dumps({}).encode(),
    ):
        reply = live.call("POST", path, steward, bad, headers)
        assert reply.status == 400, bad
        assert reply.json()["error"], bad
    missing = live.call(
        "POST", "/api/exports/EX-NONE-NONE/expect", steward, json.dumps(body).encode(), headers
    )
    assert missing.status == 404
    nobody = live.call("POST", path, None, json.dumps(body).encode(), headers)
    assert nobody.status == 401
