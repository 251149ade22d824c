"""Call-detail records (CDRs) as events: every call or SMS to a pool number in a telephone
system's log becomes one stored, classified event.

Two formats are read:

- **asterisk**: ``Master.csv`` of Asterisk's ``cdr_csv`` module. No header; the fields are
  accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start,
  answer, end, duration, billsec, disposition, amaflags, then uniqueid and userfield when
  ``loguniqueid``/``loguserfield`` are on (newer versions may append more). Times are local
  time without a zone (UTC with ``usegmtime``): ``tz`` says which zone.
- **simple**: a CSV with the header ``time,from,to,duration,kind`` (any order, any case;
  ``kind`` is ``call`` or ``sms``, empty meaning call; ``time`` is ISO 8601, taken in ``tz``
  when it has no offset). Optional columns: ``id`` (the system's own id of the contact,
  used to recognise it again) and ``text`` (an SMS body).

Files are UTF-8 (with or without BOM) or CP932. Each row's id is the Asterisk uniqueid, the
``id`` column, or else a hash of the row's parsed fields, so importing the same file again,
or a later file that overlaps it, stores nothing twice. Rows that cannot be read are
reported with their line number and the import goes on with the others.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.exc import SQLAlchemyError

from canary.errors import EmptyFileError, EncodingError, InputError, InvalidEventError
from canary.events import EventDraft
from canary.normalize import phone_e164
from canary.registry import Registry
from canary.settings import Settings

FORMATS = ("auto", "asterisk", "simple")
DEFAULT_TZ = "Asia/Tokyo"
ASTERISK_FIELDS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
    "uniqueid", "userfield",
)  # fmt: skip
SIMPLE_REQUIRED = ("time", "from", "to")
MAX_RECORD_LINES = 5  # lines one quoted field may span
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RowError:
    line: int  # 1-based line of the file where the row starts
    reason: str


@dataclass
class ImportResult:
    """What one import did: how many rows, what became of them, which rows failed."""

    file: str
    format: str
    encoding: str
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    counts: dict[str, int] = field(
        default_factory=lambda: {"expected": 0, "suspicious": 0, "noise": 0}
    )
    errors: list[RowError] = field(default_factory=list)
    stopped: str | None = None  # why the import stopped before the end, if it did

    @property
    def imported(self) -> int:
        return self.stored + self.duplicates

    @property
    def ok(self) -> bool:
        """True unless the import stopped early or no row could be imported."""
        return self.stopped is None and (self.imported > 0 or self.rows == 0)

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "format": self.format,
            "encoding": self.encoding,
            "rows": self.rows,
            "stored": self.stored,
            "duplicates": self.duplicates,
            **self.counts,
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
            "stopped": self.stopped,
        }


def zone(name: str) -> tzinfo:
    """The time zone called ``name``; InputError if there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"Unknown time zone {name!r}; give an IANA name such as Asia/Tokyo or UTC."
        ) from None


def parse_time(value: str, tz: tzinfo, end_of_day: bool = False) -> datetime:
    """An ISO 8601 time, in UTC; without an offset it is taken in ``tz``. A bare date is the
    start of that day, or its last moment with ``end_of_day``. ValueError if it is not one."""
    text = value.strip()
    if len(text) == 10 and text[4] == "-":
        day = date.fromisoformat(text)
        moment = datetime.combine(day, time.max if end_of_day else time.min)
    else:
        moment = datetime.fromisoformat(text.replace("/", "-"))
    # In UTC: SQLite keeps no offset, so a stored time must already be UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).astimezone(UTC)


