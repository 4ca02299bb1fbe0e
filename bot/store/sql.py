"""``SqlStore``: the store on SQLAlchemy 2 async, SQLite (aiosqlite) or PostgreSQL (asyncpg).

``await SqlStore.open(url)`` creates the engine and brings the schema to the newest Alembic
revision before returning, so a fresh database and an old one both work.  Each method is one
short transaction.  The guarantees the background loops and several replicas rely on are
single statements the database decides, never a read followed by a write:

- ``consume_signin_state``: ``UPDATE … WHERE used_at IS NULL AND expires_at > now`` — a sign-in
  link works once;
- ``record_decision``: ``UPDATE … WHERE decision IS NULL`` — the first approver wins;
- ``claim_notice``: ``INSERT … ON CONFLICT DO NOTHING`` — each notice is claimed once.

Datetimes must be timezone-aware (a naive one raises ``ValueError``); they come back in UTC.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, delete, event, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from bot.errors import ConfigError, NotFound, SignInError
from bot.store.lock import AdvisoryLock
from bot.store.models import (
    AuditEventRow,
    Base,
    CardRefRow,
    ConversationRefRow,
    ExpiryWatchRow,
    IdentityRow,
    NoticeRow,
    SignInStateRow,
    TokenCacheRow,
    TrackedRequestRow,
)
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

log = structlog.get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
"""The Alembic script folder shipped inside the package."""

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")

PING_TIMEOUT = 2.0
"""Seconds ``SqlStore.ping`` waits for the database (``/readyz`` must answer quickly)."""

# Key of the PostgreSQL advisory lock held while migrating, so replicas starting together
# migrate one after the other (the second finds the schema at head).
_MIGRATION_LOCK_KEY = 0x656C6576617465  # "elevate"

_SIGNIN_UNKNOWN = "This sign-in link is not valid. Send your command again to get a new link."
_SIGNIN_USED = "This sign-in link was already used. Send your command again to get a new link."
_SIGNIN_EXPIRED = "This sign-in link has expired. Send your command again to get a new link."


def _upgrade_to_head(connection: Connection) -> None:
    """Run ``alembic upgrade head`` on ``connection`` with a configuration built in code."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _utc(value: datetime, name: str = "now") -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(UTC)


def _now(value: datetime | None) -> datetime:
    return datetime.now(UTC) if value is None else _utc(value)


