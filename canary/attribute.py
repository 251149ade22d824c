"""Attribution: the guilt probability of each export, from the canaries found and how likely
each was to be found by chance (Papadimitriou and Garcia-Molina, IEEE TKDE 2011):

    Pr{export i leaked | S} = 1 − ∏_{t ∈ S ∩ R_i} (1 − (1 − p_t) / |V_t|)

A canary is unique to its export (|V_t| = 1). A pool phone number found alone is a token
held by every export V_t that carries it, so it adds a little to each of them.

Chance-hit probabilities p_t, per key kind (documented in the report):

- email, phone + name, phone + kana: 1e-10. Only the export carries an assigned address or
  puts a canary's name on a pool number; a guess would have to hit both.
- kana within one edit + phone: 1e-6 (a misspelt reading on a pool number).
- name + postcode, kana + postcode: 1 − exp(−n·f), where f is how common the canary's full
  name is in Japan (reference data frequencies) and n the number of rows of the scanned
  list at that postcode: the expected number of real namesakes living there. A reading is
  shared by several spellings, so f is tripled for kana.
- name + address (postcode and block number agree): the same with n·f/100, since a
  postcode area holds on the order of a hundred block addresses.
- a pool phone number alone: 0.5, because rented numbers had owners before us and turn up
  in old lists (measured per number once callbacks are recorded).

A scan compares a list with every canary of every export, so chance namesakes are
expected somewhere among 10^6 canaries. The operator's threshold is therefore family-wise:
an export is attributed when 1 − Pr ≤ (1 − threshold) / E, E being the number of exports
in the registry (Bonferroni). One strong key clears it at any registry size; medium keys
need corroboration by further canaries of the same export when the registry is large.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from canary.registry.scans import ExportMeta

# Strength of each key kind (DESIGN.md): strong and medium keys name a canary.
STRENGTH = {
    "email": "strong",
    "phone+name": "strong",
    "phone+kana": "strong",
    "name+address": "strong",
    "name+postcode": "medium",
    "kana+postcode": "medium",
    "kana~phone": "medium",
}
RANK = {"strong": 2, "medium": 1}
P_FIXED = {"email": 1e-10, "phone+name": 1e-10, "phone+kana": 1e-10, "kana~phone": 1e-6}
P_PHONE_ALONE = 0.5
P_FLOOR = 1e-10
ADDRESSES_PER_POSTCODE = 100
DEFAULT_THRESHOLD = 0.999


@dataclass
class Evidence:
    canary_id: int
    name: str
    key: str
    strength: str
    p: float
    rows: list[int]
    holders: int = 1  # exports whose canaries the same rows match as well (|V_t|)


@dataclass
class ExportFinding:
    meta: ExportMeta
    confidence: float
    attributed: bool
    evidence: list[Evidence] = field(default_factory=list)
    weak_phones: list[str] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return len(self.evidence)


@dataclass
class AccountFinding:
    client: str
    list_name: str
    account: str
    members: list[str]
    exports: list[str]
    confidence: float
    attributed: bool
    # canaries held by several of the account's exports (stable canaries): they name the
    # account, never one export
    evidence: list[Evidence] = field(default_factory=list)


def chance(key: str, f_name: float, n_rows_there: int) -> float:
    """p_t for one canary found by ``key``."""
    if key in P_FIXED:
        return P_FIXED[key]
    f = f_name * (3 if key.startswith("kana") else 1)
    if key == "name+address":
        f /= ADDRESSES_PER_POSTCODE
    return max(P_FLOOR, 1 - math.exp(-max(1, n_rows_there) * f))


def _evidence_order(ev: Evidence) -> tuple[float, int, int]:
    """Strongest evidence first; ties by row, so a report reads the same every time."""
    return (ev.p, ev.rows[0] if ev.rows else 0, ev.canary_id)


def bar(threshold: float, exports: int) -> float:
    """The confidence an export must reach: the threshold, Bonferroni-corrected."""
    return 1 - (1 - threshold) / max(1, exports)


def _explain_rows(evidence: pl.DataFrame) -> pl.DataFrame:
    """A row is one person, so it is one canary at most: keep each row's strongest matches
    and, where they tie across exports, let those exports share the token (|V_t|)."""
    if not evidence.height:
        return evidence.with_columns(pl.lit(1).alias("holders"))
    ranked = evidence.with_columns(
        pl.col("key")
        .replace_strict({k: RANK[v] for k, v in STRENGTH.items()}, return_dtype=pl.Int8)
        .alias("_rank")
    )
    best = ranked.filter(pl.col("_rank") == pl.col("_rank").max().over("_row"))
    return best.with_columns(pl.col("export_id").n_unique().over("_row").alias("holders")).drop(
        "_rank"
    )


def attribute(
    evidence: pl.DataFrame,
    weak: pl.DataFrame,
    names: Mapping[int, str],
    postcode_rows: Counter[str],
    exports_by_phone: Mapping[str, list[int]],
    meta: Mapping[int, ExportMeta],
    threshold: float = DEFAULT_THRESHOLD,
    exports_total: int = 1,
) -> tuple[list[ExportFinding], list[AccountFinding]]:
    """Findings per export (most likely first) and per account."""
    per_canary: dict[int, Evidence] = {}
    export_of: dict[int, int] = {}
    rows_by: dict[tuple[int, str], list[int]] = defaultdict(list)
    # Rows whose best match several exports hold (a stable canary, carried by every export
    # of one list by one account) name no single export: they go to the account.
    shared: dict[int, Evidence] = {}
    holders_of: dict[int, set[int]] = defaultdict(set)
    for r in _explain_rows(evidence).iter_rows(named=True):
        if r["holders"] > 1:
            holders_of[r["canary_id"]].add(r["export_id"])
            there = postcode_rows.get(r["postcode"] or "", 1)
            p = chance(r["key"], r["f_name"] or 1e-6, there)
            ev = shared.get(r["canary_id"])
            if ev is None or p < ev.p:
                rows = ev.rows if ev else []
                ev = Evidence(
                    r["canary_id"],
                    names.get(r["canary_id"], ""),
                    r["key"],
                    STRENGTH[r["key"]],
                    p,
                    rows,
                )
                shared[r["canary_id"]] = ev
            ev.holders = len(holders_of[r["canary_id"]])
            if r["_row"] not in ev.rows:
                ev.rows.append(r["_row"])
            continue
        rows_by[(r["canary_id"], r["key"])].append(r["_row"])
        there = postcode_rows.get(r["postcode"] or "", 1)
        p = chance(r["key"], r["f_name"] or 1e-6, there)
        current = per_canary.get(r["canary_id"])
        strength = STRENGTH[r["key"]]
        if current is None or (RANK[strength], -p) > (RANK[current.strength], -current.p):
            per_canary[r["canary_id"]] = Evidence(
                r["canary_id"],
                names.get(r["canary_id"], ""),
                r["key"],
                strength,
                p,
                [],
                r["holders"],
            )
        export_of[r["canary_id"]] = r["export_id"]
    for cid, ev in per_canary.items():
        ev.rows = sorted(set(rows_by[(cid, ev.key)]))

    strong_rows = set(evidence["_row"].to_list()) if evidence.height else set()
    phone_tokens = sorted({p for row, p in weak.iter_rows() if row not in strong_rows})

    survive: dict[int, float] = defaultdict(lambda: 1.0)  # ∏ (1 − (1 − p)/|V|) per export
    by_export: dict[int, list[Evidence]] = defaultdict(list)
    for cid, ev in per_canary.items():
        e = export_of[cid]
        survive[e] *= 1 - (1 - ev.p) / ev.holders
        by_export[e].append(ev)
    weak_by_export: dict[int, list[str]] = defaultdict(list)
    for phone in phone_tokens:
        holders = exports_by_phone.get(phone, [])
        for e in holders:
            survive[e] *= 1 - (1 - P_PHONE_ALONE) / len(holders)
            weak_by_export[e].append("0" + phone)  # shown as dialled: 090…

    findings = []
    for e, s in survive.items():
        if e not in meta:
            continue
        confidence = 1 - s
        findings.append(
            ExportFinding(
                meta[e],
                confidence,
                confidence >= bar(threshold, exports_total),
                sorted(by_export.get(e, []), key=_evidence_order),
                weak_by_export.get(e, []),
            )
        )
    findings.sort(key=lambda f: (-f.confidence, -f.matched, f.meta.code))
    for ev in shared.values():
        ev.rows.sort()
    return findings, _accounts(
        findings,
        phone_tokens,
        exports_by_phone,
        meta,
        bar(threshold, exports_total),
        [(ev, holders_of[cid]) for cid, ev in shared.items()],
    )


def _accounts(
    findings: list[ExportFinding],
    phones: list[str],
    exports_by_phone: Mapping[str, list[int]],
    meta: Mapping[int, ExportMeta],
    threshold: float,
    shared: Sequence[tuple[Evidence, set[int]]] = (),
) -> list[AccountFinding]:
    """Accounts named by evidence that no single export of theirs explains on its own:
    canaries shared by several of the account's exports (stable canaries), and the
    exports' own evidence and pool numbers taken together."""

    def account_of(m: ExportMeta) -> tuple[str, str, str]:
        return (m.client, m.list_name, m.account)

    covered = {account_of(f.meta) for f in findings if f.attributed}
    survive: dict[tuple[str, str, str], float] = defaultdict(lambda: 1.0)
    exports: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    members: dict[tuple[str, str, str], list[str]] = {}
    stable: dict[tuple[str, str, str], list[Evidence]] = defaultdict(list)
    for ev, carriers in shared:
        known = [meta[e] for e in carriers if e in meta]
        for key, n in Counter(account_of(m) for m in known).items():
            # A canary every carrier of which is this account's counts fully for it.
            mine = [m for m in known if account_of(m) == key]
            survive[key] *= 1 - (1 - ev.p) * n / len(carriers)
            exports[key].update(m.code for m in mine)
            members.setdefault(key, mine[0].account_members)
            stable[key].append(ev)
    for f in findings:
        key = account_of(f.meta)
        members[key] = f.meta.account_members
        for ev in f.evidence:
            survive[key] *= ev.p
            exports[key].add(f.meta.code)
    for phone in phones:
        holders = [meta[e] for e in exports_by_phone.get(phone, []) if e in meta]
        if not holders:
            continue
        groups = Counter(account_of(m) for m in holders)
        for key, n in groups.items():
            survive[key] *= 1 - (1 - P_PHONE_ALONE) * n / len(holders)
            exports[key].update(m.code for m in holders if account_of(m) == key)
            members.setdefault(
                key, next(m.account_members for m in holders if account_of(m) == key)
            )
    out = []
    for key, s in survive.items():
        if key in covered or (len(exports[key]) < 2 and not stable[key]):
            continue
        confidence = 1 - s
        out.append(
            AccountFinding(
                key[0],
                key[1],
                key[2],
                members.get(key, []),
                sorted(exports[key]),
                confidence,
                confidence >= threshold,
                sorted(stable[key], key=_evidence_order),
            )
        )
    out.sort(key=lambda a: -a.confidence)
    return out
