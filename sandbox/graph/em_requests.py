"""Creating assignment requests: who may send which type, and the policy's rules
(spec/graph.md §1.1).

``new_request`` checks everything first and changes nothing; the caller records the result in
one step, so a rejected or throttled POST leaves no trace.  Permission problems are 403,
everything else 400, with the configurable codes of ``sandbox.errors``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.auth import EM_SUBJECT, EM_WRITE, Caller
from sandbox.errors import (
    ACCESS_DENIED,
    BAD_REQUEST,
    EM_ALREADY_ASSIGNED,
    EM_ASSIGNMENT_NOT_FOUND,
    EM_CUSTOM_SCHEDULE_NOT_ALLOWED,
    EM_DURATION_TOO_LONG,
    EM_EXISTING_OPEN_REQUEST,
    EM_JUSTIFICATION_REQUIRED,
    EM_POLICY_DISALLOWS_REQUESTOR,
    GraphError,
)
from sandbox.graph.em_lifecycle import EmLifecycle
from sandbox.graph.em_model import (
    Assignment,
    Expiration,
    Request,
    Schedule,
    Subject,
    new_id,
    parse_datetime,
    parse_duration,
)
from sandbox.graph.em_policy import (
    approval_setting,
    end_limit,
    find_policy,
    package_id_of,
    requestor_setting,
    target_allowed,
)
from sandbox.tenant import Tenant, User

REQUEST_TYPES = {
    t.lower(): t
    for t in ("userAdd", "userUpdate", "userRemove", "adminAdd", "adminUpdate", "adminRemove")
}
# Entitlement-management roles that may manage assignments (least privileged first).
ASSIGNMENT_ROLES = frozenset(
    {
        "AccessPackageAssignmentManager",
        "AccessPackageManager",
        "CatalogOwner",
        "IdentityGovernanceAdministrator",
    }
)
EXPIRATION_TYPES = {
    t.lower(): t for t in ("notSpecified", "noExpiration", "afterDateTime", "afterDuration")
}
_SELF_SERVICE_SETTING = {
    "add": "enableTargetsToSelfAddAccess",
    "update": "enableTargetsToSelfUpdateAccess",
    "remove": "enableTargetsToSelfRemoveAccess",
}


def bad(code: str, message: str) -> GraphError:
    """A 400 with ``code``."""
    return GraphError(400, code, message)


def has_assignment_role(tenant: Tenant, caller: Caller) -> bool:
    """True when the calling app or signed-in user holds an EM role that manages assignments."""
    if caller.kind == "app":
        app = tenant.app(caller.client_id)
        roles = app.entitlement_roles if app else []
    else:
        user = tenant.user(caller.user_id or "")
        roles = user.entitlement_roles if user else []
    return bool(ASSIGNMENT_ROLES.intersection(roles))


def authorize_admin(tenant: Tenant, caller: Caller) -> None:
    """403 unless the caller has ``EntitlementManagement.ReadWrite.All`` and an EM role."""
    if not caller.has_any(EM_WRITE):
        raise GraphError(
            403, ACCESS_DENIED, "The caller lacks EntitlementManagement.ReadWrite.All."
        )
    if not has_assignment_role(tenant, caller):
        raise GraphError(
            403,
            ACCESS_DENIED,
            "The caller holds no entitlement-management role that allows managing assignments.",
        )


def _authorize(tenant: Tenant, caller: Caller, request_type: str) -> None:
    if request_type.startswith("admin"):
        authorize_admin(tenant, caller)
    elif caller.kind == "app":
        # Self-service types take the requestor from the signed-in user; an app token has none.
        raise GraphError(
            403,
            ACCESS_DENIED,
            f"Request type '{request_type}' needs a signed-in user (delegated token).",
        )
    elif not caller.has_any(EM_SUBJECT):
        raise GraphError(
            403, ACCESS_DENIED, "The token lacks EntitlementMgmt-SubjectAccess.ReadWrite."
        )


def requestor_of(caller: Caller) -> Subject:
    """The ``accessPackageSubject`` behind a token (an app's service principal id is derived
    the way ``sandbox.auth`` derives the ``oid`` of app tokens)."""
    if caller.kind == "app":
        sp_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "sp:" + caller.client_id))
        return Subject(sp_id, "servicePrincipal", caller.client_id)
    return Subject(str(caller.user_id), "user")


def parse_schedule(raw: Any) -> Schedule | None:
    """The request's ``schedule``; 400 for bad timestamps, non-ISO durations or recurrence."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad(BAD_REQUEST, "Invalid 'schedule'.")
    if raw.get("recurrence"):
        raise bad(BAD_REQUEST, "Recurring schedules are not supported in entitlement management.")
    start = raw.get("startDateTime")
    expiration = raw.get("expiration") or {}
    if not isinstance(expiration, dict):
        raise bad(BAD_REQUEST, "Invalid 'schedule.expiration'.")
    kind = EXPIRATION_TYPES.get(str(expiration.get("type") or "notSpecified").lower())
    if kind is None:
        raise bad(BAD_REQUEST, f"Invalid expiration type '{expiration.get('type')}'.")
    duration = expiration.get("duration")
    if duration is not None:
        parse_duration(duration, "schedule.expiration.duration")
    end = expiration.get("endDateTime")
    result = Schedule(
        start=parse_datetime(start, "schedule.startDateTime") if start else None,
        expiration=Expiration(
            type=kind,
            duration=duration,
            end=parse_datetime(end, "schedule.expiration.endDateTime") if end else None,
        ),
    )
    if kind == "afterDuration" and duration is None:
        raise bad(BAD_REQUEST, "An 'afterDuration' expiration needs a 'duration'.")
    if kind == "afterDateTime" and result.expiration.end is None:
        raise bad(BAD_REQUEST, "An 'afterDateTime' expiration needs an 'endDateTime'.")
    return result


