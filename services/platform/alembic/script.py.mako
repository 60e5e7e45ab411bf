"""${message}

Revision ID: ${up_revision}
Revises:${(" " + comma(down_revision)) if down_revision else ""}
Create Date: ${create_date}

Unqualified table names land in the service's own schema (the migration runner sets
search_path), so this file never spells the schema out.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision: str = "${up_revision}"
down_revision: str | Sequence[str] | None = ${repr(down_revision).replace("'", '"')}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels).replace("'", '"')}
depends_on: str | Sequence[str] | None = ${repr(depends_on).replace("'", '"')}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
