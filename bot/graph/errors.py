"""The one place where Graph failures become Elevate errors, and where every call is timed.

Branching is on the HTTP status (Graph's guidance); ``error.code`` and ``message`` are kept for
logs and for the detail of a ``GraphRejected``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import httpx
import structlog
from azure.core.exceptions import ClientAuthenticationError
from kiota_abstractions.api_error import APIError
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from bot.errors import (
    ElevateError,
    GraphAuthError,
    GraphError,
    GraphForbidden,
    GraphRejected,
    GraphThrottled,
    GraphUnavailable,
    NotFound,
)
from bot.metrics import Metrics

log = structlog.get_logger(__name__)
T = TypeVar("T")
CALL_TIMEOUT_S = 30.0


def map_graph_error(exc: BaseException) -> ElevateError:
    """The Elevate error for a Graph/SDK/transport failure."""
    if isinstance(exc, ElevateError):
        return exc
    if isinstance(exc, APIError):
        status = exc.response_status_code
        code: str | None = None
        message: str | None = None
        if isinstance(exc, ODataError) and exc.error is not None:
            code, message = exc.error.code, exc.error.message
        detail = f"{status} {code}: {message}"
        if status == 401:
            return GraphAuthError(status=status, code=code, detail=detail)
        if status == 403:
            return GraphForbidden(status=status, code=code, detail=detail)
        if status == 404:
            return NotFound("That item no longer exists in Microsoft Entra.", detail=detail)
        if status == 429:
            return GraphThrottled(status=status, code=code, detail=detail)
        if status is not None and 400 <= status < 500:
            return GraphRejected(message, status=status, code=code, detail=detail)
        return GraphUnavailable(status=status, code=code, detail=detail)
    if isinstance(exc, ClientAuthenticationError):
        return GraphAuthError(detail=str(exc.message))
    if isinstance(exc, httpx.TimeoutException | TimeoutError | asyncio.TimeoutError):
        return GraphUnavailable(detail=f"timed out: {type(exc).__name__}")
    if isinstance(exc, httpx.HTTPError | OSError):
        return GraphUnavailable(detail=f"{type(exc).__name__}: {exc}")
    return GraphError(detail=f"{type(exc).__name__}: {exc}")


async def graph_call(
    operation: str,
    call: Awaitable[T],
    metrics: Metrics | None = None,
    timeout_s: float = CALL_TIMEOUT_S,
) -> T:
    """Await one Graph call with a timeout; map failures; record latency and errors."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            return await call
    except (APIError, ClientAuthenticationError, httpx.HTTPError, OSError, TimeoutError) as exc:
        mapped = map_graph_error(exc)
        if metrics is not None:
            metrics.graph_errors.labels(operation, type(mapped).__name__).inc()
        log.warning(
            "graph.call_failed",
            operation=operation,
            error=type(mapped).__name__,
            detail=mapped.detail,
        )
        raise mapped from exc
    except ElevateError as exc:
        if metrics is not None:
            metrics.graph_errors.labels(operation, type(exc).__name__).inc()
        raise
    finally:
        if metrics is not None:
            metrics.graph_latency.labels(operation).observe(time.perf_counter() - started)
