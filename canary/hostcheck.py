"""Made canaries checked against the host list's people and IDs, in rounds of one pass.

Each round looks in the list (one columnar pass, canary.hostpass; in Python for an Excel
list) for what no pass has looked for yet: the canaries' IDs, every person at their
postcodes and, in the first round, every person holding one of the export's pool numbers
or an address on a pool domain. Then, in memory (see canary.hostkeys):

- a pool number or address a person holds is no canary's (the canary takes another);
- a canary whose name or reading is a person's at its postcode is renamed at the same
  postcode, checked against the people already found there (no further pass);
- a canary whose ID the list holds, one no name is clear for, and a carried stable canary
  that now collides are made again: at a new postcode, checked by the next round.

A round that changes nothing ends the check: every canary was checked and is clear. Each
is then numbered among all the people found at its postcode (canary.nearby.in_gap).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from canary.errors import InputError
from canary.formats import IdStyle
from canary.generate import CanaryFactory, GeneratedCanary
from canary.hostkeys import Checker, Columns, Found, Probe, national_forms
from canary.ordering import Carried
from canary.pools import PoolNumber
from canary.schema import Schema

Made = list[GeneratedCanary | Carried]
ROUNDS = 8  # rounds at most (one pass each, when there is something new to look for)
PLACED_ROUNDS = 3  # of them, rounds whose changed canaries are placed in the list's order


@dataclass(frozen=True)
class Keys:
    """One canary's keys, as the list holds them."""

    id: str
    postcode: str
    surname: str
    given: str
    surname_kana: str
    given_kana: str
    phones: tuple[str, ...]  # E.164
    email: str | None


def keys_of(c: GeneratedCanary | Carried, cols: Columns) -> Keys:
    ident = c.row[cols.id].strip() if cols.id is not None and cols.id < len(c.row) else ""
    if isinstance(c, Carried):
        d = c.draft
        surname, _, given = d.name.partition("\u3000")
        surname_kana, _, given_kana = d.kana.partition("\u3000")
        phones = tuple(p for p in (d.phone_e164, d.phone2_e164) if p)
        return Keys(ident, d.postcode, surname, given, surname_kana, given_kana, phones, d.email)
    p = c.person
    written = [n.e164 for n in (p.phone, p.phone2) if n is not None]
    email = p.email if p.email and p.email in c.row else None
    return Keys(
        ident,
        p.place.postcode,
        p.surname,
        p.given,
        p.surname_kana,
        p.given_kana,
        tuple(written),
        email,
    )


def probe_for(
    made: Made, cols: Columns, found: Found, numbers: Sequence[PoolNumber], domains: list[str]
) -> Probe:
    """What the next pass must look for: what no pass has looked for yet."""
    keys = [keys_of(c, cols) for c in made]
    ids = {k.id for k in keys if k.id} - found.seen.ids
    codes = {k.postcode for k in keys} - found.seen.postcodes if cols.postcodes else set()
    first = not found.seen
    phones = national_forms(n.e164 for n in numbers) if first and cols.phones else frozenset()
    mail = tuple(domains) if first and cols.emails else ()
    return Probe(frozenset(ids), frozenset(codes), phones, mail)


def settle(
    made: Made, found: Found, checker: Checker, factory: CanaryFactory, schema: Schema
) -> set[int]:
    """Resolve in memory what the passes found; the canaries changed (by index)."""
    cols = checker.cols
    held = {"+81" + p[1:] for p in found.phones if p.startswith("0")}
    factory.hold(held, found.emails)
    if cols.id is not None:
        factory.exclude_ids(_id_numbers(schema, factory, cols.id, found.ids))
    changed: set[int] = set()
    for i, c in enumerate(made):
        k = keys_of(c, cols)
        if k.id and k.id not in found.seen.ids:
            continue  # looked for by the next pass
        if cols.postcodes and k.postcode not in found.seen.postcodes:
            continue
        name_clear = checker.name_clear(
            k.postcode, k.surname, k.given, k.surname_kana, k.given_kana
        )
        phone_held = any(checker.phone_held(p) for p in k.phones)
        email_held = checker.email_held(k.email)
        if not isinstance(c, GeneratedCanary):  # carried: the same row, or a new canary
            if (k.id in found.ids) or not name_clear or phone_held or email_held:
                made[i] = factory.make()
                changed.add(i)
            continue
        if k.id in found.ids or (not name_clear and not factory.rename(c)):
            made[i] = factory.make()
            changed.add(i)
            continue
        if not name_clear:  # renamed, clear at the same postcode (and a new address)
            changed.add(i)
        if phone_held:
            factory.renumber(c, checker.phone_held)
        if checker.email_held(c.person.email if c.person.email in c.row else None):
            factory.reemail(c)
    return changed


def check(
    made: Made,
    factory: CanaryFactory,
    schema: Schema,
    numbers: Sequence[PoolNumber],
    found: Found,
    encoding: str,
    search: Callable[[Probe, Found], None],
    place: Callable[[set[int]], object] | None = None,
) -> None:
    """Check ``made`` (in place) against the list, in rounds; ``search(probe, found)`` is
    one pass; ``place(changed)`` puts changed canaries where the list's order wants them
    (it may make some again). Raises InputError when the rounds do not settle."""
    cols = Columns.of(schema)
    checker = Checker(found, cols, encoding)
    factory.name_clear = checker.name_clear
    for n in range(ROUNDS):
        probe = probe_for(made, cols, found, numbers, factory.domains)
        for c in made:  # where each canary's block number starts (see Found.towns)
            if isinstance(c, GeneratedCanary):
                pl = c.person.place
                found.towns.setdefault(
                    pl.postcode, unicodedata.normalize("NFKC", pl.city + pl.town)
                )
        if probe:
            search(probe, found)
        changed = settle(made, found, checker, factory, schema)
        if not changed:
            # Every canary's postcode was looked for: each is numbered as one more of all
            # the people there (the profile saw a share of them; see Streets.among).
            for c in made:
                if isinstance(c, GeneratedCanary):
                    factory.restreet(c, found.streets)
            return
        if place is not None and n < PLACED_ROUNDS:
            place(changed)
    raise InputError(
        "Could not make canaries clear of the list's own people and IDs; if the ID column "
        "is not one, give it another role with --map other=COLUMN."
    )


def _id_numbers(schema: Schema, factory: CanaryFactory, col: int, values: set[str]) -> set[int]:
    style = factory.profile.columns[col].style
    if not isinstance(style, IdStyle):
        return set()
    return {n for v in values if (n := style.number(v)) is not None}
