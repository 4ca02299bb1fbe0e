"""The store's tables as SQLAlchemy 2 typed declarative models.

These classes are the store's private schema; callers see the frozen records in
``bot.store.records``.  Every change here needs a migration in ``migrations/versions``
(``tests/unit/test_store.py`` checks that the migrated schema matches these models).

Timestamps are ``UtcDateTime``: aware datetimes in, aware UTC datetimes out, on SQLite
(which has no time zones) as well as on PostgreSQL (``timestamp with time zone``).
JSON values are kept as text: the store never looks inside them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: Deterministic constraint names, so that migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(255)
"""Column type of every external id (Entra object ids, chat ids, Graph ids, Slack ts)."""


class UtcDateTime(TypeDecorator[datetime]):
    """A ``DateTime(timezone=True)`` that only accepts aware values and returns aware UTC.

    SQLite keeps no offset, so values are converted to UTC and stored without one, and the UTC
    zone is attached again when read.  A naive datetime is a bug in the caller: it is refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC (naive UTC on SQLite); refuse naive ones."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; use UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored instant as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdentityRow(Base):
    """A chat user linked to an Entra principal."""

    __tablename__ = "identities"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace: Mapped[str] = mapped_column(ID, primary_key=True)
    chat_user_id: Mapped[str] = mapped_column(ID, primary_key=True)
    principal_id: Mapped[str] = mapped_column(ID, index=True)
    upn: Mapped[str] = mapped_column(ID)
    display_name: Mapped[str] = mapped_column(ID)
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TokenCacheRow(Base):
    """One principal's encrypted token cache, opaque to the store."""

    __tablename__ = "token_caches"

    principal_id: Mapped[str] = mapped_column(ID, primary_key=True)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SignInStateRow(Base):
    """A one-time sign-in link: its state, PKCE verifier and the command to resume."""

    __tablename__ = "signin_states"

    state: Mapped[str] = mapped_column(ID, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str] = mapped_column(ID)
    chat_user_id: Mapped[str] = mapped_column(ID)
    expected_principal_id: Mapped[str | None] = mapped_column(ID)
    pkce_verifier: Mapped[str] = mapped_column(ID)
    pending_command: Mapped[str | None] = mapped_column(Text)
    reply_to: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class TrackedRequestRow(Base):
    """An assignment request the bot follows until it is closed."""

    __tablename__ = "tracked_requests"

    request_id: Mapped[str] = mapped_column(ID, primary_key=True)
    graph_request_id: Mapped[str | None] = mapped_column(ID, unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    approval_mode: Mapped[str] = mapped_column(String(16))
    requester_principal_id: Mapped[str] = mapped_column(ID, index=True)
    requester_display_name: Mapped[str] = mapped_column(ID)
    requester_platform: Mapped[str | None] = mapped_column(String(16))
    requester_workspace: Mapped[str | None] = mapped_column(ID)
    requester_chat_user_id: Mapped[str | None] = mapped_column(ID)
    duration_iso: Mapped[str | None] = mapped_column(String(64))
    justification: Mapped[str | None] = mapped_column(Text)
    policy_id: Mapped[str] = mapped_column(ID)
    assignment_id: Mapped[str | None] = mapped_column(ID)
    last_known_state: Mapped[str] = mapped_column(String(64))
    stage_index: Mapped[int] = mapped_column(Integer)
    bot_pending: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decision: Mapped[str | None] = mapped_column(String(16))
    decided_by_principal_id: Mapped[str | None] = mapped_column(ID)
    decided_by_display_name: Mapped[str | None] = mapped_column(ID)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)


class CardRefRow(Base):
    """Where one copy of a request's card was posted."""

    __tablename__ = "card_refs"
    __table_args__ = (UniqueConstraint("request_id", "platform", "conversation_id", "message_id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(ForeignKey("tracked_requests.request_id"))
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str | None] = mapped_column(ID)
    conversation_id: Mapped[str] = mapped_column(ID)
    message_id: Mapped[str] = mapped_column(ID)
    recipient_principal_id: Mapped[str | None] = mapped_column(ID)
    purpose: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConversationRefRow(Base):
    """An opaque reference for proactive messages (Teams ConversationReference, Slack channel)."""

    __tablename__ = "conversation_refs"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    workspace: Mapped[str] = mapped_column(ID, primary_key=True)
    key: Mapped[str] = mapped_column(ID, primary_key=True)
    reference: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class NoticeRow(Base):
    """A notice claimed exactly once per (subject, kind), and whether it was sent."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_unsent", "sent_at", "created_at"),)

    subject_id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    payload: Mapped[str | None] = mapped_column(Text)


class AuditEventRow(Base):
    """One append-only audit event."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor_principal_id: Mapped[str | None] = mapped_column(ID)
    actor_display: Mapped[str | None] = mapped_column(ID)
    platform: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(ID)
    assignment_id: Mapped[str | None] = mapped_column(ID)
    target_principal_id: Mapped[str | None] = mapped_column(ID)
    detail: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str] = mapped_column(String(16))


class ExpiryWatchRow(Base):
    """An assignment end the expiry loop watches: from its first expiry notice until it is
    resolved as expired, extended (the end moved) or released."""

    __tablename__ = "expiry_watches"
    __table_args__ = (Index("ix_expiry_watches_open", "closed_at", "end_at"),)

    assignment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    end_at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    target_principal_id: Mapped[str] = mapped_column(ID)
    target_display_name: Mapped[str | None] = mapped_column(ID)
    target_upn: Mapped[str | None] = mapped_column(ID)
    target_mail: Mapped[str | None] = mapped_column(ID)
    policy_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))
