"""Structured logs (structlog): JSON in production, readable on a terminal."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = ("token", "secret", "password", "authorization", "code", "assertion")


@functools.lru_cache(maxsize=1024)
def _secret(key: str) -> bool:
    """Whether a log field's name says it holds a secret (few names, so cached)."""
    return key != "event" and any(s in key.lower() for s in _SECRET_KEYS)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in [k for k in event if _secret(k)]:
        event[key] = "[redacted]"
    return event


def configure_logging(fmt: str | None, level: int = logging.INFO) -> None:
    """Configure structlog and the stdlib root logger once at start."""
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")
