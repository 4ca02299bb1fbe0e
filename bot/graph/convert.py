"""Converters from msgraph-sdk models to the domain model (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import isodate
from msgraph.generated.models.access_package_approval_stage import AccessPackageApprovalStage
from msgraph.generated.models.access_package_assignment import AccessPackageAssignment
from msgraph.generated.models.access_package_assignment_policy import (
    AccessPackageAssignmentPolicy,
)
from msgraph.generated.models.access_package_assignment_request import (
    AccessPackageAssignmentRequest,
)
from msgraph.generated.models.approval_stage import ApprovalStage
from msgraph.generated.models.directory_object import DirectoryObject
from msgraph.generated.models.group_members import GroupMembers
from msgraph.generated.models.requestor_manager import RequestorManager
from msgraph.generated.models.single_user import SingleUser
from msgraph.generated.models.subject_set import SubjectSet as GraphSubjectSet
from msgraph.generated.models.user import User

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


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def to_principal(obj: User | DirectoryObject | None) -> Principal | None:
    """A Principal from a Graph user (None for other directory objects)."""
    if obj is None or not isinstance(obj, User) or not obj.id:
        return None
    return Principal(
        id=obj.id,
        upn=obj.user_principal_name or "",
        display_name=obj.display_name or obj.user_principal_name or obj.id,
        mail=obj.mail,
        user_type=obj.user_type or "Member",
    )


def _subject(s: GraphSubjectSet) -> SubjectSet:
    if isinstance(s, SingleUser):
        return SubjectSet("singleUser", user_id=s.user_id, description=s.description)
    if isinstance(s, GroupMembers):
        return SubjectSet("groupMembers", group_id=s.group_id, description=s.description)
    if isinstance(s, RequestorManager):
        return SubjectSet("requestorManager", manager_level=s.manager_level or 1)
    kind = (s.odata_type or "unknown").rsplit(".", 1)[-1]
    return SubjectSet(kind)


def _stage(index: int, s: AccessPackageApprovalStage) -> PolicyStage:
    return PolicyStage(
        index=index,
        primary=tuple(_subject(x) for x in s.primary_approvers or []),
        fallback=tuple(_subject(x) for x in s.fallback_primary_approvers or []),
        approver_justification_required=bool(s.is_approver_justification_required),
        auto_deny_after=s.duration_before_automatic_denial,
    )


def to_policy(p: AccessPackageAssignmentPolicy, package_id: str) -> Policy:
    """The policy facts Elevate relies on."""
    exp = p.expiration
    max_duration: timedelta | None = None
    if exp is not None and _enum_text(exp.type).lower() == "afterduration" and exp.duration:
        max_duration = exp.duration
    req = p.requestor_settings
    appr = p.request_approval_settings
    return Policy(
        id=p.id or "",
        display_name=p.display_name or "",
        package_id=(p.access_package.id if p.access_package else None) or package_id,
        max_duration=max_duration,
        justification_required=bool(appr and appr.is_requestor_justification_required),
        approval_required_for_add=bool(appr and appr.is_approval_required_for_add),
        approval_required_for_update=bool(appr and appr.is_approval_required_for_update),
        allow_custom_schedule=bool(req and req.allow_custom_assignment_schedule),
        self_add=bool(req is None or req.enable_targets_to_self_add_access),
        self_update=bool(req is None or req.enable_targets_to_self_update_access),
        self_remove=bool(req is None or req.enable_targets_to_self_remove_access),
        stages=tuple(_stage(i, s) for i, s in enumerate((appr.stages if appr else None) or [])),
    )


def _schedule(
    sched: Any,
) -> tuple[datetime | None, datetime | None, timedelta | None]:
    if sched is None:
        return None, None, None
    start = _aware(sched.start_date_time)
    exp = sched.expiration
    end = _aware(exp.end_date_time) if exp else None
    duration = exp.duration if exp else None
    if end is None and start is not None and duration:
        end = start + duration
    return start, end, duration


def to_request(r: AccessPackageAssignmentRequest) -> AccessRequest:
    """An AccessRequest from Graph's request (assignment/requestor used when expanded)."""
    start, end, duration = _schedule(r.schedule)
    assignment = r.assignment
    policy_id: str | None = None
    target_id: str | None = None
    assignment_id: str | None = None
    if assignment is not None:
        assignment_id = assignment.id
        data = assignment.additional_data or {}
        policy_id = (assignment.assignment_policy.id if assignment.assignment_policy else None) or (
            data.get("assignmentPolicyId")
        )
        target_id = (assignment.target.object_id if assignment.target else None) or data.get(
            "targetId"
        )
        a_start, a_end, a_duration = _schedule(assignment.schedule)
        start, end, duration = start or a_start, end or a_end, duration or a_duration
    requestor = r.requestor
    return AccessRequest(
        id=r.id or "",
        request_type=_enum_text(r.request_type),
        state=RequestState.parse(r.state),
        status=r.status,
        target_id=target_id or (requestor.object_id if requestor else None),
        justification=r.justification,
        created=_aware(r.created_date_time),
        completed=_aware(r.completed_date_time),
        start=start,
        end=end,
        duration=duration,
        assignment_id=assignment_id,
        policy_id=policy_id,
        package_id=r.access_package.id if r.access_package else None,
        requestor_id=requestor.object_id if requestor else None,
        requestor_name=requestor.display_name if requestor else None,
    )


def to_assignment(a: AccessPackageAssignment) -> Assignment:
    """An Assignment from Graph's assignment (target used when expanded)."""
    start, end, _ = _schedule(a.schedule)
    target = a.target
    return Assignment(
        id=a.id or "",
        state=_enum_text(a.state),
        target_id=(target.object_id if target else None) or "",
        start=start,
        end=end,
        policy_id=a.assignment_policy.id if a.assignment_policy else None,
        package_id=a.access_package.id if a.access_package else None,
        target_name=target.display_name if target else None,
        target_upn=target.principal_name if target else None,
        target_mail=target.email if target else None,
    )


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
    when expanded).  The listing of thousands of assignments reads JSON directly: building
    msgraph-sdk models costs milliseconds per item."""
    schedule = _json_object(a.get("schedule"))
    expiration = _json_object(schedule.get("expiration"))
    start = _json_datetime(schedule.get("startDateTime"))
    end = _json_datetime(expiration.get("endDateTime"))
    duration = _json_duration(expiration.get("duration"))
    if end is None and start is not None and duration:
        end = start + duration
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


def to_stage_info(s: ApprovalStage) -> ApprovalStageInfo:
    """One approval stage as the caller sees it."""
    reviewer = s.reviewed_by
    reviewer_id = reviewer.id if reviewer and reviewer.id != ZERO_GUID else None
    return ApprovalStageInfo(
        id=s.id or "",
        status=s.status or "",
        review_result=s.review_result or "",
        assigned_to_me=bool(s.assigned_to_me),
        reviewed_by_id=reviewer_id,
        reviewed_by_name=reviewer.display_name if reviewer and reviewer_id else None,
        justification=s.justification,
    )
