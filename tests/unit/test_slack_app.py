"""The Slack front end's background work and per-user locks (adapters/slack/app.py)."""

from __future__ import annotations

import asyncio

from adapters.slack.app import BackgroundTasks
from bot.locks import KeyedLocks


async def test_close_lets_work_finish_then_cancels_the_rest() -> None:
    """Work that ends within the grace period ends normally; the rest is cancelled and
    awaited, and nothing is left running."""
    tasks = BackgroundTasks()
    finished: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        finished.append("quick")

    async def slow() -> None:
        await asyncio.sleep(30)
        finished.append("slow")

    tasks.spawn(quick(), name="quick")
    slow_task = tasks.spawn(slow(), name="slow")
    await tasks.close(grace=0.2)
    assert finished == ["quick"]
    assert slow_task.cancelled()
    assert len(tasks) == 0


async def test_wait_idle_reports_a_timeout() -> None:
    """wait_idle is False when work outlives it, True once everything has ended."""
    tasks = BackgroundTasks()
    tasks.spawn(asyncio.sleep(0.2), name="sleep")
    assert await tasks.wait_idle(0.01) is False
    assert await tasks.wait_idle(2) is True


async def test_keyed_locks_serialise_one_key_and_not_others() -> None:
    """Two holders of one key run one after the other; another key runs alongside; no lock
    is kept once nobody uses it."""
    locks = KeyedLocks()
    events: list[str] = []

    async def hold(key: str, name: str) -> None:
        async with locks.hold(key):
            events.append(f"{name} in")
            await asyncio.sleep(0.05)
            events.append(f"{name} out")

    await asyncio.gather(hold("alice", "a1"), hold("alice", "a2"), hold("bob", "b"))
    assert events.index("a1 out") < events.index("a2 in")
    assert events.index("b in") < events.index("a1 out")
    assert locks._locks == {}
