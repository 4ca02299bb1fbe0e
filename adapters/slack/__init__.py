"""Slack front end (placeholder until it is built: see its issue)."""

from __future__ import annotations

from typing import Any


def mount(app: Any, components: Any, fanout: Any) -> None:
    """Mount the Slack front end on the shared server."""
    raise NotImplementedError("the Slack front end is not built yet")
