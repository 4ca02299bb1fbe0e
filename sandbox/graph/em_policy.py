"""Reading assignment policies: defaults, who may be a target, who approves, how long access lasts.

Policies stay the raw v1.0 ``accessPackageAssignmentPolicy`` JSON of the tenant file; these
functions interpret them (spec/graph.md §5).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sandbox.graph.em_model import Expiration, parse_datetime
from sandbox.tenant import Tenant, User

REQUESTOR_SETTINGS_DEFAULTS: dict[str, Any] = {
    "enableTargetsToSelfAddAccess": False,
    "enableTargetsToSelfUpdateAccess": False,
    "enableTargetsToSelfRemoveAccess": False,
    "allowCustomAssignmentSchedule": False,
    "enableOnBehalfRequestorsToAddAccess": False,
    "enableOnBehalfRequestorsToUpdateAccess": False,
    "enableOnBehalfRequestorsToRemoveAccess": False,
    "onBehalfRequestors": [],
}
APPROVAL_SETTINGS_DEFAULTS: dict[str, Any] = {
    "isApprovalRequiredForAdd": False,
    "isApprovalRequiredForUpdate": False,
    "isRequestorJustificationRequired": False,
    "stages": [],
}
STAGE_DEFAULTS: dict[str, Any] = {
    "durationBeforeAutomaticDenial": "P14D",
    "isApproverJustificationRequired": False,
    "isEscalationEnabled": False,
    "durationBeforeEscalation": "PT0S",
    "primaryApprovers": [],
    "fallbackPrimaryApprovers": [],
    "escalationApprovers": [],
    "fallbackEscalationApprovers": [],
}
# Properties of the v1.0 resource; relationships (accessPackage, catalog,
# customExtensionStageSettings) are rendered only when expanded.
POLICY_DEFAULTS: dict[str, Any] = {
    "displayName": None,
    "description": None,
    "allowedTargetScope": "notSpecified",
    "specificAllowedTargets": [],
    "expiration": {"type": "notSpecified", "duration": None, "endDateTime": None},
    "requestorSettings": REQUESTOR_SETTINGS_DEFAULTS,
    "requestApprovalSettings": APPROVAL_SETTINGS_DEFAULTS,
    "automaticRequestSettings": None,
    "questions": [],
    "notificationSettings": {"isAssignmentNotificationDisabled": False},
    "reviewSettings": None,
}
_RELATIONSHIPS = ("accessPackage", "catalog", "customExtensionStageSettings")


def policy_properties(policy: dict[str, Any]) -> dict[str, Any]:
    """The policy's v1.0 properties with defaults for anything the tenant file left out."""
    body: dict[str, Any] = {"id": policy["id"]}
    for key, default in POLICY_DEFAULTS.items():
        value = policy.get(key, copy.deepcopy(default))
        if isinstance(default, dict) and isinstance(value, dict):
            value = {**copy.deepcopy(default), **value}
        body[key] = value
    approval = body["requestApprovalSettings"]
    if isinstance(approval, dict):
        approval["stages"] = [{**STAGE_DEFAULTS, **s} for s in approval.get("stages") or []]
    for key, value in policy.items():
        if key not in body and key not in _RELATIONSHIPS:
            body[key] = value
    return body


def package_id_of(policy: dict[str, Any]) -> str | None:
    """The id of the access package a policy belongs to."""
    package = policy.get("accessPackage") or {}
    return package.get("id") or policy.get("accessPackageId")


def find_policy(tenant: Tenant, policy_id: str) -> dict[str, Any] | None:
    """A policy by id."""
    return next((p for p in tenant.assignment_policies if p.get("id") == policy_id), None)


def requestor_setting(policy: dict[str, Any], name: str) -> bool:
    """One boolean of ``requestorSettings`` (default false)."""
    return bool((policy.get("requestorSettings") or {}).get(name, False))


def approval_setting(policy: dict[str, Any], name: str) -> bool:
    """One boolean of ``requestApprovalSettings`` (default false)."""
    return bool((policy.get("requestApprovalSettings") or {}).get(name, False))


