"""Converters from Microsoft Graph's JSON to the domain model (pure functions).

Elevate sends its requests through msgraph-sdk (URLs, auth, retries, throttling) but reads the
answers as JSON: msgraph-sdk's models cost milliseconds per object to build, and the first one
built imports over a thousand model modules (the user, request and policy types reference most of
Graph), which would stall the event loop on first use and leave a heap that makes every full
garbage collection take tens of milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import isodate

from bot.domain import (
    AccessRequest,
    ApprovalStageInfo,
    Assignment,
    Policy,
    PolicyStage,
    Principal,
    RequestState,
    SubjectSet,
)

ZERO_GUID = "00000000-0000-0000-0000-000000000000"

JsonObject = Mapping[str, Any]


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _json_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return _aware(datetime.fromisoformat(value))
    except ValueError:
        return None


def _json_duration(value: Any) -> timedelta | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError):
        return None
    return parsed if isinstance(parsed, timedelta) else None


def _json_object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def assignment_from_json(a: Mapping[str, Any], package_id: str | None = None) -> Assignment:
    """An Assignment from an assignment's Graph JSON (``target`` and ``assignmentPolicy`` used
    when expanded)."""
    start, end, _ = _schedule(a.get("schedule"))
    target = _json_object(a.get("target"))
    policy = _json_object(a.get("assignmentPolicy"))
    package = _json_object(a.get("accessPackage"))
    return Assignment(
        id=str(a.get("id") or ""),
        state=str(a.get("state") or ""),
        target_id=str(target.get("objectId") or ""),
        start=start,
        end=end,
        policy_id=policy.get("id"),
        package_id=package.get("id") or package_id,
        target_name=target.get("displayName"),
        target_upn=target.get("principalName"),
        target_mail=target.get("email"),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _objects(value: Any) -> list[JsonObject]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _id_of(value: Any) -> str | None:
    return _text(_json_object(value).get("id")) or None


def principal_from_json(raw: JsonObject) -> Principal | None:
    """A Principal from a directoryObject's JSON (None for anything but a user)."""
    kind = str(raw.get("@odata.type") or "#microsoft.graph.user")
    user_id = _text(raw.get("id"))
    if kind.lower() != "#microsoft.graph.user" or not user_id:
        return None
    upn = _text(raw.get("userPrincipalName")) or ""
    return Principal(
        id=user_id,
        upn=upn,
        display_name=_text(raw.get("displayName")) or upn or user_id,
        mail=_text(raw.get("mail")),
        user_type=_text(raw.get("userType")) or "Member",
    )


def _subject(s: JsonObject) -> SubjectSet:
    kind = str(s.get("@odata.type") or "unknown").rsplit(".", 1)[-1]
    description = _text(s.get("description"))
    if kind == "singleUser":
        return SubjectSet(kind, user_id=_text(s.get("userId")), description=description)
    if kind == "groupMembers":
        return SubjectSet(kind, group_id=_text(s.get("groupId")), description=description)
    if kind == "requestorManager":
        level = s.get("managerLevel")
        return SubjectSet(kind, manager_level=level if isinstance(level, int) and level else 1)
    return SubjectSet(kind)


def _stage(index: int, s: JsonObject) -> PolicyStage:
    return PolicyStage(
        index=index,
        primary=tuple(_subject(x) for x in _objects(s.get("primaryApprovers"))),
        fallback=tuple(_subject(x) for x in _objects(s.get("fallbackPrimaryApprovers"))),
        approver_justification_required=s.get("isApproverJustificationRequired") is True,
        auto_deny_after=_json_duration(s.get("durationBeforeAutomaticDenial")),
    )


