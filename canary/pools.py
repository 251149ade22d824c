"""Owned pools: parsing the phone numbers and mail domains we own, and choosing an export's
number set so that no two exports carry the same set."""

from __future__ import annotations

import hashlib
import math
import random
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

from canary.errors import InvalidDomainError, InvalidPhoneError, PoolTooSmallError
from canary.normalize import _DASH_RE

PHONE_STATES = ("quarantine", "active", "burnt", "retired")
PHONE_KINDS = ("mobile", "ip", "landline")
_KIND_BY_TYPE = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.VOIP: "ip",
    PhoneNumberType.FIXED_LINE: "landline",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "landline",
}
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class OwnedPhone:
    """A phone number we own: E.164 and its kind (mobile, ip for 050, landline)."""

    e164: str
    kind: str


def parse_owned_phone(value: str) -> OwnedPhone:
    """Parse a Japanese number in any common format; raise with the reason if unusable."""
    text = _DASH_RE.sub("-", unicodedata.normalize("NFKC", value)).strip()
    try:
        number = phonenumbers.parse(text, "JP")
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneError(f"{value!r} is not a phone number ({exc}).") from exc
    if number.country_code != 81:
        raise InvalidPhoneError(f"{value!r} is not a Japanese number (+81).")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneError(
            f"{value!r} is not a valid Japanese number (wrong length or unallocated prefix)."
        )
    kind = _KIND_BY_TYPE.get(phonenumbers.number_type(number))
    if kind is None:
        raise InvalidPhoneError(
            f"{value!r} is a toll-free, premium, pager or M2M number; a person's list holds "
            "mobile, 050 or landline numbers, so it would give the canary away."
        )
    return OwnedPhone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), kind)


def parse_owned_domain(value: str) -> str:
    """Validate and normalise (IDNA, lower case) a mail domain we control."""
    text = unicodedata.normalize("NFKC", value).strip().rstrip(".").lower()
    if text.startswith("@"):
        text = text[1:]
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidDomainError(f"{value!r} is not a valid domain name ({exc}).") from exc
    labels = ascii_name.split(".")
    if len(labels) < 2 or len(ascii_name) > 253 or not all(_LABEL_RE.match(x) for x in labels):
        raise InvalidDomainError(
            f"{value!r} is not a valid mail domain; give a name such as mail.example.jp."
        )
    if labels[-1].isdigit():
        raise InvalidDomainError(f"{value!r} looks like an IP address, not a domain.")
    return ascii_name


def phone_set_hash(e164s: Sequence[str]) -> str:
    """Identity of an export's number set, independent of order."""
    return hashlib.sha256("\n".join(sorted(set(e164s))).encode()).hexdigest()


@dataclass(frozen=True)
class PoolNumber:
    id: int
    e164: str
    kind: str
    use_count: int


def choose_phone_set(
    numbers: Sequence[PoolNumber],
    canaries: int,
    max_numbers: int,
    used_sets: set[str],
    rng: random.Random,
    attempts: int = 200,
) -> list[PoolNumber]:
    """Pick the export's distinct numbers: least used first, and a set no export has.

    Raises PoolTooSmallError saying how many more numbers are needed when every set of the
    wanted size is taken.
    """
    if not numbers:
        raise PoolTooSmallError(
            "The pool has no active phone numbers; add owned numbers with "
            "`canary pool add-phone --active NUMBER...` (or activate quarantined ones)."
        )
    size = max(1, min(canaries, max_numbers, len(numbers)))
    for attempt in range(attempts):
        # Weight toward rarely used numbers so usage stays even and sets stay distinct.
        weighted = sorted(numbers, key=lambda n: (n.use_count + rng.random() * (1 + attempt), n.id))
        chosen = weighted[:size]
        if phone_set_hash([n.e164 for n in chosen]) not in used_sets:
            return chosen
        rng.shuffle(chosen)
    total = len(numbers)
    need = total
    while math.comb(need, size) <= len(used_sets) + 1:
        need += 1
    raise PoolTooSmallError(
        f"Every set of {size} of the pool's {total} active phone numbers is already used by "
        f"another export, so this export's numbers would not identify it; add at least "
        f"{max(1, need - total)} more number(s) with `canary pool add-phone`."
    )
