"""Canary domains: the zones the DNS listener serves, hostname tokens that name an export
(or a client) when someone looks them up, and the health of every canary domain.

A hostname token is a plausible company host under one of our zones, put in a B2B list's
URL column; a lookup of it (or of any name below it) names its export. A pool domain
dedicated to one client is a hostname token too (hostname = the domain, ``client_id`` set):
an MX lookup of it says whose list is being mailed.

Domain health asks DNS, through an injectable resolver, whether the world still reaches us:
SOA present, NS delegated to our name servers, MX pointing to our mail host, SPF and DMARC
published; expiry only over RDAP (HTTPS, no WHOIS), off unless ``CANARY_DNS_RDAP_URL`` is
set. A domain failing any of these is *blind*: mail or lookups of its canaries reach
someone else or no one.
"""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.resolver
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from canary.errors import CanaryError, InputError, NotFoundError, PoolError
from canary.events import aware
from canary.pools import parse_owned_domain
from canary.registry.models import Client, Export, HostnameToken, PeopleList, PoolDomain

if TYPE_CHECKING:
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
EXPIRY_WARNING = timedelta(days=30)


def split_list(value: str) -> list[str]:
    """The items of a comma-separated setting, stripped, empty ones dropped."""
    return [v.strip() for v in value.split(",") if v.strip()]


def _host(name: str) -> str:
    return name.strip().rstrip(".").lower()


def configured_zones(settings: Settings) -> list[str]:
    """The zones named in ``CANARY_DNS_ZONES``, normalised."""
    return [parse_owned_domain(z) for z in split_list(settings.dns_zones)]


def mx_host(zone: str, settings: Settings) -> str:
    """The mail host the zone's MX names: ``CANARY_DNS_MX_HOST``, else ``mx.<zone>``."""
    return _host(settings.dns_mx_host) or f"mx.{zone}"


def name_servers(zone: str, settings: Settings) -> list[str]:
    """The name servers the zone is delegated to: ``CANARY_DNS_NS``, else ``ns1.<zone>``."""
    return [_host(n) for n in split_list(settings.dns_ns)] or [f"ns1.{zone}"]


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
    labels = _host(name).split(".")
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


# -- domain health ------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One health check of a domain; ``ok`` is None when it could not be made."""

    name: str  # soa | ns | mx | spf | dmarc | expiry
    ok: bool | None
    detail: str
    detail_ja: str

    def as_json(self) -> dict[str, object]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "ja": self.detail_ja}


@dataclass(frozen=True)
class DomainHealth:
    domain: str
    checks: list[Check] = field(default_factory=list)
    expires_at: datetime | None = None

    @property
    def blind(self) -> bool:
        """Whether any check failed: the canaries on this domain cannot see."""
        return any(c.ok is False for c in self.checks)

    def finding(self, lang: str = "en") -> str | None:
        """The one-sentence finding for a blind domain, in English or Japanese."""
        failed = [c for c in self.checks if c.ok is False]
        if not failed:
            return None
        if lang == "ja":
            why = "、".join(c.detail_ja for c in failed)
            return f"{self.domain} のカナリアは何も検知できない状態です（blind）: {why}。"
        return f"Canaries on {self.domain} are blind: " + "; ".join(c.detail for c in failed) + "."

    def as_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "blind": self.blind,
            "checks": [c.as_json() for c in self.checks],
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "finding": self.finding("en"),
            "finding_ja": self.finding("ja"),
        }


_WHY = {
    dns.resolver.NXDOMAIN: ("the name does not exist (NXDOMAIN)", "名前が存在しません (NXDOMAIN)"),
    dns.resolver.NoAnswer: ("no such record", "レコードがありません"),
    dns.resolver.NoNameservers: (
        "no name server answers for it (refused or failed)",
        "応答するネームサーバーがありません（拒否または失敗）",
    ),
    dns.exception.Timeout: ("the lookup timed out", "問い合わせがタイムアウトしました"),
}


def _lookup(
    resolver: dns.resolver.Resolver, name: str, rdtype: str
) -> tuple[list[Any], tuple[str, str] | None]:
    """(records, None) or ([], (why, why in Japanese))."""
    try:
        return list(resolver.resolve(name, rdtype, search=False)), None
    except tuple(_WHY) as exc:
        return [], next(w for cls, w in _WHY.items() if isinstance(exc, cls))
    except dns.exception.DNSException as exc:
        return [], (f"the lookup failed ({exc})", f"問い合わせに失敗しました（{exc}）")


def _txt(records: Sequence[Any], prefix: str) -> list[str]:
    texts = [b"".join(r.strings).decode("utf-8", "replace") for r in records]
    return [t for t in texts if t.lower().startswith(prefix.lower())]


