"""Microsoft Graph v1.0 entitlement management (spec/graph.md §0–5):
``/v1.0/identityGovernance/entitlementManagement/…``.

- ``catalogs``, ``accessPackages`` (``$expand=resourceRoleScopes($expand=role,scope)``,
  ``catalog``, ``assignmentPolicies``), ``assignmentPolicies``: read-only views of the tenant.
- ``accessPackages/{id}/getApplicablePolicyRequirements``: the policies the signed-in user may
  request through (delegated only).
- ``assignmentRequests``: create (``em_requests``), list/get, ``filterByCurrentUser``, ``cancel``.
- ``accessPackageAssignmentApprovals``: get, stages, PATCH a stage (delegated only).
- ``assignments``: list/get, ``filterByCurrentUser``, nav to ``accessPackage``/``assignmentPolicy``.

Records and their lifecycle live in ``em_model`` / ``em_lifecycle``; JSON in ``em_render``;
listing in ``em_query``.  ``seed_assignment`` adds delivered assignments for tests and benchmarks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from sandbox.auth import EM_READ, EM_SUBJECT, EM_WRITE, Caller, graph_caller, require
from sandbox.errors import (
    ACCESS_DENIED,
    BAD_REQUEST,
    CONFLICT,
    EM_INVALID_STATE,
    NOT_FOUND,
    GraphError,
)
from sandbox.graph.em_lifecycle import CANCELLABLE_STATES, EmLifecycle
from sandbox.graph.em_model import Assignment, Request, Stage
from sandbox.graph.em_policy import (
    approval_setting,
    find_policy,
    requestor_setting,
    target_allowed,
)
from sandbox.graph.em_query import Filter, compile_filter, page_source, respond
from sandbox.graph.em_render import Renderer, check_expand, entity_context
from sandbox.graph.em_requests import authorize_admin, has_assignment_role, new_request
from sandbox.graph.odata import json_response, parse_expand, read_json, select
from sandbox.state import SandboxState

BASE = "/v1.0/identityGovernance/entitlementManagement"
_FUNCTION = re.compile(r"^filterByCurrentUser\(on=['\"]?(?P<on>\w+)['\"]?\)$", re.IGNORECASE)

REQUEST_EXPAND = ("requestor", "accessPackage", "assignment")
ASSIGNMENT_EXPAND = ("target", "accessPackage", "assignmentPolicy")
PACKAGE_EXPAND = ("catalog", "assignmentPolicies", "resourceRoleScopes")
POLICY_EXPAND = ("accessPackage", "catalog")
REQUEST_FILTERS = {
    "id": lambda r: r.id,
    "state": lambda r: r.state,
    "status": lambda r: r.status,
    "requesttype": lambda r: r.request_type,
    "createddatetime": lambda r: r.created,
    "completeddatetime": lambda r: r.completed,
    "accesspackage/id": lambda r: r.package_id,
    "requestor/objectid": lambda r: r.requestor.object_id if r.requestor else None,
}
ASSIGNMENT_FILTERS = {
    "id": lambda a: a.id,
    "state": lambda a: a.state,
    "status": lambda a: a.status,
    "expireddatetime": lambda a: a.expired,
    "accesspackage/id": lambda a: a.package_id,
    "target/objectid": lambda a: a.target_id,
    "assignmentpolicy/id": lambda a: a.policy_id,
}


def lifecycle_of(state: SandboxState) -> EmLifecycle:
    """The entitlement-management service of a sandbox (registered by ``register``)."""
    em = state.services.get("em")
    if not isinstance(em, EmLifecycle):
        raise RuntimeError("entitlement management is not registered on this sandbox")
    return em


def seed_assignment(
    state: SandboxState,
    package_id: str,
    user_id: str,
    start: datetime,
    end: datetime | None,
    policy_id: str | None = None,
) -> dict[str, Any]:
    """Add a delivered assignment directly, and the user to the package's group.

    No request is recorded.  ``policy_id`` defaults to the package's first policy; ``end`` None
    means no expiration.  Returns the assignment's Graph JSON.  Run it on the sandbox's loop
    (``ThreadedSandbox.call``).
    """
    em = lifecycle_of(state)
    assignment = em.seed_assignment(package_id, user_id, start, end, policy_id)
    return Renderer(state.tenant, em.store).assignment(assignment)


def _function_on(segment: str) -> str | None:
    """``target`` for a ``filterByCurrentUser(on='target')`` path segment, else None."""
    match = _FUNCTION.match(unquote(segment))
    return match.group("on") if match else None


def _not_found(kind: str, key: str) -> GraphError:
    return GraphError(404, NOT_FOUND, f"{kind} '{key}' was not found.")


class Handlers:
    """The route handlers; each reads the sandbox's state on its own loop."""

    def __init__(self, state: SandboxState, em: EmLifecycle) -> None:
        self.state = state
        self.em = em
        self.store = em.store

    @property
    def render(self) -> Renderer:
        """A renderer over the current tenant."""
        return Renderer(self.state.tenant, self.store)

    def _read(self, request: web.Request) -> Caller:
        return require(self.state, request, application=EM_READ, delegated=EM_READ)

    def _entity(self, request: web.Request, body: dict[str, Any], collection: str) -> web.Response:
        body = {"@odata.context": entity_context(collection), **body}
        return json_response(select(body, request.query.get("$select")))

    def _list(
        self,
        request: web.Request,
        items: Sequence[Any],
        keep: Any,
        render: Any,
        context: str,
        scope: str = "",
    ) -> web.Response:
        source = page_source(request, self.store, items, keep, scope)
        return respond(request, self.state.base_url, source, render, context)

    def _expand(self, request: web.Request, allowed: Sequence[str]) -> dict[str, str]:
        return check_expand(parse_expand(request.query.get("$expand")), allowed)

    # --- catalogs, packages, policies -------------------------------------------------------

    async def list_catalogs(self, request: web.Request) -> web.Response:
        """GET catalogs."""
        self._read(request)
        flt = compile_filter(
            request.query.get("$filter"),
            {"id": lambda c: c.id, "displayname": lambda c: c.display_name},
        )
        return self._list(
            request,
            self.state.tenant.catalogs,
            flt.test,
            self.render.catalog,
            "identityGovernance/entitlementManagement/catalogs",
        )

    async def get_catalog(self, request: web.Request) -> web.Response:
        """GET catalogs/{id}."""
        self._read(request)
        key = request.match_info["id"]
        catalog = next((c for c in self.state.tenant.catalogs if c.id == key), None)
        if catalog is None:
            raise _not_found("accessPackageCatalog", key)
        return self._entity(request, self.render.catalog(catalog), "catalogs")

    async def list_packages(self, request: web.Request) -> web.Response:
        """GET accessPackages."""
        self._read(request)
        expand = self._expand(request, PACKAGE_EXPAND)
        flt = compile_filter(
            request.query.get("$filter"),
            {
                "id": lambda p: p.id,
                "displayname": lambda p: p.display_name,
                "catalog/id": lambda p: p.catalog_id,
            },
        )
        return self._list(
            request,
            self.state.tenant.access_packages,
            flt.test,
            lambda p: self.render.package(p, expand),
            "identityGovernance/entitlementManagement/accessPackages",
        )

    def _package(self, request: web.Request) -> Any:
        key = request.match_info["id"]
        package = self.render.package_by_id(key)
        if package is None:
            raise _not_found("accessPackage", key)
        return package

    async def get_package(self, request: web.Request) -> web.Response:
        """GET accessPackages/{id} (``$expand=resourceRoleScopes($expand=role,scope)`` etc.)."""
        self._read(request)
        expand = self._expand(request, PACKAGE_EXPAND)
        package = self._package(request)
        return self._entity(request, self.render.package(package, expand), "accessPackages")

    async def package_catalog(self, request: web.Request) -> web.Response:
        """GET accessPackages/{id}/catalog."""
        self._read(request)
        body = self.render.package(self._package(request), {"catalog": ""})["catalog"]
        if body is None:
            raise _not_found("accessPackageCatalog", request.match_info["id"])
        return self._entity(request, body, "catalogs")

    async def package_policies(self, request: web.Request) -> web.Response:
        """GET accessPackages/{id}/assignmentPolicies."""
        self._read(request)
        package = self._package(request)
        return self._policies(request, self.render.policies_of(package.id))

    async def package_role_scopes(self, request: web.Request) -> web.Response:
        """GET accessPackages/{id}/resourceRoleScopes (``$expand=role,scope``)."""
        self._read(request)
        package = self._package(request)
        inner = {k.lower(): v for k, v in parse_expand(request.query.get("$expand")).items()}
        return self._list(
            request,
            [package],
            lambda _: True,
            lambda p: self.render.role_scope(p, inner),
            f"identityGovernance/entitlementManagement/accessPackages('{package.id}')"
            "/resourceRoleScopes",
        )

    def _policies(self, request: web.Request, policies: Sequence[dict[str, Any]]) -> web.Response:
        expand = self._expand(request, POLICY_EXPAND)
        flt = compile_filter(
            request.query.get("$filter"),
            {
                "id": lambda p: p.get("id"),
                "displayname": lambda p: p.get("displayName"),
                "accesspackage/id": lambda p: (p.get("accessPackage") or {}).get("id"),
            },
        )
        return self._list(
            request,
            policies,
            flt.test,
            lambda p: self.render.policy(p, expand),
            "identityGovernance/entitlementManagement/assignmentPolicies",
        )

    async def list_policies(self, request: web.Request) -> web.Response:
        """GET assignmentPolicies (``$filter=accessPackage/id eq …``, ``$expand=accessPackage``)."""
        self._read(request)
        return self._policies(request, self.state.tenant.assignment_policies)

    async def get_policy(self, request: web.Request) -> web.Response:
        """GET assignmentPolicies/{id}."""
        self._read(request)
        expand = self._expand(request, POLICY_EXPAND)
        policy = find_policy(self.state.tenant, request.match_info["id"])
        if policy is None:
            raise _not_found("accessPackageAssignmentPolicy", request.match_info["id"])
        return self._entity(request, self.render.policy(policy, expand), "assignmentPolicies")

    async def applicable_policy_requirements(self, request: web.Request) -> web.Response:
        """POST accessPackages/{id}/getApplicablePolicyRequirements (delegated only): one
        ``accessPackageAssignmentRequestRequirements`` per policy of the package the signed-in
        user may request through (a target it admits, with self-add on); none: empty."""
        caller = require(self.state, request, delegated=EM_READ)
        package = self._package(request)
        user = self.state.tenant.user(caller.user_id or "")
        requirements = [
            {
                "policyId": policy["id"],
                "policyDisplayName": policy.get("displayName"),
                "policyDescription": policy.get("description"),
                "isApprovalRequiredForAdd": approval_setting(policy, "isApprovalRequiredForAdd"),
                "isApprovalRequiredForUpdate": approval_setting(
                    policy, "isApprovalRequiredForUpdate"
                ),
                "allowCustomAssignmentSchedule": requestor_setting(
                    policy, "allowCustomAssignmentSchedule"
                ),
                "questions": list(policy.get("questions") or []),
                "schedule": {
                    "startDateTime": None,
                    "recurrence": None,
                    "expiration": policy.get("expiration")
                    or {"type": "notSpecified", "duration": None, "endDateTime": None},
                },
            }
            for policy in self.render.policies_of(package.id)
            if user is not None
            and requestor_setting(policy, "enableTargetsToSelfAddAccess")
            and target_allowed(self.state.tenant, policy, user, admin=False)
        ]
        return json_response(
            {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata"
                "#Collection(microsoft.graph.accessPackageAssignmentRequestRequirements)",
                "value": requirements,
            }
        )

    # --- assignment requests --------------------------------------------------------------

    async def create_request(self, request: web.Request) -> web.Response:
        """POST assignmentRequests: validate, then record request (and assignment) at once."""
        caller = graph_caller(self.state, request)
        body = await read_json(request)
        created, assignment = new_request(self.em, caller, body)
        if assignment is not None:
            self.store.add_assignment(assignment)
        self.em.submit(created)
        payload = {
            "@odata.context": entity_context("assignmentRequests"),
            **self.render.request(created),
        }
        return json_response(payload, status=201)

    def _request_list(
        self, request: web.Request, keep_extra: Any = None, scope: str = ""
    ) -> web.Response:
        expand = self._expand(request, REQUEST_EXPAND)
        flt = compile_filter(request.query.get("$filter"), REQUEST_FILTERS)

        def keep(r: Request) -> bool:
            return (keep_extra is None or keep_extra(r)) and flt.test(r)

        return self._list(
            request,
            self.store.request_order,
            keep,
            lambda r: self.render.request(r, expand),
            "identityGovernance/entitlementManagement/assignmentRequests",
            scope,
        )

    async def list_requests(self, request: web.Request) -> web.Response:
        """GET assignmentRequests (``$filter``, ``$expand``, ``$select``, ``$top``)."""
        self._read(request)
        return self._request_list(request)

    def _my_requests(self, request: web.Request, on: str) -> web.Response:
        caller = require(self.state, request, delegated=(*EM_READ, *EM_SUBJECT))
        me = caller.user_id
        tests = {
            "target": lambda r: r.target_id == me,
            "createdby": lambda r: r.requestor is not None and r.requestor.object_id == me,
            "approver": lambda r: self._current_stage_for(r, me) is not None,
        }
        test = tests.get(on.lower())
        if test is None:
            raise GraphError(400, BAD_REQUEST, f"Invalid value '{on}' for parameter 'on'.")
        return self._request_list(request, test, scope=f"{on.lower()}:{me}")

    def _request(self, key: str) -> Request:
        found = self.store.requests.get(key)
        if found is None:
            raise _not_found("accessPackageAssignmentRequest", key)
        return found

    async def get_request(self, request: web.Request) -> web.Response:
        """GET assignmentRequests/{id}, or ``filterByCurrentUser(on='…')``."""
        key = request.match_info["id"]
        on = _function_on(key)
        if on is not None:
            return self._my_requests(request, on)
        self._read(request)
        expand = self._expand(request, REQUEST_EXPAND)
        body = self.render.request(self._request(key), expand)
        return self._entity(request, body, "assignmentRequests")

    async def request_nav(self, request: web.Request) -> web.Response:
        """GET assignmentRequests/{id}/requestor | accessPackage | assignment."""
        self._read(request)
        nav = request.match_info["nav"]
        body = self.render.request(self._request(request.match_info["id"]), {nav.lower(): ""})
        if body.get(nav) is None:
            raise _not_found(nav, request.match_info["id"])
        collection = {"requestor": "subjects", "accessPackage": "accessPackages"}
        return self._entity(request, body[nav], collection.get(nav, "assignments"))

    async def cancel_request(self, request: web.Request) -> web.Response:
        """POST assignmentRequests/{id}/cancel: the requestor or an assignment manager."""
        caller = graph_caller(self.state, request)
        found = self._request(request.match_info["id"])
        own = caller.kind == "user" and caller.user_id in (
            found.target_id,
            found.requestor.object_id if found.requestor else None,
        )
        if not own:
            authorize_admin(self.state.tenant, caller)
        elif not caller.has_any(EM_SUBJECT):
            raise GraphError(403, ACCESS_DENIED, "The token lacks the permission to cancel.")
        if found.state not in CANCELLABLE_STATES:
            raise GraphError(
                400, EM_INVALID_STATE, f"A request in state '{found.state}' cannot be canceled."
            )
        self.em.cancel(found)
        return web.Response(status=204)

    # --- approvals ---------------------------------------------------------------------------

    def _current_stage_for(self, found: Request, user_id: str | None) -> Stage | None:
        """The stage of a pending request that ``user_id`` may decide now, if any."""
        if found.state != "pendingApproval" or found.approval is None:
            return None
        stage = found.approval.current
        if stage is None or user_id not in self.em.approvers(found, stage):
            return None
        return stage

    def _approval_json(self, found: Request, caller: Caller) -> dict[str, Any]:
        assert found.approval is not None
        return self.render.approval(found.approval, caller, lambda s: self.em.approvers(found, s))

    def _approval(self, request: web.Request, caller: Caller) -> Request:
        key = request.match_info["id"]
        found = self.store.requests.get(key)
        if found is None or found.approval is None:
            raise _not_found("approval", key)
        involved = any(caller.user_id in self.em.approvers(found, s) for s in found.approval.stages)
        if not involved and not has_assignment_role(self.state.tenant, caller):
            raise GraphError(403, ACCESS_DENIED, "The signed-in user is not an approver.")
        return found

    def _stage(self, found: Request, key: str) -> Stage:
        assert found.approval is not None
        stage = next((s for s in found.approval.stages if s.id == key), None)
        if stage is None:
            raise _not_found("approvalStage", key)
        return stage

    async def get_approval(self, request: web.Request) -> web.Response:
        """GET accessPackageAssignmentApprovals/{requestId}, or ``filterByCurrentUser``."""
        caller = require(self.state, request, delegated=EM_READ)
        on = _function_on(request.match_info["id"])
        if on is not None:
            return self._my_approvals(request, caller, on)
        found = self._approval(request, caller)
        body = self._approval_json(found, caller)
        return self._entity(request, body, "accessPackageAssignmentApprovals")

    def _my_approvals(self, request: web.Request, caller: Caller, on: str) -> web.Response:
        if on.lower() != "approver":
            raise GraphError(400, BAD_REQUEST, f"Invalid value '{on}' for parameter 'on'.")
        return self._list(
            request,
            self.store.request_order,
            lambda r: self._current_stage_for(r, caller.user_id) is not None,
            lambda r: self._approval_json(r, caller),
            "identityGovernance/entitlementManagement/accessPackageAssignmentApprovals",
            scope=f"approver:{caller.user_id}",
        )

    async def list_approvals(self, request: web.Request) -> web.Response:
        """GET accessPackageAssignmentApprovals: only ``filterByCurrentUser`` lists approvals."""
        require(self.state, request, delegated=EM_READ)
        raise GraphError(
            400, BAD_REQUEST, "List approvals with filterByCurrentUser(on='approver')."
        )

    async def list_stages(self, request: web.Request) -> web.Response:
        """GET accessPackageAssignmentApprovals/{id}/stages."""
        caller = require(self.state, request, delegated=EM_READ)
        found = self._approval(request, caller)
        stages = self._approval_json(found, caller)["stages"]
        return self._list(
            request,
            stages,
            lambda _: True,
            lambda s: s,
            f"identityGovernance/entitlementManagement/accessPackageAssignmentApprovals"
            f"('{found.id}')/stages",
        )

    async def get_stage(self, request: web.Request) -> web.Response:
        """GET accessPackageAssignmentApprovals/{id}/stages/{stageId}."""
        caller = require(self.state, request, delegated=EM_READ)
        found = self._approval(request, caller)
        stage = self._stage(found, request.match_info["stage"])
        body = self.render.stage(stage, caller.user_id in self.em.approvers(found, stage))
        return self._entity(request, body, f"accessPackageAssignmentApprovals('{found.id}')/stages")

    async def decide(self, request: web.Request) -> web.Response:
        """PATCH …/stages/{stageId} ``{"reviewResult": "Approve"|"Deny", "justification"}``."""
        caller = require(self.state, request, delegated=EM_WRITE)
        key = request.match_info["id"]
        found = self.store.requests.get(key)
        if found is None or found.approval is None:
            raise _not_found("approval", key)
        stage = self._stage(found, request.match_info["stage"])
        requestor = found.requestor.object_id if found.requestor else None
        if caller.user_id in (found.target_id, requestor):
            raise GraphError(403, ACCESS_DENIED, "Requestors cannot approve their own request.")
        if caller.user_id not in self.em.approvers(found, stage):
            raise GraphError(
                403, ACCESS_DENIED, "The signed-in user is not an approver of this stage."
            )
        if stage.status != "InProgress":
            raise GraphError(409, CONFLICT, "This approval stage has already been completed.")
        body = await read_json(request)
        result = str(body.get("reviewResult") or "").lower()
        if result not in ("approve", "deny"):
            raise GraphError(400, BAD_REQUEST, "reviewResult must be 'Approve' or 'Deny'.")
        justification = body.get("justification")
        justification = justification if isinstance(justification, str) else ""
        settings = found.approval.policy_stages[stage.index]
        if settings.get("isApproverJustificationRequired") and not justification.strip():
            raise GraphError(400, BAD_REQUEST, "The policy requires the approver's justification.")
        self.em.decide(found, stage, str(caller.user_id), result == "approve", justification)
        return web.Response(status=204)

    # --- assignments -------------------------------------------------------------------------

    def _assignment_list(
        self, request: web.Request, candidates: Sequence[Assignment] | None = None, scope: str = ""
    ) -> web.Response:
        expand = self._expand(request, ASSIGNMENT_EXPAND)
        flt: Filter = compile_filter(request.query.get("$filter"), ASSIGNMENT_FILTERS)
        if candidates is None:
            package = flt.equals("accessPackage/id")
            target = flt.equals("target/objectId")
            if package is not None:
                candidates = self.store.of_package(package)
            elif target is not None:
                candidates = self.store.of_target(target)
            else:
                candidates = self.store.assignment_order
        return self._list(
            request,
            candidates,
            lambda a: a.state is not None and flt.test(a),
            lambda a: self.render.assignment(a, expand),
            "identityGovernance/entitlementManagement/assignments",
            scope,
        )

    async def list_assignments(self, request: web.Request) -> web.Response:
        """GET assignments (``$filter``, ``$expand=target,accessPackage,assignmentPolicy``)."""
        self._read(request)
        return self._assignment_list(request)

    def _assignment(self, key: str) -> Assignment:
        found = self.store.assignments.get(key)
        if found is None:
            raise _not_found("accessPackageAssignment", key)
        return found

    async def get_assignment(self, request: web.Request) -> web.Response:
        """GET assignments/{id}, or ``filterByCurrentUser(on='target'|'createdBy')``."""
        key = request.match_info["id"]
        on = _function_on(key)
        if on is not None:
            return self._my_assignments(request, on)
        self._read(request)
        expand = self._expand(request, ASSIGNMENT_EXPAND)
        body = self.render.assignment(self._assignment(key), expand)
        return self._entity(request, body, "assignments")

    def _my_assignments(self, request: web.Request, on: str) -> web.Response:
        caller = require(self.state, request, delegated=(*EM_READ, *EM_SUBJECT))
        me = str(caller.user_id)
        if on.lower() == "target":
            mine: Sequence[Assignment] = self.store.of_target(me)
        elif on.lower() == "createdby":
            ids = {
                r.assignment_id
                for r in self.store.request_order
                if r.requestor is not None and r.requestor.object_id == me
            }
            mine = [a for a in self.store.assignment_order if a.id in ids]
        else:
            raise GraphError(400, BAD_REQUEST, f"Invalid value '{on}' for parameter 'on'.")
        return self._assignment_list(request, mine, scope=f"{on.lower()}:{me}")

    async def assignment_package(self, request: web.Request) -> web.Response:
        """GET assignments/{id}/accessPackage."""
        self._read(request)
        found = self._assignment(request.match_info["id"])
        body = self.render.assignment(found, {"accesspackage": ""})["accessPackage"]
        return self._entity(request, body, "accessPackages")

    async def assignment_policy(self, request: web.Request) -> web.Response:
        """GET assignments/{id}/assignmentPolicy."""
        self._read(request)
        found = self._assignment(request.match_info["id"])
        body = self.render.assignment(found, {"assignmentpolicy": ""})["assignmentPolicy"]
        return self._entity(request, body, "assignmentPolicies")

    # --- /_sandbox/state --------------------------------------------------------------------

    def snapshot_requests(self) -> list[dict[str, Any]]:
        """Every request, with requestor, access package and assignment expanded."""
        expand = {"requestor": "", "accesspackage": "", "assignment": ""}
        return [self.render.request(r, expand) for r in self.store.request_order]

    def snapshot_approvals(self) -> list[dict[str, Any]]:
        """Every approval, each stage with the user ids who may decide it."""
        result = []
        for found in self.store.request_order:
            if found.approval is None:
                continue
            stages = []
            for stage in found.approval.stages:
                body = self.render.stage(stage, False)
                body.pop("assignedToMe")
                body["approvers"] = self.em.approvers(found, stage)
                stages.append(body)
            result.append({"id": found.id, "requestState": found.state, "stages": stages})
        return result

    def snapshot_assignments(self) -> list[dict[str, Any]]:
        """Every assignment that exists (delivering or later), with its target and package."""
        result = []
        for assignment in self.store.assignment_order:
            if assignment.state is None:
                continue
            body = self.render.assignment(assignment, {"target": ""})
            body["accessPackage"] = {"id": assignment.package_id}
            body["assignmentPolicy"] = {"id": assignment.policy_id}
            result.append(body)
        return result


