"""The investigator API (JSON, bearer tokens) and the route of the seeding gateway.

| route | permission (role) |
|---|---|
| ``GET /api/trace?phone=|email=|name=`` | canaries:read (investigator) |
| ``GET /api/events?classification=&channel=&export=&incident=&limit=`` | events:read |
| ``GET /api/incidents?status=`` | events:read (investigator) |
| ``GET /api/incidents/<code>`` (with its events) | events:read (investigator) |
| ``GET /api/exports?limit=`` | exports:read (steward and up) |
| ``GET /api/exports/<code>`` (its canaries for investigators) | exports:read |
| ``POST /api/exports/<code>/expect`` | exports:expect (steward and up) |
| ``POST /api/exports`` (the seeding gateway, ``server.gateway``) | seed (steward and up) |

Every read that discloses canaries or events is written to the audit chain as
``api.read`` with the token's name as subject before the answer leaves: an investigator's
access is itself evidence. A query is kept as given only when it matched canaries (it is
then a token we own); otherwise only its SHA-256, since it may be a real person's number.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, jsonify, request

from canary.events import CHANNELS, CLASSIFICATIONS, aware
from canary.trace import trace
from server import gateway
from server.app import registry_of
from server.auth import principal, require

bp = Blueprint("api", __name__, url_prefix="/api")
bp.add_url_rule("/exports", view_func=gateway.seed_upload, methods=["POST"])

INCIDENT_STATUSES = ("open", "closed")
MAX_LIMIT = 10_000


def _audit_read(what: str, payload: dict[str, object]) -> None:
    who = principal()
    body = {"read": what, "role": who.role, "path": request.path, **payload}
    registry_of().record("api.read", who.name, body)


def _limit(default: int | None) -> int | None:
    raw = request.args.get("limit", "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        abort(400, f"limit must be a whole number from 1 to {MAX_LIMIT}, not {raw!r}.")
    return int(raw)


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name, "").strip().lower()
    if value and value not in allowed:
        abort(400, f"{name} must be one of {', '.join(allowed)}, not {value!r}.")
    return value or None


@bp.get("/trace")
@require("canaries:read")
def trace_view() -> Any:
    given = {k: request.args.get(k, "").strip() for k in ("phone", "email", "name")}
    asked = {k: v for k, v in given.items() if v}
    if len(asked) != 1:
        abort(400, "Give exactly one of phone, email or name to trace.")
    [(kind, value)] = asked.items()
    result = trace(registry_of(), **{kind: value})
    exports = sorted({m.canary.export.code for m in result.matches})
    query: dict[str, object] = (
        {"query": result.query}
        if exports
        else {"query_sha256": hashlib.sha256(value.encode("utf-8")).hexdigest()}
    )
    _audit_read("trace", {"kind": kind, **query, "exports": exports})
    return jsonify(result.as_json())


@bp.get("/events")
@require("events:read")
def events_view() -> Any:
    classification = _choice("classification", CLASSIFICATIONS)
    channel = _choice("channel", CHANNELS)
    export = request.args.get("export", "").strip().upper() or None
    incident = request.args.get("incident", "").strip().upper() or None
    limit = _limit(100)
    events = registry_of().events(
        limit=limit,
        classification=classification,
        channel=channel,
        export=export,
        incident=incident,
    )
    filters = {
        "classification": classification,
        "channel": channel,
        "export": export,
        "incident": incident,
    }
    _audit_read("events", {**filters, "limit": limit, "events": [e.id for e in events]})
    return jsonify({"events": [e.as_json() for e in events]})


@bp.get("/incidents")
@require("events:read")
def incidents_view() -> Any:
    # Incidents name exports and accounts, not canaries: not an audited read.
    status = _choice("status", INCIDENT_STATUSES)
    return jsonify({"incidents": [i.as_json() for i in registry_of().incidents(status)]})


@bp.get("/incidents/<code>")
@require("events:read")
def incident_view(code: str) -> Any:
    record, events = registry_of().incident(code)
    _audit_read("incident", {"incident": record.code, "events": [e.id for e in events]})
    data = record.as_json()
    data["event_records"] = [e.as_json() for e in events]
    return jsonify(data)


@bp.get("/exports")
@require("exports:read")
def exports_view() -> Any:
    exports = registry_of().exports(_limit(100))
    return jsonify({"exports": [e.as_json() for e in exports]})


@bp.get("/exports/<code>")
@require("exports:read")
def export_view(code: str) -> Any:
    registry = registry_of()
    export = registry.export(code)
    data = export.as_json()
    if principal().may("canaries:read"):
        canaries = registry.canaries_of(export.code)
        _audit_read("export", {"export": export.code, "canaries": len(canaries)})
        data["canary_records"] = [c.as_json() for c in canaries]
    return jsonify(data)


def _moment(body: dict[str, Any], key: str) -> datetime | None:
    raw = body.get(key)
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        abort(400, f"{key} must be an ISO 8601 time such as 2026-11-01T09:00:00+09:00.")
    try:
        moment = aware(datetime.fromisoformat(raw.strip().replace("Z", "+00:00")))
    except ValueError:
        abort(400, f"{key}={raw!r} is not an ISO 8601 time such as 2026-11-01T09:00:00+09:00.")
    return moment.astimezone(UTC)  # stored in UTC on both backends (SQLite keeps no zone)


def _strings(body: dict[str, Any], key: str) -> list[str]:
    raw = body.get(key) or []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        abort(400, f"{key} must be a list of strings.")
    return [v for v in raw if v.strip()]


@bp.post("/exports/<code>/expect")
@require("exports:expect")
def expect_view(code: str) -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, 'Send a JSON object: {"callers": [...], "senders": [...], "from", "until"}.')
    unknown = sorted(set(body) - {"callers", "senders", "from", "until"})
    if unknown:
        abort(400, f"Unknown field(s) {', '.join(unknown)}; use callers, senders, from, until.")
    callers, senders = _strings(body, "callers"), _strings(body, "senders")
    start, until = _moment(body, "from"), _moment(body, "until")
    if not (callers or senders or start or until):
        abort(400, "Give at least one of callers, senders, from or until.")
    result = registry_of().set_expectation(code, callers, senders, start, until)
    return jsonify(result)
