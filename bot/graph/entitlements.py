"""``Entitlements`` and ``Directory`` on Microsoft Graph (msgraph-sdk)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.identity_governance.entitlement_management.assignment_requests.assignment_requests_request_builder import (  # noqa: E501
    AssignmentRequestsRequestBuilder,
)
from msgraph.generated.identity_governance.entitlement_management.assignment_requests.item.access_package_assignment_request_item_request_builder import (  # noqa: E501
    AccessPackageAssignmentRequestItemRequestBuilder,
)
from msgraph.generated.identity_governance.entitlement_management.assignments.assignments_request_builder import (  # noqa: E501
    AssignmentsRequestBuilder,
)
from msgraph.generated.models.access_package_assignment import AccessPackageAssignment
from msgraph.generated.models.access_package_assignment_request import (
    AccessPackageAssignmentRequest,
)
from msgraph.generated.models.access_package_request_type import AccessPackageRequestType
from msgraph.generated.models.approval_stage import ApprovalStage
from msgraph.generated.models.entitlement_management_schedule import (
    EntitlementManagementSchedule,
)
from msgraph.generated.models.expiration_pattern import ExpirationPattern
from msgraph.generated.models.expiration_pattern_type import ExpirationPatternType
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.check_member_groups.check_member_groups_post_request_body import (
    CheckMemberGroupsPostRequestBody,
)
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from bot.cache import Expiring
from bot.commands import to_iso
from bot.domain import (
    AccessRequest,
    ApprovalStageInfo,
    Assignment,
    Policy,
    Principal,
    RequestKind,
)
from bot.errors import NotFound
from bot.graph.clients import GraphClients
from bot.graph.convert import (
    assignment_from_json,
    policy_from_json,
    principal_from_json,
    request_from_json,
    stage_info_from_json,
)
from bot.graph.errors import graph_call
from bot.metrics import Metrics

_TYPES = {
    (RequestKind.ADD, True): AccessPackageRequestType.UserAdd,
    (RequestKind.UPDATE, True): AccessPackageRequestType.UserUpdate,
    (RequestKind.REMOVE, True): AccessPackageRequestType.UserRemove,
    (RequestKind.ADD, False): AccessPackageRequestType.AdminAdd,
    (RequestKind.UPDATE, False): AccessPackageRequestType.AdminUpdate,
    (RequestKind.REMOVE, False): AccessPackageRequestType.AdminRemove,
}


# Graph errors of raw calls are parsed as the generated builders do.
_ERRORS: dict[str, Any] = {"XXX": ODataError}

USER_CACHE_S = 300.0
USER_CACHE_SIZE = 10_000
# checkMemberGroups takes at most this many group ids per call (spec/graph.md §6).
CHECK_GROUPS_MAX = 20
# userType is not returned unless selected (Graph's default property set).
USER_FIELDS = ["id", "displayName", "mail", "userPrincipalName", "userType"]


def _odata_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _utc_text(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


async def paged_json(
    operation: str, builder: Any, config: Any, metrics: Metrics | None
) -> AsyncIterator[dict[str, Any]]:
    """Every item of a collection as Graph sent it, page by page (``@odata.nextLink``
    followed as given; one page held at a time).  The requests go through the SDK's middleware
    (auth, retries, redirects); the bodies are parsed with ``json`` (see ``bot.graph.convert``).
    """
    info = builder.to_get_request_information(config)
    while True:
        page = await _send_json(operation, builder.request_adapter, info, metrics)
        for item in page.get("value") or []:
            if isinstance(item, dict):
                yield item
        next_link = page.get("@odata.nextLink")
        if not isinstance(next_link, str) or not next_link:
            return
        info = builder.with_url(next_link).to_get_request_information()


async def get_json(
    operation: str, builder: Any, config: Any, metrics: Metrics | None
) -> dict[str, Any]:
    """One GET through the SDK's middleware, its body parsed with ``json``."""
    info = builder.to_get_request_information(config)
    return await _send_json(operation, builder.request_adapter, info, metrics)


async def post_json(
    operation: str, builder: Any, body: Any, metrics: Metrics | None
) -> dict[str, Any]:
    """One POST of ``body`` (an SDK model; None for actions that take no body) through the
    SDK's middleware, its answer parsed with ``json``."""
    info = builder.to_post_request_information(*(() if body is None else (body,)))
    return await _send_json(operation, builder.request_adapter, info, metrics)


