"""Monitor jobs: the IMAP mailbox, the canary domains, the alert switchboard."""

from __future__ import annotations

from canary.errors import CanaryError
from canary.registry import Registry
from canary.settings import Settings
from jobs.run import Outcome, Unavailable, run_job


def _missing(what: str, exc: ImportError) -> Unavailable:
    return Unavailable(
        f"{what} is not part of this installation ({exc}); upgrade canary or turn the job off."
    )


def mailbox() -> dict[str, object]:
    """Poll the IMAP mailbox for mail to canary addresses."""

    def work(registry: Registry, settings: Settings) -> Outcome:
        if not settings.imap_url:
            return Outcome("skipped", {"reason": "no mailbox: CANARY_IMAP_URL is not set"})
        try:
            from canary.mailbox import poll_mailbox
        except ImportError as exc:
            raise _missing("The mailbox poller", exc) from None
        result = poll_mailbox(registry, settings)
        summary = result.as_json()
        if result.errors and not result.stored and not result.duplicates and result.failed:
            return Outcome("failed", summary, "; ".join(result.errors[:3]))
        return Outcome("ok", summary)

    return run_job("mailbox", work)


def domains() -> dict[str, object]:
    """Check every canary domain; a blind one is alerted at once and fails the run (so it
    shows in `jobs list`, `doctor` and the digest)."""

    def work(registry: Registry, settings: Settings) -> Outcome:
        try:
            from canary.domainhealth import alert_blind, check_all
        except ImportError as exc:
            raise _missing("The domain health check", exc) from None
        health = check_all(registry, settings)
        blind = [h for h in health if h.blind]
        summary: dict[str, object] = {
            "domains": len(health),
            "blind": [h.domain for h in blind],
            "findings_ja": [h.finding("ja") for h in blind],
            "checks": [h.as_json() for h in health],
        }
        if not blind:
            return Outcome("ok", summary)
        error = " ".join(str(h.finding("en")) for h in blind)
        try:
            summary["alerted"], errors = alert_blind(blind, settings)
        except CanaryError as exc:  # a misconfigured output: the run says so beside the finding
            summary["alerted"], errors = [], [str(exc)]
        if errors:
            summary["alert_errors"] = errors
            error += " The alert did not go out: " + "; ".join(errors)
        return Outcome("failed", summary, error)

    return run_job("domains", work)


def alerts() -> dict[str, object]:
    """Deliver the pending alerts to the configured outputs."""

    def work(registry: Registry, settings: Settings) -> Outcome:
        try:
            from canary.alerts import dispatch
        except ImportError as exc:
            raise _missing("The alert switchboard", exc) from None
        result = dispatch(registry, settings)
        summary = result.as_json()
        if result.skipped:
            return Outcome("skipped", summary)
        if result.failed:
            errors = [f"{o.name}: {o.error}" for o in result.outputs if o.error]
            return Outcome("failed", summary, "; ".join(errors))
        return Outcome("ok", summary)

    return run_job("alerts", work)
