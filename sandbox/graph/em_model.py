"""Entitlement-management records the sandbox keeps, and the store that indexes them.

Requests, assignments and approvals are small dataclasses; their Graph v1.0 JSON is rendered
from them in ``em_render``.  The store keeps append-only lists (insertion order is the listing
order, so paging never sorts) and indexes assignments by package and by target, so that the
common filters touch only the matching slice.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import isodate

from sandbox.errors import BAD_REQUEST, GraphError

# Request states in which a request is still moving (spec/graph.md §1.2).
OPEN_STATES = frozenset({"submitted", "pendingApproval", "delivering", "scheduled"})
# Assignment states that count as "has access".
ACTIVE_ASSIGNMENT_STATES = frozenset({"delivering", "delivered"})
ZERO_GUID = "00000000-0000-0000-0000-000000000000"


def new_id() -> str:
    """A fresh object id."""
    return str(uuid.uuid4())


def parse_datetime(text: Any, what: str) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime; 400 when it is not one."""
    if not isinstance(text, str):
        raise GraphError(400, BAD_REQUEST, f"Invalid value for '{what}': expected a timestamp.")
    try:
        value: datetime = isodate.parse_datetime(text)
    except (ValueError, isodate.ISO8601Error) as exc:
        raise GraphError(400, BAD_REQUEST, f"Invalid value '{text}' for '{what}'.") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_duration(text: Any, what: str) -> timedelta | isodate.Duration:
    """An ISO 8601 duration (``PT8H``, ``P1M``); 400 for anything else.

    msgraph-sdk serialises a Python ``timedelta`` as ``"7 days, 0:00:00"``; Graph rejects that,
    and so does this.
    """
    if not isinstance(text, str) or not text.strip():
        raise GraphError(400, BAD_REQUEST, f"Invalid value for '{what}': expected a duration.")
    try:
        value = isodate.parse_duration(text.strip())
    except (ValueError, isodate.ISO8601Error) as exc:
        raise GraphError(
            400, BAD_REQUEST, f"Invalid value '{text}' for '{what}': not an ISO 8601 duration."
        ) from exc
    base = datetime(2000, 1, 1, tzinfo=UTC)
    if base + value <= base:
        raise GraphError(400, BAD_REQUEST, f"The '{what}' must be positive.")
    return value


@dataclass
class Expiration:
    """An ``expirationPattern``: ``type`` plus the ISO duration text or the end time."""

    type: str = "notSpecified"
    duration: str | None = None
    end: datetime | None = None

    def end_from(self, start: datetime) -> datetime | None:
        """The end this pattern gives an assignment starting at ``start`` (None: no end)."""
        if self.type == "afterDuration" and self.duration:
            return start + parse_duration(self.duration, "duration")
        if self.type == "afterDateTime":
            return self.end
        return None


@dataclass
class Schedule:
    """An ``entitlementManagementSchedule`` as sent in a request (recurrence unsupported)."""

    start: datetime | None = None
    expiration: Expiration = field(default_factory=Expiration)

    @property
    def custom(self) -> bool:
        """True when it sets a start or an expiration (rather than leaving both to the policy)."""
        return self.start is not None or self.expiration.type != "notSpecified"


@dataclass(frozen=True)
class Subject:
    """Who a request came from: a user or the service principal of an app."""

    object_id: str
    kind: Literal["user", "servicePrincipal"]
    client_id: str | None = None


@dataclass
class Stage:
    """One started approval stage of a request."""

    id: str
    index: int
    started: datetime
    status: str = "InProgress"
    review_result: str = "NotReviewed"
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    justification: str | None = None


@dataclass
class Approval:
    """The approval of a request (its id is the request's id); stages appear as they start."""

    id: str
    policy_stages: list[dict[str, Any]]
    stages: list[Stage] = field(default_factory=list)

    @property
    def current(self) -> Stage | None:
        """The stage waiting for a decision, if any."""
        return next((s for s in self.stages if s.status == "InProgress"), None)


