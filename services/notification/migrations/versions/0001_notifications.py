"""Notifications, per-user settings and the email delivery queue.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("user_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("read", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("post_id", sa.Uuid, nullable=True),
        sa.Column("comment_id", sa.Uuid, nullable=True),
        # Delivery is at least once: a redelivered event must not notify twice.
        sa.UniqueConstraint("event_id", "user_id", name="notifications_event_user_key"),
    )
    op.create_index(
        "notifications_user_newest_idx",
        "notifications",
        ["user_id", sa.text("create_time DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "notifications_user_unread_idx",
        "notifications",
        ["user_id"],
        postgresql_where=sa.text("NOT read"),
    )
    op.create_table(
        "notification_settings",
        sa.Column("user_id", sa.Uuid, primary_key=True),
        sa.Column("email", sa.Text, nullable=True),
        sa.Column("email_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "email_deliveries",
        sa.Column("notification_id", sa.Uuid, sa.ForeignKey("notifications.id"), primary_key=True),
        sa.Column("to_address", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index(
        "email_deliveries_due_idx",
        "email_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("email_deliveries")
    op.drop_table("notification_settings")
    op.drop_table("notifications")
