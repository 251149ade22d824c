"""The seeding gateway over real HTTP: upload a list, get it back seeded, registry entry made.

Every original row comes back byte for byte (invariant 2), the export names the token as
its account and the forwarded user only from a trusted proxy, and a bad upload seals
nothing and leaves nothing on disk. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import openpyxl
import pytest

from canary.registry import Registry
from canary.settings import Settings
from tests.helpers import strip_canaries
from tests.listgen import HEADER, people, write_csv
from tests.test_api import Live, Reply, serving
from tests.test_xlsx import _write_book

QUERY = {"client": "みどり市", "list": "高齢者見守り", "recipient": "CallCo"}


@pytest.fixture
def tmp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The gateway's TMPDIR, to see what it leaves behind."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def live(settings: Settings, registry: Registry, tmp_root: Path) -> Iterator[Live]:
    with serving(settings, registry) as running:
        yield running


def csv_bytes(tmp: Path, rows: int, **kwargs: object) -> bytes:
    path = write_csv(tmp / "host.csv", people(rows, seed=11), **kwargs)  # type: ignore[arg-type]
    return path.read_bytes()


def multipart(fields: dict[str, str], file: tuple[str, bytes] | None) -> tuple[bytes, str]:
    boundary = "canary-test-boundary-7f3a"
    out = io.BytesIO()
    for key, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    if file is not None:
        name, data = file
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{name}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def upload(live: Live, token: str | None, data: bytes, **headers: str) -> Reply:
    query = {**QUERY, "filename": "members.csv"}
    sent = {"Content-Type": "text/csv", **headers}
    return live.call("POST", "/api/exports", token, data, sent, query)


def check_seeded(registry: Registry, reply: Reply, original: bytes, account: str) -> str:
    """The reply is the original plus the export's canaries; returns the export's code."""
    assert reply.status == 201, reply.body[:300]
    code = reply.headers["X-Canary-Export-Id"]
    export = registry.export(code)
    canaries = registry.canaries_of(code)
    assert export.account == account
    assert export.client == QUERY["client"] and export.list_name == QUERY["list"]
    assert export.recipient == "CallCo" and export.status == "delivered"
    assert int(reply.headers["X-Canary-Canaries"]) == export.canary_count == len(canaries)
    digest = hashlib.sha256(reply.body).hexdigest()
    assert reply.headers["X-Canary-SHA256"] == digest == export.output_sha256
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    kept, rows = strip_canaries(reply.body, registry, code, header_records=1)
    assert kept == original, "every host row comes back byte for byte, in order"
    assert len(rows) == len(canaries) > 0
    return code


def test_a_raw_utf8_upload_comes_back_seeded_and_names_the_token_as_account(
    live: Live, registry: Registry, tmp_path: Path, tmp_root: Path
) -> None:
    original = csv_bytes(tmp_path, 500, encoding="utf-8", newline="\n")
    token = registry.create_token("listsrv-admin", "steward")
    # Not from a trusted proxy: forwarded headers are the client's own words, ignored.
    reply = upload(
        live, token, original, **{"X-Forwarded-User": "mallory", "X-Forwarded-For": "10.9.9.9"}
    )
    code = check_seeded(registry, reply, original, "listsrv-admin")
    export = registry.export(code)
    assert export.requested_by is None
    assert export.host == "127.0.0.1" and export.terminal == "api from 127.0.0.1"
    assert export.encoding == "utf-8" and export.input_name == "members.csv"
    assert reply.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert reply.headers["Content-Disposition"].startswith('attachment; filename="members.csv"')
    assert list(tmp_root.iterdir()) == [], "no copy of the list stays on disk"


def test_a_cp932_multipart_upload_from_a_trusted_proxy_records_the_forwarded_user(
    settings: Settings, registry: Registry, tmp_path: Path, tmp_root: Path
) -> None:
    original = csv_bytes(tmp_path, 400)  # CP932, CRLF
    token = registry.create_token("listsrv-admin", "steward")
    body, content_type = multipart(QUERY, ("会員名簿.csv", original))
    proxied = replace(settings, trusted_proxies="10.0.0.0/8, 127.0.0.1")
    with serving(proxied, registry) as live:
        reply = live.call(
            "POST",
            "/api/exports",
            token,
            body,
            {
                "Content-Type": content_type,
                "X-Forwarded-User": "田中".encode().decode("latin-1"),  # UTF-8 on the wire
                # The leftmost entry is whatever the client wrote; nginx appended the rest.
                "X-Forwarded-For": "198.51.100.1, 203.0.113.7, 10.1.2.3",
            },
        )
    code = check_seeded(registry, reply, original, "listsrv-admin")
    export = registry.export(code)
    assert export.requested_by == "田中"
    assert export.host == "203.0.113.7"
    assert export.terminal == "api from 203.0.113.7 via 127.0.0.1"
    assert export.encoding == "cp932" and export.input_name == "会員名簿.csv"
    assert reply.headers["Content-Type"] == "text/csv; charset=Windows-31J"
    assert f"filename*=UTF-8''{quote('会員名簿.csv')}" in reply.headers["Content-Disposition"]
    seal = next(link for link in registry.audit_links() if link.action == "export.seal")
    assert seal.subject == code and json.loads(seal.payload)["requested_by"] == "田中"
    assert list(tmp_root.iterdir()) == []


def test_a_chunked_upload_streams_and_an_xlsx_comes_back_as_xlsx(
    live: Live, registry: Registry, tmp_path: Path
) -> None:
    original = csv_bytes(tmp_path, 3000, encoding="utf-8")
    token = registry.create_token("steward-1", "steward")
    chunks = [original[i : i + 65536] for i in range(0, len(original), 65536)]
    reply = live.call(
        "POST",
        "/api/exports",
        token,
        None,
        {"Content-Type": "text/csv"},
        QUERY,
        chunks=chunks,
    )
    check_seeded(registry, reply, original, "steward-1")

    book = tmp_path / "list.xlsx"
    _write_book(book, people(200, seed=4))
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    reply = live.call(
        "POST", "/api/exports", token, book.read_bytes(), {"Content-Type": xlsx}, QUERY
    )
    assert reply.status == 201, reply.body[:300]
    assert reply.headers["Content-Type"] == xlsx
    assert 'filename="list.xlsx"' in reply.headers["Content-Disposition"]
    export = registry.export(reply.headers["X-Canary-Export-Id"])
    sheet = openpyxl.load_workbook(io.BytesIO(reply.body), read_only=True)["名簿"]
    values = list(sheet.values)
    assert list(values[0]) == HEADER and len(values) == 1 + export.rows_out
    assert hashlib.sha256(reply.body).hexdigest() == export.output_sha256


def test_bad_uploads_are_4xx_with_a_sentence_and_seal_nothing(
    live: Live, registry: Registry, tmp_path: Path, tmp_root: Path
) -> None:
    token = registry.create_token("steward-1", "steward")
    good = csv_bytes(tmp_path, 50, encoding="utf-8")
    header_only = ",".join(HEADER).encode() + b"\n"
    stale = tmp_root / "canary-gateway-left-by-a-killed-worker"
    stale.mkdir()
    (stale / "list.csv").write_bytes(good)
    os.utime(stale, (time.time() - 3600, time.time() - 3600))  # left an hour ago
    fresh = tmp_root / "canary-gateway-just-made-by-another-worker"
    fresh.mkdir()
    no_file, no_file_type = multipart(QUERY, None)
    no_list, no_list_type = multipart({"client": "c"}, ("a.csv", good))
    cases: list[tuple[int, Reply]] = [
        (400, upload(live, token, b"")),
        (400, upload(live, token, header_only)),
        (400, upload(live, token, bytes(range(256)) * 64)),  # not a list of people
        (400, upload(live, token, b"PK\x03\x04 not really a workbook")),
        (400, live.call("POST", "/api/exports", token, good, {"Content-Type": "text/csv"})),
        (400, live.call("POST", "/api/exports", token, no_file, {"Content-Type": no_file_type})),
        (400, live.call("POST", "/api/exports", token, no_list, {"Content-Type": no_list_type})),
        (415, upload(live, token, b'{"rows": []}', **{"Content-Type": "application/json"})),
        (401, upload(live, None, good)),
        (401, upload(live, "cnry_wrong", good)),
    ]
    for status, reply in cases:
        assert reply.status == status, reply.body[:300]
        error = reply.json()["error"]
        assert isinstance(error, str) and error.endswith((".", ")")), error
    assert registry.exports() == []
    assert not any(link.action == "export.seal" for link in registry.audit_links())
    # Uploads and a dead worker's folder are gone; a folder made a moment ago may belong
    # to a live worker that has not locked it yet, and stays.
    assert list(tmp_root.iterdir()) == [fresh]


def test_seeding_without_a_pool_is_409_and_seals_nothing(
    settings: Settings, tmp_path: Path, tmp_root: Path
) -> None:
    empty = Registry(settings.db, actor="pytest")
    empty.init()
    token = empty.create_token("steward-1", "steward")
    try:
        with serving(settings, empty) as live:
            reply = upload(live, token, csv_bytes(tmp_path, 50, encoding="utf-8"))
        assert reply.status == 409
        assert "pool" in str(reply.json()["error"])
        assert empty.exports() == []
        assert list(tmp_root.iterdir()) == []
    finally:
        empty.close()


def test_an_investigator_may_seed_too_and_a_revoked_steward_may_not(
    live: Live, registry: Registry, tmp_path: Path
) -> None:
    original = csv_bytes(tmp_path, 60, encoding="utf-8")
    investigator = registry.create_token("inv-sato", "investigator")
    check_seeded(registry, upload(live, investigator, original), original, "inv-sato")
    steward = registry.create_token("old-steward", "steward")
    registry.revoke_token("old-steward")
    reply = upload(live, steward, original)
    assert reply.status == 401 and reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert len(registry.exports()) == 1


def test_an_upload_cut_off_midway_seals_nothing_and_leaves_nothing(
    settings: Settings, registry: Registry, tmp_path: Path, tmp_root: Path
) -> None:
    original = csv_bytes(tmp_path, 2000, encoding="utf-8")
    token = registry.create_token("steward-1", "steward")
    # One request at a time: the health check below is served only after the cut upload.
    with serving(settings, registry, threaded=False) as live:
        with socket.create_connection(("127.0.0.1", live.port)) as sock:
            head = (
                "POST /api/exports?client=c&list=l HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: text/csv\r\n"
                f"Content-Length: {len(original)}\r\n\r\n"
            )
            sock.sendall(head.encode() + original[: len(original) // 2])
            sock.shutdown(socket.SHUT_WR)  # the client goes away halfway
            answer = b""
            while data := sock.recv(65536):  # the server closes the connection
                answer += data
        assert answer.split(b" ")[1] == b"400", answer[:200]
        assert b"cut off" in answer
        assert live.get("/healthz").status == 200
    assert registry.exports() == []
    assert list(tmp_root.iterdir()) == []
