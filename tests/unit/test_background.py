"""Work after the answers (adapters/background.py): queued while requests arrive, then run,
tracked, and finished or cancelled at close."""

from __future__ import annotations

import asyncio
import contextvars
import inspect

import structlog

from adapters.background import AfterAnswers

REQUEST = contextvars.ContextVar[str]("request", default="none")


async def test_work_waits_for_a_quiet_moment() -> None:
    """Queued work does not start while requests keep arriving closer than ``quiet_s``; it
    starts once they stop."""
    tasks = AfterAnswers(quiet_s=0.05, max_delay_s=5)
    loop = asyncio.get_running_loop()
    started: list[float] = []

    async def job() -> None:
        started.append(loop.time())

    tasks.request_arrived()
    tasks.spawn(job(), name="job")
    for _ in range(6):  # a burst: a request every 20 ms for 120 ms
        await asyncio.sleep(0.02)
        assert started == []
        tasks.request_arrived()
    last = loop.time()
    assert await tasks.wait_idle(2)
    assert len(started) == 1
    assert started[0] >= last + 0.05 - 0.005


async def test_work_starts_by_the_maximum_delay_under_steady_load() -> None:
    """Requests that never stop delay queued work by at most ``max_delay_s``."""
    tasks = AfterAnswers(quiet_s=0.05, max_delay_s=0.15)
    loop = asyncio.get_running_loop()
    started: list[float] = []

    async def job() -> None:
        started.append(loop.time())

    tasks.request_arrived()
    queued = loop.time()
    tasks.spawn(job(), name="job")
    while not started and loop.time() < queued + 2:
        tasks.request_arrived()
        await asyncio.sleep(0.01)
    assert started, "never started under load"
    assert queued + 0.15 - 0.005 <= started[0] < queued + 0.5


async def test_work_runs_in_the_context_it_was_queued_in() -> None:
    """Each job sees the context variables of the request that queued it (its log fields)."""
    tasks = AfterAnswers(quiet_s=0.01)
    seen: list[str] = []

    async def job() -> None:
        seen.append(REQUEST.get())

    for request in ("first", "second"):
        REQUEST.set(request)
        tasks.spawn(job(), name=request)
    REQUEST.set("later")
    assert await tasks.wait_idle(2)
    assert seen == ["first", "second"]


async def test_failures_go_to_the_jobs_handler_else_to_the_log() -> None:
    tasks = AfterAnswers(quiet_s=0.01)
    handled: list[Exception] = []

    async def fail() -> None:
        raise ValueError("boom")

    async def handle(exc: Exception) -> None:
        handled.append(exc)

    with structlog.testing.capture_logs() as logs:
        tasks.spawn(fail(), name="handled", on_error=handle)
        tasks.spawn(fail(), name="logged")
        assert await tasks.wait_idle(2)
    assert [str(e) for e in handled] == ["boom"]
    failed = [e for e in logs if e["event"] == "background.failed"]
    assert [e["task"] for e in failed] == ["logged"]


async def test_close_starts_queued_work_lets_it_finish_then_cancels_the_rest() -> None:
    """Work queued (even with requests still arriving) is started at close; what ends within
    the grace period ends normally; the rest is cancelled and awaited; nothing is left."""
    tasks = AfterAnswers(quiet_s=10, max_delay_s=10)
    finished: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        finished.append("quick")

    async def slow() -> None:
        await asyncio.sleep(30)
        finished.append("slow")

    tasks.request_arrived()
    tasks.spawn(quick(), name="quick")
    tasks.spawn(slow(), name="slow")
    assert len(tasks) == 2
    await tasks.close(grace=0.2)
    assert finished == ["quick"]
    assert len(tasks) == 0


async def test_work_queued_after_close_is_refused_and_closed() -> None:
    """No task is started and the coroutine is closed (no "never awaited" warning)."""
    tasks = AfterAnswers()
    await tasks.close(grace=0.1)

    async def job() -> None:
        raise AssertionError("must not run")

    work = job()
    with structlog.testing.capture_logs() as logs:
        tasks.spawn(work, name="late")
    assert inspect.getcoroutinestate(work) == inspect.CORO_CLOSED
    assert len(tasks) == 0
    assert [e["event"] for e in logs] == ["background.refused_after_close"]


async def test_wait_idle_reports_a_timeout() -> None:
    """wait_idle is False when work outlives it, True once everything has ended."""
    tasks = AfterAnswers(quiet_s=0.01)
    tasks.spawn(asyncio.sleep(0.3), name="sleep")
    assert await tasks.wait_idle(0.05) is False
    assert await tasks.wait_idle(2) is True
