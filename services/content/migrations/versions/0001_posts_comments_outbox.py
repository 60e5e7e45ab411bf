"""Posts, comments and the content outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.platform import outbox

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "posts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("author_id", sa.Uuid, nullable=False),
        sa.Column("request_id", sa.Uuid, nullable=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("etag", sa.Text, nullable=False),
        sa.Column("comment_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("publish_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delete_time", sa.DateTime(timezone=True), nullable=True),
        # A retried create finds the first one instead of inserting a duplicate.
        sa.UniqueConstraint("author_id", "request_id", name="posts_author_request_key"),
    )
    op.create_index("posts_newest_idx", "posts", [sa.text("create_time DESC"), sa.text("id DESC")])
    op.create_index(
        "posts_author_newest_idx",
        "posts",
        ["author_id", sa.text("create_time DESC"), sa.text("id DESC")],
    )
    op.create_table(
        "comments",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("post_id", sa.Uuid, sa.ForeignKey("posts.id"), nullable=False),
        sa.Column("author_id", sa.Uuid, nullable=False),
        sa.Column("request_id", sa.Uuid, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("author_id", "request_id", name="comments_author_request_key"),
    )
    op.create_index("comments_post_oldest_idx", "comments", ["post_id", "create_time", "id"])
    outbox.create_table_op()


def downgrade() -> None:
    outbox.drop_table_op()
    op.drop_table("comments")
    op.drop_table("posts")
