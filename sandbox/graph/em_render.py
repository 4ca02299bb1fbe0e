"""Graph v1.0 JSON of entitlement-management objects (spec/graph.md §1–5).

Navigation properties (``requestor``, ``accessPackage``, ``assignment``, ``target``,
``assignmentPolicy``, ``catalog``, ``resourceRoleScopes``) appear only when ``$expand``ed,
as in Graph.  ``expand`` arguments are ``odata.parse_expand`` results.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sandbox.auth import Caller
from sandbox.clock import iso
from sandbox.errors import BAD_REQUEST, GraphError
from sandbox.graph.em_model import (
    ZERO_GUID,
    Approval,
    Assignment,
    EmStore,
    Request,
    Schedule,
    Stage,
    Subject,
)
from sandbox.graph.em_policy import find_policy, policy_properties
from sandbox.graph.odata import parse_expand, select
from sandbox.tenant import AccessPackage, Catalog, Tenant

GRAPH = "https://graph.microsoft.com/v1.0/$metadata#identityGovernance/entitlementManagement"
_NS = uuid.UUID("0b7c66c5-3d5e-4a55-a4cc-6c2f0e0d8e51")


def stable_id(kind: str, key: str) -> str:
    """A GUID derived from ``kind`` and ``key`` (the same on every run)."""
    return str(uuid.uuid5(_NS, f"{kind}:{key}"))


def entity_context(collection: str) -> str:
    """``@odata.context`` of one entity of an EM collection."""
    return f"{GRAPH}/{collection}/$entity"


def check_expand(expand: dict[str, str], allowed: Iterable[str]) -> dict[str, str]:
    """``expand`` with lower-cased names; 400 for a property that cannot be expanded."""
    ok = {a.lower() for a in allowed}
    result: dict[str, str] = {}
    for name, options in expand.items():
        if name.lower() not in ok and name != "*":
            raise GraphError(
                400, BAD_REQUEST, f"Could not find a navigation property named '{name}'."
            )
        result[name.lower()] = options
    if "*" in result:
        return dict.fromkeys(ok, "") | {k: v for k, v in result.items() if k != "*"}
    return result


def nested_expand(options: str) -> dict[str, str]:
    """The ``$expand`` inside ``name($expand=a,b;$select=c)`` options text."""
    for part in _split_options(options):
        key, _, value = part.partition("=")
        if key.strip().lower() == "$expand":
            return parse_expand(value)
    return {}


def nested_select(options: str) -> str | None:
    """The ``$select`` inside ``name($select=a,b)`` options text, or None."""
    for part in _split_options(options):
        key, _, value = part.partition("=")
        if key.strip().lower() == "$select":
            return value
    return None


def _selected(body: dict[str, Any] | None, options: str) -> dict[str, Any] | None:
    fields = nested_select(options) if options else None
    return select(body, fields) if body is not None and fields else body


def _split_options(options: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(options):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == ";" and depth == 0:
            parts.append(options[start:i])
            start = i + 1
    parts.append(options[start:])
    return [p for p in parts if p.strip()]


def request_schedule_json(schedule: Schedule | None) -> dict[str, Any]:
    """A request's ``schedule`` as it was sent (all-null ``notSpecified`` when it was not)."""
    schedule = schedule or Schedule()
    return {
        "startDateTime": iso(schedule.start),
        "recurrence": None,
        "expiration": {
            "endDateTime": iso(schedule.expiration.end),
            "duration": schedule.expiration.duration,
            "type": schedule.expiration.type,
        },
    }


def assignment_schedule_json(assignment: Assignment) -> dict[str, Any]:
    """An assignment's ``schedule``: a concrete start and end once delivered."""
    return {
        "startDateTime": iso(assignment.start),
        "recurrence": None,
        "expiration": {
            "endDateTime": iso(assignment.end),
            "duration": None,
            "type": assignment.expiration_type,
        },
    }


