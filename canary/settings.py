"""One typed settings object, read from ``CANARY_*`` environment variables in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from canary.errors import CanaryError


def default_db_url() -> str:
    """The embedded default registry: a SQLite file in the user's data directory."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(base) / 'canary' / 'registry.db'}"


def _default_seeds_dir() -> str:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "seeds", here / "_seeds"):
        if candidate.is_dir():
            return str(candidate)
    return str(here.parent / "seeds")


@dataclass(frozen=True)
class Settings:
    """Configuration of a Canary process; every field has a default and a line of help."""

    db: str = field(
        default_factory=default_db_url,
        metadata={"env": "CANARY_DB", "help": "Registry database URL (SQLite file or PostgreSQL)."},
    )
    seeds_dir: str = field(
        default_factory=_default_seeds_dir,
        metadata={"env": "CANARY_SEEDS_DIR", "help": "Folder of reference data for canaries."},
    )
    actor: str = field(
        default_factory=lambda: os.environ.get("USER") or os.environ.get("USERNAME") or "unknown",
        metadata={"env": "CANARY_ACTOR", "help": "Who is acting, as written to the audit log."},
    )
    cache_dir: str = field(
        default_factory=lambda: str(
            Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "canary"
        ),
        metadata={
            "env": "CANARY_CACHE_DIR",
            "help": "Folder for the scan's canary index cache (rebuilt when canaries change).",
        },
    )
    max_numbers_per_export: int = field(
        default=24,
        metadata={
            "env": "CANARY_MAX_NUMBERS_PER_EXPORT",
            "help": "Most distinct pool phone numbers one export uses.",
        },
    )
    # -- events and incidents ---------------------------------------------------------------
    expect_grace_hours: int = field(
        default=72,
        metadata={
            "env": "CANARY_EXPECT_GRACE_HOURS",
            "help": "Hours after a campaign's end during which its own calls are still expected.",
        },
    )
    event_threshold: float = field(
        default=0.95,
        metadata={
            "env": "CANARY_EVENT_THRESHOLD",
            "help": "Guilt probability at which an incident names its export (0-1).",
        },
    )
    # -- server -------------------------------------------------------------------------------
    listen: str = field(
        default="127.0.0.1:8425",
        metadata={"env": "CANARY_LISTEN", "help": "Address:port the HTTP server binds."},
    )
    public_url: str = field(
        default="",
        metadata={
            "env": "CANARY_PUBLIC_URL",
            "help": "The server's URL as providers call it (https://canary.example.jp); "
            "Twilio signs that URL, not the one behind a proxy.",
        },
    )
    twilio_auth_token: str = field(
        default="",
        metadata={
            "env": "CANARY_TWILIO_AUTH_TOKEN",
            "help": "Twilio auth token that signs its webhooks; Twilio hooks answer 403 "
            "without it.",
        },
    )
    webhook_secret: str = field(
        default="",
        metadata={
            "env": "CANARY_WEBHOOK_SECRET",
            "help": "Shared secret of the generic JSON webhook (HMAC-SHA256 over "
            "timestamp + body); the hook answers 403 without it.",
        },
    )
    webhook_window: int = field(
        default=300,
        metadata={
            "env": "CANARY_WEBHOOK_WINDOW",
            "help": "Seconds a signed generic webhook stays valid (replay window).",
        },
    )
    trusted_proxies: str = field(
        default="",
        metadata={
            "env": "CANARY_TRUSTED_PROXIES",
            "help": "Comma-separated addresses of reverse proxies whose forwarded headers "
            "are believed (client address, forwarded user).",
        },
    )
    forwarded_user_header: str = field(
        default="X-Forwarded-User",
        metadata={
            "env": "CANARY_FORWARDED_USER_HEADER",
            "help": "Header a trusted proxy sets to the logged-in user of a download.",
        },
    )
    token: str = field(
        default="",
        metadata={
            "env": "CANARY_TOKEN",
            "help": "An API token; when set, canary commands act with its role and name (a "
            "steward's shell cannot read events or incidents; see `canary token --help`).",
        },
    )
    # -- mail -------------------------------------------------------------------------------
    smtp_listen: str = field(
        default="127.0.0.1:2525",
        metadata={
            "env": "CANARY_SMTP_LISTEN",
            "help": "Address:port of the SMTP listener for the pool domains (25 in production).",
        },
    )
    smtp_max_bytes: int = field(
        default=1_048_576,
        metadata={
            "env": "CANARY_SMTP_MAX_BYTES",
            "help": "Largest message the SMTP listener accepts; bigger ones are refused (552).",
        },
    )
    imap_url: str = field(
        default="",
        metadata={
            "env": "CANARY_IMAP_URL",
            "help": "Mailbox to poll for canary mail a provider hosts: "
            "imaps://user@host:993/INBOX (password in CANARY_IMAP_PASSWORD).",
        },
    )
    imap_password: str = field(
        default="",
        metadata={"env": "CANARY_IMAP_PASSWORD", "help": "Password of the IMAP mailbox."},
    )
    # -- alerts -----------------------------------------------------------------------------
    alert_email_to: str = field(
        default="",
        metadata={
            "env": "CANARY_ALERT_EMAIL_TO",
            "help": "Comma-separated addresses alerted by email about suspicious events.",
        },
    )
    alert_smtp: str = field(
        default="",
        metadata={
            "env": "CANARY_ALERT_SMTP",
            "help": "SMTP relay for alert mail, host:port (e.g. 127.0.0.1:25).",
        },
    )
    alert_from: str = field(
        default="canary@localhost",
        metadata={"env": "CANARY_ALERT_FROM", "help": "Sender address of alert mail."},
    )
    alert_webhooks: str = field(
        default="",
        metadata={
            "env": "CANARY_ALERT_WEBHOOKS",
            "help": "Comma-separated kind=url pairs alerted by webhook; kind is json, "
            "slack or teams.",
        },
    )
    alert_allow_private: int = field(
        default=0,
        metadata={
            "env": "CANARY_ALERT_ALLOW_PRIVATE",
            "help": "1 lets alert webhooks reach private and loopback addresses "
            "(refused by default: SSRF).",
        },
    )
    alert_rate: int = field(
        default=10,
        metadata={
            "env": "CANARY_ALERT_RATE",
            "help": "Alerts sent one by one per hour; beyond that they go out as a digest.",
        },
    )
    alert_siem: str = field(
        default="",
        metadata={
            "env": "CANARY_ALERT_SIEM",
            "help": "JSON lines of alerts for a SIEM: stdout, syslog (local /dev/log) or "
            "syslog://host:514 (UDP); empty for none.",
        },
    )

    # -- DNS ----------------------------------------------------------------------------------
    dns_listen: str = field(
        default="127.0.0.1:5053",
        metadata={
            "env": "CANARY_DNS_LISTEN",
            "help": "Address:port of the DNS listener, UDP and TCP (53 in production).",
        },
    )
    dns_zones: str = field(
        default="",
        metadata={
            "env": "CANARY_DNS_ZONES",
            "help": "Comma-separated zones the DNS listener serves beside the active pool domains.",
        },
    )
    dns_mx_host: str = field(
        default="",
        metadata={
            "env": "CANARY_DNS_MX_HOST",
            "help": "Mail host (our SMTP listener) the zones' MX records name; default mx.<zone>.",
        },
    )
    dns_ipv4: str = field(
        default="",
        metadata={
            "env": "CANARY_DNS_IPV4",
            "help": "Comma-separated public IPv4 addresses of our hosts, the A answers.",
        },
    )
    dns_ipv6: str = field(
        default="",
        metadata={
            "env": "CANARY_DNS_IPV6",
            "help": "Comma-separated public IPv6 addresses of our hosts, the AAAA answers.",
        },
    )
    dns_ns: str = field(
        default="",
        metadata={
            "env": "CANARY_DNS_NS",
            "help": "Comma-separated name servers the zones are delegated to; default ns1.<zone>.",
        },
    )
    dns_rdap_url: str = field(
        default="",
        metadata={
            "env": "CANARY_DNS_RDAP_URL",
            "help": "RDAP base URL for domain expiry (e.g. https://rdap.org/domain/); empty: off.",
        },
    )
    dns_resolver: str = field(
        default="",
        metadata={
            "env": "CANARY_DNS_RESOLVER",
            "help": "Name server HOST[:PORT] the domain health checks ask (e.g. 1.1.1.1); "
            "empty: the system's resolver.",
        },
    )
    # -- jobs ---------------------------------------------------------------------------------
    jobs_config: str = field(
        default="",
        metadata={
            "env": "CANARY_JOBS_CONFIG",
            "help": "TOML file of the monitors' schedules and folders (jobs/README.md); "
            "built-in schedules without it.",
        },
    )
    drop_folder: str = field(
        default="",
        metadata={
            "env": "CANARY_DROP_FOLDER",
            "help": "Folder where purchased broker lists are dropped to be scanned; "
            "overrides the config file.",
        },
    )
    cdr_folder: str = field(
        default="",
        metadata={
            "env": "CANARY_CDR_FOLDER",
            "help": "Folder where call-detail files are dropped to be imported; "
            "overrides the config file.",
        },
    )
    outbox_folder: str = field(
        default="",
        metadata={
            "env": "CANARY_OUTBOX_FOLDER",
            "help": "Outbox root: a list dropped into <root>/<recipient>/ is seeded for that "
            "recipient; overrides the config file.",
        },
    )
    quarantine_days: int = field(
        default=30,
        metadata={
            "env": "CANARY_QUARANTINE_DAYS",
            "help": "Burn-in: days a quarantined number is watched before it may become active.",
        },
    )
    stray_rate_limit: float = field(
        default=1.0,
        metadata={
            "env": "CANARY_STRAY_RATE_LIMIT",
            "help": "Most stray calls/SMS per week (over the last burn-in) a quarantined number "
            "may get and still become active.",
        },
    )
    digest_time: str = field(
        default="",
        metadata={
            "env": "CANARY_DIGEST_TIME",
            "help": "Local time HH:MM of the daily digest; overrides the config file "
            "(default 08:00).",
        },
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``CANARY_*`` variables; keyword overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            if name in env and env[name] != "":
                raw = env[name]
                try:
                    if f.type in ("int", int):
                        values[f.name] = int(raw)
                    elif f.type in ("float", float):
                        values[f.name] = float(raw)
                    else:
                        values[f.name] = raw
                except ValueError:
                    raise CanaryError(
                        f"{name}={raw!r} is not a number; set it to a number or unset it."
                    ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def help_table(cls) -> list[tuple[str, str]]:
        """(variable, help) pairs for documentation."""
        return [(f.metadata["env"], f.metadata["help"]) for f in fields(cls)]
