"""Alerts: tell a human, once and soon, about every suspicious event.

The vocabulary is the one of canarytokens: input channels (webhooks, call-detail files,
mail, DNS) feed the registry's switchboard, which owes one alert per suspicious event (the
``alerts`` table); ``dispatch`` hands them to the alert outputs (mail, Slack, Teams, JSON
webhooks, a SIEM), at most ``CANARY_ALERT_RATE`` one by one per hour and output, the rest
as a digest, and never drops one.

    dispatch(registry, settings)            # what `canary alerts send` and the scheduler run
    notify(settings, subject, text)         # a message that is not about one event

Errors: ``DeliveryError`` (an output did not take a message; ``UnsafeTargetError`` when a
webhook points inside the network) are kept on the alert and retried; a misconfigured
output raises ``CanaryError`` before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from canary.alerts.dispatch import DispatchResult, OutputReport, dispatch
from canary.alerts.messages import AlertItem, AlertMessage, alert_message, digest_message, notice
from canary.alerts.outputs import (
    EmailOutput,
    JsonLinesOutput,
    Output,
    SyslogOutput,
    WebhookOutput,
    outputs_from_settings,
)
from canary.alerts.ssrf import DeliveryError, UnsafeTargetError
from canary.settings import Settings

__all__ = [
    "AlertItem",
    "AlertMessage",
    "DeliveryError",
    "DispatchResult",
    "EmailOutput",
    "JsonLinesOutput",
    "Output",
    "OutputReport",
    "SyslogOutput",
    "UnsafeTargetError",
    "WebhookOutput",
    "alert_message",
    "digest_message",
    "dispatch",
    "notify",
    "outputs_from_settings",
]


def notify(
    settings: Settings,
    subject: str,
    text: str,
    data: dict[str, object] | None = None,
    outputs: Sequence[Output] | None = None,
) -> dict[str, str | None]:
    """Send one notice (e.g. the daily digest) to every output; returns output name ->
    None when it was delivered, else the reason it was not. Nothing is stored or retried."""
    message = notice(subject, text, data)
    results: dict[str, str | None] = {}
    for output in outputs_from_settings(settings) if outputs is None else outputs:
        try:
            output.send(message)
            results[output.name] = None
        except DeliveryError as exc:
            results[output.name] = str(exc)
    return results
