"""Canary domains: the zones the DNS listener serves, and hostname tokens that name an
export (or a client) when someone looks them up. Their health is ``canary.domainhealth``
(``check_domain``, ``check_all``, re-exported here).

A hostname token is a plausible company host under one of our zones, put in a B2B list's
URL column; a lookup of it (or of any name below it) names its export. A pool domain
dedicated to one client is a hostname token too (hostname = the domain, ``client_id`` set):
an MX lookup of it says whose list is being mailed.
"""

from __future__ import annotations

import importlib
import ipaddress
import random
import re
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from canary.errors import CanaryError, InputError, NotFoundError, PoolError
from canary.events import aware
from canary.pools import parse_owned_domain
from canary.registry.models import Client, Export, HostnameToken, PeopleList, PoolDomain

if TYPE_CHECKING:
    from canary.domainhealth import Check, DomainHealth, check_all, check_domain
    from canary.registry import Registry
    from canary.settings import Settings

# Our own word list for token labels: romanised words Japanese firms are named after, and
# the kind of business that follows them (asahi-shoji27, hikaridenki318).
COMPANY_WORDS = (
    "asahi", "aoba", "daiichi", "daiwa", "fuji", "hikari", "hinode", "hokuto", "kyowa",
    "meiwa", "midori", "mirai", "nihon", "nissin", "sakura", "sanwa", "shinwa", "showa",
    "taisei", "taiyo", "tokai", "toyo", "yamato", "yamabiko", "wakaba", "kotobuki", "heiwa",
    "chuo", "seiwa", "eiko", "kohyo", "ryoko", "sanko", "tohoku", "kansai", "kyushu",
)  # fmt: skip
COMPANY_KINDS = (
    "shoji", "kogyo", "denki", "kensetsu", "sangyo", "seiki", "butsuryu", "shokai", "tsusho",
    "kikaku", "koumuten", "sekkei", "unyu", "denshi", "kosan", "systems", "tech", "trading",
)  # fmt: skip
_HEALTH = ("Check", "DomainHealth", "check_all", "check_domain")
__all__ = [
    "Check",
    "DomainHealth",
    "Holders",
    "HostnameTokenRecord",
    "WebsiteTokens",
    "check_all",
    "check_domain",
    "configured_zones",
    "create_token",
    "dedicate_domain",
    "holders_in",
    "host_name",
    "hostname_holders",
    "hostname_tokens",
    "mx_host",
    "name_servers",
    "our_addresses",
    "served_zones",
    "split_list",
    "token_label",
    "website_tokens",
]


def __getattr__(name: str) -> Any:
    # The health checks live in canary.domainhealth, which imports this module.
    if name in _HEALTH:
        return getattr(importlib.import_module("canary.domainhealth"), name)
    raise AttributeError(f"module 'canary.domains' has no attribute {name!r}")


def split_list(value: str) -> list[str]:
    """The items of a comma-separated setting, stripped, empty ones dropped."""
    return [v.strip() for v in value.split(",") if v.strip()]


def host_name(name: str) -> str:
    """A host name as compared and stored: stripped, lower case, no final dot."""
    return name.strip().rstrip(".").lower()


def configured_zones(settings: Settings) -> list[str]:
    """The zones named in ``CANARY_DNS_ZONES``, normalised."""
    return [parse_owned_domain(z) for z in split_list(settings.dns_zones)]


def mx_host(zone: str, settings: Settings) -> str:
    """The mail host the zone's MX names: ``CANARY_DNS_MX_HOST``, else ``mx.<zone>``."""
    return host_name(settings.dns_mx_host) or f"mx.{zone}"


def name_servers(zone: str, settings: Settings) -> list[str]:
    """The name servers the zone is delegated to: ``CANARY_DNS_NS``, else ``ns1.<zone>``."""
    return [host_name(n) for n in split_list(settings.dns_ns)] or [f"ns1.{zone}"]


def our_addresses(settings: Settings) -> tuple[list[str], list[str]]:
    """Our public (IPv4, IPv6) addresses; CanaryError names a malformed one."""
    v4: list[str] = []
    v6: list[str] = []
    for text in split_list(settings.dns_ipv4) + split_list(settings.dns_ipv6):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise CanaryError(
                f"{text!r} in CANARY_DNS_IPV4/CANARY_DNS_IPV6 is not an IP address; fix it."
            ) from None
        (v4 if address.version == 4 else v6).append(str(address))
    return v4, v6


def served_zones(registry: Registry, settings: Settings) -> list[str]:
    """Every zone the DNS listener is authoritative for: configured zones, then the active
    pool domains."""
    zones = configured_zones(settings)
    for d in registry.pool_domains("active"):
        if d.domain not in zones:
            zones.append(d.domain)
    return zones


