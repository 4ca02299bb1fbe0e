"""Keyed locks (bot/locks.py): the core orders one person's changes and one request's decisions."""

from __future__ import annotations

import asyncio

from bot.locks import KeyedLocks


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
