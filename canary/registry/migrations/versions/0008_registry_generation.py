"""registry generation: a counter that every change to what classifies an event moves

The webhook server's writers keep what they read about tokens (the canaries carrying a
number or an address, the exports given a pool number, those exports' campaigns and
expected callers) in memory, instead of reading it again for every batch of events. The
copy is good as long as this counter has not moved: triggers on canaries, exports,
export_phones and stable_carriers add one to it in the changing transaction, so it moves
exactly when that transaction commits. A writer reads the counter in the statement that
inserts its events; if it moved since the copy was made, the batch is classified again
from fresh reads (canary.registry.tokencache).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("canaries", "exports", "export_phones", "stable_carriers")
BUMP = "UPDATE registry_generation SET n = n + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        "registry_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint("id = 1", name="ck_registry_generation_one_row"),
    )
    op.execute("INSERT INTO registry_generation (id, n) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        # One bump per statement, not per row: sealing an export inserts its canaries in
        # one statement.
        op.execute(
            "CREATE FUNCTION canary_bump_generation() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_moves_generation "
                f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION canary_bump_generation()"
            )
        return
    for table in TABLES:  # SQLite has row triggers only
        for change in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_{change.lower()}_moves_generation "
                f"AFTER {change} ON {table} BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_moves_generation ON {table}")
        op.execute("DROP FUNCTION canary_bump_generation()")
    else:
        for table in TABLES:
            for change in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_{change}_moves_generation")
    op.drop_table("registry_generation")
