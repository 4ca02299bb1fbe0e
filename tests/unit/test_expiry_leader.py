"""``Leader``: the background loops run in one replica at a time, and move when it goes.
A ``FakeLock`` plays PostgreSQL's advisory lock (one holder per key, freed when the holder's
connection is gone); the loops are counters."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta

from bot.leader import Leader, Loop

INTERVAL = timedelta(milliseconds=50)


@dataclass
class LockServer:
    """The database's view: who holds the key."""

    holder: FakeLock | None = None


@dataclass
class FakeLock:
    """One replica's lock on ``server``."""

    server: LockServer
    connected: bool = True

    async def try_acquire(self) -> bool:
        """Take the key if free."""
        if self.server.holder is None:
            self.server.holder = self
            self.connected = True
        return self.server.holder is self

    async def check(self) -> bool:
        """Still held: the connection is up and the server says so."""
        return self.connected and self.server.holder is self

    async def release(self) -> None:
        """Give the key back."""
        if self.server.holder is self:
            self.server.holder = None

    def drop_connection(self) -> None:
        """The connection broke: the server dropped the lock."""
        self.connected = False
        if self.server.holder is self:
            self.server.holder = None


@dataclass
class Replica:
    """A process with a leader running counting loops."""

    lock: FakeLock | None
    passes: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.leader = Leader(self.lock, INTERVAL, [self._loop("tracker"), self._loop("expiry")])

    def _loop(self, name: str) -> Loop:
        async def run(stop: asyncio.Event) -> None:
            while not stop.is_set():
                self.passes.append(name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), INTERVAL.total_seconds())

        return run

    def start(self) -> None:
        """Start the leader."""
        self.task = asyncio.get_running_loop().create_task(self.leader.run(self.stop))

    async def kill(self) -> None:
        """SIGKILL: the task is gone without releasing; the server drops its connection."""
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if self.lock is not None:
            self.lock.drop_connection()

    async def shut_down(self) -> None:
        """SIGTERM: stop, and wait for the leader to release."""
        self.stop.set()
        if self.task is not None:
            await self.task


async def settle(intervals: int = 4) -> None:
    """Let a few intervals pass."""
    await asyncio.sleep(INTERVAL.total_seconds() * intervals)


async def test_one_replica_runs_the_loops_and_the_other_takes_over_when_it_dies() -> None:
    """Only the lock holder runs loops; killing it moves them to the other within an interval."""
    server = LockServer()
    a, b = Replica(FakeLock(server)), Replica(FakeLock(server))
    a.start()
    await settle(2)
    b.start()
    await settle()
    assert a.leader.is_leader
    assert not b.leader.is_leader
    assert {"tracker", "expiry"} <= set(a.passes)
    assert b.passes == []
    await a.kill()
    await settle(3)
    assert b.leader.is_leader
    assert {"tracker", "expiry"} <= set(b.passes)
    await b.shut_down()
    assert server.holder is None  # released on a clean shutdown


async def test_a_lost_lock_stops_the_loops_until_it_is_taken_again() -> None:
    """When the lock's connection breaks the loops stop; they start again once re-acquired."""
    server = LockServer()
    a = Replica(FakeLock(server))
    a.start()
    await settle()
    assert a.leader.is_leader
    intruder = FakeLock(server)
    assert a.lock is not None
    a.lock.drop_connection()
    assert await intruder.try_acquire()  # another replica got it meanwhile
    await settle()
    assert not a.leader.is_leader
    count = len(a.passes)
    await settle()
    assert len(a.passes) == count  # no loop runs without the lock
    await intruder.release()
    await settle()
    assert a.leader.is_leader
    assert a.leader.terms == 2
    assert len(a.passes) > count
    await a.shut_down()


async def test_without_a_lock_the_one_process_runs_the_loops() -> None:
    """SQLite: no lock; the loops run until stop."""
    a = Replica(None)
    a.start()
    await settle()
    assert a.leader.is_leader
    assert {"tracker", "expiry"} <= set(a.passes)
    await a.shut_down()
    assert not a.leader.is_leader
