"""stable canaries: carried by every export of one list by one account

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 20:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("canaries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("layer", sa.String(length=8), server_default="export", nullable=False)
        )
        batch_op.add_column(sa.Column("stable_group", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_canaries_stable_group", ["stable_group"], unique=False)
    op.create_table(
        "stable_carriers",
        sa.Column("export_id", sa.Integer(), nullable=False),
        sa.Column("canary_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["canary_id"], ["canaries.id"]),
        sa.ForeignKeyConstraint(["export_id"], ["exports.id"]),
        sa.PrimaryKeyConstraint("export_id", "canary_id"),
    )


def downgrade() -> None:
    op.drop_table("stable_carriers")
    with op.batch_alter_table("canaries", schema=None) as batch_op:
        batch_op.drop_index("ix_canaries_stable_group")
        batch_op.drop_column("stable_group")
        batch_op.drop_column("layer")
