"""Tests of ``bot.store.SqlStore`` on SQLite and, when ``ELEVATE_TEST_POSTGRES_URL`` is set,
on PostgreSQL (each test in a schema of its own, dropped afterwards)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from bot.errors import ConfigError, NotFound, SignInError
from bot.store import SqlStore, TrackedRequest
from bot.store.models import Base

POSTGRES_URL = os.environ.get("ELEVATE_TEST_POSTGRES_URL")
T0 = datetime(2024, 11, 26, 9, 0, tzinfo=UTC)
TABLES = {
    "alembic_version",
    "audit_events",
    "card_refs",
    "conversation_refs",
    "expiry_watches",
    "identities",
    "notices",
    "signin_states",
    "token_caches",
    "tracked_requests",
}


@dataclass
class Database:
    """Where a test's store lives, and how to open it (possibly several times)."""

    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)

    async def open(self) -> SqlStore:
        return await SqlStore.open(self.url, connect_args=self.connect_args)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A plain connection beside the store, to look at the schema."""
        engine = create_async_engine(self.url, connect_args=self.connect_args, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                yield connection
        finally:
            await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        yield Database(f"sqlite+aiosqlite:///{tmp_path / 'elevate.db'}")
        return
    if not POSTGRES_URL:
        pytest.skip("ELEVATE_TEST_POSTGRES_URL not set: PostgreSQL tests skipped")
    schema = f"elevate_test_{uuid.uuid4().hex}"
    admin = create_async_engine(POSTGRES_URL, poolclass=NullPool)
    try:
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield Database(POSTGRES_URL, {"server_settings": {"search_path": schema}})
    finally:
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SqlStore]:
    store = await database.open()
    yield store
    await store.close()


async def track(store: SqlStore, request_id: str = "req-1", **fields: Any) -> TrackedRequest:
    values: dict[str, Any] = {
        "kind": "add",
        "approval_mode": "entra",
        "requester_principal_id": "oid-alice",
        "requester_display_name": "Alice",
        "policy_id": "policy-1",
        "last_known_state": "pendingApproval",
        "now": T0,
    }
    values.update(fields)
    return await store.track_request(request_id=request_id, **values)


def _schema_differences(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


# -- opening and migrations ---------------------------------------------------------------------


async def test_open_migrates_to_head_and_reopening_is_idempotent(database: Database) -> None:
    """Opening migrates an empty database to head; opening it again keeps schema and data."""
    first = await database.open()
    await first.link_identity(
        platform="slack",
        workspace="T1",
        chat_user_id="U1",
        principal_id="oid-alice",
        upn="alice@contoso.com",
        display_name="Alice",
        now=T0,
    )
    await first.close()

    second = await database.open()
    try:
        assert await second.get_identity("slack", "T1", "U1") is not None
        async with database.connect() as connection:
            assert await connection.run_sync(_table_names) == TABLES
            version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        assert version == "0002"
    finally:
        await second.close()


async def test_migrated_schema_matches_the_models(database: Database, store: SqlStore) -> None:
    """The migrations create exactly the schema the models describe."""
    async with database.connect() as connection:
        assert await connection.run_sync(_schema_differences) == []


async def test_open_refuses_a_url_without_an_async_driver(tmp_path: Path) -> None:
    """A URL for another driver or database is a ConfigError naming ELEVATE_DATABASE_URL."""
    for url in (f"sqlite:///{tmp_path / 'x.db'}", "mysql+aiomysql://u@localhost/db", "nonsense"):
        with pytest.raises(ConfigError, match="ELEVATE_DATABASE_URL"):
            await SqlStore.open(url)


async def test_memory_database_works_and_serializes_concurrent_transactions() -> None:
    """An in-memory SQLite store keeps data across calls and claims a notice once under gather."""
    store = await SqlStore.open("sqlite+aiosqlite:///:memory:")
    try:
        results = await asyncio.gather(
            *(store.claim_notice("a-1", "expired", T0) for _ in range(10))
        )
        assert results.count(True) == 1
        assert await store.get_notice("a-1", "expired") is not None
    finally:
        await store.close()


async def test_ping_is_true_when_the_database_answers(store: SqlStore) -> None:
    """ping() answers True for a working database."""
    assert await store.ping() is True


async def test_ping_is_false_when_the_database_is_unreachable() -> None:
    """ping() answers False, without raising, when the database cannot be reached."""
    store = SqlStore(create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none"))
    try:
        assert await store.ping() is False
    finally:
        await store.close()


# -- identities and token caches ----------------------------------------------------------------


async def test_identity_link_round_trip_relink_and_unlink(store: SqlStore) -> None:
    """A linked identity reads back, re-linking replaces it, unlinking removes it once."""
    linked = await store.link_identity(
        platform="teams",
        workspace="tenant-1",
        chat_user_id="29:abc",
        principal_id="oid-alice",
        upn="alice@contoso.com",
        display_name="Alice",
        now=T0,
    )
    assert await store.get_identity("teams", "tenant-1", "29:abc") == linked
    assert linked.principal_id == "oid-alice"
    assert linked.linked_at == T0

    relinked = await store.link_identity(
        platform="teams",
        workspace="tenant-1",
        chat_user_id="29:abc",
        principal_id="oid-bob",
        upn="bob@contoso.com",
        display_name="Bob",
        now=T0 + timedelta(hours=1),
    )
    assert await store.get_identity("teams", "tenant-1", "29:abc") == relinked
    assert relinked.principal_id == "oid-bob"
    assert await store.find_identities_by_principal("oid-alice") == []

    assert await store.unlink_identity("teams", "tenant-1", "29:abc") is True
    assert await store.unlink_identity("teams", "tenant-1", "29:abc") is False
    assert await store.get_identity("teams", "tenant-1", "29:abc") is None


async def test_find_identities_by_principal_lists_every_platform(store: SqlStore) -> None:
    """One Entra principal linked from Slack and Teams is found under both."""
    chat_users = [
        ("slack", "T1", "U1"),
        ("teams", "tenant-1", "29:abc"),
    ]
    for platform, workspace, user in chat_users:
        await store.link_identity(
            platform=platform,
            workspace=workspace,
            chat_user_id=user,
            principal_id="oid-alice",
            upn="alice@contoso.com",
            display_name="Alice",
            now=T0,
        )
    found = await store.find_identities_by_principal("oid-alice")
    assert [(i.platform, i.chat_user_id) for i in found] == [("slack", "U1"), ("teams", "29:abc")]


class Chat(StrEnum):
    """Stands for ``bot.domain.Platform``: the store takes any ``str``, enums included."""

    TEAMS = "teams"


async def test_str_enum_members_are_stored_as_their_values(store: SqlStore) -> None:
    """A StrEnum member given for a platform reads back as its plain string value."""
    await store.link_identity(
        platform=Chat.TEAMS,
        workspace="tenant-1",
        chat_user_id="29:abc",
        principal_id="oid-alice",
        upn="alice@contoso.com",
        display_name="Alice",
    )
    identity = await store.get_identity(Chat.TEAMS, "tenant-1", "29:abc")
    assert identity is not None
    assert type(identity.platform) is str
    assert identity.platform == "teams"


async def test_token_cache_bytes_round_trip_overwrite_and_delete(store: SqlStore) -> None:
    """Token cache blobs are stored as given, replaced on save, and gone after delete."""
    assert await store.load_token_cache("oid-alice") is None
    await store.save_token_cache("oid-alice", b"\x00first\xff", T0)
    assert await store.load_token_cache("oid-alice") == b"\x00first\xff"
    await store.save_token_cache("oid-alice", b"second")
    assert await store.load_token_cache("oid-alice") == b"second"
    assert await store.delete_token_cache("oid-alice") is True
    assert await store.delete_token_cache("oid-alice") is False
    assert await store.load_token_cache("oid-alice") is None


async def test_conversation_ref_upsert_replaces_the_reference(store: SqlStore) -> None:
    """Saving a conversation reference twice keeps the latest one."""
    assert await store.get_conversation_ref("teams", "tenant-1", "oid-alice") is None
    await store.save_conversation_ref("teams", "tenant-1", "oid-alice", {"conversation": "a"}, T0)
    later = T0 + timedelta(minutes=5)
    await store.save_conversation_ref(
        "teams", "tenant-1", "oid-alice", {"conversation": "b"}, later
    )
    ref = await store.get_conversation_ref("teams", "tenant-1", "oid-alice")
    assert ref is not None
    assert ref.reference == {"conversation": "b"}
    assert ref.updated_at == later


# -- sign-in states -----------------------------------------------------------------------------


async def new_signin(store: SqlStore, state: str = "state-1", ttl: timedelta | None = None) -> None:
    await store.create_signin_state(
        state=state,
        platform="teams",
        workspace="tenant-1",
        chat_user_id="29:abc",
        pkce_verifier="verifier",
        now=T0,
        expires_at=T0 + (ttl or timedelta(minutes=10)),
        expected_principal_id="oid-alice",
        pending_command="request-admin 8h printer driver",
        reply_to={"conversation": "c-1"},
    )


async def test_signin_state_is_read_without_use_then_consumed_once(store: SqlStore) -> None:
    """get_signin_state does not use the link; consume works once, a replay is 'already used'."""
    await new_signin(store)
    seen = await store.get_signin_state("state-1", T0)
    assert seen == await store.get_signin_state("state-1", T0 + timedelta(minutes=1))
    assert seen.used_at is None
    assert seen.reply_to == {"conversation": "c-1"}

    used = await store.consume_signin_state("state-1", T0 + timedelta(minutes=2))
    assert used.used_at == T0 + timedelta(minutes=2)
    assert used.pkce_verifier == "verifier"
    assert used.pending_command == "request-admin 8h printer driver"

    with pytest.raises(SignInError, match="already used"):
        await store.consume_signin_state("state-1", T0 + timedelta(minutes=3))
    with pytest.raises(SignInError, match="already used"):
        await store.get_signin_state("state-1", T0 + timedelta(minutes=3))


async def test_expired_signin_state_is_refused(store: SqlStore) -> None:
    """A sign-in link past its expiry is refused as 'expired' by get and consume."""
    await new_signin(store, ttl=timedelta(minutes=10))
    late = T0 + timedelta(minutes=10)
    with pytest.raises(SignInError, match="expired"):
        await store.get_signin_state("state-1", late)
    with pytest.raises(SignInError, match="expired"):
        await store.consume_signin_state("state-1", late)


async def test_unknown_signin_state_is_refused(store: SqlStore) -> None:
    """A state the store never issued is refused as 'not valid'."""
    with pytest.raises(SignInError, match="not valid"):
        await store.get_signin_state("forged", T0)
    with pytest.raises(SignInError, match="not valid"):
        await store.consume_signin_state("forged", T0)


async def test_signin_state_is_consumed_once_under_concurrency(store: SqlStore) -> None:
    """Ten concurrent callbacks with one state: exactly one consumes it."""
    await new_signin(store)
    results = await asyncio.gather(
        *(store.consume_signin_state("state-1", T0) for _ in range(10)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    errors = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, SignInError) and "already used" in str(e) for e in errors)


async def test_expired_signin_states_are_deleted(store: SqlStore) -> None:
    """delete_expired_signin_states removes only links that expired before the given time."""
    await new_signin(store, "short", ttl=timedelta(minutes=5))
    await new_signin(store, "long", ttl=timedelta(hours=1))
    assert await store.delete_expired_signin_states(T0 + timedelta(minutes=6)) == 1
    with pytest.raises(SignInError, match="not valid"):
        await store.get_signin_state("short", T0)
    assert (await store.get_signin_state("long", T0)).state == "long"


# -- tracked requests ---------------------------------------------------------------------------


async def test_tracked_request_round_trip(store: SqlStore) -> None:
    """Every field of a tracked request reads back as stored; tracking again changes nothing."""
    tracked = await track(
        store,
        requester_platform="slack",
        requester_workspace="T1",
        requester_chat_user_id="U1",
        duration_iso="PT8H",
        justification="printer driver",
        stage_index=1,
    )
    assert tracked.request_id == "req-1"
    assert tracked.requester_platform == "slack"
    assert tracked.duration_iso == "PT8H"
    assert tracked.stage_index == 1
    assert tracked.bot_pending is False
    assert tracked.decision is None
    assert tracked.is_open
    assert tracked.created_at == tracked.updated_at == T0
    assert await store.get_request("req-1") == tracked
    assert await track(store, justification="other", now=T0 + timedelta(hours=1)) == tracked
    assert await store.get_request("unknown") is None


async def test_portal_request_has_no_chat_requester(store: SqlStore) -> None:
    """A request made in the My Access portal is tracked without chat fields."""
    tracked = await track(store, "portal-1")
    assert tracked.requester_platform is None
    assert tracked.requester_workspace is None
    assert tracked.requester_chat_user_id is None


async def test_update_request_state_changes_only_given_fields(store: SqlStore) -> None:
    """update_request_state sets the state and the fields given, keeps the rest."""
    await track(store, "bot-1", approval_mode="bot", bot_pending=True, last_known_state="pending")
    later = T0 + timedelta(minutes=1)
    updated = await store.update_request_state(
        "bot-1", "submitted", now=later, graph_request_id="graph-9", bot_pending=False
    )
    assert updated.last_known_state == "submitted"
    assert updated.graph_request_id == "graph-9"
    assert updated.bot_pending is False
    assert updated.stage_index == 0
    assert updated.updated_at == later
    assert updated.created_at == T0

    delivered = await store.update_request_state("bot-1", "delivered", assignment_id="asg-1")
    assert delivered.assignment_id == "asg-1"
    assert delivered.graph_request_id == "graph-9"
    assert await store.find_request_by_graph_id("graph-9") == delivered
    assert await store.find_request_by_graph_id("bot-1") == delivered
    assert await store.find_request_by_graph_id("graph-unknown") is None

    with pytest.raises(NotFound):
        await store.update_request_state("unknown", "delivered")


async def test_closed_requests_leave_the_open_list(store: SqlStore) -> None:
    """close_request closes once; closed requests are neither listed open nor found open."""
    await track(store, "req-1", now=T0)
    await track(store, "req-2", now=T0 + timedelta(minutes=1))
    await track(store, "req-3", requester_principal_id="oid-bob", now=T0 + timedelta(minutes=2))
    assert [r.request_id for r in await store.list_open_requests()] == ["req-1", "req-2", "req-3"]

    open_for_alice = await store.find_open_request_for("oid-alice")
    assert open_for_alice is not None
    assert open_for_alice.request_id == "req-2"

    closed_at = T0 + timedelta(hours=1)
    assert await store.close_request("req-2", closed_at) is True
    assert await store.close_request("req-2", closed_at + timedelta(hours=1)) is False
    closed = await store.get_request("req-2")
    assert closed is not None
    assert closed.closed_at == closed_at
    assert not closed.is_open

    assert [r.request_id for r in await store.list_open_requests()] == ["req-1", "req-3"]
    open_for_alice = await store.find_open_request_for("oid-alice")
    assert open_for_alice is not None
    assert open_for_alice.request_id == "req-1"
    assert await store.find_open_request_for("oid-carol") is None
    with pytest.raises(NotFound):
        await store.close_request("unknown", closed_at)


async def test_record_decision_only_the_first_wins(store: SqlStore) -> None:
    """The first decision is kept; a later one (another approver, a double click) is refused."""
    await track(store)
    decided_at = T0 + timedelta(minutes=5)
    assert await store.record_decision("req-1", "approved", "oid-bob", "Bob", "ok", decided_at)
    assert not await store.record_decision("req-1", "denied", "oid-carol", "Carol", "no", T0)
    decided = await store.get_request("req-1")
    assert decided is not None
    assert decided.decision == "approved"
    assert decided.decided_by_principal_id == "oid-bob"
    assert decided.decided_by_display_name == "Bob"
    assert decided.decision_reason == "ok"
    assert decided.decided_at == decided_at
    with pytest.raises(NotFound):
        await store.record_decision("unknown", "approved", "oid-bob", "Bob", None, T0)


async def test_record_decision_under_concurrency_decides_once(store: SqlStore) -> None:
    """Ten concurrent decisions on one request: exactly one returns True, and it is stored."""
    await track(store)
    results = await asyncio.gather(
        *(
            store.record_decision("req-1", "approved", f"oid-{n}", f"Approver {n}", None, T0)
            for n in range(10)
        )
    )
    assert results.count(True) == 1
    decided = await store.get_request("req-1")
    assert decided is not None
    assert decided.decided_by_principal_id == f"oid-{results.index(True)}"


# -- card refs ----------------------------------------------------------------------------------


async def test_card_refs_are_unique_per_message(store: SqlStore) -> None:
    """The same card copy is remembered once; other copies are listed in posting order."""
    await track(store)
    card: dict[str, Any] = {
        "request_id": "req-1",
        "platform": "slack",
        "workspace": "T1",
        "conversation_id": "D-bob",
        "message_id": "1732611600.000100",
        "recipient_principal_id": "oid-bob",
        "purpose": "approval",
        "now": T0,
    }
    assert await store.add_card_ref(**card) is True
    assert await store.add_card_ref(**card) is False
    assert await store.add_card_ref(**{**card, "conversation_id": "C-admins", "purpose": "admin"})
    refs = await store.list_card_refs("req-1")
    assert [(r.conversation_id, r.purpose) for r in refs] == [
        ("D-bob", "approval"),
        ("C-admins", "admin"),
    ]
    assert refs[0].message_id == "1732611600.000100"
    assert refs[0].created_at == T0
    assert await store.list_card_refs("req-2") == []


async def test_card_ref_for_an_untracked_request_is_not_found(store: SqlStore) -> None:
    """A card ref must belong to a tracked request."""
    with pytest.raises(NotFound):
        await store.add_card_ref(
            request_id="unknown",
            platform="teams",
            conversation_id="a:1",
            message_id="m-1",
            purpose="requester",
        )


# -- notices ------------------------------------------------------------------------------------


async def test_claim_notice_only_the_first_claim_wins(store: SqlStore) -> None:
    """A notice is claimed once per (subject, kind); another kind is a separate notice."""
    assert await store.claim_notice("asg-1", "expiring:PT15M", T0, {"minutes": 15}) is True
    assert await store.claim_notice("asg-1", "expiring:PT15M", T0) is False
    assert await store.claim_notice("asg-1", "expired", T0) is True
    notice = await store.get_notice("asg-1", "expiring:PT15M")
    assert notice is not None
    assert notice.payload == {"minutes": 15}
    assert notice.sent_at is None
    assert await store.get_notice("asg-1", "expiring:PT60M") is None


async def test_claim_notice_under_concurrency_claims_once(store: SqlStore) -> None:
    """Ten concurrent claims of one notice: exactly one returns True."""
    results = await asyncio.gather(
        *(store.claim_notice("req-1", "approval-cards", T0) for _ in range(10))
    )
    assert results.count(True) == 1


async def test_unsent_notices_are_listed_until_marked_sent(store: SqlStore) -> None:
    """Claimed notices stay in the unsent list until marked sent; the first sent_at is kept."""
    await store.claim_notice("asg-1", "expired", T0)
    await store.claim_notice("req-1", "requester:delivered", T0 + timedelta(minutes=1))
    unsent = await store.list_unsent_notices()
    assert [(n.subject_id, n.kind) for n in unsent] == [
        ("asg-1", "expired"),
        ("req-1", "requester:delivered"),
    ]
    stale = await store.list_unsent_notices(claimed_before=T0 + timedelta(seconds=30))
    assert [n.subject_id for n in stale] == ["asg-1"]

    sent_at = T0 + timedelta(minutes=2)
    await store.mark_notice_sent("asg-1", "expired", sent_at)
    await store.mark_notice_sent("asg-1", "expired", sent_at + timedelta(minutes=1))
    assert [n.subject_id for n in await store.list_unsent_notices()] == ["req-1"]
    notice = await store.get_notice("asg-1", "expired")
    assert notice is not None
    assert notice.sent_at == sent_at
    with pytest.raises(NotFound):
        await store.mark_notice_sent("asg-9", "expired", sent_at)


# -- audit --------------------------------------------------------------------------------------


async def test_each_audit_event_is_also_one_log_line_without_its_detail(store: SqlStore) -> None:
    """Operators read the same story in the logs; what users typed stays in the table."""
    with structlog.testing.capture_logs() as logs:
        await store.add_audit(
            action="deny",
            actor_principal_id="oid-bob",
            platform="slack",
            request_id="req-1",
            target_principal_id="oid-alice",
            detail={"reason": "not on a Friday"},
            at=T0,
        )
    (line,) = [entry for entry in logs if entry["event"] == "audit"]
    assert line["action"] == "deny"
    assert (line["actor"], line["request"], line["target"]) == ("oid-bob", "req-1", "oid-alice")
    assert "not on a Friday" not in str(line)


async def test_one_requests_audit_events_in_time_order(store: SqlStore) -> None:
    """request_audit: that request's events from ``since`` on, oldest first; no others."""
    await store.add_audit(action="request", request_id="req-1", at=T0)
    approve = await store.add_audit(
        action="approve", request_id="req-1", detail={"stage": 0}, at=T0 + timedelta(minutes=3)
    )
    await store.add_audit(action="approve", request_id="req-2", at=T0 + timedelta(minutes=4))
    grant = await store.add_audit(action="grant", request_id="req-1", at=T0 + timedelta(minutes=5))
    assert await store.request_audit("req-1", T0 + timedelta(minutes=1)) == [approve, grant]
    assert [e.action for e in await store.request_audit("req-1", T0)] == [
        "request",
        "approve",
        "grant",
    ]
    assert await store.request_audit("req-3", T0) == []


