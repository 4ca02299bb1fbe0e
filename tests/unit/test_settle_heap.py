"""The start-up heap is frozen once, after every other start-up step (adapters/server.py)."""

from __future__ import annotations

import gc

from aiohttp import web

from adapters.server import settle_heap_after_start


async def test_the_heap_is_frozen_after_the_front_ends_start_up() -> None:
    """A front end's own start-up step (Teams fetches its signing keys) runs first; what it
    and start-up made is frozen after it."""
    app = web.Application()
    frozen_during_front_end: list[int] = []

    async def front_end_start(_: web.Application) -> None:
        frozen_during_front_end.append(gc.get_freeze_count())

    app.on_startup.append(front_end_start)
    settle_heap_after_start(app)
    runner = web.AppRunner(app)
    before = gc.get_freeze_count()
    try:
        await runner.setup()
        assert frozen_during_front_end == [before]
        assert gc.get_freeze_count() > before
    finally:
        await runner.cleanup()
        gc.unfreeze()  # the rest of the test session collects as usual
