"""One streaming pass over a delimited host list for a round of the check of canaries
(canary.hostcheck): the IDs looked for, and the people at the canaries' postcodes or
holding the export's pool numbers or addresses on its pool domains (canary.hostkeys).

polars reads the list as lossy UTF-8 (see canary.idcheck) and keeps rows by substrings of
their ASCII cells (Aho-Corasick, one scan of each cell): extracting digits from every cell
cost as much as the rest of the seed. The few kept rows are then compared exactly, and the
people at the postcodes are read exactly from their own lines (found by the rows' numbers),
so that their names and readings are compared as written, not in lossy forms; only when a
line is not where the pass counted it (a quoted line break) are they read lossy instead.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from canary.csvfile import Dialect
from canary.hostkeys import Columns, Found, Probe, lossy, python_found
from canary.idcheck import _scan
from canary.normalize import email_key, postcode_key
from canary.schema import Schema

BATCH = 50_000  # lines of people read at a time
_WIDE = str.maketrans("0123456789-", "０１２３４５６７８９－")
_DASHES = ("", "-", " ", "－", "ー", "‐", "−")


def find_hosts(
    path: Path, dialect: Dialect, schema: Schema, skip_lines: int, probe: Probe, found: Found
) -> None:
    """Add to ``found`` what the list holds of ``probe``, in one streaming pass (their keys
    only, in memory; see canary.hostkeys)."""
    import polars as pl

    cols = Columns.of(schema)
    try:
        frame = _kept_rows(path, dialect, schema, skip_lines, probe, cols)
    except (pl.exceptions.PolarsError, OSError):
        python_found(_python_rows(path, dialect, schema), cols, probe, found)
        return
    digits = _digits(dialect.encoding)
    if cols.id is not None and probe.ids:
        ids = frame.select(pl.col("id").str.strip_chars()).to_series()
        found.ids |= set(ids.filter(ids.is_in(sorted(probe.ids))).to_list())
    for j in range(len(cols.phones)):
        number = digits(pl.col(f"ph{j}"))
        number = (
            pl.when(number.str.starts_with("81") & number.str.len_chars().is_in([11, 12]))
            .then(pl.lit("0") + number.str.slice(2))
            .otherwise(number)
        )
        held = frame.select(number.alias("n")).to_series()
        found.phones |= set(held.filter(held.is_in(sorted(probe.phones))).to_list())
    domains = {d.lower() for d in probe.domains}
    for k in range(len(cols.emails)):
        for cell in frame[f"em{k}"].drop_nulls().to_list():
            if (address := email_key(cell)).rpartition("@")[2] in domains:
                found.emails.add(address)
    if cols.postcodes and probe.postcodes:
        codes = sorted(probe.postcodes)
        near = [digits(pl.col(f"pc{i}")).is_in(codes) for i in range(len(cols.postcodes))]
        people = frame.filter(pl.any_horizontal(near))
        width = len(schema.columns)
        kept = (cols, people)
        if people.height and not _read_people(path, dialect, skip_lines, width, kept, found):
            _read_people_lossy(path, dialect, schema, skip_lines, probe, cols, found)
    found.looked_for(probe)


def _kept_rows(
    path: Path,
    dialect: Dialect,
    schema: Schema,
    skip_lines: int,
    probe: Probe,
    cols: Columns,
    names: bool = False,
) -> Any:
    """The rows the pass keeps, with their number and their ID, postcode, phone and email
    cells as read; ``names``: those at the postcodes, with their name and reading cells.
    Rows are kept by a postcode written with or without its hyphen (any dash, a space,
    after 〒, in full width), a pool number's last two groups with any common separator
    between them (in full width too), ``@domain`` in any case, or an ID."""
    import polars as pl

    def cell(c: int) -> Any:
        return pl.col(f"c{c}")

    conds: list[Any] = []
    codes = _written(sorted(probe.postcodes), _postcode_forms, dialect.encoding)
    conds += [cell(c).str.contains_any(codes) for c in cols.postcodes if codes]
    if not names:
        if cols.id is not None and probe.ids:
            conds.append(cell(cols.id).str.strip_chars().is_in(sorted(probe.ids)))
        numbers = _written(sorted(probe.phones), _phone_forms, dialect.encoding)
        conds += [cell(c).str.contains_any(numbers) for c in cols.phones if numbers]
        at = ["@" + d for d in probe.domains]
        conds += [
            cell(c).str.contains_any(at, ascii_case_insensitive=True) for c in cols.emails if at
        ]
    shown = {"id": cols.id} if cols.id is not None else {}
    shown |= {f"pc{i}": c for i, c in enumerate(cols.postcodes)}
    shown |= {f"ph{j}": c for j, c in enumerate(cols.phones)}
    shown |= {f"em{k}": c for k, c in enumerate(cols.emails)}
    if names:
        shown |= {f"n{j}": c for j, c in enumerate(cols.names)}
        shown |= {f"k{j}": c for j, c in enumerate(cols.kanas)}
    exprs = [cell(c).alias(name) for name, c in shown.items()]
    scan = _scan(path, dialect, len(schema.columns), skip_lines).with_row_index("row")
    if not conds:
        return scan.select("row", *exprs).head(0).collect()
    query = scan.filter(pl.any_horizontal(conds)).select("row", *exprs)
    return query.collect(engine="streaming")


def _read_people(
    path: Path,
    dialect: Dialect,
    skip_lines: int,
    width: int,
    kept: tuple[Columns, Any],
    found: Found,
) -> bool:
    """Read the lines of the ``kept`` rows (at the postcodes) and add their names and readings to
    ``found``, decoded exactly; False when a line is not the row the pass counted (its
    cells differ from the pass's), and nothing is added."""

    cols, people = kept
    people = people.sort("row")
    rows = people["row"].to_list()
    # A quoted line break moves every later row off its line: the last row, and every
    # fiftieth, are checked against their cells as the pass read them.
    shown = [c for c in people.columns if c != "row"]
    where = [cols.id] if cols.id is not None else []
    where += [*cols.postcodes, *cols.phones, *cols.emails]
    checked = {*range(0, len(rows), 50), len(rows) - 1}
    d = dialect.delimiter
    staged = Found()  # added to ``found`` only when every line was the pass's row
    batch: list[bytes] = []
    seen = 0
    for k, line in enumerate(_lines(path, dialect.terminator, [n + skip_lines for n in rows])):
        seen += 1
        line = line.rstrip(b"\r\n")
        if k in checked:
            cells = next(csv.reader([line.decode("utf-8", "replace")], delimiter=d), [])
            as_read = tuple((cells[c] if c < len(cells) else "") or None for c in where)
            if as_read != tuple(people.row(k, named=True)[c] or None for c in shown):
                return False
        batch.append(line)
        if len(batch) == BATCH or k == len(rows) - 1:  # memory bounded by the batch
            if not _read_batch(batch, dialect, width, cols, staged):
                return False
            batch = []
    if seen != len(rows):
        return False
    for mine, theirs in ((staged.names, found.names), (staged.kanas, found.kanas)):
        for code, keys in mine.items():
            theirs.setdefault(code, set()).update(keys)
    return True


def _read_batch(
    lines: list[bytes], dialect: Dialect, width: int, cols: Columns, found: Found
) -> bool:
    """Add the people of ``lines`` (decoded exactly) to ``found``; False when polars
    does not read them as as many rows."""
    import polars as pl

    text = b"\n".join(lines).decode(dialect.encoding, "replace").encode()
    try:
        exact = pl.read_csv(
            io.BytesIO(text + b"\n"),
            has_header=False,
            separator=dialect.delimiter,
            schema={f"c{i}": pl.String for i in range(width)},
            truncate_ragged_lines=True,
            missing_columns="insert",
            extra_columns="ignore",
        )
    except pl.exceptions.PolarsError:
        return False
    if exact.height != len(lines):  # a stray quote joined two lines
        return False
    _add_people(exact, cols, found, lambda cell: postcode_key(cell or ""), lossy=False)
    return True


def _add_people(
    frame: Any,
    cols: Columns,
    found: Found,
    code_of: Callable[[str | None], str | None],
    lossy: bool,
    prefix: tuple[str, str, str] = ("c", "c", "c"),
) -> None:
    """Each distinct (postcode, name, reading) of ``frame`` into ``found``."""
    import polars as pl

    pc, n, k = prefix

    def joined(names: list[str]) -> Any:
        if not names:
            return pl.lit("")
        return pl.concat_str([pl.col(c).fill_null("") for c in names])

    for i, c in enumerate(cols.postcodes):
        code = f"{pc}{c if pc == 'c' else i}"
        name = joined([f"{n}{x if n == 'c' else j}" for j, x in enumerate(cols.names)])
        kana = joined([f"{k}{x if k == 'c' else j}" for j, x in enumerate(cols.kanas)])
        three = frame.select(pl.col(code).alias("p"), name.alias("n"), kana.alias("k")).unique()
        for p, person, reading in three.iter_rows():
            found.add_row(code_of(p), person, reading, lossy=lossy)


def _read_people_lossy(
    path: Path,
    dialect: Dialect,
    schema: Schema,
    skip_lines: int,
    probe: Probe,
    cols: Columns,
    found: Found,
) -> None:
    """The names and readings of the people at the postcodes, lossy, in a second pass."""
    import polars as pl

    frame = _kept_rows(path, dialect, schema, skip_lines, probe, cols, names=True)
    digits = _digits(dialect.encoding)
    codes = frame.with_columns(
        [digits(pl.col(f"pc{i}")).alias(f"pc{i}") for i in range(len(cols.postcodes))]
    )
    wanted = probe.postcodes

    def code_of(cell: str | None) -> str | None:
        return cell if cell in wanted else None

    _add_people(codes, cols, found, code_of, lossy=True, prefix=("pc", "n", "k"))


def _lines(path: Path, terminator: int, numbers: list[int]) -> Iterator[bytes]:
    """The lines (0-based, with their terminator) of ``numbers`` (sorted) of a file, in
    order, found block by block with numpy."""
    import numpy as np

    want = np.asarray(numbers, dtype=np.int64)
    at, base, carry = 0, 0, b""
    with path.open("rb") as fh:
        while at < len(want):
            block = fh.read(1 << 24)
            data = carry + block
            ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == terminator)
            if not block:  # the last line, without a terminator
                ends = np.append(ends, len(data))
            stop = int(np.searchsorted(want, base + len(ends)))
            for n in want[at:stop].tolist():
                j = n - base
                yield data[int(ends[j - 1]) + 1 if j else 0 : int(ends[j]) + 1]
            at = stop
            if not block:
                break
            carry = data[int(ends[-1]) + 1 :] if len(ends) else data
            base += len(ends)


