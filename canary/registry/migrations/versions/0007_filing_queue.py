"""filing queue: suspicious events stored by the server, waiting to be filed into incidents

The webhook server answers a provider once an event is stored and classified; filing it into
its incident (narrowing, linking, rescoring, its alert) waits in this queue for the worker's
filer, which files whatever has gathered in one transaction. The queue row is written in the
event's own transaction and deleted in the filing's, so a crash between the two leaves the
event queued, never lost. Events are never deleted, so the id needs no foreign key (whose
check would cost an index probe per event on the hot path).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "filing_queue",
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )


def downgrade() -> None:
    op.drop_table("filing_queue")
