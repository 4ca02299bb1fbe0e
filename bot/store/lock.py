"""``AdvisoryLock``: a PostgreSQL session-level advisory lock held on a connection of its own.

``pg_try_advisory_lock`` belongs to the database session that took it, not to a transaction:
it stays while the connection is open and PostgreSQL drops it the moment the connection
closes, also when the process holding it is killed (the server sees the socket close).  The
lock therefore lives on a dedicated connection taken out of the pool for as long as it is held,
and is given back by closing that connection (never by returning it to the pool).

A session-level lock needs a real session: behind PgBouncer in transaction mode it does not
work; point replicas at PostgreSQL directly (or a pooler in session mode).
"""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger(__name__)

CHECK_TIMEOUT = 5.0
"""Seconds ``AdvisoryLock.check`` waits for the lock's connection to answer."""


class AdvisoryLock:
    """One advisory lock key, taken without waiting and held on its own connection."""

    def __init__(self, engine: AsyncEngine, key: int) -> None:
        self._engine = engine
        self._key = key
        self._connection: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        """Whether this object believes it holds the lock (``check`` confirms it)."""
        return self._connection is not None

    async def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this object holds it now.

        Errors of the database (unreachable, restarting) raise ``SQLAlchemyError`` or
        ``OSError``; the lock is then not held.
        """
        if self._connection is not None:
            return True
        connection = await self._engine.connect()
        try:
            got = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            )
            await connection.commit()  # the lock outlives the transaction; end it
        except BaseException:
            await _discard(connection)
            raise
        if not got:
            await connection.close()
            return False
        self._connection = connection
        return True

    async def check(self) -> bool:
        """Whether the lock is still held: its connection answers.  A broken connection
        means PostgreSQL has already dropped the lock; it is forgotten here too."""
        connection = self._connection
        if connection is None:
            return False
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await connection.execute(text("SELECT 1"))
                await connection.commit()
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("lock.connection_lost", key=self._key, error=repr(exc))
            self._connection = None
            await _discard(connection)
            return False
        return True

    async def release(self) -> None:
        """Give the lock back by closing its connection (a no-op when not held)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await _discard(connection)


async def _discard(connection: AsyncConnection) -> None:
    """Close ``connection`` for good: invalidated, so the pool never hands it out again
    (the server ends the session and with it any advisory lock)."""
    try:
        await connection.invalidate()
        await connection.close()
    except (SQLAlchemyError, OSError) as exc:
        log.info("lock.close_failed", error=repr(exc))
