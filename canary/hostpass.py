"""One streaming pass over a delimited host list for a round of the check of canaries
(canary.hostcheck): the IDs looked for, and the people at the canaries' postcodes (their
names, readings and block numbers) or holding the export's pool numbers or addresses on
its pool domains (canary.hostkeys).

polars reads the list as lossy UTF-8 (see canary.idcheck) and keeps rows by the forms of
the keys their cells hold (canary.hostfilter): extracting digits from every cell cost as
much as the rest of the seed. The few kept rows are then compared exactly, and the
people at the postcodes are read exactly from their own lines (found by the rows' numbers),
so that their names and readings are compared as written, not in lossy forms; only when a
line is not where the pass counted it (a quoted line break) are they read lossy instead.
"""

from __future__ import annotations

import collections
import csv
import io
import itertools
import mmap
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from canary import hostfilter
from canary.csvfile import Dialect
from canary.hostkeys import Columns, Found, Probe, python_found
from canary.idcheck import _scan
from canary.normalize import email_key, postcode_key
from canary.schema import Schema

BATCH = 50_000  # lines of people read at a time
TESTED = 10_000  # rows kept quickly, tested exactly at a time (see _compact)


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
    digits = hostfilter.digits_of(dialect.encoding)
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
    """The rows the pass keeps (see canary.hostfilter), with their number and their ID,
    postcode, phone and email cells as read; ``names``: those at the postcodes, with their
    name and reading cells."""
    import polars as pl

    shown = {"id": cols.id} if cols.id is not None else {}
    shown |= {f"pc{i}": c for i, c in enumerate(cols.postcodes)}
    shown |= {f"ph{j}": c for j, c in enumerate(cols.phones)}
    shown |= {f"em{k}": c for k, c in enumerate(cols.emails)}
    if names:
        shown |= {f"n{j}": c for j, c in enumerate(cols.names)}
        shown |= {f"k{j}": c for j, c in enumerate(cols.kanas)}
    exprs = [pl.col(f"c{c}").alias(name) for name, c in shown.items()]
    scan = _scan(path, dialect, len(schema.columns), skip_lines).with_row_index("row")
    scan = scan.select("row", *exprs)
    none = pl.DataFrame(schema=scan.collect_schema())
    quick, exact = hostfilter.conditions(probe, cols, dialect.encoding, names)
    if not quick:
        return none
    # The exact tests a batch at a time: in the streaming query they would run (and build
    # their automata) morsel by morsel. The batches are small: rows kept quickly hold the
    # buffers of the blocks they were read from until their batch is tested and compacted.
    batches = scan.filter(pl.any_horizontal(quick)).collect_batches(
        chunk_size=TESTED, engine="streaming"
    )
    kept = [_compact(b.filter(pl.any_horizontal(exact))) for b in batches]
    return pl.concat([none, *kept])


def _compact(frame: Any) -> Any:
    """``frame`` in buffers of its own: a string cell of more than 12 bytes points into
    the buffer of the whole block of the list it was read from, and the rows kept across
    the list held every block (10 M rows: 250 MiB more at the end of the pass)."""
    import polars as pl

    buffer = io.BytesIO()
    frame.write_ipc(buffer, compat_level=pl.CompatLevel.oldest())
    buffer.seek(0)
    return pl.read_ipc(buffer)


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
    lines = [n + skip_lines for n in people["row"].to_list()]
    staged = Found()  # added to ``found`` only when every line was the pass's row
    at, count = 0, 0
    texts: list[bytes] = []
    for n, text in _joined_lines(path, dialect.terminator, lines):
        count += n
        texts.append(text)
        if count < BATCH and at + count < people.height:
            continue  # memory bounded by the batch
        batch = people.slice(at, count)
        if not _read_batch(b"\n".join(texts), batch, dialect, width, cols, staged):
            return False
        at, count = at + count, 0
        texts.clear()
    if at != people.height:
        return False
    for mine, theirs in ((staged.names, found.names), (staged.kanas, found.kanas)):
        for code, keys in mine.items():
            theirs.setdefault(code, set()).update(keys)
    for code, shapes in staged.streets.items():
        found.streets.setdefault(code, []).extend(shapes)
    return True