@functools.cache
def _digit_fold(encoding: str) -> dict[str, str]:
    """Full-width digits as the pass reads them in ``encoding``, to ASCII digits: exact in
    UTF-8, a replacement character and a letter in CP932, lost in EUC-JP (both bytes are
    outside ASCII): none then."""
    forms = lossy([chr(0xFF10 + d) for d in range(10)], encoding)
    if len(set(forms)) < 10 or any(not f for f in forms):
        return {}
    return {f: str(d) for d, f in enumerate(forms)}


def _digits(encoding: str) -> Callable[[Any], Any]:
    """An expression's digits as the pass reads them (full-width ones folded)."""
    fold = _digit_fold(encoding)

    def digits(expr: Any) -> Any:
        if fold:
            expr = expr.str.replace_many(fold)
        return expr.str.replace_all(r"[^0-9]", "")

    return digits


def _postcode_forms(code: str) -> list[str]:
    wide = code.translate(_WIDE)
    return [code[:3] + s + code[3:] for s in _DASHES] + [wide[:3] + s + wide[3:] for s in _DASHES]


def _phone_forms(number: str) -> list[str]:
    """The last two groups of a number (national digits, 0...) as written."""
    import phonenumbers

    if not number.startswith("0"):
        return []  # the 81... form of a number also held as 0...
    parsed = phonenumbers.parse(number, "JP")
    groups = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    *_, a, b = ["", "", *groups.split("-")]
    seps = (*_DASHES, ")", "）", ".")
    return [a + s + b for s in seps] + [(a + s + b).translate(_WIDE) for s in seps]


def _written(values: list[str], forms: Callable[[str], list[str]], encoding: str) -> list[str]:
    """Every form of ``values`` as the pass reads them in ``encoding``; full-width forms
    only where the lossy read keeps their digits apart (not in EUC-JP)."""
    wide = bool(_digit_fold(encoding))
    texts = [t for v in values for t in forms(v) if (wide or t.isascii()) and _encodes(t, encoding)]
    return sorted(set(lossy(texts, encoding)) - {""})


def _encodes(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def _python_rows(path: Path, dialect: Dialect, schema: Schema) -> Iterator[list[str]]:
    with path.open("rb") as fh:
        text = io.TextIOWrapper(fh, encoding=dialect.encoding, errors="replace", newline="")
        for i, rec in enumerate(csv.reader(text, delimiter=dialect.delimiter)):
            if i > schema.header_index:
                yield rec
