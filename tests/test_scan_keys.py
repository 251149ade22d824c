"""The scan's raw-text shortcuts find what the full normalisation finds."""

from __future__ import annotations

import polars as pl

from canary.scan.keys import other_tails, phones_of


def _pool(numbers: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    phones = pl.DataFrame({"phone": numbers})
    forms = pl.concat(
        [
            phones.select(pl.concat_str([pl.lit(prefix), pl.col("phone")]).alias("digits"), "phone")
            for prefix in ("0", "81", "+81", "810", "+810")
        ]
    )
    return phones, forms


def test_phone_cells_dropped_by_their_ending_hold_no_pool_number() -> None:
    """Cells are dropped before normalising when they end in four digits no pool number
    ends in; every pool number written any way (punctuation after it, an extension, two
    numbers in a cell, full width) is still found."""
    phones, forms = _pool(["5030000001", "9012345678"])
    cells = [
        "050-3000-0001",  # a pool number
        "05030000001",
        "+81 50 3000 0001",
        "(050)3000-0001",
        "050-3000-0001.",  # punctuation after the number
        "050-3000-0001 ",
        "090-1234-5678 / 03-1234-0000",  # two numbers, the pool one first
        "03-1234-0000 / 090-1234-5678",
        "090-1234-5678 内線12",  # an extension
        "０９０－１２３４－５６７８",  # full width
        "819012345678",
        "090-1234-5679",  # strangers
        "03-1234-0000",
        "0312340001",
        "",
        None,
    ]
    frame = pl.DataFrame({"c0": cells, "c1": ["x"] * len(cells), "_row": range(1, len(cells) + 1)})
    plain = phones_of(frame, [0, 1], forms).sort("_row", "phone")
    fast = phones_of(frame, [0, 1], forms, other_tails(phones)).sort("_row", "phone")
    assert fast.equals(plain)
    assert set(fast.filter(pl.col("phone").is_in(phones["phone"].implode()))["_row"]) == set(
        range(1, 12)
    )
    kept = frame.filter(~pl.col("c0").str.slice(-4).is_in(other_tails(phones).implode()))
    assert kept.height < frame.height - 2  # strangers were dropped unread