# -- hostname tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class HostnameTokenRecord:
    hostname: str
    zone: str
    export: str | None  # export code
    client: str | None  # client name (of a dedicated domain, or the export's client)
    created_at: datetime

    def as_json(self) -> dict[str, object]:
        return {
            "hostname": self.hostname,
            "zone": self.zone,
            "export_id": self.export,
            "client": self.client,
            "kind": "export" if self.export else "client",
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Holders:
    """Who a looked-up name points at: the token it falls under, its exports, its client."""

    hostname: str  # the most specific token at or above the name
    export_ids: tuple[int, ...]
    exports: tuple[str, ...]  # export codes
    client_id: int | None
    client: str | None

    def as_json(self) -> dict[str, object]:
        return {"hostname": self.hostname, "exports": list(self.exports), "client": self.client}


def holders_in(s: Session, name: str) -> Holders | None:
    """The hostname tokens at or above ``name`` (an export token beats a dedicated domain),
    read in the caller's session; None when the name falls under no token."""
    labels = host_name(name).split(".")
    candidates = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    if not candidates:
        return None
    rows = s.execute(
        select(HostnameToken, Export.code, PeopleList.client_id)
        .outerjoin(Export, Export.id == HostnameToken.export_id)
        .outerjoin(PeopleList, PeopleList.id == Export.list_id)
        .where(HostnameToken.hostname.in_(candidates))
        .order_by(func.length(HostnameToken.hostname).desc())  # most specific first
    ).all()
    if not rows:
        return None
    token, code, export_client = next((r for r in rows if r[0].export_id is not None), rows[0])
    client_id = next((r[0].client_id for r in rows if r[0].client_id is not None), export_client)
    client = s.get(Client, client_id) if client_id is not None else None
    return Holders(
        hostname=token.hostname,
        export_ids=(token.export_id,) if token.export_id is not None else (),
        exports=(code,) if code else (),
        client_id=client_id,
        client=client.name if client is not None else None,
    )


def hostname_holders(registry: Registry, name: str) -> Holders | None:
    """The export(s) and client a looked-up name points at, or None (see ``holders_in``)."""
    with Session(registry.engine) as s:
        return holders_in(s, name)


def _token_record(s: Session, t: HostnameToken) -> HostnameTokenRecord:
    export = s.get(Export, t.export_id) if t.export_id is not None else None
    client_id = t.client_id
    if client_id is None and export is not None:
        client_id = s.get(PeopleList, export.list_id).client_id  # type: ignore[union-attr]
    client = s.get(Client, client_id) if client_id is not None else None
    return HostnameTokenRecord(
        t.hostname,
        t.zone,
        export.code if export is not None else None,
        client.name if client is not None else None,
        aware(t.created_at),
    )


def hostname_tokens(registry: Registry) -> list[HostnameTokenRecord]:
    """Every hostname token and dedicated domain, oldest first."""
    with Session(registry.engine) as s:
        rows = s.execute(select(HostnameToken).order_by(HostnameToken.id)).scalars()
        return [_token_record(s, t) for t in rows]


def token_label(rng: random.Random | secrets.SystemRandom) -> str:
    """A plausible company host label such as ``asahi-shoji27`` (never an export code)."""
    word, kind = rng.choice(COMPANY_WORDS), rng.choice(COMPANY_KINDS)
    digits = str(rng.randint(10, 999))
    return f"{word}-{kind}{digits}" if rng.random() < 0.5 else f"{word}{kind}{digits}"


@dataclass
class WebsiteTokens:
    """Canary websites for one seed: new hostname tokens under ``zone``, written the way the
    list's URL column writes its values (scheme or none, ``www.``, a trailing slash)."""

    zone: str
    schemes: tuple[tuple[str, int], ...] = (("https://", 1),)  # "https://", "http://", ""
    www: float = 0.0  # share of the list's values starting www.
    slash: float = 0.0  # share ending in /
    taken: Callable[[str], bool] = lambda _: False
    drawn: set[str] = field(default_factory=set)

    def hostname(self, rng: random.Random) -> str:
        """A token hostname under the zone no export holds and no canary of this seed drew."""
        for _ in range(50):
            name = f"{token_label(rng)}.{self.zone}"
            if name not in self.drawn and not self.taken(name):
                self.drawn.add(name)
                return name
        raise PoolError("Could not find an unused token hostname; try again or use another zone.")

    def write(self, hostname: str, rng: random.Random) -> str:
        """``hostname`` as the list would write a website."""
        scheme = rng.choices([s for s, _ in self.schemes], [w for _, w in self.schemes])[0]
        www = "www." if rng.random() < self.www else ""
        tail = "/" if scheme and rng.random() < self.slash else ""
        return f"{scheme}{www}{hostname}{tail}"


_SCHEME_RE = re.compile(r"^(https?://)?", re.IGNORECASE)


def website_tokens(registry: Registry, zone: str, values: Sequence[str]) -> WebsiteTokens:
    """Websites under ``zone`` shaped like a URL column's ``values`` (its sample rows)."""
    filled = [v.strip() for v in values if v.strip()]
    schemes: Counter[str] = Counter()
    www = slash = 0
    for v in filled:
        scheme = _SCHEME_RE.match(v).group(0).lower()  # type: ignore[union-attr]
        schemes[scheme] += 1
        rest = v[len(scheme) :]
        www += rest.lower().startswith("www.")
        slash += bool(scheme) and rest.endswith("/")
    n = max(1, len(filled))
    with_scheme = max(1, sum(c for s, c in schemes.items() if s))
    return WebsiteTokens(
        zone=zone,
        schemes=tuple(schemes.items()) or (("https://", 1),),
        www=www / n,
        slash=slash / with_scheme,
        taken=lambda name: _hostname_taken(registry, name),
    )


def _hostname_taken(registry: Registry, name: str) -> bool:
    with Session(registry.engine) as s:
        found = s.execute(select(HostnameToken.id).where(HostnameToken.hostname == name))
        return found.first() is not None


def _dedicated(s: Session) -> dict[str, int]:
    rows = s.execute(
        select(HostnameToken.hostname, HostnameToken.client_id).where(
            HostnameToken.client_id.is_not(None), HostnameToken.export_id.is_(None)
        )
    ).all()
    return {h: c for h, c in rows if c is not None}


def create_token(
    registry: Registry,
    settings: Settings,
    export_code: str,
    zone: str | None = None,
    rng: random.Random | None = None,
) -> HostnameTokenRecord:
    """Make a new hostname token for an export under ``zone`` (default: a configured zone,
    else a pool domain not dedicated to another client) and record it in the audit chain."""
    zones = served_zones(registry, settings)
    chooser = rng or secrets.SystemRandom()
    for _attempt in range(20):
        try:
            with registry.transaction() as s:
                export = s.execute(
                    select(Export).where(Export.code == export_code.strip().upper())
                ).scalar()
                if export is None:
                    raise NotFoundError(
                        f"No export {export_code} in the registry; `canary exports list` "
                        "shows them all."
                    )
                if export.status == "void":
                    raise InputError(f"Export {export.code} is void; tokens go to live exports.")
                client_id = s.get(PeopleList, export.list_id).client_id  # type: ignore[union-attr]
                chosen = _choose_zone(zones, zone, _dedicated(s), client_id)
                hostname = f"{token_label(chooser)}.{chosen}"
                row = HostnameToken(
                    hostname=hostname, zone=chosen, export_id=export.id, created_at=_now()
                )
                s.add(row)
                s.flush()
                registry._audit(s, "dns.token", hostname, {"export": export.code, "zone": chosen})
                return _token_record(s, row)
        except IntegrityError:  # the name is taken: draw another
            continue
    raise PoolError("Could not find an unused token hostname; try again or use another zone.")


def _choose_zone(
    zones: Sequence[str], wanted: str | None, dedicated: dict[str, int], client_id: int
) -> str:
    if wanted is not None:
        name = parse_owned_domain(wanted)
        if name not in zones:
            raise PoolError(
                f"The DNS listener does not serve {name}; add it with `canary pool add-domain` "
                "or CANARY_DNS_ZONES, or pick one of: " + (", ".join(zones) or "none") + "."
            )
        return name
    usable = [z for z in zones if dedicated.get(z, client_id) == client_id]
    if not usable:
        raise PoolError(
            "No zone to put a hostname token in; add a pool domain (`canary pool add-domain`) "
            "or set CANARY_DNS_ZONES."
        )
    return usable[0]


def dedicate_domain(
    registry: Registry, domain: str, client: str, create: bool = False
) -> HostnameTokenRecord:
    """Dedicate an active pool domain to one client, so that lookups of it name the client."""
    name = parse_owned_domain(domain)
    with registry.transaction() as s:
        pool = s.execute(select(PoolDomain).where(PoolDomain.domain == name)).scalar()
        if pool is None or pool.state != "active":
            raise PoolError(
                f"{name} is not an active pool domain; add it first with `canary pool add-domain`."
            )
        row = s.execute(select(Client).where(Client.name == client)).scalar()
        if row is None and not create:
            raise NotFoundError(
                f"No client {client!r} in the registry; check the name, or pass --create."
            )
        if row is None:
            row = Client(name=client, created_at=_now())
            s.add(row)
            s.flush()
        taken = s.execute(select(HostnameToken).where(HostnameToken.hostname == name)).scalar()
        if taken is not None:
            held = _token_record(s, taken)
            raise PoolError(f"{name} is already a hostname token of {held.client or held.export}.")
        token = HostnameToken(hostname=name, zone=name, client_id=row.id, created_at=_now())
        s.add(token)
        s.flush()
        registry._audit(s, "dns.dedicate", name, {"client": client})
        return _token_record(s, token)


def _now() -> datetime:
    return datetime.now(UTC)