def register(app: web.Application, state: SandboxState) -> None:
    """Register the entitlement-management routes, lifecycle processor and snapshots."""
    em = EmLifecycle(state)
    state.services["em"] = em
    state.processors.append(em.process)
    h = Handlers(state, em)
    state.snapshots["requests"] = h.snapshot_requests
    state.snapshots["approvals"] = h.snapshot_approvals
    state.snapshots["assignments"] = h.snapshot_assignments
    approvals = f"{BASE}/accessPackageAssignmentApprovals"
    app.router.add_routes(
        [
            web.get(f"{BASE}/catalogs", h.list_catalogs),
            web.get(f"{BASE}/catalogs/{{id}}", h.get_catalog),
            web.get(f"{BASE}/accessPackages", h.list_packages),
            web.get(f"{BASE}/accessPackages/{{id}}", h.get_package),
            web.get(f"{BASE}/accessPackages/{{id}}/catalog", h.package_catalog),
            web.get(f"{BASE}/accessPackages/{{id}}/assignmentPolicies", h.package_policies),
            web.get(f"{BASE}/accessPackages/{{id}}/resourceRoleScopes", h.package_role_scopes),
            web.post(
                f"{BASE}/accessPackages/{{id}}/getApplicablePolicyRequirements",
                h.applicable_policy_requirements,
            ),
            web.get(f"{BASE}/assignmentPolicies", h.list_policies),
            web.get(f"{BASE}/assignmentPolicies/{{id}}", h.get_policy),
            web.get(f"{BASE}/assignmentRequests", h.list_requests),
            web.post(f"{BASE}/assignmentRequests", h.create_request),
            web.get(f"{BASE}/assignmentRequests/{{id}}", h.get_request),
            web.post(f"{BASE}/assignmentRequests/{{id}}/cancel", h.cancel_request),
            web.get(
                f"{BASE}/assignmentRequests/{{id}}/{{nav:requestor|accessPackage|assignment}}",
                h.request_nav,
            ),
            web.get(approvals, h.list_approvals),
            web.get(f"{approvals}/{{id}}", h.get_approval),
            web.get(f"{approvals}/{{id}}/stages", h.list_stages),
            web.get(f"{approvals}/{{id}}/stages/{{stage}}", h.get_stage),
            web.patch(f"{approvals}/{{id}}/stages/{{stage}}", h.decide),
            web.get(f"{BASE}/assignments", h.list_assignments),
            web.get(f"{BASE}/assignments/{{id}}", h.get_assignment),
            web.get(f"{BASE}/assignments/{{id}}/accessPackage", h.assignment_package),
            web.get(f"{BASE}/assignments/{{id}}/assignmentPolicy", h.assignment_policy),
        ]
    )


__all__ = ["lifecycle_of", "register", "seed_assignment"]
