"""Realism: how well a data broker's classifier tells canaries from the people of their list.

A broker who suspects that a list carries canaries can compute, for every row, features
that compare it with the rest of the list (how common its surname, postcode or mail domain
is there, whether its ID fits the list's order, how its address is written, ...) and train
a classifier. This benchmark plays that broker. It writes fake host lists of several
shapes, seeds several exports of each shape with `canary.seed.seed` (each of its own host
list, a new draw of the shape; the seed's default canary count per export, so that each
file is as dense in canaries as a real export), computes the features over each seeded
file as a whole, pools the canary rows of all exports with one share of the host rows
each, and reports per shape the cross-validated ROC AUC of a gradient-boosted classifier
(scikit-learn's HistGradientBoostingClassifier, stratified k-fold) at telling canary rows
from people:

- with all features;
- without the pool-driven ones (marked POOL in `--list-features`): mail domain, phone
  prefix and number block, and the reuse of one pool number by several rows, which come
  from the owned pools rather than from how canaries are made;
- without pool-driven nor order features (position, and how a row's ID, reading,
  postcode or dates fit the file's sort order): what is left once canaries are inserted
  where they belong;

and the features that give canaries away: each feature's out-of-fold AUC on its own
(which also shows giveaways that a stronger one makes redundant), its permutation
importance (AUC lost when it is shuffled) in each model on the held-out folds, and its
mean on canaries and on people. `--list-features` says what every feature is.

    .venv/bin/pip install scikit-learn     # or: .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/realism.py                    # 4 shapes x 20,000 rows, ~3 min
    .venv/bin/python benchmarks/realism.py --rows 2000 --canaries 100 --shapes city-checkup
    .venv/bin/python benchmarks/realism.py --list-features

An AUC of 0.5 means the broker cannot tell canaries apart, 1.0 that every canary ranks
above every person; with 300 canaries a feature alone scores up to ~0.55 by chance.
Target (issue 4): AUC <= 0.55 without the pool-driven features.

With ``--one-list`` (every export of one host list, as this benchmark did until
2026-11-27) the share features give canaries away by the pooling itself (see
``seed_shape``), and more canaries (``--canaries 900``) mean more exports of one list:
in a list with few free IDs (nationwide: 3 % of the numbers) they take the same free IDs
again: 900 canaries sat in 294 places. The model, trained on other exports' canaries,
then learns those places (position with date2_displacement alone: AUC 0.82 there), which
only a broker holding several exports of one list could learn; such a broker also sees
two people with one customer number.

Shapes of host list (every person fake: names from seeds/names, real postcode areas with
random blocks, phones in the unallocated 090-0xxx block, mail on example.com and its
subdomains):

- ``city-checkup``: a city's health-check list (松本市), ages 40-89, Japanese-era birth
  dates, addresses without the prefecture, spouses sharing address and phone, no email
  column, sorted by postcode then reading (地区順), as municipal lists are.
- ``nationwide``: a mail-order customer list, every prefecture by population, dense
  sequential customer IDs in file order, separate prefecture and building columns, a
  join date (入会日) rising with the ID, 45 % with email, keyed by operators (a few
  names without the space). Within a prefecture people are spread evenly over its
  postcodes, so a generator that draws a postcode at random in a district passes here
  though real people crowd into towns (tests/test_fit_sample.py checks canaries' cities
  against a list where they do).
- ``members-email`` / ``members-noemail``: the same regional store's members (福岡県),
  typed in by the members themselves (names without spaces, hiragana readings, mixed
  building separators), member numbers issued in turn with the numbers of members who
  left missing (half of the oldest, one in ten of the newest); with an email for 85 % of
  them, and the same list exported without its email column.

  How IDs are spaced matters. A canary given a free number between two neighbours turns
  one step into two; it passes when the two look like any two steps of the list, which
  holds for numbers freed by people leaving (canary.placement.GapOdds). Steps drawn
  independently at random (1 to 12, say) are not a numbering real systems make, and
  there no placement passes: the two steps of a canary sum to one step of the list, at
  most 12, while half of everyone's pairs sum to more, so a broker reaches an AUC of
  0.75 on the steps alone.

The host lists are a model: what they assume about real lists (sort orders, how messy
hand-keyed values are, how email local parts look) decides what can give canaries away
here. Host people are drawn from the same name and building reference data as canaries,
so this benchmark cannot tell whether that data matches real populations; it measures
how canaries are fitted to a list: distributions, formats, order, mess and pools.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


from canary.reference import Place  # noqa: E402

if TYPE_CHECKING:
    import numpy as np

    from canary.registry import Registry
    from canary.settings import Settings

from benchmarks.realism_features import (  # noqa: E402
    _nfkc,
    broker_features,
)
from benchmarks.realism_hosts import (  # noqa: E402
    FEATURES,
    NAN,
    POOL_DOMAIN,
    POOL_FEATURES,
    POOL_NUMBERS,
    SHAPES,
    Reference,
    Shape,
    read_seeded,
    write_csv,
)


@dataclass
class Dataset:
    shape: str
    X: np.ndarray
    y: np.ndarray
    rows: int  # of the host list
    hosts: int  # host rows classified (one share per export)
    canaries: int
    exports: int
    per_export: list[int]
    schema: str
    groups: np.ndarray  # the export each row comes from


def make_registry(work: Path) -> tuple[Registry, Settings]:
    from canary.pools import parse_owned_domain, parse_owned_phone
    from canary.registry import Registry
    from canary.settings import Settings

    settings = Settings(
        db=f"sqlite:///{work / 'registry.db'}",
        seeds_dir=str(REPO / "seeds"),
        actor="realism",
        cache_dir=str(work / "cache"),
    )
    registry = Registry(settings.db, actor=settings.actor)
    registry.init()
    registry.add_phones([parse_owned_phone(n) for n in POOL_NUMBERS], "active")
    registry.add_domains([parse_owned_domain(POOL_DOMAIN)])
    return registry, settings


def export_counts(rows: int, canaries: int, per_export: int | None) -> list[int]:
    """Canaries per export: the seed's default count for the list, until ``canaries``."""
    from canary.seed import default_canary_count

    each = max(1, per_export or default_canary_count(rows))
    counts = [each] * (canaries // each)
    if canaries % each:
        counts.append(canaries % each)
    return counts or [each]


def seed_shape(
    shape: Shape,
    work: Path,
    registry: Registry,
    settings: Settings,
    ref: Reference,
    *,
    rows: int,
    canaries: int,
    per_export: int | None,
    seed: int,
    one_list: bool = False,
) -> Dataset:
    """Seed exports of host lists of the shape and compute the broker's features over each
    file. Each export is of its own host list, a new draw of the shape (``one_list``: all of
    one list, as before 2026-11-27), and contributes its canary rows and the host rows
    whose ordinal is k modulo the number of exports.

    Why not one list: a share feature counts a value over the file, which is the list's
    count (the same in every export of it) plus the export's canaries holding it. Pooled
    over the exports of one list, the model learns each value's count in the list and sees
    a canary's own +1; no broker holding one file can. Real people of a second draw put in
    the canaries' places scored 0.584 that way (members without email, 1,500 canaries, seed
    2; the canaries 0.598), and all 1,500 canaries in one file 0.506.
    """
    import numpy as np

    from canary.seed import SeedRequest
    from canary.seed import seed as seed_list

    def host_list(k: int) -> Path:
        draw = f"{seed}:{shape.family}" if one_list or k == 0 else f"{seed}:{shape.family}:{k}"
        host_rows = shape.build(rows, random.Random(draw), ref)
        return write_csv(work / f"{shape.name}.csv", shape.header, host_rows)

    host = host_list(0)
    counts = export_counts(rows, canaries, per_export)
    rng = random.Random(f"{seed}:{shape.name}:seed")
    pool_prefixes = {re.sub(r"\D", "", n)[:4] for n in POOL_NUMBERS}
    cache: dict[str, Place | None] = {}
    xs, ys, gs = [], [], []
    schema = ""
    for k, count in enumerate(counts):
        if k and not one_list:
            host = host_list(k)
        out = work / f"{shape.name}-{k}.csv"
        res = seed_list(
            registry,
            settings,
            SeedRequest(
                input=host,
                output=out,
                client="realism",
                list_name=shape.name,
                account=f"account{k}",
                canaries=count,
                rng_seed=rng.randrange(2**32),
            ),
        )
        schema = " ".join(
            f"{c}={r}" for c, r in zip(res.schema.columns, res.schema.roles, strict=True)
        )
        header, data, raw = read_seeded(out)
        positions = {c.position for c in registry.canaries_of(res.export.code)}
        _check_positions(shape, header, data, positions, count, pool_prefixes)
        features = broker_features(header, data, raw, shape.roles, ref.places, cache)
        label = np.zeros(len(data), dtype=int)
        label[sorted(positions)] = 1
        ordinal = np.cumsum(1 - label) - 1  # host row number, for the canaries' neighbours too
        keep = (label == 1) | ((label == 0) & (ordinal % len(counts) == k))
        xs.append(features[keep])
        ys.append(label[keep])
        gs.append(np.full(int(keep.sum()), k))
        out.unlink()
    y = np.concatenate(ys)
    return Dataset(
        shape.name,
        np.vstack(xs),
        y,
        rows,
        int((y == 0).sum()),
        int(y.sum()),
        len(counts),
        counts,
        schema,
        np.concatenate(gs),
    )


def _check_positions(
    shape: Shape,
    header: list[str],
    data: list[list[str]],
    positions: set[int],
    count: int,
    pool_prefixes: set[str],
) -> None:
    """The registry's positions must point at the rows carrying pool phone numbers."""
    if len(positions) != count:
        raise RuntimeError(f"{shape.name}: {len(positions)} canary positions for {count}")
    phone = shape.roles.get("phone")
    if phone is None or phone not in header:
        return
    i = header.index(phone)
    carriers = {
        k for k, r in enumerate(data) if re.sub(r"\D", "", _nfkc(r[i]))[:4] in pool_prefixes
    }
    # Every row with a pool number is a canary; a canary may have no phone, as people do.
    blank = {k for k in positions if not data[k][i].strip()}
    if carriers | blank != positions:
        raise RuntimeError(
            f"{shape.name}: canary positions and rows with pool numbers differ "
            f"({len(positions ^ (carriers | blank))} rows)"
        )


# -- the broker's classifier --------------------------------------------------------------

# Where in the file a row sits and how it fits the list's sort order: a property of where
# canaries are inserted and of which IDs they take, not of the people they describe.
ORDER_FEATURES = {
    k for k in FEATURES if k.endswith(("_displacement", "_out_of_order")) or k.startswith("id_gap")
} | {"position"}


@dataclass
class Evaluation:
    auc: float
    auc_std: float
    importance: dict[str, float]  # AUC lost when the feature is shuffled (held-out folds)


@dataclass
class ShapeResult:
    shape: Shape
    data: Dataset
    full: Evaluation  # all features
    bare: Evaluation  # without pool-driven features
    unordered: Evaluation  # without pool-driven nor order features
    alone: dict[str, float]  # out-of-fold AUC of each feature on its own
    seconds: float


def _usable(data: Dataset, names: Sequence[str]) -> list[int]:
    """Columns of ``names`` that vary in this data set; features a list cannot have (no email
    column, ...) carry nothing, and the gradient-boosting binner refuses a constant column."""
    import numpy as np

    index = {name: j for j, name in enumerate(FEATURES)}
    out = []
    for name in names:
        column = data.X[:, index[name]]
        if len(np.unique(column[~np.isnan(column)])) > 1:
            out.append(index[name])
    return out


def _splits(data: Dataset, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds that hold whole exports (each of its own list): the model is
    trained on the canaries and people of some lists and scored on others', as a broker
    who learnt from earlier leaks would be. Folds that split an export let the model learn
    the export itself (its rows' share of canaries, a list-wide feature), and score below
    chance on the held-out rows of it. One export: stratified folds of its rows."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    exports = len(set(data.groups.tolist()))
    if exports < 2:
        plain = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(plain.split(data.X, data.y))
    grouped = StratifiedGroupKFold(n_splits=min(folds, exports), shuffle=True, random_state=seed)
    return list(grouped.split(data.X, data.y, data.groups))


def evaluate(
    data: Dataset, names: Sequence[str], *, folds: int, repeats: int, seed: int
) -> Evaluation:
    """Cross-validated AUC, and permutation importance averaged over the held-out folds."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    columns = _usable(data, names)
    X, y = data.X[:, columns], data.y
    aucs = []
    importance = np.zeros(len(columns))
    splits = _splits(data, folds, seed)
    for train, test in splits:
        model = HistGradientBoostingClassifier(
            max_iter=100,
            learning_rate=0.1,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
        model.fit(X[train], y[train])
        aucs.append(roc_auc_score(y[test], model.predict_proba(X[test])[:, 1]))
        if repeats:
            result = permutation_importance(
                model, X[test], y[test], scoring="roc_auc", n_repeats=repeats, random_state=seed
            )
            importance += result.importances_mean / len(splits)
    feature_names = list(FEATURES)
    return Evaluation(
        float(np.mean(aucs)),
        float(np.std(aucs)),
        {feature_names[j]: float(v) for j, v in zip(columns, importance, strict=True)},
    )


def univariate_auc(data: Dataset, *, folds: int, seed: int) -> dict[str, float]:
    """Out-of-fold AUC of each feature alone: the canary share of its value's bin (one bin
    per value, or 32 quantile bins when there are many values, missing values in a bin of
    their own) learnt on the other folds.

    Unlike permutation importance this also shows giveaways that a stronger feature makes
    redundant in the joint model; 0.5 is no signal, and values below 0.5 are noise.
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score

    y = data.y
    splits = _splits(data, folds, seed)
    feature_names = list(FEATURES)
    out = {}
    for j in _usable(data, list(FEATURES)):
        x = data.X[:, j]
        known = ~np.isnan(x)
        distinct = np.unique(x[known])
        if len(distinct) <= 64:  # a bin per value: a rare value must not share a bin
            edges = distinct
            codes = np.where(known, np.searchsorted(edges, x, side="left"), len(edges) + 1)
        else:
            edges = np.unique(np.quantile(x[known], np.linspace(0, 1, 33)[1:-1]))
            codes = np.where(known, np.searchsorted(edges, x, side="right"), len(edges) + 1)
        scores = np.empty(len(x))
        for train, test in splits:
            positives = np.bincount(codes[train], weights=y[train], minlength=len(edges) + 2)
            totals = np.bincount(codes[train], minlength=len(edges) + 2)
            prior = y[train].mean()
            scores[test] = ((positives + 5 * prior) / (totals + 5))[codes[test]]
        out[feature_names[j]] = float(roc_auc_score(y, scores))
    return out


# -- report -------------------------------------------------------------------------------


def _means(data: Dataset, name: str) -> tuple[float, float]:
    import numpy as np

    column = data.X[:, list(FEATURES).index(name)]
    canary, host = column[data.y == 1], column[data.y == 0]
    return (
        float(np.nanmean(canary)) if np.any(~np.isnan(canary)) else NAN,
        float(np.nanmean(host)) if np.any(~np.isnan(host)) else NAN,
    )


def _kind(name: str) -> str:
    return "pool" if name in POOL_FEATURES else "order" if name in ORDER_FEATURES else "content"


def giveaways(r: ShapeResult, top: int) -> list[str]:
    """Per kind (pool, order, content), the features that separate best on their own, and
    any other that a model leans on (AUC drop >= 0.01); ``top`` content features, fewer of
    the others."""
    models = (r.full, r.bare, r.unordered)
    out = []
    for kind, n in (("pool", 3), ("order", 3), ("content", top)):
        names = [k for k in r.alone if _kind(k) == kind]
        chosen = sorted(names, key=lambda k: -r.alone[k])[:n]
        leaned = [k for k in names if max(m.importance.get(k, 0.0) for m in models) >= 0.01]
        out += chosen + [k for k in leaned if k not in chosen]
    return out


def report_shape(r: ShapeResult, top: int) -> None:
    data = r.data
    print()
    print(f"== {r.shape.name}: {r.shape.description}")
    print(f"  columns as canary read them: {data.schema}")
    counts = "/".join(map(str, sorted(set(data.per_export), reverse=True)))
    print(
        f"  host list of {data.rows} rows, {data.exports} exports of {counts} canaries; "
        f"classified {data.hosts} people + {data.canaries} canaries ({r.seconds:.0f}s)"
    )
    print(f"  AUC all features                   {r.full.auc:.3f} ± {r.full.auc_std:.3f}")
    print(f"  AUC without pool features          {r.bare.auc:.3f} ± {r.bare.auc_std:.3f}")
    print(f"  AUC without pool or order features {r.unordered.auc:.3f} ± {r.unordered.auc_std:.3f}")
    print("  giveaways: out-of-fold AUC of the feature alone; AUC drop when it is shuffled in")
    print("  the model with all features / without pool / without pool or order features;")
    print("  its mean on canaries and on people")
    print(
        f"    {'feature':<26}{'kind':<8}{'alone':>6}{'drop':>7}{'-pool':>7}{'-order':>7}"
        f"{'canaries':>11}{'people':>11}"
    )

    def drop(ev: Evaluation, name: str) -> str:
        if name not in ev.importance:
            return "-"
        text = f"{ev.importance[name]:.3f}"
        return "0.000" if text == "-0.000" else text

    for name in giveaways(r, top):
        canary, host = _means(data, name)
        print(
            f"    {name:<26}{_kind(name):<8}{r.alone[name]:>6.3f}{drop(r.full, name):>7}"
            f"{drop(r.bare, name):>7}{drop(r.unordered, name):>7}{canary:>11.4g}{host:>11.4g}"
        )


def run_shape(
    shape: Shape,
    work: Path,
    registry: Registry,
    settings: Settings,
    ref: Reference,
    args: argparse.Namespace,
) -> ShapeResult:
    """Seed one shape's exports, then fit the three models and the single-feature ones."""
    started = time.perf_counter()
    data = seed_shape(
        shape,
        work,
        registry,
        settings,
        ref,
        rows=args.rows,
        canaries=args.canaries,
        per_export=args.per_export,
        seed=args.seed,
        one_list=args.one_list,
    )
    no_pool = [k for k in FEATURES if k not in POOL_FEATURES]
    no_order = [k for k in no_pool if k not in ORDER_FEATURES]
    fit = {"folds": args.folds, "seed": args.seed}
    return ShapeResult(
        shape,
        data,
        evaluate(data, list(FEATURES), repeats=args.repeats, **fit),
        evaluate(data, no_pool, repeats=args.repeats, **fit),
        evaluate(data, no_order, repeats=args.repeats, **fit),
        univariate_auc(data, **fit),
        time.perf_counter() - started,
    )


def run(args: argparse.Namespace) -> tuple[list[ShapeResult], list[tuple[str, str]]]:
    """Every shape in one registry; returns the results and the shapes that failed to seed."""
    from canary.errors import CanaryError

    names = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in names if s not in SHAPES]
    if unknown:
        raise SystemExit(f"unknown shape(s) {unknown}; choose from {', '.join(SHAPES)}")
    ref = Reference()
    results: list[ShapeResult] = []
    failed: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="canary-realism-") as tmp:
        work = Path(tmp)
        registry, settings = make_registry(work)
        try:
            for name in names:
                shape = SHAPES[name]
                try:
                    result = run_shape(shape, work, registry, settings, ref, args)
                except CanaryError as exc:  # a list Canary cannot seed is a finding too
                    print(f"\n== {shape.name}: {shape.description}")
                    print(f"  SEEDING FAILED: {type(exc).__name__}: {exc}")
                    failed.append((shape.name, type(exc).__name__))
                    continue
                report_shape(result, args.top)
                results.append(result)
        finally:
            registry.close()
    return results, failed


