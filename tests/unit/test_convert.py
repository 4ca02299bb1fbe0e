"""Graph's JSON → domain: the shapes Graph documents, missing parts and wrong types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain import RequestState
from bot.graph.convert import (
    ZERO_GUID,
    policy_from_json,
    request_from_json,
    stage_info_from_json,
)

POLICY = {
    "id": "pol-1",
    "displayName": "Local admin (8 hours)",
    "accessPackage": {"id": "pkg-1"},
    "expiration": {"type": "afterDuration", "duration": "PT8H", "endDateTime": None},
    "requestorSettings": {
        "enableTargetsToSelfAddAccess": True,
        "enableTargetsToSelfUpdateAccess": False,
        "enableTargetsToSelfRemoveAccess": True,
        "allowCustomAssignmentSchedule": True,
    },
    "requestApprovalSettings": {
        "isApprovalRequiredForAdd": True,
        "isApprovalRequiredForUpdate": False,
        "isRequestorJustificationRequired": True,
        "stages": [
            {
                "durationBeforeAutomaticDenial": "P2D",
                "isApproverJustificationRequired": True,
                "primaryApprovers": [
                    {"@odata.type": "#microsoft.graph.requestorManager", "managerLevel": 1},
                    {
                        "@odata.type": "#microsoft.graph.groupMembers",
                        "groupId": "grp-1",
                        "description": "IT helpdesk",
                    },
                ],
                "fallbackPrimaryApprovers": [
                    {"@odata.type": "#microsoft.graph.singleUser", "userId": "u-9"},
                    {"@odata.type": "#microsoft.graph.externalSponsors"},
                ],
            }
        ],
    },
}


def test_policy_from_json_reads_limits_self_service_and_stages() -> None:
    policy = policy_from_json(POLICY, "ignored")
    assert policy.id == "pol-1"
    assert policy.package_id == "pkg-1"
    assert policy.max_duration == timedelta(hours=8)
    assert policy.justification_required
    assert policy.approval_required_for_add
    assert not policy.approval_required_for_update
    assert policy.self_add
    assert policy.self_remove
    assert not policy.self_update
    assert policy.allow_custom_schedule
    (stage,) = policy.stages
    assert stage.auto_deny_after == timedelta(days=2)
    assert stage.approver_justification_required
    assert [s.kind for s in stage.primary] == ["requestorManager", "groupMembers"]
    assert stage.primary[1].group_id == "grp-1"
    assert stage.primary[1].description == "IT helpdesk"
    assert [(s.kind, s.user_id) for s in stage.fallback] == [
        ("singleUser", "u-9"),
        ("externalSponsors", None),
    ]


def test_policy_from_json_defaults_when_parts_are_missing_or_malformed() -> None:
    """No requestor settings: Graph's defaults let targets serve themselves.  Values of the
    wrong type are ignored rather than trusted."""
    policy = policy_from_json(
        {
            "id": "pol-2",
            "expiration": {"type": "noExpiration", "duration": "PT8H"},
            "requestApprovalSettings": {"stages": "not a list", "isApprovalRequiredForAdd": "yes"},
        },
        "pkg-from-caller",
    )
    assert policy.package_id == "pkg-from-caller"
    assert policy.max_duration is None
    assert policy.self_add
    assert policy.self_update
    assert policy.self_remove
    assert not policy.allow_custom_schedule
    assert not policy.approval_required_for_add
    assert policy.stages == ()


def test_policy_from_json_reads_who_may_be_a_target() -> None:
    """``allowedTargetScope`` and ``specificAllowedTargets`` become the policy's target scope
    and subject sets; a policy without them admits nobody named (``notSpecified``)."""
    policy = policy_from_json(
        {
            "id": "pol-3",
            "allowedTargetScope": "specificDirectoryUsers",
            "specificAllowedTargets": [
                {"@odata.type": "#microsoft.graph.groupMembers", "groupId": "grp-eng"},
                {"@odata.type": "#microsoft.graph.singleUser", "userId": "u-1"},
                "not an object",
            ],
        },
        "pkg-1",
    )
    assert policy.target_scope == "specificDirectoryUsers"
    assert [(s.kind, s.group_id, s.user_id) for s in policy.allowed_targets] == [
        ("groupMembers", "grp-eng", None),
        ("singleUser", None, "u-1"),
    ]
    bare = policy_from_json({"id": "pol-4", "allowedTargetScope": None}, "pkg-1")
    assert bare.target_scope == "notSpecified"
    assert bare.allowed_targets == ()


def test_request_from_json_with_expanded_assignment() -> None:
    request = request_from_json(
        {
            "id": "req-1",
            "requestType": "userAdd",
            "state": "pendingApproval",
            "status": "PendingApproval",
            "justification": "printer driver",
            "createdDateTime": "2026-11-26T09:00:00.1234567Z",
            "schedule": {
                "startDateTime": "2026-11-26T09:00:00Z",
                "expiration": {"type": "afterDuration", "duration": "PT8H"},
            },
            "assignment": {
                "id": "asg-1",
                "assignmentPolicy": {"id": "pol-1"},
                "target": {"objectId": "user-1"},
            },
            "requestor": {"objectId": "user-1", "displayName": "Alice"},
            "accessPackage": {"id": "pkg-1"},
        }
    )
    assert request.id == "req-1"
    assert request.request_type == "userAdd"
    assert request.state is RequestState.PENDING_APPROVAL
    assert request.created == datetime(2026, 11, 26, 9, 0, 0, 123456, tzinfo=UTC)
    assert request.start == datetime(2026, 11, 26, 9, tzinfo=UTC)
    assert request.end == datetime(2026, 11, 26, 17, tzinfo=UTC)
    assert request.duration == timedelta(hours=8)
    assert (request.assignment_id, request.policy_id, request.target_id) == (
        "asg-1",
        "pol-1",
        "user-1",
    )
    assert (request.package_id, request.requestor_id, request.requestor_name) == (
        "pkg-1",
        "user-1",
        "Alice",
    )


def test_request_from_json_unexpanded_assignment_and_schedule_on_the_assignment() -> None:
    """Graph echoes a created request's assignment with its ids as plain properties; the
    schedule may be only on the assignment."""
    request = request_from_json(
        {
            "id": "req-2",
            "state": "somethingNew",
            "assignment": {
                "assignmentPolicyId": "pol-7",
                "targetId": "user-7",
                "schedule": {
                    "startDateTime": "2026-11-26T10:00:00Z",
                    "expiration": {"endDateTime": "2026-11-26T12:00:00Z"},
                },
            },
        }
    )
    assert request.state is RequestState.UNKNOWN
    assert (request.policy_id, request.target_id) == ("pol-7", "user-7")
    assert request.end == datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert request.request_type == ""
    assert request.package_id is None


def test_stage_info_from_json_hides_the_empty_reviewer() -> None:
    pending = stage_info_from_json(
        {
            "id": "st-1",
            "status": "InProgress",
            "reviewResult": "NotReviewed",
            "assignedToMe": True,
            "reviewedBy": {"id": ZERO_GUID, "displayName": ""},
        }
    )
    assert pending.assigned_to_me
    assert pending.reviewed_by_id is None
    assert pending.reviewed_by_name is None
    done = stage_info_from_json(
        {
            "id": "st-1",
            "status": "Completed",
            "reviewResult": "Deny",
            "reviewedBy": {"id": "u-3", "displayName": "Carol"},
            "justification": "not this week",
        }
    )
    assert (done.review_result, done.reviewed_by_id, done.reviewed_by_name) == (
        "Deny",
        "u-3",
        "Carol",
    )
    assert done.justification == "not this week"
    assert not done.assigned_to_me