def policy_from_json(p: JsonObject, package_id: str) -> Policy:
    """The policy facts Elevate relies on, from an assignment policy's JSON."""
    exp = _json_object(p.get("expiration"))
    max_duration: timedelta | None = None
    if str(exp.get("type") or "").lower() == "afterduration":
        max_duration = _json_duration(exp.get("duration"))
    req = p.get("requestorSettings")
    appr = _json_object(p.get("requestApprovalSettings"))

    def self_service(name: str) -> bool:  # no requestor settings: Graph's defaults allow it
        return not isinstance(req, Mapping) or req.get(name) is True

    return Policy(
        id=_text(p.get("id")) or "",
        display_name=_text(p.get("displayName")) or "",
        package_id=_id_of(p.get("accessPackage")) or package_id,
        max_duration=max_duration,
        justification_required=appr.get("isRequestorJustificationRequired") is True,
        approval_required_for_add=appr.get("isApprovalRequiredForAdd") is True,
        approval_required_for_update=appr.get("isApprovalRequiredForUpdate") is True,
        allow_custom_schedule=isinstance(req, Mapping)
        and req.get("allowCustomAssignmentSchedule") is True,
        self_add=self_service("enableTargetsToSelfAddAccess"),
        self_update=self_service("enableTargetsToSelfUpdateAccess"),
        self_remove=self_service("enableTargetsToSelfRemoveAccess"),
        stages=tuple(_stage(i, s) for i, s in enumerate(_objects(appr.get("stages")))),
        target_scope=_text(p.get("allowedTargetScope")) or "notSpecified",
        allowed_targets=tuple(_subject(x) for x in _objects(p.get("specificAllowedTargets"))),
    )


def _schedule(value: Any) -> tuple[datetime | None, datetime | None, timedelta | None]:
    sched = _json_object(value)
    if not sched:
        return None, None, None
    exp = _json_object(sched.get("expiration"))
    start = _json_datetime(sched.get("startDateTime"))
    end = _json_datetime(exp.get("endDateTime"))
    duration = _json_duration(exp.get("duration"))
    if end is None and start is not None and duration:
        end = start + duration
    return start, end, duration


def request_from_json(r: JsonObject) -> AccessRequest:
    """An AccessRequest from a request's JSON (assignment and requestor used when expanded)."""
    start, end, duration = _schedule(r.get("schedule"))
    assignment = r.get("assignment")
    policy_id: str | None = None
    target_id: str | None = None
    assignment_id: str | None = None
    if isinstance(assignment, Mapping):
        assignment_id = _text(assignment.get("id"))
        policy_id = _id_of(assignment.get("assignmentPolicy")) or _text(
            assignment.get("assignmentPolicyId")
        )
        target_id = _text(_json_object(assignment.get("target")).get("objectId")) or _text(
            assignment.get("targetId")
        )
        a_start, a_end, a_duration = _schedule(assignment.get("schedule"))
        start, end, duration = start or a_start, end or a_end, duration or a_duration
    requestor = _json_object(r.get("requestor"))
    requestor_id = _text(requestor.get("objectId"))
    return AccessRequest(
        id=_text(r.get("id")) or "",
        request_type=_text(r.get("requestType")) or "",
        state=RequestState.parse(r.get("state")),
        status=_text(r.get("status")),
        target_id=target_id or requestor_id,
        justification=_text(r.get("justification")),
        created=_json_datetime(r.get("createdDateTime")),
        completed=_json_datetime(r.get("completedDateTime")),
        start=start,
        end=end,
        duration=duration,
        assignment_id=assignment_id,
        policy_id=policy_id,
        package_id=_id_of(r.get("accessPackage")),
        requestor_id=requestor_id,
        requestor_name=_text(requestor.get("displayName")),
    )


def stage_info_from_json(s: JsonObject) -> ApprovalStageInfo:
    """One approval stage as the caller sees it."""
    reviewer = _json_object(s.get("reviewedBy"))
    reviewer_id = _text(reviewer.get("id"))
    if reviewer_id == ZERO_GUID:
        reviewer_id = None
    return ApprovalStageInfo(
        id=_text(s.get("id")) or "",
        status=_text(s.get("status")) or "",
        review_result=_text(s.get("reviewResult")) or "",
        assigned_to_me=s.get("assignedToMe") is True,
        reviewed_by_id=reviewer_id or None,
        reviewed_by_name=_text(reviewer.get("displayName")) if reviewer_id else None,
        justification=_text(s.get("justification")),
    )
