"""Work that runs after an HTTP answer, for both chat front ends: answers come first.

Slack wants its ack within 3 s and the Bot Framework its answer within 15 s, while the work a
command starts (Graph, the store, cards) takes seconds.  So a front end answers at once and
hands the rest to ``AfterAnswers``, which **queues** it: nothing is started while requests keep
arriving.  Queued work starts once no request has arrived for ``quiet_s`` (and at the latest
``max_delay_s`` after it was queued), so a burst of requests is answered before the work they
start competes with the answers for the event loop.  A queued job costs the answering path one
list append; its task, and everything else, comes later.  The delay is invisible next to
Graph's own latency.

Each job runs in a copy of the context it was queued in (its request's log fields).  Failures go
to the job's ``on_error`` (the front end tells its user), else they are logged.  ``close`` starts
what is queued, lets running work finish for a grace period, then cancels the rest.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)

QUIET_S = 0.02
MAX_START_DELAY_S = 0.25
SHUTDOWN_GRACE_S = 10.0

Job = Coroutine[Any, Any, None]
ErrorHandler = Callable[[Exception], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Queued:
    work: Job
    name: str
    context: contextvars.Context
    on_error: ErrorHandler | None


def _close(work: Job, _: object) -> None:
    work.close()


class AfterAnswers:
    """Background work of one front end: queued while requests arrive, then run and tracked."""

    def __init__(self, *, quiet_s: float = QUIET_S, max_delay_s: float = MAX_START_DELAY_S) -> None:
        self.quiet_s = quiet_s
        self.max_delay_s = max_delay_s
        self._queued: deque[_Queued] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._last_request = float("-inf")
        self._first_queued = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def request_arrived(self) -> None:
        """Note an incoming request: queued work waits for a quiet moment."""
        self._last_request = asyncio.get_running_loop().time()

    def spawn(self, work: Job, *, name: str, on_error: ErrorHandler | None = None) -> None:
        """Queue ``work`` to run after the answers (in a copy of the current context);
        ``on_error`` gets any exception it raises."""
        if self._closed:
            work.close()
            log.warning("background.refused_after_close", task=name)
            return
        loop = asyncio.get_running_loop()
        if not self._queued:
            self._first_queued = loop.time()
        self._queued.append(_Queued(work, name, contextvars.copy_context(), on_error))
        if self._timer is None:
            self._timer = loop.call_at(self._due(), self._start_due)

    def _due(self) -> float:
        return min(self._last_request + self.quiet_s, self._first_queued + self.max_delay_s)

    def _start_due(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        if self._queued and loop.time() < (due := self._due()):
            self._timer = loop.call_at(due, self._start_due)  # a request came meanwhile
            return
        self._start_all()

    def _start_all(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queued:
            job = self._queued.popleft()
            task = loop.create_task(
                self._run(job.work, job.name, job.on_error), name=job.name, context=job.context
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            # Cancelled before it began, the job must still be closed (else Python warns that
            # it was never awaited); closing a finished coroutine does nothing.
            task.add_done_callback(functools.partial(_close, job.work))

    @staticmethod
    async def _run(work: Job, name: str, on_error: ErrorHandler | None) -> None:
        try:
            await work
        except Exception as exc:  # the job's one error handler, else the log
            if on_error is None:
                log.exception("background.failed", task=name)
                return
            try:
                await on_error(exc)
            except Exception:
                log.exception("background.error_handler_failed", task=name)

    def __len__(self) -> int:
        """Jobs queued or running."""
        return len(self._queued) + len(self._running)

    async def wait_idle(self, within: float | None = None) -> bool:
        """Wait until nothing is queued or running (jobs may queue more); False when that
        takes longer than ``within`` seconds (tests and benchmarks: "the bot has answered")."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while self._queued or self._running:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            if self._running:
                await asyncio.wait(set(self._running), timeout=remaining)
            else:
                wait = max(0.0, self._due() - loop.time()) + 0.001
                await asyncio.sleep(wait if remaining is None else min(wait, remaining))
        return True

    async def close(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        """Start what is queued, give running work ``grace`` seconds, then cancel and await
        what is left.  Work queued afterwards is refused (closed, logged)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._start_all()
        await self.wait_idle(grace)
        pending = set(self._running)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