def print_summary(results: list[ShapeResult], failed: list[tuple[str, str]]) -> None:
    print()
    print(
        f"{'shape':<18}{'people':>8}{'canaries':>10}{'AUC all':>9}{'no pool':>9}"
        f"{'no pool/order':>15}"
    )
    for r in results:
        print(
            f"{r.shape.name:<18}{r.data.hosts:>8}{r.data.canaries:>10}{r.full.auc:>9.3f}"
            f"{r.bare.auc:>9.3f}{r.unordered.auc:>15.3f}"
        )
    for name, error in failed:
        print(f"{name:<18}seeding failed ({error})")
    print("target (issue 4): AUC <= 0.55 without pool features")


def main() -> None:
    ap = argparse.ArgumentParser(description="Realism: can a broker's classifier find canaries?")
    ap.add_argument("--rows", type=int, default=20000, help="Rows per host list.")
    ap.add_argument("--canaries", type=int, default=300, help="Canaries per shape, all exports.")
    ap.add_argument(
        "--per-export",
        type=int,
        help="Canaries per export (default: the seed's own count for the list size).",
    )
    ap.add_argument("--seed", type=int, default=1, help="Random seed.")
    ap.add_argument(
        "--one-list",
        action="store_true",
        help="Seed every export of a shape from one host list (pooled share counts; see "
        "seed_shape), not each from its own.",
    )
    ap.add_argument("--shapes", default=",".join(SHAPES), help="Comma-separated shapes.")
    ap.add_argument("--folds", type=int, default=5, help="Cross-validation folds.")
    ap.add_argument("--repeats", type=int, default=3, help="Permutation-importance repeats.")
    ap.add_argument("--top", type=int, default=8, help="Content giveaways to show.")
    ap.add_argument("--list-features", action="store_true", help="Describe the features.")
    args = ap.parse_args()
    if args.list_features:
        for name, doc in FEATURES.items():
            print(f"{name:<26}{doc}")
        return
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    started = time.perf_counter()
    results, failed = run(args)
    print_summary(results, failed)
    print(f"took {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
