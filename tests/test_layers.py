"""Layered canaries: stable ones for a (list, account), unique ones per export.

An insider holding two exports of one list made by one account can delete every row that
differs between them. The unique canaries go; the stable ones, the same rows in both,
stay, and name the account (listing its exports as candidates) without naming either
export. A whole export still names itself by its unique canaries.
"""

from __future__ import annotations

from pathlib import Path

from canary.scan import scan
from canary.seed import SeedRequest, SeedResult, default_stable_count, seed
from tests.listgen import people, write_csv


def _seed(registry, settings, src: Path, out: Path, account: str, no: int) -> SeedResult:  # type: ignore[no-untyped-def]
    return seed(
        registry,
        settings,
        SeedRequest(
            input=src, output=out, client="c", list_name="members", account=account, rng_seed=no
        ),
    )


def test_stable_canaries_are_the_same_rows_in_every_export_of_the_account(  # type: ignore[no-untyped-def]
    registry, settings, tmp_path
) -> None:
    src = write_csv(tmp_path / "host.csv", people(2000, seed=71))
    a = _seed(registry, settings, src, tmp_path / "a.csv", "op1", 1)
    b = _seed(registry, settings, src, tmp_path / "b.csv", "op1", 2)
    other = _seed(registry, settings, src, tmp_path / "c.csv", "op2", 3)
    host = set(src.read_bytes().splitlines())
    extra = [
        set(p.read_bytes().splitlines()) - host
        for p in (tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv")
    ]
    assert a.stable == b.stable == default_stable_count(a.export.canary_count) > 0
    assert len(extra[0] & extra[1]) == a.stable  # the stable rows, byte for byte
    assert not extra[0] & extra[2]  # another account's exports share nothing
    assert other.stable > 0


def test_a_diff_of_two_exports_still_names_the_account(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "host.csv", people(2000, seed=72))
    a = _seed(registry, settings, src, tmp_path / "a.csv", "op1", 4)
    b = _seed(registry, settings, src, tmp_path / "b.csv", "op1", 5)
    _seed(registry, settings, src, tmp_path / "c.csv", "op2", 6)
    # The insider keeps only the rows both exports have, in a's order.
    in_b = set((tmp_path / "b.csv").read_bytes().splitlines())
    kept = [line for line in (tmp_path / "a.csv").read_bytes().splitlines() if line in in_b]
    assert len(kept) == 1 + 2000 + a.stable  # header, the people, the stable canaries
    diffed = tmp_path / "diffed.csv"
    diffed.write_bytes(b"\r\n".join(kept) + b"\r\n")

    result = scan(registry, settings.seeds_dir, diffed, record=False)
    assert not [f for f in result.exports if f.attributed]
    named = [x for x in result.accounts if x.attributed]
    assert len(named) == 1
    account = named[0]
    assert (account.account, account.list_name) == ("op1", "members")
    assert set(account.exports) == {a.export.code, b.export.code}
    assert len(account.evidence) == a.stable
    assert all(e.holders == 2 for e in account.evidence)
    payload = result.as_json()
    assert payload["accounts"][0]["evidence"][0]["carried_by"] == 2  # type: ignore[index]


def test_a_whole_export_still_names_itself(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "host.csv", people(2000, seed=73))
    a = _seed(registry, settings, src, tmp_path / "a.csv", "op1", 7)
    b = _seed(registry, settings, src, tmp_path / "b.csv", "op1", 8)
    result = scan(registry, settings.seeds_dir, tmp_path / "b.csv", record=False)
    attributed = [f.meta.code for f in result.exports if f.attributed]
    assert attributed == [b.export.code]
    # The stable canaries it shares with a are evidence of the account, not of a.
    assert a.export.code not in attributed
    assert all(e.holders == 1 for f in result.exports for e in f.evidence)


def test_stable_count_can_be_set_or_turned_off(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "host.csv", people(1000, seed=74))
    req = SeedRequest(
        input=src, output=tmp_path / "a.csv", client="c", list_name="m", account="x", stable=0
    )
    assert seed(registry, settings, req).stable == 0
    req = SeedRequest(
        input=src, output=tmp_path / "b.csv", client="c", list_name="m", account="y", stable=5
    )
    assert seed(registry, settings, req).stable == 5


def test_more_stable_than_canaries_is_refused(registry, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from canary.errors import InputError

    src = write_csv(tmp_path / "host.csv", people(500, seed=75))
    req = SeedRequest(
        input=src,
        output=tmp_path / "a.csv",
        client="c",
        list_name="m",
        account="x",
        canaries=3,
        stable=5,
    )
    with pytest.raises(InputError, match="--stable must be between 0 and"):
        seed(registry, settings, req)
    assert not (tmp_path / "a.csv").exists()


def test_cli_refuses_a_bad_stable_count_in_one_sentence(run, registry, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = write_csv(tmp_path / "host.csv", people(500, seed=76))
    out = tmp_path / "a.csv"
    res = run(
        "seed", str(src), "--out", str(out), "--client", "c", "--list", "m",
        "--account", "x", "--canaries", "3", "--stable", "4",
    )  # fmt: skip
    assert res.exit_code == 3
    assert "--stable must be between 0 and the number of canaries (3)." in res.output
    assert not out.exists() and not list(tmp_path.glob(".*a.csv*"))
    assert registry.export_count() == 0  # nothing registered either
