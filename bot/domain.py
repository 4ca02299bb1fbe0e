"""The domain model: frozen dataclasses that carry ids, never transport objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Platform(StrEnum):
    """A chat platform Elevate runs on."""

    SLACK = "slack"
    TEAMS = "teams"


class ApprovalMode(StrEnum):
    """Who enforces approval: Entra itself, or the bot against the same policy."""

    ENTRA = "entra"
    BOT = "bot"


class RequestState(StrEnum):
    """Graph's ``accessPackageAssignmentRequest.state`` (no ``expired``: see spec/graph.md §0)."""

    SUBMITTED = "submitted"
    PENDING_APPROVAL = "pendingApproval"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "deliveryFailed"
    DENIED = "denied"
    SCHEDULED = "scheduled"
    CANCELED = "canceled"
    PARTIALLY_DELIVERED = "partiallyDelivered"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> RequestState:
        """A state from Graph's text (any case); unknown or missing values become UNKNOWN."""
        text = str(getattr(value, "value", value) or "").lower()
        for member in cls:
            if member.value.lower() == text:
                return member
        return cls.UNKNOWN

    @property
    def is_terminal(self) -> bool:
        """Delivered, denied, canceled or failed: the request will not change any more."""
        return self in {
            RequestState.DELIVERED,
            RequestState.DENIED,
            RequestState.CANCELED,
            RequestState.DELIVERY_FAILED,
            RequestState.PARTIALLY_DELIVERED,
        }

    @property
    def is_open(self) -> bool:
        """Still on its way (submitted, pending approval, delivering, scheduled)."""
        return self in {
            RequestState.SUBMITTED,
            RequestState.PENDING_APPROVAL,
            RequestState.DELIVERING,
            RequestState.SCHEDULED,
        }


class RequestKind(StrEnum):
    """What a request does to the assignment."""

    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"


@dataclass(frozen=True)
class Principal:
    """An Entra user."""

    id: str
    upn: str
    display_name: str
    mail: str | None = None
    user_type: str = "Member"

    @property
    def label(self) -> str:
        """``Display Name`` or the UPN when there is no display name."""
        return self.display_name or self.upn


@dataclass(frozen=True)
class ChatUser:
    """A user as a chat platform knows them (verified by the adapter)."""

    platform: Platform
    workspace: str
    user_id: str
    display_name: str | None = None
    email: str | None = None
    aad_object_id: str | None = None


@dataclass(frozen=True)
class SubjectSet:
    """One approver definition of a policy stage (Graph ``subjectSet``)."""

    kind: str  # singleUser | groupMembers | requestorManager | other Graph types
    user_id: str | None = None
    group_id: str | None = None
    manager_level: int = 1
    description: str | None = None


@dataclass(frozen=True)
class PolicyStage:
    """One approval stage of an assignment policy."""

    index: int
    primary: tuple[SubjectSet, ...]
    fallback: tuple[SubjectSet, ...] = ()
    approver_justification_required: bool = False
    auto_deny_after: timedelta | None = None


@dataclass(frozen=True)
class Policy:
    """The parts of an ``accessPackageAssignmentPolicy`` Elevate relies on."""

    id: str
    display_name: str
    package_id: str
    max_duration: timedelta | None  # None: no limit set by the policy
    justification_required: bool
    approval_required_for_add: bool
    approval_required_for_update: bool
    allow_custom_schedule: bool
    self_add: bool = True
    self_update: bool = True
    self_remove: bool = True
    stages: tuple[PolicyStage, ...] = ()
    # Who may be a target: Graph's ``allowedTargetScope`` (``allMemberUsers``,
    # ``specificDirectoryUsers``, ``notSpecified``…) and, for the specific scopes,
    # ``specificAllowedTargets`` (singleUser / groupMembers subject sets).
    target_scope: str = "notSpecified"
    allowed_targets: tuple[SubjectSet, ...] = ()


@dataclass(frozen=True)
class AccessRequest:
    """An assignment request as Graph reports it."""

    id: str
    request_type: str
    state: RequestState
    status: str | None
    target_id: str | None
    justification: str | None = None
    created: datetime | None = None
    completed: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    duration: timedelta | None = None
    assignment_id: str | None = None
    policy_id: str | None = None
    package_id: str | None = None
    requestor_id: str | None = None
    requestor_name: str | None = None


@dataclass(frozen=True)
class Assignment:
    """A (delivered or expired) access package assignment."""

    id: str
    state: str
    target_id: str
    start: datetime | None
    end: datetime | None
    policy_id: str | None = None
    package_id: str | None = None
    target_name: str | None = None
    target_upn: str | None = None
    target_mail: str | None = None

    @property
    def is_active(self) -> bool:
        """Delivered or being delivered."""
        return self.state.lower() in ("delivered", "delivering")


@dataclass(frozen=True)
class ApprovalStageInfo:
    """One stage of an approval as Graph reports it to an approver."""

    id: str
    status: str
    review_result: str
    assigned_to_me: bool
    reviewed_by_id: str | None = None
    reviewed_by_name: str | None = None
    justification: str | None = None


@dataclass(frozen=True)
class ApproverSet:
    """Who may decide a request's current stage."""

    stage_index: int
    approvers: tuple[Principal, ...]
    from_fallback: bool = False

    def contains(self, principal_id: str) -> bool:
        """True when ``principal_id`` is one of the approvers."""
        return any(p.id == principal_id for p in self.approvers)


@dataclass(frozen=True)
class Decision:
    """An approver's decision on a request."""

    request_id: str
    approve: bool
    approver: Principal
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class RequestView:
    """What chat shows about a request (the same for every card copy and platform)."""

    request_id: str
    kind: str
    requester: Principal
    duration: timedelta | None
    justification: str
    stage_index: int
    stage_count: int
    state: str  # pending | approved | denied | canceled | expired | failed
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    end: datetime | None = None
    package_name: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