def approval_stages(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The policy's approval stages, defaults filled."""
    stages = (policy.get("requestApprovalSettings") or {}).get("stages") or []
    return [{**STAGE_DEFAULTS, **s} for s in stages]


def needs_approval(policy: dict[str, Any], request_type: str) -> bool:
    """True when a request of this type waits for approvers (only ``userAdd``/``userUpdate``)."""
    if not approval_stages(policy):
        return False
    if request_type == "userAdd":
        return approval_setting(policy, "isApprovalRequiredForAdd")
    if request_type == "userUpdate":
        return approval_setting(policy, "isApprovalRequiredForUpdate")
    return False


def policy_expiration(policy: dict[str, Any]) -> Expiration:
    """The policy's ``expiration`` as an ``Expiration``."""
    raw = policy.get("expiration") or {}
    end = raw.get("endDateTime")
    return Expiration(
        type=raw.get("type") or "notSpecified",
        duration=raw.get("duration"),
        end=parse_datetime(end, "expiration.endDateTime") if end else None,
    )


def _in_subject_sets(tenant: Tenant, user: User, subject_sets: Iterable[dict[str, Any]]) -> bool:
    for subject in subject_sets:
        kind = str(subject.get("@odata.type", "")).rsplit(".", 1)[-1]
        if kind == "singleUser" and subject.get("userId") == user.id:
            return True
        if kind == "groupMembers":
            group = tenant.group(str(subject.get("groupId")))
            if group is not None and user.id in group.members:
                return True
    return False


def target_allowed(tenant: Tenant, policy: dict[str, Any], user: User, *, admin: bool) -> bool:
    """Whether ``allowedTargetScope`` lets ``user`` be the target.

    ``notSpecified`` (a direct-assignment policy) admits nobody for self-service and anyone for
    an administrator.
    """
    scope = policy.get("allowedTargetScope") or "notSpecified"
    if scope == "notSpecified":
        return admin
    if scope == "allDirectoryUsers":
        return True
    if scope == "allMemberUsers":
        return user.user_type.lower() == "member"
    if scope == "allExternalUsers":
        return user.user_type.lower() == "guest"
    if scope == "specificDirectoryUsers":
        return _in_subject_sets(tenant, user, policy.get("specificAllowedTargets") or [])
    return False


def _resolve(tenant: Tenant, subject_sets: Iterable[dict[str, Any]], target: User) -> list[str]:
    found: list[str] = []
    for subject in subject_sets:
        kind = str(subject.get("@odata.type", "")).rsplit(".", 1)[-1]
        if kind == "singleUser" and subject.get("userId"):
            found.append(str(subject["userId"]))
        elif kind == "groupMembers":
            group = tenant.group(str(subject.get("groupId")))
            found.extend(group.members if group else [])
        elif kind == "requestorManager":
            person: User | None = target
            for _ in range(int(subject.get("managerLevel") or 1)):
                person = tenant.user(person.manager_id) if person and person.manager_id else None
            if person is not None:
                found.append(person.id)
    return found


def stage_approvers(
    tenant: Tenant, stage: dict[str, Any], target: User, excluded: Iterable[str]
) -> list[str]:
    """User ids who may decide ``stage`` for a request about ``target``.

    Requestors may not approve their own request, so ``excluded`` ids are dropped; when the
    primary approvers resolve to nobody, the fallback approvers apply.
    """
    skip = set(excluded)
    for key in ("primaryApprovers", "fallbackPrimaryApprovers"):
        ids = list(dict.fromkeys(_resolve(tenant, stage.get(key) or [], target)))
        ids = [i for i in ids if i not in skip and tenant.user(i) is not None]
        if ids:
            return ids
    return []


def end_limit(policy: dict[str, Any], start: datetime) -> datetime | None:
    """The latest end the policy allows for access starting at ``start`` (None: unlimited)."""
    expiration = policy_expiration(policy)
    if expiration.type in ("afterDuration", "afterDateTime"):
        return expiration.end_from(start)
    return None
