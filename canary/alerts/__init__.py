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

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from canary.settings import Settings

if TYPE_CHECKING:
    from canary.alerts.messages import AlertItem, AlertMessage, alert_message, digest_message
    from canary.alerts.outputs import (
        EmailOutput,
        JsonLinesOutput,
        Output,
        SyslogOutput,
        WebhookOutput,
        outputs_from_settings,
    )
    from canary.alerts.ssrf import DeliveryError, UnsafeTargetError
    from canary.alerts.switchboard import DispatchResult, OutputReport, dispatch

# Loaded on first use: every `canary` command imports the CLI's labels from
# canary.alerts.messages, and should not pay for smtplib, ssl and http.client.
_LAZY = {
    "DispatchResult": "switchboard",
    "OutputReport": "switchboard",
    "dispatch": "switchboard",
    "AlertItem": "messages",
    "AlertMessage": "messages",
    "alert_message": "messages",
    "digest_message": "messages",
    "EmailOutput": "outputs",
    "JsonLinesOutput": "outputs",
    "Output": "outputs",
    "SyslogOutput": "outputs",
    "WebhookOutput": "outputs",
    "outputs_from_settings": "outputs",
    "DeliveryError": "ssrf",
    "UnsafeTargetError": "ssrf",
}
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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"canary.alerts.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'canary.alerts' has no attribute {name!r}")


def notify(
    settings: Settings,
    subject: str,
    text: str,
    data: dict[str, object] | None = None,
    outputs: Sequence[Output] | None = None,
) -> dict[str, str | None]:
    """Send one notice (e.g. the daily digest) to every output; returns output name ->
    None when it was delivered, else the reason it was not. Nothing is stored or retried."""
    from canary.alerts.messages import notice
    from canary.alerts.outputs import outputs_from_settings
    from canary.alerts.ssrf import DeliveryError

    message = notice(subject, text, data)
    results: dict[str, str | None] = {}
    for output in outputs_from_settings(settings) if outputs is None else outputs:
        try:
            output.send(message)
            results[output.name] = None
        except DeliveryError as exc:
            results[output.name] = str(exc)
    return results
