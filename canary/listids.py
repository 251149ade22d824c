"""The customer IDs canaries of earlier exports of a list already took.

A canary takes a free ID of its list (a number freed by someone who left, see
canary.placement). Two exports of one list whose canaries took the same free ID would
show, side by side, two people under one customer number: a diff of the two files names
both as made up. So a new canary takes no ID that any canary of the list's other
exports (of any account) holds; a stable canary carried again keeps its own.
"""

from __future__ import annotations

from sqlalchemy import select

from canary.registry import Registry
from canary.registry.models import Canary, Client, Export, PeopleList


def ids_taken(registry: Registry, client: str, list_name: str, column: str) -> set[str]:
    """The values canaries of the list's exports wrote in ID ``column`` (read from the
    registry's canaries: no host row is involved)."""
    with registry._sessions() as s:
        rows = s.execute(
            select(Canary.fields)
            .join(Export, Export.id == Canary.export_id)
            .join(PeopleList, PeopleList.id == Export.list_id)
            .join(Client, Client.id == PeopleList.client_id)
            .where(Client.name == client, PeopleList.name == list_name)
        ).scalars()
        return {str(v).strip() for fields in rows if (v := (fields or {}).get(column))}
