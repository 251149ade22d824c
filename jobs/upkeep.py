"""Upkeep jobs: pool maintenance, sealing events, the daily digest."""

from __future__ import annotations

from datetime import timedelta

from canary.jobruns import build_digest, deliver_digest, prune_runs
from canary.poolcare import maintain_pool
from canary.registry import Registry
from canary.settings import Settings
from jobs.run import Outcome, run_job

KEEP_RUNS = timedelta(days=90)  # job runs older than this are pruned by the digest


def pool() -> dict[str, object]:
    """Burn the numbers of leaked exports; release quiet numbers from quarantine."""

    def work(registry: Registry, settings: Settings) -> Outcome:
        return Outcome("ok", maintain_pool(registry, settings).as_json())

    return run_job("pool", work)


def seal() -> dict[str, object]:
    """Seal the events recorded since the last run into the audit chain."""

    def work(registry: Registry, settings: Settings) -> Outcome:
        return Outcome("ok", {"sealed": registry.seal_events()})

    return run_job("seal", work)


def digest() -> dict[str, object]:
    """Tell a human once a day what the monitors saw and how they fared."""

    def work(registry: Registry, settings: Settings) -> Outcome:
        report = build_digest(registry)
        took, errors = deliver_digest(report, settings)
        summary: dict[str, object] = {
            "delivered_to": took or ["stdout"],
            "events": report.events,
            "open_incidents": len(report.incidents),
            "failed_runs": len(report.failures),
        }
        if errors:
            summary["errors"] = errors
        summary["pruned_runs"] = prune_runs(registry, KEEP_RUNS)
        return Outcome("ok", summary)

    return run_job("digest", work)