async def _send_json(
    operation: str, adapter: Any, info: Any, metrics: Metrics | None
) -> dict[str, Any]:
    sent = adapter.send_primitive_async(info, "bytes", _ERRORS)
    body = await graph_call(operation, sent, metrics)
    parsed = json.loads(body) if body else {}
    return parsed if isinstance(parsed, dict) else {}


class GraphEntitlements:
    """Entitlement management through the shared Graph clients."""

    def __init__(self, clients: GraphClients, metrics: Metrics | None = None) -> None:
        self._clients = clients
        self._metrics = metrics
        self._policy_cache: dict[str, Policy] = {}
        self._package_names: dict[str, str] = {}

    @property
    def _em(self) -> Any:
        return self._clients.app.identity_governance.entitlement_management

    def _em_as(self, principal_id: str | None) -> Any:
        client = self._clients.app if principal_id is None else self._clients.for_user(principal_id)
        return client.identity_governance.entitlement_management

    async def get_policy(self, policy_id: str) -> Policy:
        """An assignment policy (cached for the process; policies change rarely)."""
        cached = self._policy_cache.get(policy_id)
        if cached is not None:
            return cached
        builder = self._em.assignment_policies.by_access_package_assignment_policy_id(policy_id)
        config = RequestConfiguration(
            query_parameters=builder.AccessPackageAssignmentPolicyItemRequestBuilderGetQueryParameters(
                expand=["accessPackage"]
            )
        )
        raw = await get_json("get_policy", builder, config, self._metrics)
        if not raw:
            raise NotFound(f"The assignment policy {policy_id} does not exist.")
        policy = policy_from_json(raw, "")
        self._policy_cache[policy_id] = policy
        return policy

    async def list_policies(self, package_id: str) -> list[Policy]:
        """The package's assignment policies."""
        builder = self._em.access_packages.by_access_package_id(package_id).assignment_policies
        policies = [
            policy_from_json(p, package_id)
            async for p in paged_json("list_policies", builder, None, self._metrics)
        ]
        for p in policies:
            self._policy_cache.setdefault(p.id, p)
        return policies

    async def package_name(self, package_id: str) -> str:
        """The package's display name (cached)."""
        name = self._package_names.get(package_id)
        if name is None:
            builder = self._em.access_packages.by_access_package_id(package_id)
            package = await get_json("get_package", builder, None, self._metrics)
            name = package.get("displayName")
            name = name if isinstance(name, str) and name else "local admin"
            self._package_names[package_id] = name
        return name

    async def applicable_policy_ids(self, principal_id: str, package_id: str) -> list[str]:
        """``POST accessPackages/{id}/getApplicablePolicyRequirements`` as the user: one
        answer per policy they may request through (delegated only in Graph)."""
        builder = (
            self._em_as(principal_id)
            .access_packages.by_access_package_id(package_id)
            .get_applicable_policy_requirements
        )
        answer = await post_json("applicable_policies", builder, None, self._metrics)
        ids: dict[str, None] = {}
        for item in answer.get("value") or []:
            policy_id = item.get("policyId") if isinstance(item, dict) else None
            if isinstance(policy_id, str) and policy_id:
                ids.setdefault(policy_id)
        return list(ids)

    async def create_request(
        self,
        *,
        as_user: str | None,
        kind: RequestKind,
        target_id: str,
        package_id: str,
        policy_id: str,
        duration: timedelta | None = None,
        end: datetime | None = None,
        start: datetime | None = None,
        justification: str | None = None,
        assignment_id: str | None = None,
    ) -> AccessRequest:
        """Create a request; durations go as ISO 8601 strings (spec/graph.md §0.9)."""
        if kind is RequestKind.ADD:
            assignment = AccessPackageAssignment(
                additional_data={
                    "targetId": target_id,
                    "assignmentPolicyId": policy_id,
                    "accessPackageId": package_id,
                }
            )
        else:
            assignment = AccessPackageAssignment(id=assignment_id)
        body = AccessPackageAssignmentRequest(
            request_type=_TYPES[(kind, as_user is not None)],
            assignment=assignment,
            justification=justification or None,
        )
        if duration is not None or end is not None:
            expiration = (
                ExpirationPattern(type=ExpirationPatternType.AfterDateTime, end_date_time=end)
                if end is not None
                else ExpirationPattern(
                    type=ExpirationPatternType.AfterDuration,
                    duration=to_iso(duration),  # type: ignore[arg-type]
                )
            )
            body.schedule = EntitlementManagementSchedule(
                start_date_time=start, expiration=expiration
            )
        builder = self._em_as(as_user).assignment_requests
        operation = f"create_{body.request_type.value if body.request_type else 'request'}"
        created = await post_json(operation, builder, body, self._metrics)
        if not created:
            raise NotFound("Microsoft Entra returned no request.")
        request = request_from_json(created)
        return AccessRequest(
            **{
                **request.__dict__,
                "policy_id": request.policy_id or policy_id,
                "package_id": request.package_id or package_id,
                "target_id": request.target_id or target_id,
            }
        )

    async def get_request(self, request_id: str) -> AccessRequest:
        """One request with its assignment, requestor and package (app-only)."""
        builder = self._em.assignment_requests.by_access_package_assignment_request_id(request_id)
        qp = AccessPackageAssignmentRequestItemRequestBuilder.AccessPackageAssignmentRequestItemRequestBuilderGetQueryParameters(  # noqa: E501
            expand=["assignment($expand=target,assignmentPolicy)", "requestor", "accessPackage"]
        )
        config = RequestConfiguration(query_parameters=qp)
        raw = await get_json("get_request", builder, config, self._metrics)
        if not raw:
            raise NotFound(f"The request {request_id} does not exist.")
        return request_from_json(raw)

    async def iter_requests(
        self, package_id: str, *, state: str | None = None, since: datetime | None = None
    ) -> AsyncIterator[AccessRequest]:
        """The package's requests (app-only), paged with ``@odata.nextLink``."""
        clauses = [f"accessPackage/id eq {_odata_quote(package_id)}"]
        if state:
            clauses.append(f"state eq {_odata_quote(state)}")
        if since:
            clauses.append(f"createdDateTime ge {_utc_text(since)}")
        builder = self._em.assignment_requests
        qp = AssignmentRequestsRequestBuilder.AssignmentRequestsRequestBuilderGetQueryParameters(
            filter=" and ".join(clauses),
            expand=["accessPackage", "requestor", "assignment($expand=target,assignmentPolicy)"],
            top=100,
        )
        config = RequestConfiguration(query_parameters=qp)
        async for raw in paged_json("list_requests", builder, config, self._metrics):
            yield request_from_json(raw)

    async def my_requests(self, principal_id: str) -> list[AccessRequest]:
        """Requests targeting the signed-in user (delegated ``filterByCurrentUser``)."""
        builder = self._em_as(principal_id).assignment_requests.filter_by_current_user_with_on(
            "target"
        )
        return [
            request_from_json(r)
            async for r in paged_json("my_requests", builder, None, self._metrics)
        ]

    async def cancel_request(self, request_id: str, *, as_user: str | None) -> None:
        """Cancel a pending request."""
        builder = self._em_as(as_user).assignment_requests.by_access_package_assignment_request_id(
            request_id
        )
        await graph_call("cancel_request", builder.cancel.post(), self._metrics)

    async def approval_stages(self, principal_id: str, request_id: str) -> list[ApprovalStageInfo]:
        """The approval's stages as the approver sees them (delegated only in Graph)."""
        builder = self._em_as(principal_id).access_package_assignment_approvals.by_approval_id(
            request_id
        )
        approval = await get_json("get_approval", builder, None, self._metrics)
        stages = approval.get("stages")
        return [
            stage_info_from_json(s)
            for s in (stages if isinstance(stages, list) else [])
            if isinstance(s, dict)
        ]

    async def decide_stage(
        self, principal_id: str, request_id: str, stage_id: str, approve: bool, reason: str
    ) -> None:
        """PATCH the stage with ``Approve``/``Deny`` as the approver."""
        builder = (
            self._em_as(principal_id)
            .access_package_assignment_approvals.by_approval_id(request_id)
            .stages.by_approval_stage_id(stage_id)
        )
        body = ApprovalStage(review_result="Approve" if approve else "Deny", justification=reason)
        await graph_call("decide_stage", builder.patch(body), self._metrics)

    async def iter_assignments(
        self, package_id: str, *, target_id: str | None = None, state: str | None = "delivered"
    ) -> AsyncIterator[Assignment]:
        """The package's assignments, filtered in Graph and paged (no per-item calls)."""
        clauses = [f"accessPackage/id eq {_odata_quote(package_id)}"]
        if state:
            clauses.append(f"state eq {_odata_quote(state)}")
        if target_id:
            clauses.append(f"target/objectId eq {_odata_quote(target_id)}")
        builder = self._em.assignments
        qp = AssignmentsRequestBuilder.AssignmentsRequestBuilderGetQueryParameters(
            filter=" and ".join(clauses),
            expand=["target", "assignmentPolicy($select=id)"],
            top=500,
        )
        config = RequestConfiguration(query_parameters=qp)
        async for raw in paged_json("list_assignments", builder, config, self._metrics):
            yield assignment_from_json(raw, package_id)


