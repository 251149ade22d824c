"""Roles on the command line: with ``CANARY_TOKEN`` set, a command acts as that token.

Whoever runs ``canary`` with the registry's database URL can read its tables, so without a
token the command line acts as an admin, as the owner of the database does. Roles on the
command line are for shells that should not: a list server or a steward's workstation that
seeds and sets campaigns gets ``CANARY_TOKEN=<steward token>``, and then

- every command that needs more than the steward's role (``events list``, ``incidents``,
  ``event add``, ``import cdr``, ``mail poll``, ``alerts send``, ``trace``, ``scan``,
  ``scans list``, ``token …``) is refused with one sentence and exit 10, as the API
  answers 403;
- ``exports show`` leaves out the canaries, as ``GET /api/exports/<id>`` does for a steward;
- what the command writes to the audit chain names the token, not the login.

A command checks by calling ``require_role(app, permission)`` first; ``seed`` needs a
steward's role.

An unknown or revoked ``CANARY_TOKEN`` refuses every command that checks it. This guards
against mistakes and names who acted; it is not a wall against someone who holds the
database password (give such shells the API instead: ``POST /api/exports``).

Permissions are those of ``canary.registry.access.PERMISSIONS``.
"""

from __future__ import annotations

from canary.cli.common import AppContext
from canary.errors import AccessError
from canary.registry.access import Principal

ROLE_FOR = {
    "seed": "steward",
    "exports:read": "steward",
    "exports:expect": "steward",
    "canaries:read": "investigator",
    "events:read": "investigator",
    "events:write": "investigator",
    "tokens:admin": "admin",
}


def token_principal(app: AppContext) -> Principal | None:
    """The principal of ``CANARY_TOKEN`` (audit entries then name it), or None without one."""
    secret = app.settings.token.strip()
    if not secret:
        return None
    registry = app.registry()
    try:
        who = registry.authenticate(secret)
    except AccessError:
        raise AccessError(
            "CANARY_TOKEN is unknown or revoked; unset it, or ask an admin for a new token "
            "(canary token create)."
        ) from None
    registry.actor = who.name
    return who


def require_role(app: AppContext, permission: str) -> Principal | None:
    """Refuse the command if ``CANARY_TOKEN`` is set and its role lacks ``permission``;
    returns the token's principal (None without a token: the command acts as an admin)."""
    who = token_principal(app)
    if who is not None and not who.may(permission):
        needed = ROLE_FOR.get(permission, "admin")
        article = "an" if needed[0] in "aeiou" else "a"
        raise AccessError(
            f"CANARY_TOKEN is the {who.role} token {who.name!r}, which may not do this "
            f"({permission}); use {article} {needed}'s token or unset CANARY_TOKEN."
        )
    return who
