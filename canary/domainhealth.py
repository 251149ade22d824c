"""The health of every canary domain: does the world still reach us?

Asked of DNS through a dnspython resolver (``CANARY_DNS_RESOLVER`` names the name server
to ask, e.g. a public resolver or our own listener; else the system's): SOA present, NS
delegated to our name servers, MX pointing to our mail host (and that host to our
addresses), exactly one SPF and one DMARC record; expiry only over RDAP (HTTPS, no WHOIS),
off unless ``CANARY_DNS_RDAP_URL`` is set. A domain failing any of these is *blind*: mail
or lookups of its canaries reach someone else or no one. ``alert_blind`` tells a human at
once through the alert outputs of ``canary.alerts``.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.resolver

from canary.domains import host_name, mx_host, name_servers, our_addresses, served_zones
from canary.errors import CanaryError
from canary.pools import parse_owned_domain

if TYPE_CHECKING:
    from canary.registry import Registry
    from canary.settings import Settings

EXPIRY_WARNING = timedelta(days=30)
LIFETIME = 5.0  # seconds one lookup may take, retries included


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


def resolver_for(server: str | None, lifetime: float = LIFETIME) -> dns.resolver.Resolver:
    """A resolver asking only ``server`` (HOST, HOST:PORT or [V6]:PORT), else the system's."""
    if not server or not server.strip():
        resolver = dns.resolver.Resolver()
        resolver.lifetime = lifetime
        return resolver
    host, port = server.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = rest.lstrip(":") or port
    elif host.count(":") == 1:
        host, port = host.split(":")
    if not host or not port.isdigit():
        raise CanaryError(
            f"{server!r} is not a name server HOST[:PORT]; give e.g. 127.0.0.1:5053 "
            "(CANARY_DNS_RESOLVER or --server)."
        )
    resolver = dns.resolver.Resolver(configure=False)
    try:
        resolver.nameservers = [host]
    except ValueError:
        raise CanaryError(
            f"{host!r} is not an IP address; name the resolver by its address, "
            "e.g. 127.0.0.1:5053 (CANARY_DNS_RESOLVER or --server)."
        ) from None
    resolver.port = int(port)
    resolver.lifetime = lifetime
    return resolver


_WHY = {
    dns.resolver.NXDOMAIN: ("the name does not exist (NXDOMAIN)", "名前が存在しません (NXDOMAIN)"),
    dns.resolver.NoAnswer: ("no such record", "レコードがありません"),
    dns.resolver.NoNameservers: (
        "no name server answers for it (refused or failed)",
        "応答するネームサーバーがありません（拒否または失敗）",
    ),
    dns.exception.Timeout: ("the lookup timed out", "問い合わせがタイムアウトしました"),
}
# Failures that say nothing about the records, only that nobody answers for the domain.
_UNREACHABLE = (dns.resolver.NoNameservers, dns.exception.Timeout)


def _lookup(
    resolver: dns.resolver.Resolver, name: str, rdtype: str
) -> tuple[list[Any], tuple[str, str] | None]:
    """(records, None) or ([], (why, why in Japanese))."""
    records, why, _exc = _lookup_exc(resolver, name, rdtype)
    return records, why


def _lookup_exc(
    resolver: dns.resolver.Resolver, name: str, rdtype: str
) -> tuple[list[Any], tuple[str, str] | None, BaseException | None]:
    try:
        return list(resolver.resolve(name, rdtype, search=False)), None, None
    except tuple(_WHY) as exc:
        return [], next(w for cls, w in _WHY.items() if isinstance(exc, cls)), exc
    except dns.exception.DNSException as exc:
        return [], (f"the lookup failed ({exc})", f"問い合わせに失敗しました（{exc}）"), exc