def _check_schedule(
    policy: dict[str, Any], schedule: Schedule | None, now: datetime, *, self_service: bool
) -> None:
    if schedule is None or not schedule.custom:
        return
    if self_service and not requestor_setting(policy, "allowCustomAssignmentSchedule"):
        raise bad(
            EM_CUSTOM_SCHEDULE_NOT_ALLOWED,
            "The policy does not allow a custom assignment schedule.",
        )
    base = schedule.start or now
    expiration = schedule.expiration
    if expiration.type == "notSpecified":
        return
    end = expiration.end_from(base)
    if end is not None and end <= max(base, now):
        raise bad(BAD_REQUEST, "The schedule ends before it starts.")
    limit = end_limit(policy, base)
    if limit is not None and (end is None or end > limit):
        raise bad(EM_DURATION_TOO_LONG, "The requested schedule is longer than the policy allows.")


def _check_justification(policy: dict[str, Any], request_type: str, justification: Any) -> None:
    if request_type not in ("userAdd", "userUpdate"):
        return
    if approval_setting(policy, "isRequestorJustificationRequired") and not (
        isinstance(justification, str) and justification.strip()
    ):
        raise bad(EM_JUSTIFICATION_REQUIRED, "The policy requires a justification.")


def _check_no_open_request(em: EmLifecycle, target: str, package: str, policy: str) -> None:
    for request in em.store.open.values():
        if (request.target_id, request.package_id, request.policy_id) == (target, package, policy):
            raise bad(
                EM_EXISTING_OPEN_REQUEST,
                "There is already an open request for this access package and policy.",
            )


def _target_of(tenant: Tenant, caller: Caller, body: dict[str, Any], *, self_service: bool) -> User:
    target_id = body.get("targetId") or (body.get("target") or {}).get("objectId")
    if not target_id and self_service:
        target_id = caller.user_id  # self-service requests may leave the target out
    if not target_id:
        raise bad(BAD_REQUEST, "The request must name a target ('assignment.targetId').")
    user = tenant.user(str(target_id))
    if user is None:
        raise bad(BAD_REQUEST, f"Target '{target_id}' does not exist in the directory.")
    if self_service and user.id != caller.user_id:
        raise bad(
            EM_POLICY_DISALLOWS_REQUESTOR,
            "A self-service request must target the signed-in user.",
        )
    return user


@dataclass
class _About:
    """What a request is about: the policy, package, target and assignment."""

    policy: dict[str, Any]
    package_id: str
    policy_id: str
    target_id: str
    assignment: Assignment