def _dump(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


def _load(value: str | None) -> JsonObject | None:
    return None if value is None else cast(JsonObject, json.loads(value))


def _identity(row: IdentityRow) -> Identity:
    return Identity(
        platform=row.platform,
        workspace=row.workspace,
        chat_user_id=row.chat_user_id,
        principal_id=row.principal_id,
        upn=row.upn,
        display_name=row.display_name,
        linked_at=row.linked_at,
    )


def _signin_state(row: SignInStateRow) -> SignInState:
    return SignInState(
        state=row.state,
        platform=row.platform,
        workspace=row.workspace,
        chat_user_id=row.chat_user_id,
        expected_principal_id=row.expected_principal_id,
        pkce_verifier=row.pkce_verifier,
        pending_command=row.pending_command,
        reply_to=_load(row.reply_to),
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


def _tracked_request(row: TrackedRequestRow) -> TrackedRequest:
    return TrackedRequest(
        request_id=row.request_id,
        graph_request_id=row.graph_request_id,
        kind=row.kind,
        approval_mode=row.approval_mode,
        requester_principal_id=row.requester_principal_id,
        requester_display_name=row.requester_display_name,
        requester_platform=row.requester_platform,
        requester_workspace=row.requester_workspace,
        requester_chat_user_id=row.requester_chat_user_id,
        duration_iso=row.duration_iso,
        justification=row.justification,
        policy_id=row.policy_id,
        assignment_id=row.assignment_id,
        last_known_state=row.last_known_state,
        stage_index=row.stage_index,
        bot_pending=row.bot_pending,
        created_at=row.created_at,
        updated_at=row.updated_at,
        decision=cast(DecisionValue | None, row.decision),
        decided_by_principal_id=row.decided_by_principal_id,
        decided_by_display_name=row.decided_by_display_name,
        decision_reason=row.decision_reason,
        decided_at=row.decided_at,
        closed_at=row.closed_at,
    )


def _card_ref(row: CardRefRow) -> CardRef:
    return CardRef(
        id=row.id,
        request_id=row.request_id,
        platform=row.platform,
        workspace=row.workspace,
        conversation_id=row.conversation_id,
        message_id=row.message_id,
        recipient_principal_id=row.recipient_principal_id,
        purpose=cast(CardPurpose, row.purpose),
        created_at=row.created_at,
    )


def _conversation_ref(row: ConversationRefRow) -> ConversationRef:
    return ConversationRef(
        platform=row.platform,
        workspace=row.workspace,
        key=row.key,
        reference=_load(row.reference) or {},
        updated_at=row.updated_at,
    )


def _notice(row: NoticeRow) -> Notice:
    return Notice(
        subject_id=row.subject_id,
        kind=row.kind,
        created_at=row.created_at,
        sent_at=row.sent_at,
        payload=_load(row.payload),
    )


def _audit_event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=row.at,
        actor_principal_id=row.actor_principal_id,
        actor_display=row.actor_display,
        platform=row.platform,
        action=row.action,
        request_id=row.request_id,
        assignment_id=row.assignment_id,
        target_principal_id=row.target_principal_id,
        detail=_load(row.detail),
        result=row.result,
    )


def _watch(row: ExpiryWatchRow) -> ExpiryWatch:
    return ExpiryWatch(
        assignment_id=row.assignment_id,
        end_at=row.end_at,
        target_principal_id=row.target_principal_id,
        target_display_name=row.target_display_name,
        target_upn=row.target_upn,
        target_mail=row.target_mail,
        policy_id=row.policy_id,
        created_at=row.created_at,
        closed_at=row.closed_at,
        outcome=cast(WatchOutcome | None, row.outcome),
    )


def _usable(row: SignInStateRow | None, now: datetime) -> SignInStateRow:
    """``row`` if the sign-in state can be used at ``now``; else raise ``SignInError``."""
    if row is None:
        raise SignInError(_SIGNIN_UNKNOWN, detail="sign-in state unknown")
    if row.used_at is not None:
        raise SignInError(_SIGNIN_USED, detail="sign-in state replayed")
    if row.expires_at <= now:
        raise SignInError(_SIGNIN_EXPIRED, detail="sign-in state expired")
    return row


class SqlStore:
    """The store on SQLAlchemy: identities, tokens, sign-in links, requests, cards, notices, audit.

    Create it with ``await SqlStore.open(url)`` and release it with ``await store.close()``
    (or ``async with``).
    """

    def __init__(self, engine: AsyncEngine, *, serialize: bool = False) -> None:
        """Wrap an engine whose database is already migrated; prefer ``SqlStore.open``.

        ``serialize`` runs one transaction at a time, needed when all sessions share one
        connection (SQLite ``:memory:``).
        """
        self._engine = engine
        self._sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        self._lock = asyncio.Lock() if serialize else None

    @classmethod
    async def open(cls, url: str, *, connect_args: Mapping[str, Any] | None = None) -> Self:
        """Connect to ``url``, migrate the schema to the newest revision, return the store.

        ``url`` is ``sqlite+aiosqlite:///path``, ``sqlite+aiosqlite:///:memory:`` or
        ``postgresql+asyncpg://…``; ``connect_args`` go to the driver's ``connect``.
        """
        try:
            sa_url = make_url(url)
        except ArgumentError as exc:
            raise ConfigError("The database URL (ELEVATE_DATABASE_URL) is not a URL.") from exc
        if sa_url.drivername not in SUPPORTED_DRIVERS:
            raise ConfigError(
                "ELEVATE_DATABASE_URL must start with sqlite+aiosqlite:// or "
                f"postgresql+asyncpg://, not {sa_url.drivername}://."
            )
        backend = sa_url.get_backend_name()
        options: dict[str, Any] = {"connect_args": dict(connect_args or {})}
        memory = backend == "sqlite" and _is_memory(sa_url)
        if memory:
            options["poolclass"] = StaticPool
        if backend == "postgresql":
            options["pool_pre_ping"] = True
        engine = create_async_engine(sa_url, **options)
        if backend == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        store = cls(engine, serialize=memory)
        try:
            await store._migrate()
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def _migrate(self) -> None:
        async with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            await connection.run_sync(_upgrade_to_head)

    async def close(self) -> None:
        """Close all connections."""
        await self._engine.dispose()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    def advisory_lock(self, key: int) -> AdvisoryLock | None:
        """A session-level advisory lock on a connection of its own (PostgreSQL), for one
        active sweeper across replicas; None on SQLite, which serves one process."""
        if self._engine.dialect.name != "postgresql":
            return None
        return AdvisoryLock(self._engine, key)

    async def __aenter__(self) -> Self:
        """Use the store as an async context manager that closes it."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store."""
        await self.close()

    async def ping(self) -> bool:
        """Whether the database answers a trivial query within ``PING_TIMEOUT`` seconds."""
        try:
            async with asyncio.timeout(PING_TIMEOUT), self._begin() as session:
                await session.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("store.ping_failed", error=repr(exc))
            return False
        return True

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncSession]:
        if self._lock is None:
            async with self._sessionmaker.begin() as session:
                yield session
        else:
            async with self._lock, self._sessionmaker.begin() as session:
                yield session

    def _insert(self, model: type[Base]) -> sqlite.Insert | postgresql.Insert:
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(model)
        return sqlite.insert(model)

    # -- identities ---------------------------------------------------------------------------

    async def link_identity(
        self,
        *,
        platform: str,
        workspace: str,
        chat_user_id: str,
        principal_id: str,
        upn: str,
        display_name: str,
        now: datetime | None = None,
    ) -> Identity:
        """Link a chat user to an Entra principal, replacing any earlier link of that user."""
        stmt = self._insert(IdentityRow).values(
            platform=platform,
            workspace=workspace,
            chat_user_id=chat_user_id,
            principal_id=principal_id,
            upn=upn,
            display_name=display_name,
            linked_at=_now(now),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["platform", "workspace", "chat_user_id"],
            set_={
                name: stmt.excluded[name]
                for name in ("principal_id", "upn", "display_name", "linked_at")
            },
        )
        async with self._begin() as session:
            row = (await session.scalars(stmt.returning(IdentityRow))).one()
            return _identity(row)

    async def get_identity(
        self, platform: str, workspace: str, chat_user_id: str
    ) -> Identity | None:
        """The Entra principal linked to this chat user, or None."""
        async with self._begin() as session:
            row = await session.get(IdentityRow, (platform, workspace, chat_user_id))
            return None if row is None else _identity(row)

    async def find_identities_by_principal(self, principal_id: str) -> list[Identity]:
        """All chat users linked to this Entra principal (one per platform and workspace)."""
        stmt = (
            select(IdentityRow)
            .where(IdentityRow.principal_id == principal_id)
            .order_by(IdentityRow.platform, IdentityRow.workspace, IdentityRow.chat_user_id)
        )
        async with self._begin() as session:
            return [_identity(row) for row in await session.scalars(stmt)]

    async def unlink_identity(self, platform: str, workspace: str, chat_user_id: str) -> bool:
        """Remove the link of this chat user; False when there was none."""
        stmt = (
            delete(IdentityRow)
            .where(
                IdentityRow.platform == platform,
                IdentityRow.workspace == workspace,
                IdentityRow.chat_user_id == chat_user_id,
            )
            .returning(IdentityRow.principal_id)
        )
        async with self._begin() as session:
            return (await session.execute(stmt)).first() is not None

    # -- token caches -------------------------------------------------------------------------

    async def save_token_cache(
        self, principal_id: str, blob: bytes, now: datetime | None = None
    ) -> None:
        """Store this principal's token cache blob (already encrypted by the caller)."""
        stmt = self._insert(TokenCacheRow).values(
            principal_id=principal_id, blob=blob, updated_at=_now(now)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["principal_id"],
            set_={"blob": stmt.excluded.blob, "updated_at": stmt.excluded.updated_at},
        )
        async with self._begin() as session:
            await session.execute(stmt)

    async def load_token_cache(self, principal_id: str) -> bytes | None:
        """This principal's token cache blob, or None."""
        async with self._begin() as session:
            row = await session.get(TokenCacheRow, principal_id)
            return None if row is None else row.blob

    async def delete_token_cache(self, principal_id: str) -> bool:
        """Forget this principal's token cache; False when there was none."""
        stmt = (
            delete(TokenCacheRow)
            .where(TokenCacheRow.principal_id == principal_id)
            .returning(TokenCacheRow.principal_id)
        )
        async with self._begin() as session:
            return (await session.execute(stmt)).first() is not None

    # -- sign-in states -----------------------------------------------------------------------

    async def create_signin_state(
        self,
        *,
        state: str,
        platform: str,
        workspace: str,
        chat_user_id: str,
        pkce_verifier: str,
        now: datetime,
        expires_at: datetime,
        expected_principal_id: str | None = None,
        pending_command: str | None = None,
        reply_to: Mapping[str, Any] | None = None,
    ) -> SignInState:
        """Store a one-time sign-in link for this chat user.

        ``state`` is the random, unguessable value the link carries; ``expected_principal_id``
        is the Entra object id the sign-in must yield (Teams' ``aadObjectId``);
        ``pending_command`` and ``reply_to`` say what to run and where to answer afterwards.
        """
        stmt = (
            self._insert(SignInStateRow)
            .values(
                state=state,
                platform=platform,
                workspace=workspace,
                chat_user_id=chat_user_id,
                expected_principal_id=expected_principal_id,
                pkce_verifier=pkce_verifier,
                pending_command=pending_command,
                reply_to=_dump(reply_to),
                created_at=_utc(now),
                expires_at=_utc(expires_at, "expires_at"),
                used_at=None,
            )
            .returning(SignInStateRow)
        )
        async with self._begin() as session:
            return _signin_state((await session.scalars(stmt)).one())

    async def get_signin_state(self, state: str, now: datetime) -> SignInState:
        """The sign-in link ``state`` without using it up (for ``/auth/start``).

        Raises ``SignInError`` when it is unknown, already used or expired, exactly as
        ``consume_signin_state`` would.
        """
        now = _utc(now)
        async with self._begin() as session:
            row = await session.get(SignInStateRow, state)
        return _signin_state(_usable(row, now))

    async def consume_signin_state(self, state: str, now: datetime) -> SignInState:
        """Use up the sign-in link ``state`` (for ``/auth/callback``); it works only once.

        Raises ``SignInError`` when it is unknown, already used (a replay) or expired.
        """
        now = _utc(now)
        stmt = (
            update(SignInStateRow)
            .where(
                SignInStateRow.state == state,
                SignInStateRow.used_at.is_(None),
                SignInStateRow.expires_at > now,
            )
            .values(used_at=now)
            .returning(SignInStateRow)
        )
        async with self._begin() as session:
            row = (await session.scalars(stmt)).one_or_none()
            if row is None:
                # Not updated, so unknown, used or expired: raise the right one of those.
                _usable(await session.get(SignInStateRow, state), now)
                raise SignInError(_SIGNIN_USED, detail="sign-in state used concurrently")
            return _signin_state(row)

    async def delete_expired_signin_states(self, before: datetime) -> int:
        """Delete sign-in links that expired before ``before``; returns how many."""
        stmt = (
            delete(SignInStateRow)
            .where(SignInStateRow.expires_at < _utc(before, "before"))
            .returning(SignInStateRow.state)
        )
        async with self._begin() as session:
            return len((await session.execute(stmt)).all())

    # -- tracked requests ---------------------------------------------------------------------

    async def track_request(
        self,
        *,
        request_id: str,
        kind: str,
        approval_mode: str,
        requester_principal_id: str,
        requester_display_name: str,
        policy_id: str,
        last_known_state: str,
        requester_platform: str | None = None,
        requester_workspace: str | None = None,
        requester_chat_user_id: str | None = None,
        duration_iso: str | None = None,
        justification: str | None = None,
        graph_request_id: str | None = None,
        assignment_id: str | None = None,
        stage_index: int = 0,
        bot_pending: bool = False,
        now: datetime | None = None,
    ) -> TrackedRequest:
        """Start following a request; returns the stored record.

        Tracking a ``request_id`` that is already tracked changes nothing and returns the
        stored record.  The requester's chat fields are None for requests made in the portal.
        """
        now = _now(now)
        stmt = (
            self._insert(TrackedRequestRow)
            .values(
                request_id=request_id,
                graph_request_id=graph_request_id,
                kind=kind,
                approval_mode=approval_mode,
                requester_principal_id=requester_principal_id,
                requester_display_name=requester_display_name,
                requester_platform=requester_platform,
                requester_workspace=requester_workspace,
                requester_chat_user_id=requester_chat_user_id,
                duration_iso=duration_iso,
                justification=justification,
                policy_id=policy_id,
                assignment_id=assignment_id,
                last_known_state=last_known_state,
                stage_index=stage_index,
                bot_pending=bot_pending,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(TrackedRequestRow)
        )
        async with self._begin() as session:
            row = (await session.scalars(stmt)).one_or_none()
            if row is None:
                row = await session.get_one(TrackedRequestRow, request_id)
            return _tracked_request(row)

    async def get_request(self, request_id: str) -> TrackedRequest | None:
        """The tracked request with this id, or None."""
        async with self._begin() as session:
            row = await session.get(TrackedRequestRow, request_id)
            return None if row is None else _tracked_request(row)

    async def find_request_by_graph_id(self, graph_id: str) -> TrackedRequest | None:
        """The tracked request Graph knows as ``graph_id``, as its id or ``graph_request_id``."""
        stmt = select(TrackedRequestRow).where(
            or_(
                TrackedRequestRow.request_id == graph_id,
                TrackedRequestRow.graph_request_id == graph_id,
            )
        )
        async with self._begin() as session:
            row = (await session.scalars(stmt.limit(1))).first()
            return None if row is None else _tracked_request(row)

    async def list_open_requests(self) -> list[TrackedRequest]:
        """All requests not closed yet, oldest first."""
        stmt = (
            select(TrackedRequestRow)
            .where(TrackedRequestRow.closed_at.is_(None))
            .order_by(TrackedRequestRow.created_at, TrackedRequestRow.request_id)
        )
        async with self._begin() as session:
            return [_tracked_request(row) for row in await session.scalars(stmt)]

    async def find_open_request_for(self, principal_id: str) -> TrackedRequest | None:
        """The newest request of this requester that is not closed, or None."""
        stmt = (
            select(TrackedRequestRow)
            .where(
                TrackedRequestRow.requester_principal_id == principal_id,
                TrackedRequestRow.closed_at.is_(None),
            )
            .order_by(TrackedRequestRow.created_at.desc(), TrackedRequestRow.request_id.desc())
            .limit(1)
        )
        async with self._begin() as session:
            row = (await session.scalars(stmt)).first()
            return None if row is None else _tracked_request(row)

    async def update_request_state(
        self,
        request_id: str,
        state: str,
        *,
        now: datetime | None = None,
        graph_request_id: str | None = None,
        assignment_id: str | None = None,
        stage_index: int | None = None,
        bot_pending: bool | None = None,
    ) -> TrackedRequest:
        """Record Graph's latest state of a request; the other fields change when not None.

        Raises ``NotFound`` when the request is not tracked.
        """
        values: dict[str, Any] = {"last_known_state": state, "updated_at": _now(now)}
        changes = {
            "graph_request_id": graph_request_id,
            "assignment_id": assignment_id,
            "stage_index": stage_index,
            "bot_pending": bot_pending,
        }
        values.update({name: value for name, value in changes.items() if value is not None})
        stmt = (
            update(TrackedRequestRow)
            .where(TrackedRequestRow.request_id == request_id)
            .values(values)
            .returning(TrackedRequestRow)
        )
        async with self._begin() as session:
            row = (await session.scalars(stmt)).one_or_none()
        if row is None:
            raise _unknown_request(request_id)
        return _tracked_request(row)

    async def record_decision(
        self,
        request_id: str,
        decision: DecisionValue,
        by_id: str,
        by_name: str,
        reason: str | None,
        now: datetime,
    ) -> bool:
        """Set the decision unless one is set; True only for the first decider.

        Double clicks and several replicas therefore decide once.  Raises ``NotFound`` when
        the request is not tracked.
        """
        now = _utc(now)
        stmt = (
            update(TrackedRequestRow)
            .where(
                TrackedRequestRow.request_id == request_id,
                TrackedRequestRow.decision.is_(None),
            )
            .values(
                decision=decision,
                decided_by_principal_id=by_id,
                decided_by_display_name=by_name,
                decision_reason=reason,
                decided_at=now,
                updated_at=now,
            )
            .returning(TrackedRequestRow.request_id)
        )
        async with self._begin() as session:
            if (await session.execute(stmt)).first() is not None:
                return True
            if await session.get(TrackedRequestRow, request_id) is None:
                raise _unknown_request(request_id)
            return False

    async def close_request(self, request_id: str, now: datetime) -> bool:
        """Stop following a request; True when this call closed it, False if it was closed.

        Raises ``NotFound`` when the request is not tracked.
        """
        now = _utc(now)
        stmt = (
            update(TrackedRequestRow)
            .where(
                TrackedRequestRow.request_id == request_id,
                TrackedRequestRow.closed_at.is_(None),
            )
            .values(closed_at=now, updated_at=now)
            .returning(TrackedRequestRow.request_id)
        )
        async with self._begin() as session:
            if (await session.execute(stmt)).first() is not None:
                return True
            if await session.get(TrackedRequestRow, request_id) is None:
                raise _unknown_request(request_id)
            return False

    # -- card refs ----------------------------------------------------------------------------

    async def add_card_ref(
        self,
        *,
        request_id: str,
        platform: str,
        conversation_id: str,
        message_id: str,
        purpose: CardPurpose,
        workspace: str | None = None,
        recipient_principal_id: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Remember where a card of a tracked request was posted; False if already known.

        Raises ``NotFound`` when the request is not tracked.
        """
        stmt = (
            self._insert(CardRefRow)
            .values(
                request_id=request_id,
                platform=platform,
                workspace=workspace,
                conversation_id=conversation_id,
                message_id=message_id,
                recipient_principal_id=recipient_principal_id,
                purpose=purpose,
                created_at=_now(now),
            )
            .on_conflict_do_nothing(
                index_elements=["request_id", "platform", "conversation_id", "message_id"]
            )
            .returning(CardRefRow.id)
        )
        try:
            async with self._begin() as session:
                return (await session.execute(stmt)).first() is not None
        except IntegrityError as exc:
            raise _unknown_request(request_id) from exc

    async def list_card_refs(self, request_id: str) -> list[CardRef]:
        """Every card posted for this request, in posting order."""
        stmt = select(CardRefRow).where(CardRefRow.request_id == request_id).order_by(CardRefRow.id)
        async with self._begin() as session:
            return [_card_ref(row) for row in await session.scalars(stmt)]

    # -- conversation refs --------------------------------------------------------------------

    async def save_conversation_ref(
        self,
        platform: str,
        workspace: str,
        key: str,
        reference: Mapping[str, Any],
        now: datetime | None = None,
    ) -> None:
        """Store (or replace) the reference for messaging ``key`` proactively."""
        stmt = self._insert(ConversationRefRow).values(
            platform=platform,
            workspace=workspace,
            key=key,
            reference=_dump(reference),
            updated_at=_now(now),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["platform", "workspace", "key"],
            set_={"reference": stmt.excluded.reference, "updated_at": stmt.excluded.updated_at},
        )
        async with self._begin() as session:
            await session.execute(stmt)

    async def get_conversation_ref(
        self, platform: str, workspace: str, key: str
    ) -> ConversationRef | None:
        """The stored reference for ``key``, or None."""
        async with self._begin() as session:
            row = await session.get(ConversationRefRow, (platform, workspace, key))
            return None if row is None else _conversation_ref(row)

    # -- notices ------------------------------------------------------------------------------

    async def claim_notice(
        self,
        subject_id: str,
        kind: str,
        now: datetime,
        payload: Mapping[str, Any] | None = None,
    ) -> bool:
        """Claim the notice ``kind`` about ``subject_id``; True only for the first claimer.

        Safe under concurrency on PostgreSQL and SQLite (``INSERT … ON CONFLICT DO NOTHING``).
        The claimer sends the notice, then calls ``mark_notice_sent``.
        """
        stmt = (
            self._insert(NoticeRow)
            .values(
                subject_id=subject_id,
                kind=kind,
                created_at=_utc(now),
                sent_at=None,
                payload=_dump(payload),
            )
            .on_conflict_do_nothing(index_elements=["subject_id", "kind"])
            .returning(NoticeRow.subject_id)
        )
        async with self._begin() as session:
            return (await session.execute(stmt)).first() is not None

    async def mark_notice_sent(self, subject_id: str, kind: str, now: datetime) -> None:
        """Record that a claimed notice was sent (the first time counts).

        Raises ``NotFound`` when the notice was never claimed.
        """
        stmt = (
            update(NoticeRow)
            .where(
                NoticeRow.subject_id == subject_id,
                NoticeRow.kind == kind,
                NoticeRow.sent_at.is_(None),
            )
            .values(sent_at=_utc(now))
            .returning(NoticeRow.subject_id)
        )
        async with self._begin() as session:
            if (await session.execute(stmt)).first() is not None:
                return
            if await session.get(NoticeRow, (subject_id, kind)) is None:
                raise NotFound(detail=f"notice {kind!r} for {subject_id!r} was never claimed")

    async def get_notice(self, subject_id: str, kind: str) -> Notice | None:
        """The notice ``kind`` about ``subject_id``, or None if it was never claimed."""
        async with self._begin() as session:
            row = await session.get(NoticeRow, (subject_id, kind))
            return None if row is None else _notice(row)

    async def list_unsent_notices(self, claimed_before: datetime | None = None) -> list[Notice]:
        """Notices claimed but never marked sent (to resend after a crash), oldest first.

        ``claimed_before`` leaves out recent claims whose sender may still be at work.
        """
        stmt = select(NoticeRow).where(NoticeRow.sent_at.is_(None))
        if claimed_before is not None:
            stmt = stmt.where(NoticeRow.created_at < _utc(claimed_before, "claimed_before"))
        stmt = stmt.order_by(NoticeRow.created_at, NoticeRow.subject_id, NoticeRow.kind)
        async with self._begin() as session:
            return [_notice(row) for row in await session.scalars(stmt)]

    # -- audit --------------------------------------------------------------------------------

    async def add_audit(
        self,
        *,
        action: str,
        result: str = "ok",
        actor_principal_id: str | None = None,
        actor_display: str | None = None,
        platform: str | None = None,
        request_id: str | None = None,
        assignment_id: str | None = None,
        target_principal_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEvent:
        """Append an audit event (``action`` such as 'request', 'approve', 'expire')."""
        stmt = (
            self._insert(AuditEventRow)
            .values(
                at=_now(at),
                actor_principal_id=actor_principal_id,
                actor_display=actor_display,
                platform=platform,
                action=action,
                request_id=request_id,
                assignment_id=assignment_id,
                target_principal_id=target_principal_id,
                detail=_dump(detail),
                result=result,
            )
            .returning(AuditEventRow)
        )
        async with self._begin() as session:
            event = _audit_event((await session.scalars(stmt)).one())
        # Every decision and change passes here, so the log tells the story too (who did what
        # to which request); the detail (reasons typed by users) stays in the audit table.
        log.info(
            "audit",
            action=action,
            result=result,
            actor=actor_principal_id,
            platform=platform,
            request=request_id,
            assignment=assignment_id,
            target=target_principal_id,
        )
        return event

    async def list_audit(self, since: datetime, limit: int | None = None) -> list[AuditEvent]:
        """Audit events at or after ``since``, oldest first (at most ``limit``)."""
        stmt = (
            select(AuditEventRow)
            .where(AuditEventRow.at >= _utc(since, "since"))
            .order_by(AuditEventRow.at, AuditEventRow.id)
            .limit(limit)
        )
        async with self._begin() as session:
            return [_audit_event(row) for row in await session.scalars(stmt)]

    async def request_audit(self, request_id: str, since: datetime) -> list[AuditEvent]:
        """The audit events of one request, oldest first; ``since`` (its creation) bounds the
        search by the indexed time."""
        stmt = (
            select(AuditEventRow)
            .where(AuditEventRow.at >= _utc(since, "since"), AuditEventRow.request_id == request_id)
            .order_by(AuditEventRow.at, AuditEventRow.id)
        )
        async with self._begin() as session:
            return [_audit_event(row) for row in await session.scalars(stmt)]

    # -- notices, in bulk (the expiry loop reads a page of assignments at a time) --------------

    async def get_notices(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Notice]:
        """The claimed notices among ``(subject_id, kind)`` keys, in one query."""
        wanted = set(keys)
        if not wanted:
            return {}
        subjects = {subject for subject, _ in wanted}
        kinds = {kind for _, kind in wanted}
        stmt = select(NoticeRow).where(
            NoticeRow.subject_id.in_(subjects), NoticeRow.kind.in_(kinds)
        )
        async with self._begin() as session:
            rows = list(await session.scalars(stmt))
        return {
            (row.subject_id, row.kind): _notice(row)
            for row in rows
            if (row.subject_id, row.kind) in wanted
        }

    # -- expiry watches -----------------------------------------------------------------------

    async def watch_expiries(
        self, watches: Sequence[ExpiryWatch]
    ) -> dict[tuple[str, datetime], ExpiryWatch]:
        """Start watching these assignment ends unless watched already; the stored watch of
        each, keyed by ``(assignment_id, end_at)``.  A page of watches costs one query when all
        exist (the steady state), three when some are new; concurrent callers are safe
        (``INSERT … ON CONFLICT DO NOTHING``)."""
        if not watches:
            return {}
        wanted = {(w.assignment_id, _utc(w.end_at, "end_at")): w for w in watches}
        ids = {assignment_id for assignment_id, _ in wanted}
        select_stmt = select(ExpiryWatchRow).where(ExpiryWatchRow.assignment_id.in_(ids))
        async with self._begin() as session:
            found = {
                (r.assignment_id, r.end_at): _watch(r) for r in await session.scalars(select_stmt)
            }
        missing = [w for key, w in wanted.items() if key not in found]
        if missing:
            insert = self._insert(ExpiryWatchRow).values(
                [
                    {
                        "assignment_id": w.assignment_id,
                        "end_at": _utc(w.end_at, "end_at"),
                        "target_principal_id": w.target_principal_id,
                        "target_display_name": w.target_display_name,
                        "target_upn": w.target_upn,
                        "target_mail": w.target_mail,
                        "policy_id": w.policy_id,
                        "created_at": _utc(w.created_at, "created_at"),
                        "closed_at": None,
                        "outcome": None,
                    }
                    for w in missing
                ]
            )
            insert = insert.on_conflict_do_nothing(index_elements=["assignment_id", "end_at"])
            async with self._begin() as session:
                await session.execute(insert)
                found = {
                    (r.assignment_id, r.end_at): _watch(r)
                    for r in await session.scalars(select_stmt)
                }
        return {key: found[key] for key in wanted if key in found}

    async def due_watches(self, now: datetime, limit: int = 1000) -> list[ExpiryWatch]:
        """Open watches whose end is at or before ``now``, earliest first (at most ``limit``)."""
        stmt = (
            select(ExpiryWatchRow)
            .where(ExpiryWatchRow.closed_at.is_(None), ExpiryWatchRow.end_at <= _utc(now))
            .order_by(ExpiryWatchRow.end_at, ExpiryWatchRow.assignment_id)
            .limit(limit)
        )
        async with self._begin() as session:
            return [_watch(row) for row in await session.scalars(stmt)]

    async def close_watch(
        self, assignment_id: str, end_at: datetime, outcome: WatchOutcome, now: datetime
    ) -> bool:
        """Resolve one watch; True when this call closed it (False: closed before, or none)."""
        stmt = (
            update(ExpiryWatchRow)
            .where(
                ExpiryWatchRow.assignment_id == assignment_id,
                ExpiryWatchRow.end_at == _utc(end_at, "end_at"),
                ExpiryWatchRow.closed_at.is_(None),
            )
            .values(closed_at=_utc(now), outcome=outcome)
            .returning(ExpiryWatchRow.assignment_id)
        )
        async with self._begin() as session:
            return (await session.execute(stmt)).first() is not None

    async def close_watches_of(
        self, assignment_id: str, outcome: WatchOutcome, now: datetime
    ) -> int:
        """Resolve every open watch of an assignment (released, or extended by Elevate)."""
        stmt = (
            update(ExpiryWatchRow)
            .where(
                ExpiryWatchRow.assignment_id == assignment_id,
                ExpiryWatchRow.closed_at.is_(None),
            )
            .values(closed_at=_utc(now), outcome=outcome)
            .returning(ExpiryWatchRow.end_at)
        )
        async with self._begin() as session:
            return len((await session.execute(stmt)).all())


def _unknown_request(request_id: str) -> NotFound:
    return NotFound("That request is not known to Elevate.", detail=f"request {request_id!r}")