def check_domain(
    domain: str,
    settings: Settings,
    resolver: dns.resolver.Resolver | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> DomainHealth:
    """Check one canary domain as the world's resolvers see it (``resolver``: default
    ``CANARY_DNS_RESOLVER``, else the system's; ``fetch``: GET for RDAP, default urllib)."""
    res = resolver or resolver_for(settings.dns_resolver)
    name = parse_owned_domain(domain)
    v4, v6 = our_addresses(settings)
    soa, unreachable = _check_soa(res, name)
    if unreachable:
        # Nobody answers for the domain: every other lookup would wait as long to say so.
        skipped = "not checked: nobody answers for the domain"
        rest = [Check(c, None, skipped, "未確認（応答なし）") for c in ("ns", "mx", "spf", "dmarc")]
        checks = [soa, *rest]
    else:
        checks = [
            soa,
            _check_ns(res, name, name_servers(name, settings)),
            _check_mx(res, name, mx_host(name, settings), v4 + v6),
            _check_txt(res, "spf", name, "v=spf1"),
            _check_txt(res, "dmarc", f"_dmarc.{name}", "v=DMARC1"),
        ]
    expiry, expires_at = _check_expiry(name, settings, fetch)
    return DomainHealth(name, [*checks, expiry], expires_at)


def _check_soa(res: dns.resolver.Resolver, name: str) -> tuple[Check, bool]:
    """The SOA check, and whether nobody answers for the domain at all."""
    soa, why, exc = _lookup_exc(res, name, "SOA")
    if why:
        check = Check("soa", False, f"no SOA record: {why[0]}", f"SOA がありません: {why[1]}")
        return check, isinstance(exc, _UNREACHABLE)
    return Check("soa", True, f"SOA serial {soa[0].serial}", f"SOA あり（{soa[0].serial}）"), False


def _check_ns(res: dns.resolver.Resolver, name: str, want: list[str]) -> Check:
    ns, why = _lookup(res, name, "NS")
    if why:
        return Check("ns", False, f"no NS delegation: {why[0]}", f"NS の委任がありません: {why[1]}")
    got = ", ".join(sorted(host_name(r.target.to_text()) for r in ns))
    if not {host_name(r.target.to_text()) for r in ns} <= set(want):
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
    got = sorted({host_name(r.exchange.to_text()) for r in mx})
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
    records, why = _lookup(res, name, "TXT")
    texts = [b"".join(r.strings).decode("utf-8", "replace") for r in records]
    found = [t for t in texts if t.lower().startswith(prefix.lower())]
    label = check.upper()
    if len(found) == 1:
        return Check(check, True, found[0], f"{label} あり")
    if found:
        return Check(check, False, f"{len(found)} {label} records", f"{label} レコードが複数")
    if why and why[0] != _WHY[dns.resolver.NoAnswer][0]:
        return Check(
            check, False, f"no {label} record: {why[0]}", f"{label} レコードがありません: {why[1]}"
        )
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
    left, day = expires - datetime.now(UTC), expires.date().isoformat()
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
    res = resolver or resolver_for(settings.dns_resolver)
    return [check_domain(z, settings, res) for z in served_zones(registry, settings)]


def alert_blind(
    blind: Sequence[DomainHealth], settings: Settings, outputs: Sequence[Any] | None = None
) -> tuple[list[str], list[str]]:
    """Tell a human at once, through every alert output, that canaries are blind; returns
    the outputs that took the notice and the errors of those that did not (none configured:
    nothing is sent, and the failed run still shows in `jobs list`, doctor and the digest)."""
    if not blind:
        return [], []
    from canary.alerts import notify, outputs_from_settings

    targets = outputs_from_settings(settings) if outputs is None else list(outputs)
    if not targets:
        return [], []
    names = ", ".join(h.domain for h in blind)
    subject = f"Canary: canaries on {names} are blind / カナリアが検知できません"
    text = "\n".join(
        [str(h.finding("en")) for h in blind]
        + [""]
        + [str(h.finding("ja")) for h in blind]
        + ["", "Check: canary dns check / 確認: canary dns check"]
    )
    data: dict[str, object] = {
        "type": "canary.domains_blind",
        "domains": [h.as_json() for h in blind],
    }
    results = notify(settings, subject, text, data, targets)
    took = [name for name, why in results.items() if why is None]
    return took, [f"{name}: {why}" for name, why in results.items() if why is not None]
