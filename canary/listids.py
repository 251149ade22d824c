"""The customer IDs canaries of an account's earlier exports of a list already took.

A canary takes a free ID of its list (a number freed by someone who left, see
canary.placement). Two exports of one list whose canaries took the same free ID would
show, side by side, two people under one customer number: a diff of the two files names
both as made up. So a new canary takes no ID that a canary of the same account's other
exports of the list holds (a stable canary carried again keeps its own): the insider who
downloads a list twice is the one who can diff. Across accounts IDs may be taken again:
in a list of dense numbers (3 % freed) excluding every export's took the free IDs that
split like anyone's steps within a few exports, and canaries then sat by wider gaps
(a broker's AUC on ID gaps went from 0.53 to 0.58 over five exports).
"""

from __future__ import annotations

from sqlalchemy import select

from canary.registry import Registry
from canary.registry.models import Account, Canary, Client, Export, PeopleList


def ids_taken(
    registry: Registry, client: str, list_name: str, account: str, column: str
) -> set[str]:
    """The values canaries of the account's exports of the list wrote in ID ``column``
    (read from the registry's canaries: no host row is involved)."""
    with registry._sessions() as s:
        rows = s.execute(
            select(Canary.fields)
            .join(Export, Export.id == Canary.export_id)
            .join(PeopleList, PeopleList.id == Export.list_id)
            .join(Client, Client.id == PeopleList.client_id)
            .join(Account, Account.id == Export.account_id)
            .where(Client.name == client, PeopleList.name == list_name, Account.name == account)
        ).scalars()
        return {str(v).strip() for fields in rows if (v := (fields or {}).get(column))}
