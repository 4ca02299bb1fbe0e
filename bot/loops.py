"""The background loops' common shape: a pass every interval until stopped, surviving failures."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from bot.errors import ElevateError

log = structlog.get_logger(__name__)


async def repeat(
    name: str, run_once: Callable[[], Awaitable[object]], interval: timedelta, stop: asyncio.Event
) -> None:
    """Call ``run_once`` every ``interval`` until ``stop`` is set; a failed pass is logged."""
    while not stop.is_set():
        try:
            await run_once()
        except ElevateError as exc:
            log.warning("loop.pass_failed", loop=name, error=type(exc).__name__, detail=exc.detail)
        except Exception:  # the loop must survive anything one pass meets
            log.exception("loop.pass_crashed", loop=name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval.total_seconds())
