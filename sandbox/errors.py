"""Microsoft Graph's error envelope (spec/graph.md §8.3) and the codes the sandbox answers with.

Graph publishes no entitlement-management specific codes; they are constants here so they can be
changed in one place.  Clients must branch on the HTTP status only.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

BAD_REQUEST = "BadRequest"
FORBIDDEN = "Forbidden"
ACCESS_DENIED = "accessDenied"
NOT_FOUND = "ResourceNotFound"
DIRECTORY_NOT_FOUND = "Request_ResourceNotFound"
AUTHORIZATION_DENIED = "Authorization_RequestDenied"
CONFLICT = "Conflict"
UNAUTHORIZED = "InvalidAuthenticationToken"
TOO_MANY_REQUESTS = "TooManyRequests"
# Entitlement-management validation codes (not published by Microsoft; configurable here).
EM_POLICY_DISALLOWS_REQUESTOR = "RequestorNotAllowed"
EM_DURATION_TOO_LONG = "ScheduleExceedsPolicyMaximum"
EM_CUSTOM_SCHEDULE_NOT_ALLOWED = "CustomScheduleNotAllowed"
EM_JUSTIFICATION_REQUIRED = "JustificationRequired"
EM_EXISTING_OPEN_REQUEST = "ExistingOpenRequest"
EM_ALREADY_ASSIGNED = "ExistingAssignment"
EM_ASSIGNMENT_NOT_FOUND = "AssignmentNotFound"
EM_INVALID_STATE = "InvalidRequestState"


class GraphError(Exception):
    """Raised by handlers; turned into the Graph error envelope by the middleware."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def envelope(code: str, message: str, request_id: str | None = None) -> dict[str, object]:
    """The JSON body Graph sends with an error."""
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id or str(uuid.uuid4()),
                "client-request-id": request_id or str(uuid.uuid4()),
            },
        }
    }


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """An aiohttp response carrying the Graph error envelope."""
    return web.Response(
        status=status,
        text=json.dumps(envelope(code, message)),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def graph_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn ``GraphError`` raised anywhere in a handler into its envelope."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except GraphError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers)
