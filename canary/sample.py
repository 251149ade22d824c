"""The rows a seed profiles its list from: the head, thinned, and windows through the file,
each export's drawn afresh.

Windows at fixed offsets gave every export of a list the same sample, so the sample's own
error (a district, a sex or a way of writing names a point or two more common in it than
in the list) was repeated by the canaries of every export, and a broker holding several
exports saw it grow no smaller. One window is read at a random offset in each of as many
equal strata of the file: a sorted list still shows all its districts, names and years,
and the errors of two exports' samples are independent.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from canary.csvfile import Dialect


def spread(
    path: Path,
    dialect: Dialect,
    start: int,
    width: int,
    rng: random.Random,
    windows: int,
    nbytes: int,
) -> list[list[str]]:
    """Records from ``windows`` windows of ``nbytes``, one at a random offset in each
    stratum of the data from byte ``start``. Only whole, quote-free lines with ``width``
    fields are taken."""
    size = path.stat().st_size
    span = size - start
    if span <= nbytes:
        return []
    term = bytes([dialect.terminator])
    stratum = (span - nbytes) / windows
    out: list[list[str]] = []
    with path.open("rb") as fh:
        for i in range(windows):
            fh.seek(start + int(stratum * i + rng.random() * stratum))
            data = fh.read(nbytes)
            first, last = data.find(term), data.rfind(term)
            if first < 0 or last <= first:
                continue
            text = data[first + 1 : last + 1].decode(dialect.encoding, errors="replace")
            for line in text.splitlines():
                if not line or '"' in line or "\ufffd" in line:
                    continue
                row = next(csv.reader([line], delimiter=dialect.delimiter))
                if len(row) == width:
                    out.append(row)
    return out


def thinned(body: list[list[str]], keep: int, rng: random.Random) -> list[list[str]]:
    """``keep`` rows of the head, evenly spaced from a random first one: the head of a
    sorted list holds only its first districts or years, and taken whole it would pull
    canaries there."""
    keep = max(1, min(keep, len(body)))
    step = len(body) / keep
    phase = rng.random() * step
    return [body[min(len(body) - 1, int(phase + i * step))] for i in range(keep)]
