"""What the registry knows about a contacted token, read for the events core: the pool
number or domain, the exports holding it, the canaries carrying it, known noise sources.
The pool's numbers and whether any noise source is known are kept per process for a few
seconds; the canaries and exports of tokens for as long as the registry's generation does
not move (``canary.registry.tokencache``); the rest is read inside the event's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import any_, bindparam, null, or_, select, union_all
from sqlalchemy.orm import Session

from canary.events import MAIL_CHANNELS, NAME_CHANNELS, PHONE_CHANNELS, EventDraft
from canary.events.classify import CanaryFacts, Facts, Holder, names_in
from canary.events.incidents import P_CHANNEL, phone_chance
from canary.normalize import address_key, kana_key, name_key, phone_e164
from canary.registry.models import (
    Canary,
    Event,
    Export,
    ExportPhone,
    NoiseSource,
    PoolDomain,
    PoolPhone,
    RegistryGeneration,
    StableCarrier,
)
from canary.registry.tokencache import Known, TokenCache, holders_missing, merge

NOISE_TTL = 10.0  # seconds a process trusts that no noise source is known
POOL_TTL = 10.0  # seconds a process trusts its copy of the pool's numbers and states


@dataclass(frozen=True)
class _PoolPhoneFacts:
    id: int
    state: str
    stray_events: int


_HOLDER_COLUMNS = (
    Export.id,
    Export.account_id,
    Export.campaign_from,
    Export.campaign_until,
    Export.expected_callers,
    Export.expected_senders,
    Export.code,
)

_CANARY_COLUMNS = (
    Canary.id,
    Canary.export_id,
    Canary.name,
    Canary.kana,
    Canary.layer,
    Canary.phone_e164,
    Canary.phone2_e164,
    Canary.email,
)


def _holder(r: Sequence[Any]) -> Holder:
    """A holder from a row of _HOLDER_COLUMNS."""
    return Holder(r[0], r[1], r[2], r[3], list(r[4] or []), list(r[5] or []), r[6])


def fetch(s: Session, statement: Any, params: dict[str, Any]) -> list[Any]:
    """The rows of a statement built once (one of the batch's reads or writes), with
    ``params``. On PostgreSQL through psycopg's own cursor, with the SQL compiled once:
    SQLAlchemy's execution of a compiled statement cost more client CPU than psycopg's
    (about 0.3 against 0.13 ms a statement here), and a batch of events runs ten of them.
    The rows are named tuples on PostgreSQL, SQLAlchemy rows on SQLite: either way by
    position or by name."""
    if s.get_bind().dialect.name != "postgresql":
        return list(s.connection().execute(statement, params))
    sql, constants = _pg_sql(statement)
    return raw(s, sql, {**constants, **params})


def raw(s: Session, sql: str, params: dict[str, Any]) -> list[Any]:
    """The rows (named tuples) of PostgreSQL text run by psycopg in the session's
    transaction."""
    from psycopg.rows import namedtuple_row

    driver = s.connection().connection.driver_connection
    with driver.cursor(row_factory=namedtuple_row) as cursor:  # type: ignore[union-attr]
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


_PG_COMPILED: dict[int, tuple[Any, str, dict[str, Any]]] = {}


def _pg_sql(statement: Any) -> tuple[str, dict[str, Any]]:
    """A statement's PostgreSQL text and the values of its constant parameters."""
    found = _PG_COMPILED.get(id(statement))
    if found is None or found[0] is not statement:
        from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

        compiled = statement.compile(dialect=PGDialect_psycopg())
        sql = compiled.string
        constants = {
            name: bind.value
            for name, bind in compiled.binds.items()
            if not bind.required and f"%({name})s" in sql
        }
        found = (statement, sql, constants)
        _PG_COMPILED[id(statement)] = found
    return found[1], found[2]


def one_of(column: Any, name: str, dialect: str, value: Sequence[Any] | None = None) -> Any:
    """``column IN`` the list passed as parameter ``name``, so that a statement is built once
    and run with each batch's values (building it anew for every batch cost as much as
    running it). On PostgreSQL ``= ANY(array)``: one text whatever the list's length, which
    psycopg converts once and PostgreSQL plans once (a prepared statement); an ``IN (...)``
    is rendered anew for each length. SQLite has no arrays: an expanding ``IN``. With
    ``value``, the list is a constant of the statement."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        array = ARRAY(column.type)
        if value is not None:
            return column == any_(bindparam(name, list(value), type_=array))
        return column == any_(bindparam(name, type_=array))
    if value is not None:
        return column.in_(list(value))
    return column.in_(bindparam(name, expanding=True))


@cache
def _statements(dialect: str) -> dict[str, Any]:
    """The reads of ``_facts_many`` for the dialect, built on first use."""
    live = Export.status != "void"
    tokens = {
        "phones": [
            one_of(Canary.phone_e164, "phones", dialect),
            one_of(Canary.phone2_e164, "phones", dialect),
        ],
        "mails": [one_of(Canary.email, "mails", dialect)],
    }
    out: dict[str, Any] = {
        "holders": select(*_HOLDER_COLUMNS).where(one_of(Export.id, "ids", dialect), live),
        "domains": select(PoolDomain.domain).where(one_of(PoolDomain.domain, "domains", dialect)),
        "generation": select(RegistryGeneration.n).where(RegistryGeneration.id == 1),
        "stored": select(*Event.__table__.columns).where(one_of(Event.dedupe_key, "keys", dialect)),
        "carriers": select(StableCarrier.canary_id, StableCarrier.export_id).where(
            one_of(StableCarrier.canary_id, "ids", dialect)
        ),
    }
    for kinds in (("phones",), ("mails",), ("phones", "mails")):
        canaries = (
            select(null().label("pool_phone_id"), *_CANARY_COLUMNS, *_HOLDER_COLUMNS)
            .join(Export, Export.id == Canary.export_id)
            .where(or_(*(c for kind in kinds for c in tokens[kind])), live)
        )
        if "phones" in kinds:
            # The exports given the pool numbers come in the same statement (a round trip
            # fewer): rows with a pool_phone_id and no canary.
            numbers = (
                select(
                    ExportPhone.pool_phone_id, *(null() for _ in _CANARY_COLUMNS), *_HOLDER_COLUMNS
                )
                .join(Export, Export.id == ExportPhone.export_id)
                .where(one_of(ExportPhone.pool_phone_id, "ids", dialect), live)
            )
            out["tokens:" + "+".join(kinds)] = union_all(canaries, numbers)
        else:
            out["tokens:" + "+".join(kinds)] = canaries
    return out


class EventFacts:
    """Mixed into Registry through EventStore: the reads that classify an event."""

    engine: Any
    _noise_cache: tuple[float, bool] | None = None
    _pool_cache: tuple[float, dict[str, _PoolPhoneFacts]] | None = None
    _tokens: TokenCache | None = None

    def _dialect(self) -> str:
        return str(self.engine.dialect.name)

    def _facts_many(
        self, s: Session, drafts: Sequence[EventDraft], targets: Sequence[str]
    ) -> tuple[list[tuple[Facts, float]], int | None]:
        """``_facts`` of each event of a batch, and the registry generation of what was
        known about their tokens (None if nothing was). The calls, SMS and mail of the batch
        are read together: a handful of queries for all of them, not three or four per
        event, and none for tokens the process's copy knows (``canary.registry.tokencache``:
        the caller checks that the generation has not moved before it commits)."""
        pool = {t: p for t in set(targets) if (p := self._pool_phone(s, t)) is not None}
        phones = sorted(
            t
            for d, t in zip(drafts, targets, strict=True)
            if d.channel in PHONE_CHANNELS and t in pool
        )
        mails = sorted(
            {t for d, t in zip(drafts, targets, strict=True) if d.channel in MAIL_CHANNELS}
        )
        known, generation = Known(), None
        if phones or mails:
            known, generation = self._known_tokens(s, phones, mails, pool)
        by_token = known.canaries
        holders = known.holders  # the live exports named by the tokens' facts
        held = known.held  # pool number -> the live exports it was given to
        # Whether an address is on a pool domain only matters for one no canary holds (noise,
        # weak or none): mail to canaries' addresses costs no read of the domains.
        domains = sorted({t.rpartition("@")[2] for t in mails if t not in by_token})
        ours = set()
        if domains:
            query = _statements(self._dialect())["domains"]
            ours = {row[0] for row in fetch(s, query, {"domains": domains})}
        out = []
        for draft, target in zip(drafts, targets, strict=True):
            canaries = by_token.get(target, [])
            if draft.channel in PHONE_CHANNELS and target in pool:
                phone = pool[target]
                named = names_in(draft.text, canaries)
                facts = Facts(
                    pool_state=phone.state,
                    holders=[holders[e] for e in sorted(held.get(target, ())) if e in holders],
                    canaries=canaries,
                    noise_source=self._noise_source(s, draft),
                    text_canaries=named,
                )
                out.append(
                    (facts, P_CHANNEL["named"] if named else phone_chance(phone.stray_events))
                )
            elif draft.channel in MAIL_CHANNELS:
                export_ids = sorted({e for c in canaries for e in c.export_ids})
                facts = Facts(
                    pool_domain=target.rpartition("@")[2] in ours,
                    holders=[holders[e] for e in export_ids if e in holders],
                    canaries=canaries,
                    noise_source=self._noise_source(s, draft),
                    text_canaries=names_in(draft.text, canaries),
                )
                out.append((facts, P_CHANNEL[draft.channel]))
            elif draft.channel in PHONE_CHANNELS:  # not a pool number
                out.append((Facts(noise_source=self._noise_source(s, draft)), 1.0))
            else:
                out.append(self._other_facts(s, draft, target))
        return out, generation

    def _known_tokens(
        self, s: Session, phones: list[str], mails: list[str], pool: dict[str, _PoolPhoneFacts]
    ) -> tuple[Known, int]:
        """What is known about these pool numbers and addresses, from the process's copy or
        read (and then kept), and the registry generation it is as of."""
        cache = self._token_cache()
        generation, known, miss_phones, miss_mails = cache.lookup(phones, mails)
        if not miss_phones and not miss_mails and generation is not None:
            return known, generation
        # The generation is read before the facts: if it moves in between, the facts are
        # newer than their label, never older; the insert's check then only has them read
        # again.
        now = int(fetch(s, _statements(self._dialect())["generation"], {})[0][0])
        if now != generation:
            known, miss_phones, miss_mails = Known(), phones, mails
        fresh = Known()
        number_of = {pool[t].id: t for t in miss_phones}
        fresh.canaries = self._canaries_of_tokens(
            s, miss_phones, miss_mails, number_of, fresh.holders, fresh.held
        )
        for token in (*miss_phones, *miss_mails):
            fresh.canaries.setdefault(token, [])  # known to be no canary's
        for token in miss_phones:
            fresh.held.setdefault(token, set())
        fresh.holders.update(
            (h.export_id, h) for h in self._holders(s, holders_missing(fresh, fresh.holders))
        )
        cache.store(now, fresh)
        merge(known, fresh)
        return known, now

    def _token_cache(self) -> TokenCache:
        cache = self._tokens
        if cache is None:
            cache = self._tokens = TokenCache()
        return cache

    def _canaries_of_tokens(
        self,
        s: Session,
        phones: Sequence[str],
        mails: Sequence[str],
        number_of: dict[int, str],
        holders: dict[int, Holder],
        held: dict[str, set[int]],
    ) -> dict[str, list[CanaryFacts]]:
        """The live canaries carrying each of these phone numbers and addresses; adds their
        own exports to ``holders`` (read in the same query, which joins them anyway), and
        the live exports given each pool number (``number_of``: by pool phone id) to
        ``held`` and ``holders``."""
        kinds = "+".join(k for k, v in (("phones", phones), ("mails", mails)) if v)
        query = _statements(self._dialect())["tokens:" + kinds]
        params = {"phones": list(phones), "mails": list(mails), "ids": sorted(number_of)}
        found: dict[str, list[CanaryFacts]] = {}
        wanted = set(phones) | set(mails)
        rows = fetch(s, query, params)
        for row in rows:
            if row[0] is not None:  # a pool number given to an export
                holder = _holder(row[1 + len(_CANARY_COLUMNS) :])
                held.setdefault(number_of[row[0]], set()).add(holder.export_id)
                holders[holder.export_id] = holder
        canaries = sorted((row[1:] for row in rows if row[0] is None), key=lambda r: r[0])
        for row, facts in self._canary_rows(s, rows=canaries):
            holders.setdefault(row[1], _holder(row[len(_CANARY_COLUMNS) :]))
            tokens = {row[5], row[6], row[7]} & wanted  # the two numbers, the address
            for token in tokens:
                found.setdefault(token, []).append(facts)
        return found

    def _noise_source(self, s: Session, draft: EventDraft) -> bool:
        """Whether the event comes from a known source of stray contacts."""
        if not draft.source or not self._noise_sources(s):
            return False
        kind = (
            "sender"
            if draft.channel in MAIL_CHANNELS
            else "ip"
            if draft.channel == "dns"
            else "caller"
        )
        value = draft.source.strip().lower()
        if draft.channel in PHONE_CHANNELS:
            value = phone_e164(draft.source) or value
        return (
            s.connection()
            .execute(
                select(NoiseSource.id).where(NoiseSource.kind == kind, NoiseSource.value == value)
            )
            .first()
            is not None
        )

    def _facts(self, s: Session, draft: EventDraft, target: str) -> tuple[Facts, float]:
        """What the registry knows about the token, and p_t of a sign on it."""
        return self._facts_many(s, [draft], [target])[0][0]

    def _other_facts(self, s: Session, draft: EventDraft, target: str) -> tuple[Facts, float]:
        """``_facts`` of a letter, a manual note or a DNS lookup (one at a time: rare)."""
        noise = self._noise_source(s, draft)
        if draft.channel in NAME_CHANNELS:
            nk, kk = name_key(target), kana_key(target)
            canaries = self._canary_facts(s, (Canary.name_key == nk) | (Canary.kana_key == kk))
            export_ids = sorted({e for c in canaries for e in c.export_ids})
            # A canary's name with its address is strong; the name alone is medium (a real
            # person may share it).
            written = address_key(str(draft.details.get("address") or ""))
            addressed: list[CanaryFacts] = []
            if canaries and len(written) >= 6:
                keys = dict(
                    s.connection()
                    .execute(
                        select(Canary.id, Canary.address_key).where(
                            Canary.id.in_([c.canary_id for c in canaries])
                        )
                    )
                    .all()
                )
                addressed = [
                    c
                    for c in canaries
                    if (k := keys.get(c.canary_id)) and (k in written or written in k)
                ]
            facts = Facts(
                holders=self._holders(s, export_ids),
                canaries=canaries,
                noise_source=noise,
                text_canaries=addressed,
            )
            return facts, P_CHANNEL["postal" if addressed else "name_only"]
        if draft.channel == "dns":
            # A hostname token names its export; a pool domain dedicated to a client names
            # only the client (kept in the event's details by the listener).
            from canary.domains import holders_in  # canary.domains imports the registry

            found = holders_in(s, target)
            export_ids = list(found.export_ids) if found is not None else []
            return Facts(holders=self._holders(s, export_ids), noise_source=noise), P_CHANNEL["dns"]
        return Facts(noise_source=noise), P_CHANNEL["dns"]

    def _pool_phone(self, s: Session, e164: str) -> _PoolPhoneFacts | None:
        """A pool number's id, state and stray count, from a per-process copy of the pool
        read at most every POOL_TTL seconds (the pool is hundreds of numbers; most calls in
        a burst are to numbers outside it, which then cost no query)."""
        now = time.monotonic()
        cached = self._pool_cache
        if cached is None or now - cached[0] > POOL_TTL:
            rows = (
                s.connection()
                .execute(
                    select(PoolPhone.id, PoolPhone.e164, PoolPhone.state, PoolPhone.stray_events)
                )
                .all()
            )
            cached = (now, {r.e164: _PoolPhoneFacts(r.id, r.state, r.stray_events) for r in rows})
            self._pool_cache = cached
        return cached[1].get(e164)

    def _noise_sources(self, s: Session) -> bool:
        """Whether any noise source is known (read at most every NOISE_TTL seconds per
        process: the common case, none, then costs no query per event)."""
        now = time.monotonic()
        cached = getattr(self, "_noise_cache", None)
        if cached is None or now - cached[0] > NOISE_TTL:
            any_source = s.connection().execute(select(NoiseSource.id).limit(1)).first() is not None
            cached = (now, any_source)
            self._noise_cache = cached
        return bool(cached[1])

    def _canary_facts(self, s: Session, where: Any) -> list[CanaryFacts]:
        return [facts for _row, facts in self._canary_rows(s, where)]

    def _canary_rows(
        self, s: Session, where: Any = None, rows: Sequence[Any] | None = None
    ) -> list[tuple[Any, CanaryFacts]]:
        """The live canaries ``where`` selects (or ``rows`` read already, starting with
        _CANARY_COLUMNS), by id: (their row, their facts)."""
        if rows is None:  # built for this event: not one for fetch, which keeps its SQL
            rows = list(
                s.connection().execute(
                    select(*_CANARY_COLUMNS)
                    .join(Export, Export.id == Canary.export_id)
                    .where(where, Export.status != "void")
                    .order_by(Canary.id)
                )
            )
        # By position (id, export_id, name, kana, layer, ...): the rows of a union are
        # named after its first part.
        stable = [r[0] for r in rows if r[4] == "stable"]
        carriers: dict[int, set[int]] = {}
        if stable:
            carried = _statements(self._dialect())["carriers"]
            for cid, eid in fetch(s, carried, {"ids": stable}):
                carriers.setdefault(cid, set()).add(eid)
        return [
            (r, CanaryFacts(r[0], tuple(sorted(carriers.get(r[0], set()) | {r[1]})), r[2], r[3]))
            for r in rows
        ]

    def _holders(self, s: Session, export_ids: Sequence[int] | Any) -> list[Holder]:
        """The live exports among ``export_ids`` (ids, or a subquery of them)."""
        if isinstance(export_ids, Sequence):
            if not export_ids:
                return []
            export_ids = list(export_ids)
            query = _statements(self._dialect())["holders"]
            rows = fetch(s, query, {"ids": export_ids})
        else:  # a subquery
            rows = list(
                s.connection().execute(
                    select(*_HOLDER_COLUMNS).where(
                        Export.id.in_(export_ids), Export.status != "void"
                    )
                )
            )
        return [_holder(r) for r in rows]
