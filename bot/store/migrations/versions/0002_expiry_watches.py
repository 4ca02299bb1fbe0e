"""Expiry watches: the assignment ends the expiry loop follows until expired, extended or
released (so a restart or another replica still sends the "expired" notice).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(255)
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``expiry_watches``."""
    op.create_table(
        "expiry_watches",
        sa.Column("assignment_id", ID, nullable=False),
        sa.Column("end_at", TIMESTAMP, nullable=False),
        sa.Column("target_principal_id", ID, nullable=False),
        sa.Column("target_display_name", ID, nullable=True),
        sa.Column("target_upn", ID, nullable=True),
        sa.Column("target_mail", ID, nullable=True),
        sa.Column("policy_id", ID, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("closed_at", TIMESTAMP, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("assignment_id", "end_at", name=op.f("pk_expiry_watches")),
    )
    op.create_index("ix_expiry_watches_open", "expiry_watches", ["closed_at", "end_at"])


def downgrade() -> None:
    """Drop ``expiry_watches``."""
    op.drop_index("ix_expiry_watches_open", table_name="expiry_watches")
    op.drop_table("expiry_watches")