def check_domain(
    domain: str,
    settings: Settings,
    resolver: dns.resolver.Resolver | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> DomainHealth:
    """Check one canary domain as the world's resolvers see it (``resolver``: default the
    system's; ``fetch``: GET for RDAP, default urllib)."""
    res = resolver or dns.resolver.Resolver()
    name = parse_owned_domain(domain)
    v4, v6 = our_addresses(settings)
    checks = [
        _check_soa(res, name),
        _check_ns(res, name, name_servers(name, settings)),
        _check_mx(res, name, mx_host(name, settings), v4 + v6),
        _check_txt(res, "spf", name, "v=spf1"),
        _check_txt(res, "dmarc", f"_dmarc.{name}", "v=DMARC1"),
    ]
    expiry, expires_at = _check_expiry(name, settings, fetch)
    return DomainHealth(name, [*checks, expiry], expires_at)


def _check_soa(res: dns.resolver.Resolver, name: str) -> Check:
    soa, why = _lookup(res, name, "SOA")
    if why:
        return Check("soa", False, f"no SOA record: {why[0]}", f"SOA がありません: {why[1]}")
    return Check("soa", True, f"SOA serial {soa[0].serial}", f"SOA あり（{soa[0].serial}）")


def _check_ns(res: dns.resolver.Resolver, name: str, want: list[str]) -> Check:
    ns, why = _lookup(res, name, "NS")
    if why:
        return Check("ns", False, f"no NS delegation: {why[0]}", f"NS の委任がありません: {why[1]}")
    got = ", ".join(sorted(_host(r.target.to_text()) for r in ns))
    if not {_host(r.target.to_text()) for r in ns} <= set(want):
        return Check(
            "ns",
            False,
            f"delegated to {got}, not only to our name servers {', '.join(want)}",
            f"委任先 {got} に当方のネームサーバー（{', '.join(want)}）以外が含まれます",
        )
    return Check("ns", True, f"delegated to {got}", f"委任先 {got}")


def _check_mx(res: dns.resolver.Resolver, name: str, want: str, ours: list[str]) -> Check:
    mx, why = _lookup(res, name, "MX")
    if why:
        return Check("mx", False, f"no MX record: {why[0]}", f"MX レコードがありません: {why[1]}")
    got = sorted({_host(r.exchange.to_text()) for r in mx})
    if got != [want]:
        return Check(
            "mx",
            False,
            f"MX points to {', '.join(got)}, not to our mail host {want}",
            f"MX が当方のメールホスト {want} ではなく {', '.join(got)} を指しています",
        )
    found = [r.to_text() for t in ("A", "AAAA") for r in _lookup(res, want, t)[0]]
    if ours and not set(found) & set(ours):
        return Check(
            "mx",
            False,
            f"mail host {want} resolves to {', '.join(found) or 'nothing'}, not to our addresses",
            f"メールホスト {want} が当方のアドレスを指していません",
        )
    return Check("mx", True, f"MX {want}", f"MX は {want}")


def _check_txt(res: dns.resolver.Resolver, check: str, name: str, prefix: str) -> Check:
    """SPF or DMARC: exactly one record (receivers treat two as an error)."""
    found = _txt(_lookup(res, name, "TXT")[0], prefix)
    label = check.upper()
    if len(found) == 1:
        return Check(check, True, found[0], f"{label} あり")
    if found:
        return Check(check, False, f"{len(found)} {label} records", f"{label} レコードが複数")
    return Check(check, False, f"no {label} record", f"{label} レコードがありません")


def _check_expiry(
    name: str, settings: Settings, fetch: Callable[[str], bytes] | None
) -> tuple[Check, datetime | None]:
    """Expiry over RDAP where configured; DNS itself carries no expiry date."""
    if not settings.dns_rdap_url:
        off = "not checked (DNS holds no expiry date; set CANARY_DNS_RDAP_URL to ask RDAP)"
        return Check("expiry", None, off, "未確認（CANARY_DNS_RDAP_URL で RDAP 照会）"), None
    url = settings.dns_rdap_url.rstrip("/") + "/" + name
    try:
        events = json.loads((fetch or _http_get)(url)).get("events", [])
        stamp = next(e["eventDate"] for e in events if e.get("eventAction") == "expiration")
        expires = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except StopIteration:
        return Check("expiry", None, "RDAP gives no expiry date", "RDAP に有効期限なし"), None
    except Exception as exc:  # unreachable, not JSON, odd date: the check is not made
        return Check("expiry", None, f"RDAP lookup failed ({exc})", "RDAP 照会に失敗"), None
    left, day = expires - _now(), expires.date().isoformat()
    if left < EXPIRY_WARNING:
        word = "expired on" if left.total_seconds() < 0 else "expires on"
        return Check("expiry", False, f"{word} {day}", f"有効期限 {day}（要更新）"), expires
    return Check("expiry", True, f"expires on {day}", f"有効期限 {day}"), expires


def _http_get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/rdap+json"})
    with urllib.request.urlopen(request, timeout=15) as response:
        body: bytes = response.read(1_000_000)
        return body


def check_all(
    registry: Registry, settings: Settings, resolver: dns.resolver.Resolver | None = None
) -> list[DomainHealth]:
    """Health of every zone the DNS listener serves (configured zones and pool domains)."""
    return [check_domain(z, settings, resolver) for z in served_zones(registry, settings)]