def detect_encoding(path: Path) -> str:
    """utf-8-sig, utf-8 or cp932, read through the whole file; EncodingError otherwise."""
    with path.open("rb") as f:
        head = f.read(3)
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise EncodingError(f"{path.name} is UTF-16; save it as UTF-8 or CP932 and try again.")
    candidates = ["utf-8-sig"] if head == codecs.BOM_UTF8 else ["utf-8", "cp932"]
    for name in candidates:
        decoder = codecs.getincrementaldecoder(name)()
        try:
            with path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    if b"\0" in chunk:  # no text file holds NUL; CP932 would accept it
                        raise UnicodeDecodeError(name, chunk, 0, 1, "NUL byte")
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return name
        except UnicodeDecodeError:
            continue
    raise EncodingError(
        f"{path.name} is neither UTF-8 nor CP932 (Shift_JIS); save it as UTF-8 and try again."
    )


def _records(path: Path, encoding: str) -> Iterator[tuple[int, bytes, list[str] | str]]:
    """(first line, raw bytes, fields or the reason they cannot be read) per CSV record.

    A quoted field may span lines, but at most ``MAX_RECORD_LINES``: a stray quote must not
    swallow the rest of the file, so past that its first line is reported and reading
    starts again on the next line."""
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    pending: deque[tuple[int, bytes]] = deque()
    with path.open("rb") as f:
        numbered = enumerate(f, start=1)
        while True:
            if not pending:
                nxt = next(numbered, None)
                if nxt is None:
                    return
                pending.append(nxt)
            lines = list(pending)
            raw = b"".join(r for _, r in lines)
            if lines[0][0] == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[3:]
            text = raw.decode(codec)
            if text.count('"') % 2 == 1:  # inside a quoted field: the record goes on
                nxt = next(numbered, None) if len(lines) < MAX_RECORD_LINES else None
                if nxt is not None:
                    pending.append(nxt)
                    continue
                line, first = pending.popleft()
                yield line, first, "a quoted field is not closed"
                continue
            pending.clear()
            try:
                row = next(csv.reader(io.StringIO(text), strict=True), [])
            except csv.Error as exc:
                yield lines[0][0], raw, f"not a CSV record ({exc})"
                continue
            yield lines[0][0], raw, row


def _is_simple_header(row: list[str]) -> bool:
    names = {c.strip().lower() for c in row}
    return all(n in names for n in SIMPLE_REQUIRED)


def _row_id(values: dict[str, object]) -> str:
    body = json.dumps(values, sort_keys=True, ensure_ascii=False, default=str)
    return "row-" + hashlib.sha256(body.encode("utf-8")).hexdigest()[:40]


def _phone_or_raw(value: str) -> str | None:
    text = value.strip()
    return (phone_e164(text) or text) if text else None


def _seconds(value: str, what: str) -> int | None:
    text = value.strip()
    if not text:
        return None
    try:
        return int(float(text))
    except ValueError:
        raise InvalidEventError(f"{what} {text!r} is not a number of seconds") from None


def _asterisk_draft(row: list[str], raw: bytes, tz: tzinfo, name: str) -> EventDraft:
    if len(row) < 16:
        raise InvalidEventError(
            f"{len(row)} fields where an Asterisk CDR has at least 16 (is this the right file?)"
        )
    f = dict(zip(ASTERISK_FIELDS, row, strict=False))
    try:
        start = parse_time(f["start"], tz)
    except ValueError:
        raise InvalidEventError(f"start time {f['start']!r} is not a date and time") from None
    source = _phone_or_raw(f["src"]) or _phone_or_raw(f["clid"].rpartition("<")[2].strip(">"))
    target = phone_e164(f["dst"]) or f["dst"].strip()
    duration = _seconds(f["duration"], "duration")
    details: dict[str, object] = {
        "file": name,
        "duration": duration,
        "billsec": _seconds(f["billsec"], "billsec"),
        "disposition": f["disposition"].strip(),
    }
    uniqueid = f.get("uniqueid", "").strip()
    if uniqueid and len(row) > 20 and row[20].strip():
        uniqueid += f"#{row[20].strip()}"  # newcdrcolumns: one call may log several CDRs
    pid = uniqueid or _row_id(
        {
            "start": start.isoformat(),
            "src": source,
            "dst": target,
            "channel": f["channel"].strip(),
            "dstchannel": f["dstchannel"].strip(),
            "duration": duration,
            "disposition": details["disposition"],
        }
    )
    return EventDraft(
        channel="call",
        target=target,
        occurred_at=start,
        provider="cdr",
        payload=raw,
        source=source,
        provider_id=pid,
        details=details,
    )