@dataclass
class Assignment:
    """An access package assignment.  ``state`` is None until its request starts delivery."""

    id: str
    package_id: str
    policy_id: str
    target_id: str
    state: str | None = None
    status: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    expiration_type: str = "notSpecified"
    expired: datetime | None = None

    @property
    def active(self) -> bool:
        """Delivered or being delivered."""
        return self.state in ACTIVE_ASSIGNMENT_STATES


@dataclass
class Request:
    """An assignment request and where it stands in its lifecycle."""

    id: str
    request_type: str
    package_id: str
    policy_id: str
    target_id: str
    assignment_id: str
    requestor: Subject | None
    created: datetime
    state: str = "submitted"
    status: str = "Accepted"
    justification: str | None = None
    schedule: Schedule | None = None
    answers: list[Any] = field(default_factory=list)
    completed: datetime | None = None
    # When the lifecycle processor next moves this request (sandbox clock).
    next_at: datetime | None = None
    approval: Approval | None = None
    approved: bool = False

    @property
    def open(self) -> bool:
        """Not yet finished (delivered, denied, canceled)."""
        return self.state in OPEN_STATES

    @property
    def kind(self) -> str:
        """``add``, ``update`` or ``remove``."""
        for kind in ("add", "update", "remove"):
            if self.request_type.lower().endswith(kind):
                return kind
        return self.request_type.lower()


class EmStore:
    """All entitlement-management records of one sandbox (``state.services["em"]``)."""

    def __init__(self, created: datetime) -> None:
        self.created = created
        self.requests: dict[str, Request] = {}
        self.request_order: list[Request] = []
        self.assignments: dict[str, Assignment] = {}
        self.assignment_order: list[Assignment] = []
        self.by_package: dict[str, list[Assignment]] = defaultdict(list)
        self.by_target: dict[str, list[Assignment]] = defaultdict(list)
        self.open: dict[str, Request] = {}
        self._expiries: list[tuple[datetime, int, str]] = []
        self._seq = itertools.count()
        # Paging shortcuts: (query key, offset) -> position in the candidate list.
        self.cursors: dict[tuple[Any, ...], int] = {}

    def add_request(self, request: Request) -> None:
        """Record a new request."""
        self.requests[request.id] = request
        self.request_order.append(request)
        if request.open:
            self.open[request.id] = request
        self.touch()

    def add_assignment(self, assignment: Assignment) -> None:
        """Record a new assignment (indexed by package and target)."""
        self.assignments[assignment.id] = assignment
        self.assignment_order.append(assignment)
        self.by_package[assignment.package_id.lower()].append(assignment)
        self.by_target[assignment.target_id.lower()].append(assignment)
        self.touch()

    def of_target(self, user_id: str) -> list[Assignment]:
        """Every assignment of a user (ids compare case-insensitively, as in filters)."""
        return self.by_target.get(user_id.lower(), [])

    def of_package(self, package_id: str) -> list[Assignment]:
        """Every assignment of an access package."""
        return self.by_package.get(package_id.lower(), [])

    def watch_expiry(self, assignment: Assignment) -> None:
        """Remember to expire ``assignment`` at its end (call again after the end changes)."""
        if assignment.end is not None:
            heapq.heappush(self._expiries, (assignment.end, next(self._seq), assignment.id))

    def due_expiries(self, now: datetime) -> Iterator[Assignment]:
        """Delivered assignments whose end has passed (each once)."""
        while self._expiries and self._expiries[0][0] <= now:
            end, _, assignment_id = heapq.heappop(self._expiries)
            assignment = self.assignments[assignment_id]
            if assignment.state == "delivered" and assignment.end == end:
                yield assignment

    def touch(self) -> None:
        """Something changed: forget paging shortcuts."""
        self.cursors.clear()
