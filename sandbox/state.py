"""The sandbox's shared state: tenant, clock, keys, faults, and hooks the services register."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox.clock import Clock
from sandbox.errors import TOO_MANY_REQUESTS, error_response
from sandbox.tenant import Tenant
from sandbox.tokens import SigningKey

GRAPH_AUDIENCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")


@dataclass
class FaultRule:
    """One injected fault: a status answered ``count`` times, or added latency."""

    path: re.Pattern[str]
    status: int | None = None
    count: int | None = None
    retry_after: int | None = None
    latency_ms: int = 0

    def describe(self) -> dict[str, Any]:
        """The rule as JSON for ``/_sandbox/state``."""
        return {
            "path": self.path.pattern,
            "status": self.status,
            "count": self.count,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
        }


@dataclass
class SandboxState:
    """Everything the sandbox's services share while it runs."""

    tenant: Tenant
    state_dir: Path
    delivery_delay: timedelta = timedelta(seconds=1)
    bot_url: str | None = None
    base_url: str = ""
    clock: Clock = field(default_factory=Clock)
    entra_key: SigningKey = field(default_factory=SigningKey)
    botframework_key: SigningKey = field(default_factory=SigningKey)
    # A key nobody publishes: tokens signed with it must be rejected (forgery tests).
    unknown_key: SigningKey = field(default_factory=SigningKey)
    faults: list[FaultRule] = field(default_factory=list)
    # Callables run on every tick and after the clock moves (lifecycle processing).
    processors: list[Callable[[], None]] = field(default_factory=list)
    # name -> callable returning JSON for GET /_sandbox/state.
    snapshots: dict[str, Callable[[], Any]] = field(default_factory=dict)
    # Callables contributing variables to the ready line's ``env``.
    env_parts: list[Callable[[], dict[str, str]]] = field(default_factory=list)
    # Anything a service module keeps (e.g. "em" for entitlement management).
    services: dict[str, Any] = field(default_factory=dict)
    graph_calls: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def issuer(self) -> str:
        """The Entra issuer of tokens this sandbox mints."""
        return f"{self.base_url}/{self.tenant.id}/v2.0"

    def process(self) -> None:
        """Run every registered lifecycle processor once."""
        for proc in self.processors:
            proc()

    def notify_changed(self) -> None:
        """Wake anyone waiting for a change (the demo's live view)."""
        self.changed.set()
        self.changed = asyncio.Event()

    def match_fault(self, path: str) -> FaultRule | None:
        """The first fault rule matching ``path`` that still applies."""
        for rule in self.faults:
            if rule.path.search(path) and (rule.count is None or rule.count > 0):
                return rule
        return None


# The state on the aiohttp app (``request.app[STATE_KEY]``); a str key warns (NotAppKeyWarning).
STATE_KEY = web.AppKey("state", SandboxState)


def throttled_response(retry_after: int | None) -> web.Response:
    """Graph's 429 answer (spec/graph.md §8.2)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return error_response(429, TOO_MANY_REQUESTS, "Please retry again later.", headers)


def fault_middleware(state: SandboxState) -> Any:
    """Middleware applying injected faults before any handler runs (so nothing changes)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)  # type: ignore[no-any-return]
        rule = state.match_fault(request.path_qs)
        if rule is not None:
            if rule.latency_ms:
                await asyncio.sleep(rule.latency_ms / 1000)
            if rule.status is not None:
                if rule.count is not None:
                    rule.count -= 1
                if rule.status == 429:
                    return throttled_response(rule.retry_after)
                headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after else None
                return error_response(
                    rule.status, "serviceNotAvailable", "Injected fault.", headers
                )
        if request.path.startswith(("/v1.0/", "/beta/")):
            state.graph_calls += 1
        state.process()
        return await handler(request)  # type: ignore[no-any-return]

    return middleware
