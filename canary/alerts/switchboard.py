"""The switchboard: one run of ``dispatch`` offers every pending alert to every output.

Per output, at most ``settings.alert_rate`` alerts go out one by one per hour; the pending
ones beyond that are bundled into one digest message. Nothing is dropped: an alert an
output did not take stays pending (attempts, last error) and is offered again next run,
to that output only.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from canary.alerts.messages import AlertMessage, alert_message, digest_message
from canary.alerts.outputs import Output, outputs_from_settings
from canary.alerts.ssrf import DeliveryError
from canary.alerts.store import (
    Outcome,
    dispatch_lock,
    pending,
    pending_count,
    record_outcomes,
    sent_alone_since,
)
from canary.registry import Registry
from canary.settings import Settings

RATE_WINDOW = timedelta(hours=1)
MAX_PER_RUN = 500  # alerts read per run; the rest wait for the next one


@dataclass
class OutputReport:
    name: str
    alone: int = 0  # alerts sent one by one
    digests: int = 0  # digest messages sent
    in_digests: int = 0  # alerts carried by them
    failed: int = 0  # alerts this output did not take
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "output": self.name,
            "alone": self.alone,
            "digests": self.digests,
            "in_digests": self.in_digests,
            "failed": self.failed,
            "error": self.error,
        }


@dataclass
class DispatchResult:
    pending_before: int = 0
    delivered: int = 0
    pending_after: int = 0
    outputs: list[OutputReport] = field(default_factory=list)
    skipped: str | None = None  # why nothing was tried

    @property
    def failed(self) -> bool:
        return any(o.error for o in self.outputs)

    def as_json(self) -> dict[str, object]:
        return {
            "pending_before": self.pending_before,
            "delivered": self.delivered,
            "pending_after": self.pending_after,
            "outputs": [o.as_json() for o in self.outputs],
            "skipped": self.skipped,
        }


def _send(
    output: Output, message: AlertMessage, outcomes: Sequence[Outcome], report: OutputReport
) -> bool:
    """Send one message; on failure every alert it carried records why."""
    try:
        output.send(message)
    except DeliveryError as exc:
        report.error = str(exc)
        report.failed += len(outcomes)
        for o in outcomes:
            o.errors.append(f"{output.name}: {exc}")
        return False
    for o in outcomes:
        o.delivered_to.add(output.name)
        if message.digest_id:
            o.digest_id = message.digest_id
    return True


def dispatch(
    registry: Registry,
    settings: Settings,
    outputs: Sequence[Output] | None = None,
    now: datetime | None = None,
) -> DispatchResult:
    """Deliver the pending alerts once; see the module docstring.

    ``outputs`` defaults to those the settings configure (CanaryError if one is
    misconfigured); with none configured nothing is tried and every alert stays pending.
    """
    outputs = outputs_from_settings(settings) if outputs is None else list(outputs)
    now = now or datetime.now(UTC)
    result = DispatchResult(pending_before=pending_count(registry))
    if not outputs:
        result.skipped = (
            "no alert output is configured (CANARY_ALERT_EMAIL_TO and CANARY_ALERT_SMTP, "
            "CANARY_ALERT_WEBHOOKS or CANARY_ALERT_SIEM)"
        )
        result.pending_after = result.pending_before
        return result
    with dispatch_lock(registry) as mine:
        if not mine:
            result.skipped = "another alert dispatch is running"
            result.pending_after = result.pending_before
            return result
        todo = pending(registry, MAX_PER_RUN)
        budget = max(0, settings.alert_rate - sent_alone_since(registry, now - RATE_WINDOW))
        outcomes = {p.item.alert_id: Outcome(p.item.alert_id, set(p.delivered_to)) for p in todo}
        digest_id = f"DG-{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
        for output in outputs:
            report = OutputReport(output.name)
            result.outputs.append(report)
            mine_now = [p.item for p in todo if output.name not in p.delivered_to]
            alone, bundled = mine_now[:budget], mine_now[budget:]
            for item in alone:
                outcome = outcomes[item.alert_id]
                outcome.tried = True
                if report.error:  # the output is down: do not wait on it once per alert
                    outcome.errors.append(f"{output.name}: {report.error}")
                    report.failed += 1
                    continue
                if _send(output, alert_message(item), [outcome], report):
                    report.alone += 1
            if bundled:
                carried = [outcomes[i.alert_id] for i in bundled]
                for o in carried:
                    o.tried = True
                if report.error:
                    for o in carried:
                        o.errors.append(f"{output.name}: {report.error}")
                    report.failed += len(carried)
                elif _send(output, digest_message(bundled, digest_id), carried, report):
                    report.digests += 1
                    report.in_digests += len(bundled)
        names = [o.name for o in outputs]
        result.delivered = record_outcomes(registry, list(outcomes.values()), names, now)
    result.pending_after = pending_count(registry)
    return result
