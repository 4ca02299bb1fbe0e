"""The store: Elevate's own state on SQLAlchemy 2 async, migrated with Alembic.

SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) serves several replicas.
``SqlStore`` holds linked identities, encrypted token caches, one-time sign-in links, tracked
requests and where their cards live, conversation references for proactive messages,
exactly-once notices, the assignment ends the expiry loop watches, and the append-only
audit log.  It returns the frozen records below.
"""

from bot.store.records import (
    AuditEvent,
    CardPurpose,
    CardRef,
    ConversationRef,
    DecisionValue,
    ExpiryWatch,
    Identity,
    JsonObject,
    Notice,
    SignInState,
    TrackedRequest,
    WatchOutcome,
)
from bot.store.sql import SqlStore

__all__ = [
    "AuditEvent",
    "CardPurpose",
    "CardRef",
    "ConversationRef",
    "DecisionValue",
    "ExpiryWatch",
    "Identity",
    "JsonObject",
    "Notice",
    "SignInState",
    "SqlStore",
    "TrackedRequest",
    "WatchOutcome",
]
