"""The control API under ``/_sandbox/`` (spec/config.md): state, clock and fault injection.

- ``GET  /_sandbox/state``   tenant, clock, users, groups with members, faults, Graph call
  count, and every snapshot the services registered (requests, approvals, assignments, …).
- ``POST /_sandbox/clock``   ``{"advance": "PT50M"}`` moves the clock forward, then runs the
  lifecycle processors once; answers ``{"now": …}``.
- ``GET|POST /_sandbox/faults``  list, add (``{"path": "<regex>", "status": 429, "count": 3,
  "retry_after": 1}`` or ``{"path": …, "latency_ms": 500}``) or ``{"clear": true}``.

Local only and unauthenticated.  Errors are JSON: ``{"error": {"code": …, "message": …}}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

import isodate
from aiohttp import web

from sandbox.clock import iso
from sandbox.state import FaultRule, SandboxState

MAX_LATENCY_MS = 60_000
MAX_RETRY_AFTER = 3600
_FAULT_KEYS = {"path", "status", "count", "retry_after", "latency_ms"}
Handler = Callable[[web.Request], Awaitable[web.Response]]


class ControlError(Exception):
    """A bad control request (400 unless told otherwise)."""

    def __init__(self, message: str, status: int = 400, code: str = "BadRequest") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date | timedelta):
        return isodate.duration_isoformat(value) if isinstance(value, timedelta) else str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, default=_json_default),
        content_type="application/json",
    )


def _error(exc: ControlError) -> web.Response:
    return _reply({"error": {"code": exc.code, "message": exc.message}}, exc.status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError("The body must be JSON.") from exc
    if not isinstance(body, dict):
        raise ControlError("The body must be a JSON object.")
    return body


def _int(body: dict[str, Any], key: str, low: int, high: int) -> int | None:
    """``body[key]`` as an int in ``[low, high]``, or None when absent/null."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ControlError(f"'{key}' must be an integer from {low} to {high}.")
    return value


def parse_fault(body: dict[str, Any]) -> FaultRule:
    """A fault rule from its JSON form; ControlError for anything malformed."""
    unknown = set(body) - _FAULT_KEYS
    if unknown:
        raise ControlError(f"Unknown fault field(s): {', '.join(sorted(unknown))}.")
    path = body.get("path")
    if not isinstance(path, str) or not path:
        raise ControlError("'path' must be a regular expression (string).")
    try:
        pattern = re.compile(path)
    except re.error as exc:
        raise ControlError(f"'path' is not a valid regular expression: {exc}.") from exc
    status = _int(body, "status", 400, 599)
    latency = _int(body, "latency_ms", 0, MAX_LATENCY_MS) or 0
    if status is None and not latency:
        raise ControlError("A fault needs a 'status' (400-599) or a 'latency_ms'.")
    return FaultRule(
        path=pattern,
        status=status,
        count=_int(body, "count", 1, 1_000_000),
        retry_after=_int(body, "retry_after", 0, MAX_RETRY_AFTER),
        latency_ms=latency,
    )


def parse_advance(body: dict[str, Any]) -> timedelta:
    """The ``advance`` duration: ISO 8601 days/hours/minutes/seconds, not negative."""
    text = body.get("advance")
    if not isinstance(text, str):
        raise ControlError("'advance' must be an ISO 8601 duration such as 'PT50M'.")
    try:
        delta = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError) as exc:
        raise ControlError(f"'{text}' is not an ISO 8601 duration (e.g. PT50M, P1D).") from exc
    if not isinstance(delta, timedelta):
        raise ControlError("Use days, hours, minutes or seconds; months and years vary in length.")
    if delta < timedelta():
        raise ControlError("The clock only moves forward.")
    return delta


def snapshot(state: SandboxState) -> dict[str, Any]:
    """Everything ``GET /_sandbox/state`` reports."""
    tenant = state.tenant
    body: dict[str, Any] = {
        "tenant": {"id": tenant.id, "domain": tenant.domain},
        "now": iso(state.clock.now()),
        "users": [
            {
                "id": u.id,
                "userPrincipalName": u.user_principal_name,
                "displayName": u.display_name,
                "mail": u.mail,
                "managerId": u.manager_id,
                "userType": u.user_type,
            }
            for u in tenant.users
        ],
        "groups": [
            {
                "id": g.id,
                "displayName": g.display_name,
                "securityIdentifier": g.security_identifier,
                "members": list(g.members),
            }
            for g in tenant.groups
        ],
        "faults": [f.describe() for f in state.faults],
        "graph_calls": state.graph_calls,
    }
    for name, take in state.snapshots.items():
        body.setdefault(name, take())
    return body


def register(app: web.Application, state: SandboxState) -> None:
    """Add the ``/_sandbox/`` control routes."""

    def handler(fn: Handler) -> Handler:
        """Turn a ``ControlError`` raised by ``fn`` into its JSON answer."""

        async def wrapped(request: web.Request) -> web.Response:
            try:
                return await fn(request)
            except ControlError as exc:
                return _error(exc)

        return wrapped

    async def get_state(request: web.Request) -> web.Response:
        return _reply(snapshot(state))

    async def clock(request: web.Request) -> web.Response:
        delta = parse_advance(await _body(request))
        now = state.clock.advance(delta)
        state.process()
        state.notify_changed()
        return _reply({"now": iso(now)})

    async def list_faults(request: web.Request) -> web.Response:
        return _reply({"faults": [f.describe() for f in state.faults]})

    async def add_fault(request: web.Request) -> web.Response:
        body = await _body(request)
        if "clear" in body:
            if body != {"clear": True}:
                raise ControlError('Send exactly {"clear": true} to remove every fault.')
            state.faults.clear()
        else:
            state.faults.append(parse_fault(body))
        return await list_faults(request)

    async def wrong_method(request: web.Request) -> web.Response:
        raise ControlError(
            f"{request.method} is not allowed on {request.path}; see GET /_sandbox/.",
            status=405,
            code="MethodNotAllowed",
        )

    async def index(request: web.Request) -> web.Response:
        routes = sorted(
            {
                f"{r.method} {r.resource.canonical}"
                for r in request.app.router.routes()
                if r.resource is not None
                and r.resource.canonical.startswith("/_sandbox/")
                and r.method not in ("HEAD", "*")
            }
        )
        return _reply({"endpoints": routes})

    routes = (
        ("GET", "/_sandbox/", index),
        ("GET", "/_sandbox/state", get_state),
        ("POST", "/_sandbox/clock", clock),
        ("GET", "/_sandbox/faults", list_faults),
        ("POST", "/_sandbox/faults", add_fault),
    )
    for method, path, fn in routes:
        app.router.add_route(method, path, handler(fn))
    for path in sorted({path for _, path, _ in routes}):
        app.router.add_route("*", path, handler(wrong_method))  # JSON 405 for other methods
