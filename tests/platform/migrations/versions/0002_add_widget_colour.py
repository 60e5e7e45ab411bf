"""Add widgets.colour.

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
    op.add_column("widgets", sa.Column("colour", sa.Text, nullable=True))
    op.create_index("widgets_colour_idx", "widgets", ["colour"])


def downgrade() -> None:
    op.drop_index("widgets_colour_idx", table_name="widgets")
    op.drop_column("widgets", "colour")
