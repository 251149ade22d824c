"""Which rows of a host list the pass of canary.hostpass keeps, in two stages.

A row is kept when a postcode cell holds one of the canaries' postcodes written with or
without its hyphen (any dash, a space, after 〒, in full width), a phone cell holds a pool
number's last two groups with any common separator between them (in full width too), an
email cell holds ``@domain`` in any case, or its ID is one looked for: the forms, every
one as the pass reads it (lossy in CP932 and EUC-JP).

Looking for about 1,600 forms in every cell of a 10-million-row list cost more than the
rest of the pass: polars builds the Aho-Corasick automaton again for each morsel, and one
of that many patterns is searched state by state. So the streaming pass only tests each
row quickly, with tests every row holding a form passes (a few others do too): a
postcode cell equal to a form, or of a length that could hold one without being one; a
phone cell holding a pool number's last group (a few dozen patterns, not hundreds); an
ID cell equal to an ID or longer. The exact tests then run on the rows kept, a batch at a
time: the rows kept are the same.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from canary.hostkeys import Columns, Probe, lossy

_WIDE = str.maketrans("0123456789-", "０１２３４５６７８９－")
_DASHES = ("", "-", " ", "－", "ー", "‐", "−")
_DIGITS = list("0123456789")


def conditions(
    probe: Probe, cols: Columns, encoding: str, names: bool
) -> tuple[list[Any], list[Any]]:
    """(quick, exact) conditions on the pass's columns (``id``, ``pc0``..., ``ph0``...,
    ``em0``...): a row meets one exact condition only if it meets a quick one. ``names``:
    the postcodes' alone (the lossy second pass)."""
    import polars as pl

    quick: list[Any] = []
    exact: list[Any] = []
    codes = _written(sorted(probe.postcodes), _postcode_forms, encoding)
    for i in range(len(cols.postcodes) if codes else 0):
        cell = pl.col(f"pc{i}")
        quick.append(_equal_or_longer(cell, codes))
        exact.append(cell.str.contains_any(codes))
    if names:
        return quick, exact
    if cols.id is not None and probe.ids:
        ids = sorted(probe.ids)
        cell = pl.col("id")
        # A cell that is an ID only once stripped is longer than it.
        longer = cell.str.len_bytes() > min(len(i.encode()) for i in ids)
        quick.append(cell.is_in(ids) | longer)
        exact.append(cell.str.strip_chars().is_in(ids))
    numbers = _written(sorted(probe.phones), _phone_forms, encoding)
    groups = _covering(numbers, _written(sorted(probe.phones), _last_group, encoding))
    for j in range(len(cols.phones) if numbers else 0):
        cell = pl.col(f"ph{j}")
        quick.append(cell.str.contains_any(groups))
        exact.append(cell.str.contains_any(numbers))
    at = ["@" + d for d in probe.domains]
    for k in range(len(cols.emails) if at else 0):
        held = pl.col(f"em{k}").str.contains_any(at, ascii_case_insensitive=True)
        quick.append(held)
        exact.append(held)
    return quick, exact


def _equal_or_longer(cell: Any, forms: list[str]) -> Any:
    """Met by every cell holding one of ``forms`` (and by a few others): a cell equal to a
    form; one longer than the shortest forms by two bytes or more; one longer by a byte
    with a digit at their middle (they are all digits, and one starting at the cell's
    first or second byte covers it). The contains test itself when the shortest forms are
    not all digits."""
    n = min(len(f.encode()) for f in forms)
    if n < 2 or not all(f.isascii() and f.isdigit() for f in forms if len(f.encode()) == n):
        return cell.str.contains_any(forms)
    size = cell.str.len_bytes()
    one_more = (size == n + 1) & cell.str.slice(n // 2, 1).is_in(_DIGITS)
    return cell.is_in(forms) | (size > n + 1) | one_more


def _covering(forms: list[str], parts: list[str]) -> list[str]:
    """``parts`` and every form that holds none of them: a cell holding a form holds one
    of these."""
    return sorted({*parts, *(f for f in forms if not any(p in f for p in parts))})


@functools.cache
def digit_fold(encoding: str) -> dict[str, str]:
    """Full-width digits as the pass reads them in ``encoding``, to ASCII digits: exact in
    UTF-8, a replacement character and a letter in CP932, lost in EUC-JP (both bytes are
    outside ASCII): none then."""
    forms = lossy([chr(0xFF10 + d) for d in range(10)], encoding)
    if len(set(forms)) < 10 or any(not f for f in forms):
        return {}
    return {f: str(d) for d, f in enumerate(forms)}


def digits_of(encoding: str) -> Callable[[Any], Any]:
    """An expression's digits as the pass reads them (full-width ones folded)."""
    fold = digit_fold(encoding)

    def digits(expr: Any) -> Any:
        if fold:
            expr = expr.str.replace_many(fold)
        return expr.str.replace_all(r"[^0-9]", "")

    return digits


def _postcode_forms(code: str) -> list[str]:
    wide = code.translate(_WIDE)
    return [code[:3] + s + code[3:] for s in _DASHES] + [wide[:3] + s + wide[3:] for s in _DASHES]


def _groups(number: str) -> tuple[str, str] | None:
    """The last two groups of a number (national digits, 0...) as written."""
    import phonenumbers

    if not number.startswith("0"):
        return None  # the 81... form of a number also held as 0...
    parsed = phonenumbers.parse(number, "JP")
    groups = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    *_, a, b = ["", "", *groups.split("-")]
    return a, b


def _phone_forms(number: str) -> list[str]:
    """The last two groups of a number with any common separator between them."""
    if (groups := _groups(number)) is None:
        return []
    a, b = groups
    seps = (*_DASHES, ")", "）", ".")
    return [a + s + b for s in seps] + [(a + s + b).translate(_WIDE) for s in seps]


def _last_group(number: str) -> list[str]:
    if (groups := _groups(number)) is None:
        return []
    return [groups[1], groups[1].translate(_WIDE)]


def _written(values: Iterable[str], forms: Callable[[str], list[str]], encoding: str) -> list[str]:
    """Every form of ``values`` as the pass reads them in ``encoding``; full-width forms
    only where the lossy read keeps their digits apart (not in EUC-JP)."""
    wide = bool(digit_fold(encoding))
    texts = [t for v in values for t in forms(v) if (wide or t.isascii()) and _encodes(t, encoding)]
    return sorted(set(lossy(texts, encoding)) - {""})


def _encodes(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True
