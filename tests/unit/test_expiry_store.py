"""The store's part of expiry and of several replicas: expiry watches, notices read in bulk,
and the PostgreSQL advisory lock (SQLite always; PostgreSQL when ``ELEVATE_TEST_POSTGRES_URL``
is set, each test in a schema of its own)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.leader import LEADER_LOCK_KEY
from bot.store import ExpiryWatch, SqlStore

POSTGRES_URL = os.environ.get("ELEVATE_TEST_POSTGRES_URL")
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def watch(assignment_id: str, end: datetime, name: str = "Alice") -> ExpiryWatch:
    """A new watch of ``assignment_id``'s end."""
    return ExpiryWatch(
        assignment_id=assignment_id,
        end_at=end,
        target_principal_id=f"oid-{assignment_id}",
        target_display_name=name,
        target_upn=None,
        target_mail=None,
        policy_id="policy",
        created_at=T0,
        closed_at=None,
        outcome=None,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A function opening (another) store on this test's database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'elevate.db'}"

        async def open_sqlite() -> SqlStore:
            return await SqlStore.open(url)

        yield open_sqlite
        return
    if not POSTGRES_URL:
        pytest.skip("ELEVATE_TEST_POSTGRES_URL not set: PostgreSQL tests skipped")
    schema = f"elevate_test_{uuid.uuid4().hex}"
    admin = create_async_engine(POSTGRES_URL, poolclass=NullPool)
    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    pg_url = POSTGRES_URL

    async def open_postgres() -> SqlStore:
        return await SqlStore.open(
            pg_url, connect_args={"server_settings": {"search_path": schema}}
        )

    try:
        yield open_postgres
    finally:
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


async def test_watching_is_idempotent_and_keeps_the_first_record(opener: Any) -> None:
    """Watching the same end twice keeps one watch; another end of it is another watch."""
    async with await opener() as store:
        first = await store.watch_expiries([watch("a1", T0), watch("a2", T0 + M)])
        assert set(first) == {("a1", T0), ("a2", T0 + M)}
        again = await store.watch_expiries(
            [watch("a1", T0, name="Renamed"), watch("a1", T0 + 2 * M)]
        )
        assert again[("a1", T0)].target_display_name == "Alice"
        assert again[("a1", T0 + 2 * M)].closed_at is None
        assert await store.watch_expiries([]) == {}


async def test_due_watches_are_the_open_ones_whose_end_passed(opener: Any) -> None:
    """Due: open and ended; closing resolves a watch once; release closes all of one assignment."""
    async with await opener() as store:
        await store.watch_expiries([watch("a1", T0), watch("a2", T0 + M), watch("a3", T0 + 9 * M)])
        due = await store.due_watches(T0 + M)
        assert [(w.assignment_id, w.end_at) for w in due] == [("a1", T0), ("a2", T0 + M)]
        assert await store.close_watch("a1", T0, "expired", T0 + M)
        assert not await store.close_watch("a1", T0, "expired", T0 + M)
        assert await store.close_watches_of("a2", "released", T0 + M) == 1
        assert await store.due_watches(T0 + M) == []
        closed = await store.watch_expiries([watch("a2", T0 + M)])
        assert closed[("a2", T0 + M)].outcome == "released"


async def test_notices_are_read_in_bulk_by_exact_key(opener: Any) -> None:
    """``get_notices`` returns exactly the claimed keys asked for."""
    async with await opener() as store:
        await store.claim_notice("a1", "expiring:PT15M:x", T0)
        await store.claim_notice("a2", "expiring:PT60M:x", T0)
        await store.mark_notice_sent("a2", "expiring:PT60M:x", T0 + M)
        found = await store.get_notices(
            [("a1", "expiring:PT15M:x"), ("a1", "expiring:PT60M:x"), ("a2", "expiring:PT60M:x")]
        )
        assert set(found) == {("a1", "expiring:PT15M:x"), ("a2", "expiring:PT60M:x")}
        assert found[("a2", "expiring:PT60M:x")].sent_at == T0 + M
        assert await store.get_notices([]) == {}


async def test_sqlite_has_no_advisory_lock(tmp_path: Path) -> None:
    """SQLite serves one process: there is no lock, the process runs the loops."""
    async with await SqlStore.open(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}") as store:
        assert store.dialect == "sqlite"
        assert store.advisory_lock(LEADER_LOCK_KEY) is None


@pytest.mark.postgres
@pytest.mark.parametrize("opener", ["postgresql"], indirect=True)
async def test_advisory_lock_is_held_by_one_store_until_released_or_its_connection_dies(
    opener: Any,
) -> None:
    """One holder at a time; release, or the holder's connection dying, lets another take it."""
    first = await opener()
    second = await opener()
    try:
        key = int.from_bytes(os.urandom(7), "big")  # other suites may share this database
        one, two = first.advisory_lock(key), second.advisory_lock(key)
        assert one is not None
        assert two is not None
        assert await one.try_acquire()
        assert await one.try_acquire()  # held already
        assert not await two.try_acquire()
        assert await one.check()
        await one.release()
        assert not await one.check()
        assert await two.try_acquire()
        await _kill_holder(first, key)  # as when the holder's process is killed
        assert not await two.check()
        for _ in range(50):  # the killed session ends (and drops the lock) within moments
            if await one.try_acquire():
                break
            await asyncio.sleep(0.1)
        assert await one.check()
        await one.release()
    finally:
        await first.close()
        await second.close()


async def _kill_holder(store: SqlStore, key: int) -> None:
    """Terminate the server session holding advisory lock ``key``."""
    engine = store._engine  # a test looking under the hood on purpose
    async with engine.connect() as connection:
        killed = await connection.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                "WHERE locktype = 'advisory' AND classid = :hi AND objid = :lo AND granted"
            ),
            {"hi": key >> 32, "lo": key & 0xFFFFFFFF},
        )
        await connection.commit()
    assert killed == 1