class Renderer:
    """Renders the store's records for one caller."""

    def __init__(self, tenant: Tenant, store: EmStore) -> None:
        self.tenant = tenant
        self.store = store

    # --- catalog, packages, policies ---------------------------------------------------

    def catalog(self, catalog: Catalog) -> dict[str, Any]:
        """An ``accessPackageCatalog``."""
        return {
            "id": catalog.id,
            "displayName": catalog.display_name,
            "description": catalog.description,
            "catalogType": "userManaged",
            "state": "published",
            "isExternallyVisible": False,
            "createdDateTime": iso(self.store.created),
            "modifiedDateTime": iso(self.store.created),
        }

    def package(
        self, package: AccessPackage, expand: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """An ``accessPackage`` (expandable: catalog, assignmentPolicies, resourceRoleScopes)."""
        body: dict[str, Any] = {
            "id": package.id,
            "displayName": package.display_name,
            "description": package.description,
            "isHidden": False,
            "createdDateTime": iso(self.store.created),
            "modifiedDateTime": iso(self.store.created),
        }
        expand = expand or {}
        if "catalog" in expand:
            catalog = next((c for c in self.tenant.catalogs if c.id == package.catalog_id), None)
            body["catalog"] = self.catalog(catalog) if catalog else None
        if "assignmentpolicies" in expand:
            body["assignmentPolicies"] = [self.policy(p) for p in self.policies_of(package.id)]
        if "resourcerolescopes" in expand:
            inner = {k.lower(): v for k, v in nested_expand(expand["resourcerolescopes"]).items()}
            body["resourceRoleScopes"] = [self.role_scope(package, inner)]
        return body

    def role_scope(self, package: AccessPackage, expand: dict[str, str]) -> dict[str, Any]:
        """The package's one resource role scope: Member of its group (spec/graph.md §5)."""
        gid = package.group_id
        group = self.tenant.group(gid)
        resource = {
            "id": stable_id("resource", gid),
            "displayName": group.display_name if group else None,
            "description": group.description if group else None,
            "originId": gid,
            "originSystem": "AadGroup",
            "createdDateTime": iso(self.store.created),
            "modifiedDateTime": iso(self.store.created),
        }
        role_id, scope_id = stable_id("role", gid), stable_id("scope", gid)
        body: dict[str, Any] = {
            "id": f"{role_id}_{scope_id}",
            "createdDateTime": iso(self.store.created),
        }
        if "role" in expand:
            role: dict[str, Any] = {
                "id": role_id,
                "displayName": "Member",
                "description": None,
                "originSystem": "AadGroup",
                "originId": f"Member_{gid}",
            }
            if "resource" in {k.lower() for k in nested_expand(expand["role"])}:
                role["resource"] = resource
            body["role"] = role
        if "scope" in expand:
            scope: dict[str, Any] = {
                "id": scope_id,
                "displayName": "Root",
                "description": "Root Scope",
                "originId": gid,
                "originSystem": "AadGroup",
                "isRootScope": True,
            }
            if "resource" in {k.lower() for k in nested_expand(expand["scope"])}:
                scope["resource"] = resource
            body["scope"] = scope
        return body

    def policies_of(self, package_id: str) -> list[dict[str, Any]]:
        """The raw policies of a package."""
        return [
            p
            for p in self.tenant.assignment_policies
            if (p.get("accessPackage") or {}).get("id") == package_id
        ]

    def policy(
        self, policy: dict[str, Any], expand: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """An ``accessPackageAssignmentPolicy`` (expandable: accessPackage, catalog)."""
        body = policy_properties(policy)
        body.setdefault("createdDateTime", iso(self.store.created))
        body.setdefault("modifiedDateTime", iso(self.store.created))
        expand = expand or {}
        package = self.package_by_id((policy.get("accessPackage") or {}).get("id"))
        if "accesspackage" in expand:
            body["accessPackage"] = self.package(package) if package else None
        if "catalog" in expand and package is not None:
            catalog = next((c for c in self.tenant.catalogs if c.id == package.catalog_id), None)
            body["catalog"] = self.catalog(catalog) if catalog else None
        return body

    def package_by_id(self, package_id: str | None) -> AccessPackage | None:
        """An access package by id."""
        return next((p for p in self.tenant.access_packages if p.id == package_id), None)

    # --- subjects, requests, assignments ---------------------------------------------------

    def subject(self, subject: Subject | None) -> dict[str, Any] | None:
        """An ``accessPackageSubject`` for a user or an app's service principal."""
        if subject is None:
            return None
        if subject.kind == "servicePrincipal":
            app = self.tenant.app(subject.client_id or "")
            return {
                "id": stable_id("subject", subject.object_id),
                "objectId": subject.object_id,
                "displayName": app.display_name if app else None,
                "email": None,
                "principalName": None,
                "subjectType": "servicePrincipal",
                "onPremisesSecurityIdentifier": None,
            }
        user = self.tenant.user(subject.object_id)
        return {
            "id": stable_id("subject", subject.object_id),
            "objectId": subject.object_id,
            "displayName": user.display_name if user else None,
            "email": user.mail if user else None,
            "principalName": user.user_principal_name if user else None,
            "subjectType": "user",
            "onPremisesSecurityIdentifier": None,
        }

    def request(self, request: Request, expand: dict[str, str] | None = None) -> dict[str, Any]:
        """An ``accessPackageAssignmentRequest`` (expandable: requestor, accessPackage,
        assignment)."""
        body: dict[str, Any] = {
            "id": request.id,
            "requestType": request.request_type,
            "state": request.state,
            "status": request.status,
            "justification": request.justification,
            "createdDateTime": iso(request.created),
            "completedDateTime": iso(request.completed),
            "schedule": request_schedule_json(request.schedule),
            "answers": request.answers,
            "customExtensionCalloutInstances": [],
        }
        expand = expand or {}
        if "requestor" in expand:
            body["requestor"] = self.subject(request.requestor)
        if "accesspackage" in expand:
            package = self.package_by_id(request.package_id)
            body["accessPackage"] = self.package(package) if package else None
        if "assignment" in expand:
            assignment = self.store.assignments.get(request.assignment_id)
            inner = {k.lower(): v for k, v in nested_expand(expand["assignment"]).items()}
            body["assignment"] = self.assignment(assignment, inner) if assignment else None
        return body

    def assignment(
        self, assignment: Assignment, expand: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """An ``accessPackageAssignment`` (expandable: target, accessPackage, assignmentPolicy)."""
        body: dict[str, Any] = {
            "id": assignment.id,
            "state": assignment.state,
            "status": assignment.status,
            "expiredDateTime": iso(assignment.expired),
            "schedule": assignment_schedule_json(assignment),
            "customExtensionCalloutInstances": [],
        }
        expand = expand or {}
        if "target" in expand:
            subject = self.subject(Subject(assignment.target_id, "user"))
            body["target"] = _selected(subject, expand["target"])
        if "accesspackage" in expand:
            package = self.package_by_id(assignment.package_id)
            body["accessPackage"] = _selected(
                self.package(package) if package else None, expand["accesspackage"]
            )
        if "assignmentpolicy" in expand:
            policy = find_policy(self.tenant, assignment.policy_id)
            body["assignmentPolicy"] = _selected(
                self.policy(policy) if policy else None, expand["assignmentpolicy"]
            )
        return body

    # --- approvals --------------------------------------------------------------------

    def stage(self, stage: Stage, assigned_to_me: bool) -> dict[str, Any]:
        """An ``approvalStage``."""
        reviewer = self.tenant.user(stage.reviewed_by) if stage.reviewed_by else None
        return {
            "id": stage.id,
            "displayName": None,
            "reviewedDateTime": iso(stage.reviewed_at),
            "reviewResult": stage.review_result,
            "status": stage.status,
            "assignedToMe": assigned_to_me,
            "justification": stage.justification or "",
            "reviewedBy": {
                "id": reviewer.id if reviewer else ZERO_GUID,
                "displayName": reviewer.display_name if reviewer else "",
            },
        }

    def approval(self, approval: Approval, caller: Caller, approvers: Any) -> dict[str, Any]:
        """An ``approval`` with ``assignedToMe`` worked out for ``caller``.

        ``approvers(stage)`` returns the user ids who may decide that stage.
        """
        return {
            "id": approval.id,
            "stages": [self.stage(s, caller.user_id in approvers(s)) for s in approval.stages],
        }
