"""The seeding gateway: ``POST /api/exports`` takes a list, seeds it, answers the seeded file.

A steward's token (or a list server's) uploads the list either as the raw request body::

    curl -fS -H "Authorization: Bearer $TOKEN" -H "Content-Type: text/csv" \\
         --data-binary @members.csv -D headers.txt -o members.seeded.csv \\
         "https://canary.example.jp/api/exports?client=City&list=members&recipient=CallCo&filename=members.csv"

(names outside ASCII must be percent-encoded in the query: ``--url-query "client=さかい生活館"``
does it; gunicorn answers 400 to raw UTF-8 in a request line) or as a multipart form
(``-F file=@members.csv -F client=City -F list=members``, any UTF-8 text). The
answer is ``201`` with the seeded file, byte for byte the upload plus canary rows, in the
upload's encoding and format, and the headers ``X-Canary-Export-Id``,
``X-Canary-Canaries`` and ``X-Canary-SHA256`` (of the answered file). The export's account
is the token's name; its requested_by is the forwarded user, only from a trusted proxy; its
host and terminal are the client's address. An empty, unreadable or unplaceable upload
answers 400 (409 when the pool cannot serve it) with the library's sentence and seals
nothing.

The upload is streamed in chunks into a fresh private folder (mode 0700, under ``TMPDIR``)
and seeded there; the seeded file is opened, then the folder is removed before the answer
streams from the open file, so no list outlives its request on disk. A folder left by a
killed worker is removed by the next upload (it is no longer locked). Point ``TMPDIR`` at a
private, encrypted volume on a shared machine.

Behind nginx (``auth_request`` and ``X-Forwarded-User``)
---------------------------------------------------------
Set ``CANARY_TRUSTED_PROXIES`` to nginx's address (e.g. ``127.0.0.1``); only then are
``X-Forwarded-For`` and the forwarded user header (``CANARY_FORWARDED_USER_HEADER``,
default ``X-Forwarded-User``) believed. nginx authenticates the person with a subrequest,
holds the steward token itself (people never see it), and streams both ways::

    location = /_auth {                  # your SSO or the list server's session check
        internal;
        proxy_pass http://sso.internal/validate;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
    }
    location = /api/exports {
        auth_request /_auth;
        auth_request_set $person $upstream_http_x_auth_user;
        proxy_set_header X-Forwarded-User $person;   # replaces anything the client sent
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header Authorization "Bearer cnry_...";  # the list server's steward token
        client_max_body_size 512m;                 # the app refuses more (413)
        proxy_request_buffering off;               # stream the upload
        proxy_buffering off;                       # stream the seeded file
        proxy_read_timeout 600s;                   # seeding a large list takes a while
        proxy_hide_header X-Canary-Export-Id;      # keep canaries covert from recipients
        proxy_hide_header X-Canary-Canaries;
        proxy_pass http://127.0.0.1:8425;
    }

A list server's download path runs through the gateway the same way: instead of sending
the generated file to the person, the download handler POSTs it to the gateway (raw body,
``client``/``list``/``recipient``/``filename`` in the query, its steward token, the logged-in
user in ``X-Forwarded-User``, the person's address in ``X-Forwarded-For``; the list server's
address in ``CANARY_TRUSTED_PROXIES``) and streams the answer on to the person. Each
download then carries canaries unique to it, and the export names the shared account (the
token) and the person behind it (the forwarded user).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from flask import Response, abort, current_app, request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import ClientDisconnected
from werkzeug.formparser import FormDataParser
from werkzeug.wsgi import wrap_file

from canary.errors import EmptyFileError
from canary.seed import SeedRequest, seed
from server.app import registry_of, settings_of
from server.auth import client_address, forwarded_user, principal, require

CHUNK = 1024 * 1024
DIR_PREFIX = "canary-gateway-"
SWEEP_AGE = 60.0  # seconds
RAW_TYPES = (
    "text/csv",
    "text/plain",
    "text/tab-separated-values",
    "application/csv",
    "application/octet-stream",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
)
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HTTP_CHARSETS = {"utf-8": "utf-8", "utf-8-sig": "utf-8", "cp932": "Windows-31J"}


def safe_filename(name: str | None, default: str = "list.csv") -> str:
    """A plain file name from a client's: no folders, no control or shell characters."""
    base = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = re.sub(r"[\x00-\x1f\x7f<>:\"|?*]", "_", base).strip(" .")
    return base[:150] or default


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    """A fresh folder only this process can read, locked while in use, removed afterwards."""
    _sweep()
    path = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))  # mode 0700
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def _sweep() -> None:
    """Remove folders of uploads a killed worker left behind (their lock is free). A folder
    younger than a minute may be one another worker has made and not yet locked."""
    now = time.time()
    for old in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        try:
            st = old.stat()
            if st.st_uid != os.getuid() or not old.is_dir() or now - st.st_mtime < SWEEP_AGE:
                continue
            fd = os.open(old, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live request of another worker
        else:
            shutil.rmtree(old, ignore_errors=True)
        finally:
            os.close(fd)


def _copy_body(target: Path) -> int:
    """Stream the raw request body to ``target`` in chunks; returns its size."""
    size = 0
    with target.open("wb") as fh:
        try:
            while chunk := request.stream.read(CHUNK):
                fh.write(chunk)
                size += len(chunk)
        except ClientDisconnected:
            abort(400, f"The upload was cut off after {size:,} bytes; send the list again.")
    return size


def _read_multipart(folder: Path) -> tuple[dict[str, str], tuple[Path, str] | None]:
    """Parse a multipart form, file parts written straight into ``folder``; the form's
    fields, and the path and client's name of its ``file`` part."""
    parts: list[IO[bytes]] = []

    def stream_factory(*_: Any, **__: Any) -> IO[bytes]:
        parts.append((folder / f"part-{len(parts)}").open("w+b"))
        return parts[-1]

    parser = FormDataParser(
        stream_factory,
        max_form_memory_size=1024 * 1024,
        max_content_length=current_app.config.get("MAX_CONTENT_LENGTH"),
        max_form_parts=100,
        silent=False,
    )
    try:
        _, form, files = parser.parse_from_environ(request.environ)
    except ValueError as exc:  # a malformed multipart body
        abort(400, f"The multipart form cannot be read ({exc}); send the list as `file`.")
    finally:
        for part in parts:
            part.close()  # written in full; the folder holds them
    fields = {k: str(form.get(k, "")).strip() for k in ("client", "list", "recipient", "filename")}
    upload: FileStorage | None = files.get("file")
    if upload is None:
        return fields, None
    return fields, (Path(upload.stream.name), upload.filename or "")


def _fields(given: dict[str, str]) -> tuple[str, str, str | None]:
    client = given.get("client") or request.args.get("client", "").strip()
    list_name = given.get("list") or request.args.get("list", "").strip()
    recipient = given.get("recipient") or request.args.get("recipient", "").strip()
    if not client or not list_name:
        abort(400, "Name the list's client and list (client=..., list=...) to seed it.")
    for label, value in (("client", client), ("list", list_name), ("recipient", recipient)):
        if len(value) > 200:
            abort(400, f"The {label} name is longer than 200 characters; shorten it.")
    return client, list_name, recipient or None


def _receive(folder: Path) -> tuple[Path, tuple[str, str, str | None]]:
    """Write the upload into ``folder/in``; the file and (client, list, recipient)."""
    inbox = folder / "in"
    inbox.mkdir()
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        given, upload = _read_multipart(folder)
        if upload is None:
            abort(400, "Send the list as the multipart file field `file`.")
        fields = _fields(given)
        path = inbox / safe_filename(given.get("filename") or upload[1])
        os.replace(upload[0], path)
        size = path.stat().st_size
    elif mimetype in RAW_TYPES or not mimetype:
        fields = _fields({})  # checked before the body is read
        default = "list.xlsx" if mimetype == XLSX_TYPE else "list.csv"
        path = inbox / safe_filename(request.args.get("filename"), default)
        size = _copy_body(path)
    else:
        abort(
            415,
            f"Send the list as text/csv (curl -H 'Content-Type: text/csv' --data-binary "
            f"@list.csv) or as a multipart form, not {mimetype}.",
        )
    if size == 0:
        raise EmptyFileError("The upload is empty; send the list as the request body.")
    return path, fields


def _content_type(file_format: str, encoding: str | None, name: str) -> str:
    if file_format == "xlsx":
        return XLSX_TYPE
    kind = "text/tab-separated-values" if name.lower().endswith(".tsv") else "text/csv"
    charset = HTTP_CHARSETS.get(encoding or "", (encoding or "").replace("_", "-").upper())
    return f"{kind}; charset={charset}" if charset else kind


def _disposition(name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


@require("seed")
def seed_upload() -> Any:
    """``POST /api/exports``: seed the uploaded list and answer the seeded file."""
    settings, registry = settings_of(), registry_of()
    client = client_address()
    proxy = request.remote_addr if client != request.remote_addr else None
    with private_folder() as folder:
        source, (client_name, list_name, recipient) = _receive(folder)
        out = folder / "out"
        out.mkdir()
        result = seed(
            registry,
            settings,
            SeedRequest(
                input=source,
                output=out / source.name,
                client=client_name,
                list_name=list_name,
                account=principal().name,
                recipient=recipient,
                requested_by=forwarded_user(),
                host=client,
                terminal=(f"api from {client}" + (f" via {proxy}" if proxy else ""))[:200],
            ),
        )
        # Open, then let the folder go: the answer streams from the open file, and nothing
        # of the list stays on disk whether or not the client reads it to the end.
        seeded = (out / source.name).open("rb")
    export = result.export
    name = source.name
    if export.file_format == "xlsx" and not name.lower().endswith(".xlsx"):
        name = Path(name).stem + ".xlsx"
    response = Response(
        wrap_file(request.environ, seeded, CHUNK),
        status=201,
        content_type=_content_type(export.file_format, export.encoding, name),
        direct_passthrough=True,
    )
    response.headers["Content-Length"] = str(os.fstat(seeded.fileno()).st_size)
    response.headers["Content-Disposition"] = _disposition(name)
    response.headers["X-Canary-Export-Id"] = export.code
    response.headers["X-Canary-Canaries"] = str(export.canary_count)
    response.headers["X-Canary-SHA256"] = export.output_sha256
    response.headers["Cache-Control"] = "no-store"
    return response
