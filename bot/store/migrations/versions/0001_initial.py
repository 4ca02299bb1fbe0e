"""The initial schema: identities, token caches, sign-in states, tracked requests, card refs,
conversation refs, notices and audit events.

Revision ID: 0001
Revises:
Create Date: 2024-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(255)
PLATFORM = sa.String(16)
TIMESTAMP = sa.DateTime(timezone=True)
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create all tables."""
    op.create_table(
        "identities",
        sa.Column("platform", PLATFORM, nullable=False),
        sa.Column("workspace", ID, nullable=False),
        sa.Column("chat_user_id", ID, nullable=False),
        sa.Column("principal_id", ID, nullable=False),
        sa.Column("upn", ID, nullable=False),
        sa.Column("display_name", ID, nullable=False),
        sa.Column("linked_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint(
            "platform", "workspace", "chat_user_id", name=op.f("pk_identities")
        ),
    )
    op.create_index(op.f("ix_identities_principal_id"), "identities", ["principal_id"])

    op.create_table(
        "token_caches",
        sa.Column("principal_id", ID, nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("principal_id", name=op.f("pk_token_caches")),
    )

    op.create_table(
        "signin_states",
        sa.Column("state", ID, nullable=False),
        sa.Column("platform", PLATFORM, nullable=False),
        sa.Column("workspace", ID, nullable=False),
        sa.Column("chat_user_id", ID, nullable=False),
        sa.Column("expected_principal_id", ID, nullable=True),
        sa.Column("pkce_verifier", ID, nullable=False),
        sa.Column("pending_command", sa.Text(), nullable=True),
        sa.Column("reply_to", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("state", name=op.f("pk_signin_states")),
    )
    op.create_index(op.f("ix_signin_states_expires_at"), "signin_states", ["expires_at"])

    op.create_table(
        "tracked_requests",
        sa.Column("request_id", ID, nullable=False),
        sa.Column("graph_request_id", ID, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("approval_mode", sa.String(16), nullable=False),
        sa.Column("requester_principal_id", ID, nullable=False),
        sa.Column("requester_display_name", ID, nullable=False),
        sa.Column("requester_platform", PLATFORM, nullable=True),
        sa.Column("requester_workspace", ID, nullable=True),
        sa.Column("requester_chat_user_id", ID, nullable=True),
        sa.Column("duration_iso", sa.String(64), nullable=True),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.Column("policy_id", ID, nullable=False),
        sa.Column("assignment_id", ID, nullable=True),
        sa.Column("last_known_state", sa.String(64), nullable=False),
        sa.Column("stage_index", sa.Integer(), nullable=False),
        sa.Column("bot_pending", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("decided_by_principal_id", ID, nullable=True),
        sa.Column("decided_by_display_name", ID, nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("decided_at", TIMESTAMP, nullable=True),
        sa.Column("closed_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_tracked_requests")),
        sa.UniqueConstraint("graph_request_id", name=op.f("uq_tracked_requests_graph_request_id")),
    )
    op.create_index(
        op.f("ix_tracked_requests_requester_principal_id"),
        "tracked_requests",
        ["requester_principal_id"],
    )
    op.create_index(op.f("ix_tracked_requests_closed_at"), "tracked_requests", ["closed_at"])

    op.create_table(
        "card_refs",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("request_id", ID, nullable=False),
        sa.Column("platform", PLATFORM, nullable=False),
        sa.Column("workspace", ID, nullable=True),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("recipient_principal_id", ID, nullable=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_refs")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["tracked_requests.request_id"],
            name=op.f("fk_card_refs_request_id_tracked_requests"),
        ),
        sa.UniqueConstraint(
            "request_id",
            "platform",
            "conversation_id",
            "message_id",
            name=op.f("uq_card_refs_request_id_platform_conversation_id_message_id"),
        ),
    )

    op.create_table(
        "conversation_refs",
        sa.Column("platform", PLATFORM, nullable=False),
        sa.Column("workspace", ID, nullable=False),
        sa.Column("key", ID, nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("platform", "workspace", "key", name=op.f("pk_conversation_refs")),
    )

    op.create_table(
        "notices",
        sa.Column("subject_id", ID, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("subject_id", "kind", name=op.f("pk_notices")),
    )
    op.create_index("ix_notices_unsent", "notices", ["sent_at", "created_at"])

    op.create_table(
        "audit_events",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor_principal_id", ID, nullable=True),
        sa.Column("actor_display", ID, nullable=True),
        sa.Column("platform", PLATFORM, nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("request_id", ID, nullable=True),
        sa.Column("assignment_id", ID, nullable=True),
        sa.Column("target_principal_id", ID, nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("result", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"])


def downgrade() -> None:
    """Drop all tables."""
    op.drop_table("audit_events")
    op.drop_table("notices")
    op.drop_table("conversation_refs")
    op.drop_table("card_refs")
    op.drop_table("tracked_requests")
    op.drop_table("signin_states")
    op.drop_table("token_caches")
    op.drop_table("identities")