class GraphDirectory:
    """Users and groups (app-only).

    Users found by id or mail are kept for ``USER_CACHE_S`` seconds: every chat command in
    ``bot`` mode looks its sender up.
    Group members (who may approve) are always read fresh.
    """

    def __init__(self, clients: GraphClients, metrics: Metrics | None = None) -> None:
        self._clients = clients
        self._metrics = metrics
        self._users: Expiring[Principal] = Expiring(USER_CACHE_S, USER_CACHE_SIZE)

    async def get_user(self, key: str) -> Principal | None:
        """A user by object id or UPN; None when Graph says 404."""
        return await self._lookup("id:" + key.lower(), lambda: self._get_user(key))

    async def _lookup(
        self, key: str, fetch: Callable[[], Awaitable[Principal | None]]
    ) -> Principal | None:
        found, person = self._users.get(key)
        if found:
            return person
        person = await fetch()
        # Not found: ask again next time (the account may be new).
        return self._users.put(key, person) if person is not None else None

    async def _get_user(self, key: str) -> Principal | None:
        qp = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=USER_FIELDS)
        builder = self._clients.app.users.by_user_id(key)
        config = RequestConfiguration(query_parameters=qp)
        try:
            raw = await get_json("get_user", builder, config, self._metrics)
        except NotFound:
            return None
        return principal_from_json(raw)

    async def find_user_by_mail(self, mail: str) -> Principal | None:
        """A user whose ``mail`` (or else UPN) is ``mail``."""
        return await self._lookup("mail:" + mail.lower(), lambda: self._find_user_by_mail(mail))

    async def _find_user_by_mail(self, mail: str) -> Principal | None:
        for prop in ("mail", "userPrincipalName"):
            qp = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                filter=f"{prop} eq {_odata_quote(mail)}",
                select=USER_FIELDS,
            )
            config = RequestConfiguration(query_parameters=qp)
            page = await get_json("find_user", self._clients.app.users, config, self._metrics)
            users = [u for u in page.get("value") or [] if isinstance(u, dict)]
            if len(users) == 1:
                return principal_from_json(users[0])
        return None

    async def get_manager(self, user_id: str) -> Principal | None:
        """The user's manager, or None."""
        builder = self._clients.app.users.by_user_id(user_id).manager
        try:
            raw = await get_json("get_manager", builder, None, self._metrics)
        except NotFound:
            return None
        return principal_from_json(raw)

    async def group_members(self, group_id: str) -> list[Principal]:
        """The group's user members (all pages)."""
        builder = self._clients.app.groups.by_group_id(group_id).members
        members: list[Principal] = []
        # Read as JSON: approver resolution runs on every request, and msgraph-sdk's User
        # model costs milliseconds of CPU per member.
        async for raw in paged_json("group_members", builder, None, self._metrics):
            person = principal_from_json(raw)
            if person is not None:
                members.append(person)
        return members

    async def member_groups(self, user_id: str, group_ids: Sequence[str]) -> frozenset[str]:
        """``POST /users/{id}/checkMemberGroups`` (transitive), twenty group ids per call."""
        builder = self._clients.app.users.by_user_id(user_id).check_member_groups
        found: set[str] = set()
        for at in range(0, len(group_ids), CHECK_GROUPS_MAX):
            body = CheckMemberGroupsPostRequestBody(
                group_ids=list(group_ids[at : at + CHECK_GROUPS_MAX])
            )
            answer = await post_json("check_member_groups", builder, body, self._metrics)
            found.update(g for g in answer.get("value") or [] if isinstance(g, str))
        return frozenset(found)