async def test_audit_events_are_appended_and_listed_since_in_time_order(store: SqlStore) -> None:
    """Audit events come back from a given time on, oldest first, with their detail."""
    await store.add_audit(action="request", actor_principal_id="oid-alice", at=T0)
    third = await store.add_audit(action="grant", request_id="req-1", at=T0 + timedelta(minutes=9))
    second = await store.add_audit(
        action="approve",
        actor_principal_id="oid-bob",
        actor_display="Bob",
        platform="teams",
        request_id="req-1",
        assignment_id="asg-1",
        target_principal_id="oid-alice",
        detail={"reason": "ok"},
        result="ok",
        at=T0 + timedelta(minutes=5),
    )
    events = await store.list_audit(T0 + timedelta(minutes=5))
    assert events == [second, third]
    assert second.detail == {"reason": "ok"}
    assert second.platform == "teams"
    assert third.detail is None
    assert len(await store.list_audit(T0)) == 3
    assert [e.action for e in await store.list_audit(T0, limit=2)] == ["request", "approve"]


# -- timestamps ---------------------------------------------------------------------------------


async def test_timestamps_round_trip_as_aware_utc(store: SqlStore) -> None:
    """A datetime with any offset is stored as its instant and read back as aware UTC."""
    cet = timezone(timedelta(hours=1))
    local = datetime(2024, 11, 26, 10, 30, 15, 123456, tzinfo=cet)
    await store.claim_notice("asg-1", "expired", local)
    notice = await store.get_notice("asg-1", "expired")
    assert notice is not None
    assert notice.created_at == local
    assert notice.created_at.tzinfo == UTC
    assert notice.created_at.isoformat() == "2024-11-26T09:30:15.123456+00:00"
    added = await store.add_audit(action="signin")
    assert added.at.tzinfo == UTC


async def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    """A naive datetime is a caller bug: the store raises ValueError."""
    naive = datetime(2024, 11, 26, 9, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.claim_notice("asg-1", "expired", naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.list_audit(naive)