def _about_new(tenant: Tenant, caller: Caller, body: dict[str, Any], admin: bool) -> _About:
    """An add names package, policy and target; the assignment is created with the request."""
    policy_id, package_id = body.get("assignmentPolicyId"), body.get("accessPackageId")
    if not policy_id or not package_id:
        raise bad(BAD_REQUEST, "'assignment' needs 'accessPackageId' and 'assignmentPolicyId'.")
    if not any(p.id == package_id for p in tenant.access_packages):
        raise bad(BAD_REQUEST, f"Access package '{package_id}' does not exist.")
    policy = find_policy(tenant, str(policy_id))
    if policy is None:
        raise bad(BAD_REQUEST, f"Assignment policy '{policy_id}' does not exist.")
    if package_id_of(policy) != package_id:
        raise bad(BAD_REQUEST, "The policy does not belong to the access package.")
    target = _target_of(tenant, caller, body, self_service=not admin)
    if not target_allowed(tenant, policy, target, admin=admin):
        raise bad(EM_POLICY_DISALLOWS_REQUESTOR, "The policy does not allow this target.")
    assignment = Assignment(
        id=new_id(), package_id=str(package_id), policy_id=str(policy_id), target_id=target.id
    )
    return _About(policy, str(package_id), str(policy_id), target.id, assignment)


def _about_existing(em: EmLifecycle, caller: Caller, body: dict[str, Any], admin: bool) -> _About:
    """An update or remove names an active assignment (the caller's own for self-service)."""
    assignment_id = str(body.get("id") or "")
    existing = em.store.assignments.get(assignment_id) if assignment_id else None
    if existing is None:
        raise bad(EM_ASSIGNMENT_NOT_FOUND, f"Assignment '{assignment_id}' does not exist.")
    if existing.state != "delivered":
        raise bad(EM_ASSIGNMENT_NOT_FOUND, f"Assignment '{assignment_id}' is not active.")
    if not admin and existing.target_id != caller.user_id:
        raise bad(EM_ASSIGNMENT_NOT_FOUND, "The assignment does not belong to the signed-in user.")
    policy = find_policy(em.tenant, existing.policy_id) or {}
    return _About(policy, existing.package_id, existing.policy_id, existing.target_id, existing)


def new_request(
    em: EmLifecycle, caller: Caller, body: dict[str, Any]
) -> tuple[Request, Assignment | None]:
    """Validate a POST body; the request to record and, for adds, its new assignment."""
    raw_type = str(body.get("requestType") or "")
    request_type = REQUEST_TYPES.get(raw_type.lower())
    if request_type is None:
        raise bad(BAD_REQUEST, f"Request type '{raw_type}' is not supported.")
    _authorize(em.tenant, caller, request_type)
    admin = request_type.startswith("admin")
    kind = request_type.removeprefix("admin" if admin else "user").lower()
    assignment_body = body.get("assignment") or body.get("accessPackageAssignment") or {}
    if not isinstance(assignment_body, dict):
        raise bad(BAD_REQUEST, "Invalid 'assignment'.")
    schedule = parse_schedule(body.get("schedule"))
    justification = body.get("justification")
    now = em.now()

    if kind == "add":
        about = _about_new(em.tenant, caller, assignment_body, admin)
    else:
        about = _about_existing(em, caller, assignment_body, admin)
    if not admin and not requestor_setting(about.policy, _SELF_SERVICE_SETTING[kind]):
        raise bad(EM_POLICY_DISALLOWS_REQUESTOR, "The policy does not allow self-service requests.")
    if kind != "remove":
        _check_schedule(about.policy, schedule, now, self_service=not admin)
    _check_justification(about.policy, request_type, justification)
    _check_no_open_request(em, about.target_id, about.package_id, about.policy_id)
    if kind == "add" and any(
        a.active and a.package_id == about.package_id and a.policy_id == about.policy_id
        for a in em.store.of_target(about.target_id)
    ):
        raise bad(EM_ALREADY_ASSIGNED, "The target already has this access package assignment.")

    answers = body.get("answers") or []
    request = Request(
        id=new_id(),
        request_type=request_type,
        package_id=about.package_id,
        policy_id=about.policy_id,
        target_id=about.target_id,
        assignment_id=about.assignment.id,
        requestor=requestor_of(caller),
        created=now,
        justification=justification if isinstance(justification, str) else None,
        schedule=schedule,
        answers=answers if isinstance(answers, list) else [],
    )
    return request, about.assignment if kind == "add" else None
