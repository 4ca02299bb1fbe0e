"""One active sweeper across replicas: the background loops (tracker, expiry) run only in the
replica that holds the leader lock.

- PostgreSQL: the lock is a session-level advisory lock (``bot.store.lock``) held on a
  connection of its own.  Replicas without it try again every poll interval; when the holder
  dies its connection closes, PostgreSQL drops the lock, and another replica takes it within
  one interval.  The holder checks its connection every interval and stops its loops the
  moment the lock is gone.
- SQLite: no lock.  An SQLite database serves one process, which runs the loops.

Inbound requests (chat commands, buttons, sign-in) are served by every replica; only the
loops are single.  Exactly-once notices do not depend on the lock (unique claims in the store);
the lock keeps replicas from doing the same sweeps and Graph calls twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy.exc import SQLAlchemyError

log = structlog.get_logger(__name__)

LEADER_LOCK_KEY = 0x656C65766174654C  # "elevateL": distinct from the migration lock
Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
"""A background loop: runs until the event is set (``Tracker.run_forever`` and the like)."""


class Lock(Protocol):
    """What the leader needs of a lock (``bot.store.lock.AdvisoryLock``)."""

    async def try_acquire(self) -> bool:
        """Take the lock if free; True when held."""

    async def check(self) -> bool:
        """Whether the lock is still held."""

    async def release(self) -> None:
        """Give the lock back."""


class Leader:
    """Runs ``loops`` while this process holds ``lock`` (always, when ``lock`` is None)."""

    def __init__(self, lock: Lock | None, interval: timedelta, loops: Sequence[Loop]) -> None:
        self.lock = lock
        self.interval = interval
        self.loops = tuple(loops)
        self.is_leader = False
        self.terms = 0  # how many times this process became the leader

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: acquire, run the loops while the lock holds, stand by otherwise."""
        if self.lock is None:
            self.is_leader = True
            self.terms += 1
            log.info("leader.single_process")
            try:
                await self._run_loops(stop, None)
            finally:
                self.is_leader = False
            return
        standby_logged = False
        try:
            while not stop.is_set():
                if await self._acquire():
                    standby_logged = False
                    await self._run_loops(stop, self.lock)
                elif not standby_logged:
                    log.info("leader.standby", retry_s=self.interval.total_seconds())
                    standby_logged = True
                await _wait(stop, self.interval)
        finally:
            await self._release()

    async def _acquire(self) -> bool:
        assert self.lock is not None
        try:
            return await self.lock.try_acquire()
        except (SQLAlchemyError, OSError) as exc:
            log.warning("leader.acquire_failed", error=repr(exc))
            return False

    async def _run_loops(self, stop: asyncio.Event, lock: Lock | None) -> None:
        """Start the loops; return when ``stop`` is set or the lock is lost."""
        self.is_leader = True
        self.terms += 1
        if lock is not None:
            log.info("leader.acquired", term=self.terms)
        term_stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = [
            asyncio.get_running_loop().create_task(loop(term_stop)) for loop in self.loops
        ]
        try:
            while not stop.is_set():
                await _wait(stop, self.interval)
                if lock is not None and not stop.is_set() and not await lock.check():
                    log.warning("leader.lost", term=self.terms)
                    break
        finally:
            self.is_leader = False
            term_stop.set()
            for task in tasks:
                task.cancel()
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, Exception):  # the loops log their own failures
                    log.error("leader.loop_died", error=repr(result))

    async def _release(self) -> None:
        if self.lock is None:
            return
        try:
            await self.lock.release()
            log.info("leader.released")
        except (SQLAlchemyError, OSError) as exc:
            log.warning("leader.release_failed", error=repr(exc))


async def _wait(stop: asyncio.Event, interval: timedelta) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), interval.total_seconds())
