"""Create users and the outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from services.platform.outbox import create_table_op, drop_table_op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", pg.UUID(as_uuid=False), primary_key=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("request_id", pg.UUID(as_uuid=False), nullable=True, unique=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delete_time", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('user', 'admin')", name="users_role_check"),
    )
    # Unique among live users: a deleted account's email can sign up again.
    op.create_index(
        "users_email_live_key",
        "users",
        ["email"],
        unique=True,
        postgresql_where=sa.text("delete_time IS NULL"),
    )
    # ListUsers: oldest first, keyset pagination on (create_time, id).
    op.create_index("users_create_time_id_idx", "users", ["create_time", "id"])
    create_table_op()


def downgrade() -> None:
    drop_table_op()
    op.drop_table("users")
