"""Mark users whose sign-up has not finished yet.

A sign-up first reserves the email with a pending row, then sets the credential at the auth
service, then turns the row live together with its `user.created` outbox event. Pending rows
are invisible to every read; a stale one (the sign-up died half way) is cleaned up by the
next sign-up for the same email (see services.user.service).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("pending", sa.Boolean, nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    op.drop_column("users", "pending")