def _simple_draft(
    row: list[str], header: list[str], raw: bytes, tz: tzinfo, name: str
) -> EventDraft:
    if len(row) != len(header):
        raise InvalidEventError(f"{len(row)} fields where the header has {len(header)}")
    f = {h: v for h, v in zip(header, row, strict=True)}
    try:
        moment = parse_time(f["time"], tz)
    except ValueError:
        raise InvalidEventError(f"time {f['time']!r} is not an ISO 8601 date and time") from None
    kind = f.get("kind", "").strip().lower() or "call"
    if kind not in ("call", "sms"):
        raise InvalidEventError(f"kind {kind!r} is neither call nor sms")
    source = _phone_or_raw(f["from"])
    target = phone_e164(f["to"]) or f["to"].strip()
    duration = _seconds(f.get("duration", ""), "duration")
    text = f.get("text", "").strip() or None
    own_id = f.get("id", "").strip()
    pid = own_id or _row_id(
        {
            "time": moment.isoformat(),
            "from": source,
            "to": target,
            "kind": kind,
            "duration": duration,
            "text": text,
        }
    )
    return EventDraft(
        channel=kind,
        target=target,
        occurred_at=moment,
        provider="cdr",
        payload=raw,
        source=source,
        provider_id=pid,
        text=text,
        details={"file": name, "duration": duration},
    )


def import_cdr(
    registry: Registry,
    path: Path | str,
    settings: Settings,
    fmt: str = "auto",
    tz: str = DEFAULT_TZ,
) -> ImportResult:
    """Record every row of a call-detail file as an event, once; see the module docstring.

    Raises InputError (before anything is stored) when the file cannot be read at all;
    row problems are collected in ``ImportResult.errors``.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"Unknown CDR format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if not path.is_file():
        raise InputError(f"{path} is not a file; give the path of the call-detail CSV.")
    zone_info = zone(tz)
    encoding = detect_encoding(path)
    grace = timedelta(hours=settings.expect_grace_hours)
    result = ImportResult(file=path.name, format=fmt, encoding=encoding)
    header: list[str] | None = None
    for line, raw, row in _records(path, encoding):
        if isinstance(row, str):
            result.errors.append(RowError(line, row))
            continue
        if not any(c.strip() for c in row):
            continue
        if result.format == "auto":
            result.format = "simple" if _is_simple_header(row) else "asterisk"
        if result.format == "simple" and header is None:
            if not _is_simple_header(row):
                raise InputError(
                    f"{path.name} has no header time,from,to,duration,kind on line "
                    f"{line}; add it, or use --format asterisk for an Asterisk Master.csv."
                )
            header = [c.strip().lower() for c in row]
            continue
        result.rows += 1
        try:
            if header is not None:
                draft = _simple_draft(row, header, raw, zone_info, path.name)
            else:
                draft = _asterisk_draft(row, raw, zone_info, path.name)
            event = registry.record_event(draft, grace=grace, threshold=settings.event_threshold)
        except InvalidEventError as exc:
            result.errors.append(RowError(line, str(exc).rstrip(".")))
            continue
        except SQLAlchemyError as exc:
            # The rows before this one are stored; importing again stores only the rest.
            result.stopped = f"line {line}: the registry failed ({type(exc).__name__})"
            break
        if event.duplicate:
            result.duplicates += 1
        else:
            result.stored += 1
            result.counts[event.classification] = result.counts.get(event.classification, 0) + 1
    if result.rows == 0 and header is None and not result.errors:
        raise EmptyFileError(f"{path.name} holds no call records.")
    return result