def _read_batch(
    text: bytes, people: Any, dialect: Dialect, width: int, cols: Columns, found: Found
) -> bool:
    """Add the people of ``text`` (the lines of ``people``, joined), decoded exactly, to
    ``found``; False when a line is not its row: a quoted line break moves every later row
    off its line, so the last row, and every fiftieth, are checked against their cells as
    the pass read them, and polars must read as many rows."""
    import polars as pl

    lines = text.split(b"\n")
    where = [cols.id] if cols.id is not None else []
    where += [*cols.postcodes, *cols.phones, *cols.emails]
    shown = people.select(c for c in people.columns if c != "row")
    for k in {*range(0, len(lines), 50), len(lines) - 1}:
        line = lines[k].decode("utf-8", "replace")
        cells = next(csv.reader([line], delimiter=dialect.delimiter), [])
        as_read = tuple((cells[c] if c < len(cells) else "") or None for c in where)
        if as_read != tuple(v or None for v in shown.row(k)):
            return False
    try:
        exact = pl.read_csv(
            io.BytesIO(text.decode(dialect.encoding, "replace").encode() + b"\n"),
            has_header=False,
            separator=dialect.delimiter,
            schema={f"c{i}": pl.String for i in range(width)},
            truncate_ragged_lines=True,
            missing_columns="insert",
            extra_columns="ignore",
        )
    except pl.exceptions.PolarsError:
        return False
    if not len(lines) == exact.height == people.height:  # a stray quote joined two lines
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
    """Each distinct (postcode, name, reading) of ``frame`` into ``found``, and, read
    exactly, every person's block number."""
    import polars as pl

    pc, n, k = prefix
    codes: dict[str | None, str | None] = {}  # a postcode cell's key, once per cell

    def code_at(cell: str | None) -> str | None:
        if cell not in codes:
            codes[cell] = code_of(cell)
        return codes[cell]

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
            found.add_row(code_at(p), person, reading, lossy=lossy)
        if not lossy and cols.street is not None:  # lossy digits may be wrong: none kept
            # One block number per person; people sharing an address (a household) are
            # read once, in the list's order, so that a seed's draws are its own again.
            pairs = frame.group_by(code, f"c{cols.street}", maintain_order=True).len()
            for p, address, people in pairs.iter_rows():
                found.add_street(code_at(p), address, people)


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
    digits = hostfilter.digits_of(dialect.encoding)
    codes = frame.with_columns(
        [digits(pl.col(f"pc{i}")).alias(f"pc{i}") for i in range(len(cols.postcodes))]
    )
    wanted = probe.postcodes

    def code_of(cell: str | None) -> str | None:
        return cell if cell in wanted else None

    _add_people(codes, cols, found, code_of, lossy=True, prefix=("pc", "n", "k"))


def _joined_lines(
    path: Path, terminator: int, numbers: list[int], block: int = 1 << 23
) -> Iterator[tuple[int, bytes]]:
    """The lines (0-based) of ``numbers`` (sorted) of a file, without their ends (as
    ``rstrip(b"\\r\\n")``), in order: for each ``block`` bytes, how many lines end in it
    and those lines joined by newlines. The file is mapped, not copied (each block let go
    when done), and its line ends found with numpy (see _block_ends)."""
    import numpy as np

    want = np.asarray(numbers, dtype=np.int64)
    if not len(want) or not path.stat().st_size:
        return
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        data = np.frombuffer(mm, dtype=np.uint8)
        try:
            at, base, last = 0, 0, -1  # last: where the line before the block ended
            for lo, hi, ends in _block_ends(data, terminator, block):
                if hi == len(data) and data[-1] != terminator:  # a last line without one
                    ends = np.append(ends, len(data))
                stop = int(np.searchsorted(want, base + len(ends)))
                rows = want[at:stop] - base
                starts = np.where(rows > 0, ends[rows - 1] + 1, last + 1)
                stops = ends[rows]
                while True:  # strip each line's ends, as rstrip(b"\r\n")
                    some = np.flatnonzero(stops > starts)
                    some = some[np.isin(data[stops[some] - 1], (10, 13))]
                    if not len(some):
                        break
                    stops[some] -= 1
                if len(rows):
                    pairs = zip(starts.tolist(), stops.tolist(), strict=True)
                    yield len(rows), b"\n".join([mm[i:j] for i, j in pairs])
                at, base = stop, base + len(ends)
                last = int(ends[-1]) if len(ends) else last
                if hasattr(mmap, "MADV_DONTNEED") and (upto := hi - hi % mmap.PAGESIZE) > lo:
                    mm.madvise(mmap.MADV_DONTNEED, 0, upto)  # memory stays that of a block
                if at == len(want):
                    break
        finally:
            del data  # the map closes only when nothing points into it


def _block_ends(data: Any, terminator: int, block: int) -> Iterator[tuple[int, int, Any]]:
    """Each ``block`` bytes of ``data`` (from, to) and the offsets of the terminators in
    it, in order; found on two threads, a few blocks ahead (numpy lets go of the GIL),
    each in a mask of its own used again."""
    import numpy as np

    local = threading.local()

    def ends(lo: int) -> tuple[int, int, Any]:
        hi = min(lo + block, len(data))
        if getattr(local, "mask", None) is None:
            local.mask = np.empty(block, dtype=bool)
        found = np.flatnonzero(np.equal(data[lo:hi], terminator, out=local.mask[: hi - lo]))
        return lo, hi, lo + found

    starts = iter(range(0, len(data), block))
    with ThreadPoolExecutor(2, thread_name_prefix="canary-lines") as pool:
        ahead = collections.deque(pool.submit(ends, lo) for lo in itertools.islice(starts, 3))
        while ahead:
            done = ahead.popleft().result()
            if (lo := next(starts, None)) is not None:
                ahead.append(pool.submit(ends, lo))
            yield done


def _python_rows(path: Path, dialect: Dialect, schema: Schema) -> Iterator[list[str]]:
    with path.open("rb") as fh:
        text = io.TextIOWrapper(fh, encoding=dialect.encoding, errors="replace", newline="")
        for i, rec in enumerate(csv.reader(text, delimiter=dialect.delimiter)):
            if i > schema.header_index:
                yield rec
