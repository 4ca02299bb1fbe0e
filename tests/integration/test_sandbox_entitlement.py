"""The sandbox's entitlement-management API, driven through msgraph-sdk over real HTTPS:
reads, request creation and its validation, approvals, filterByCurrentUser, listing, cancel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from msgraph.generated.identity_governance.entitlement_management.access_packages.item.access_package_item_request_builder import (  # noqa: E501
    AccessPackageItemRequestBuilder,
)
from msgraph.generated.identity_governance.entitlement_management.assignment_policies.assignment_policies_request_builder import (  # noqa: E501
    AssignmentPoliciesRequestBuilder,
)
from msgraph.generated.identity_governance.entitlement_management.assignment_requests.assignment_requests_request_builder import (  # noqa: E501
    AssignmentRequestsRequestBuilder,
)
from msgraph.generated.identity_governance.entitlement_management.assignment_requests.item.access_package_assignment_request_item_request_builder import (  # noqa: E501
    AccessPackageAssignmentRequestItemRequestBuilder as Item,
)
from msgraph.generated.identity_governance.entitlement_management.assignments.assignments_request_builder import (  # noqa: E501
    AssignmentsRequestBuilder,
)
from msgraph.generated.models.access_package_assignment_request import (
    AccessPackageAssignmentRequest,
)
from msgraph.generated.models.access_package_request_state import AccessPackageRequestState
from msgraph.generated.models.access_package_request_type import AccessPackageRequestType
from msgraph.generated.models.approval_stage import ApprovalStage
from msgraph_core import PageIterator

from sandbox.graph.entitlement import seed_assignment
from sandbox.server import ThreadedSandbox
from sandbox.tenant import Tenant, demo_id, demo_tenant
from tests.integration.conftest import tenant_with
from tests.integration.graph_support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    ERIN,
    GARY,
    app_client,
    em,
    eventually,
    for_assignment,
    inject_fault,
    odata_error,
    query,
    raw,
    signed_in,
    snapshot,
    token_for,
    undocumented,
    user_add,
)
from tests.integration.policy_tenants import ENGINEERS_POLICY, SUPPORT_POLICY, two_policy_tenant

PACKAGE, POLICY = demo_id("package"), demo_id("policy")
OTHER_PACKAGE, OTHER_POLICY = demo_id("other-package"), demo_id("other-policy")
GROUP = demo_id("jit-group")
REQUEST_KEYS = {
    "id",
    "requestType",
    "state",
    "status",
    "justification",
    "createdDateTime",
    "completedDateTime",
    "schedule",
    "answers",
    "customExtensionCalloutInstances",
}
Requests = AssignmentRequestsRequestBuilder.AssignmentRequestsRequestBuilderGetQueryParameters
Assignments = AssignmentsRequestBuilder.AssignmentsRequestBuilderGetQueryParameters


def custom_tenant(change: Callable[[dict[str, Any], Tenant], None]) -> Tenant:
    """The demo tenant after ``change(policy, tenant)`` edited its local-admin policy."""
    tenant = demo_tenant()
    change(tenant.assignment_policies[0], tenant)
    return tenant


def alice_is_approver(policy: dict[str, Any], tenant: Tenant) -> None:
    """Put Alice (the requester) into the approvers group."""
    group = tenant.group(demo_id("approvers"))
    assert group is not None
    group.members.append(demo_id("alice"))


async def submit_as_alice(sb: ThreadedSandbox, **kwargs: Any) -> AccessPackageAssignmentRequest:
    """Alice's userAdd for the local-admin package (2 hours unless told otherwise)."""
    async with signed_in(sb, ALICE) as alice:
        created = await em(alice).assignment_requests.post(
            user_add(demo_id("alice"), POLICY, PACKAGE, **kwargs)
        )
    assert created is not None
    return created


async def pending_request(sb: ThreadedSandbox) -> tuple[str, str]:
    """Alice's request once it waits for approval: (request id, current stage id)."""
    created = await submit_as_alice(sb)
    assert created.id is not None
    request_id = created.id

    async def stage_id() -> str | None:
        for approval in (await snapshot(sb))["approvals"]:
            if approval["id"] == request_id and approval["stages"]:
                return str(approval["stages"][0]["id"])
        return None

    return request_id, await eventually(stage_id)


async def decide(
    sb: ThreadedSandbox, upn: str, request_id: str, stage_id: str, result: str = "Approve"
) -> None:
    """``upn`` records a decision on a stage (delegated, through the SDK)."""
    async with signed_in(sb, upn) as client:
        stages = em(client).access_package_assignment_approvals.by_approval_id(request_id).stages
        await stages.by_approval_stage_id(stage_id).patch(
            ApprovalStage(review_result=result, justification="checked")
        )


async def expect_status(status: int, awaitable: Any) -> str:
    """Await ``awaitable``, expect an ``ODataError`` with ``status``; its ``error.code``."""
    error = await odata_error(awaitable)
    assert error.response_status_code == status, error.error
    assert error.error is not None
    return str(error.error.code)


# --- reads ----------------------------------------------------------------------------------


async def test_access_package_expands_group_member_role_scope(sandbox: ThreadedSandbox) -> None:
    """``$expand=resourceRoleScopes($expand=role,scope),catalog`` gives the AadGroup role/scope."""
    async with app_client(sandbox) as app:
        package = (
            await em(app)
            .access_packages.by_access_package_id(PACKAGE)
            .get(
                request_configuration=query(
                    AccessPackageItemRequestBuilder.AccessPackageItemRequestBuilderGetQueryParameters,
                    expand=["resourceRoleScopes($expand=role,scope)", "catalog"],
                )
            )
        )
        catalogs = await em(app).catalogs.get()
    assert package is not None
    assert not undocumented(package)
    assert package.catalog is not None
    assert package.catalog.id == demo_id("catalog")
    assert package.resource_role_scopes is not None
    (role_scope,) = package.resource_role_scopes
    assert role_scope.role is not None
    assert role_scope.scope is not None
    assert role_scope.role.origin_system == "AadGroup"
    assert role_scope.role.origin_id == f"Member_{GROUP}"
    assert role_scope.role.display_name == "Member"
    assert role_scope.scope.origin_id == GROUP
    assert role_scope.scope.is_root_scope is True
    assert role_scope.id == f"{role_scope.role.id}_{role_scope.scope.id}"
    assert catalogs is not None
    assert [c.display_name for c in catalogs.value or []] == ["General"]


async def test_policies_filter_by_package_and_expand_it(sandbox: ThreadedSandbox) -> None:
    """``$filter=accessPackage/id eq …&$expand=accessPackage`` returns that package's policy."""
    async with app_client(sandbox) as app:
        page = await em(app).assignment_policies.get(
            request_configuration=query(
                AssignmentPoliciesRequestBuilder.AssignmentPoliciesRequestBuilderGetQueryParameters,
                filter=f"accessPackage/id eq '{PACKAGE}'",
                expand=["accessPackage"],
            )
        )
        nav = await em(app).access_packages.by_access_package_id(PACKAGE).assignment_policies.get()
    assert page is not None
    assert nav is not None
    (policy,) = page.value or []
    assert not undocumented(policy)
    assert policy.id == POLICY
    assert policy.access_package is not None
    assert policy.access_package.display_name == "Local admin (JIT)"
    assert policy.request_approval_settings is not None
    assert policy.request_approval_settings.is_approval_required_for_add is True
    assert [p.id for p in nav.value or []] == [POLICY]
    assert nav.value[0].access_package is None  # a relationship: only when expanded


async def test_policy_defaults_fill_what_the_tenant_file_left_out(
    make_sandbox: Callable[..., ThreadedSandbox],
) -> None:
    """A minimal policy in the tenant file is served with the v1.0 resource's properties."""

    def minimal(policy: dict[str, Any], tenant: Tenant) -> None:
        keep = {"id", "displayName", "accessPackage"}
        for key in [k for k in policy if k not in keep]:
            del policy[key]

    sb = make_sandbox(custom_tenant(minimal))
    token = await token_for(sb, ERIN)
    response = await raw(sb, token, "GET", f"assignmentPolicies/{POLICY}")
    body = response.json()
    assert response.status_code == 200
    assert body["allowedTargetScope"] == "notSpecified"
    assert body["requestorSettings"]["enableTargetsToSelfAddAccess"] is False
    assert body["requestApprovalSettings"]["stages"] == []
    assert body["expiration"]["type"] == "notSpecified"
    assert body["questions"] == []
    assert "accessPackage" not in body


# --- create ---------------------------------------------------------------------------------


async def test_user_add_returns_submitted_request(sandbox: ThreadedSandbox) -> None:
    """201 with state submitted, status Accepted, the schedule echoed and nothing unmapped."""
    created = await submit_as_alice(sandbox, duration="PT2H")
    assert set(created.additional_data) <= {"@odata.context"}
    assert not undocumented(created)
    assert created.request_type == AccessPackageRequestType.UserAdd
    assert created.state == AccessPackageRequestState.Submitted
    assert created.status == "Accepted"
    assert created.created_date_time is not None
    assert created.completed_date_time is None
    assert created.justification == "Installing a printer driver"
    assert created.answers == []
    assert created.custom_extension_callout_instances == []
    assert created.schedule is not None
    assert created.schedule.expiration is not None
    assert created.schedule.expiration.duration == timedelta(hours=2)


async def test_request_type_is_case_insensitive_unknown_types_are_400(
    sandbox: ThreadedSandbox,
) -> None:
    """``UserAdd`` is accepted (the JSON has exactly the documented keys); ``UserExtend`` is 400."""
    token = await token_for(sandbox, ALICE)
    body = {
        "requestType": "UserAdd",
        "justification": "printer",
        "assignment": {
            "targetId": demo_id("alice"),
            "assignmentPolicyId": POLICY,
            "accessPackageId": PACKAGE,
        },
    }
    created = await raw(sandbox, token, "POST", "assignmentRequests", json=body)
    assert created.status_code == 201, created.text
    assert set(created.json()) == REQUEST_KEYS | {"@odata.context"}
    assert created.json()["requestType"] == "userAdd"
    rejected = await raw(
        sandbox, token, "POST", "assignmentRequests", json={**body, "requestType": "UserExtend"}
    )
    assert rejected.status_code == 400
    assert set(rejected.json()["error"]) == {"code", "message", "innerError"}


async def test_self_service_request_with_app_token_is_forbidden(sandbox: ThreadedSandbox) -> None:
    """userAdd with an app-only token is 403: self-service needs a signed-in user."""
    async with app_client(sandbox) as app:
        await expect_status(
            403, em(app).assignment_requests.post(user_add(demo_id("alice"), POLICY, PACKAGE))
        )


async def test_admin_add_app_only_without_role_is_forbidden(
    make_sandbox: Callable[..., ThreadedSandbox],
) -> None:
    """adminAdd app-only needs the AccessPackageAssignmentManager role as well (else 403)."""
    sb = make_sandbox(tenant_with(entitlement_roles=[]))
    body = user_add(
        demo_id("alice"), POLICY, PACKAGE, request_type=AccessPackageRequestType.AdminAdd
    )
    async with app_client(sb) as app:
        await expect_status(403, em(app).assignment_requests.post(body))


async def test_admin_add_delegated_needs_an_entitlement_role(sandbox: ThreadedSandbox) -> None:
    """A delegated adminAdd is 403 for a plain user and 201 for an assignment manager."""
    body = user_add(demo_id("gary"), OTHER_POLICY, OTHER_PACKAGE, duration=None)
    body.request_type = AccessPackageRequestType.AdminAdd
    body.assignment.additional_data["targetId"] = demo_id("bob")
    async with signed_in(sandbox, ALICE) as alice:
        await expect_status(403, em(alice).assignment_requests.post(body))
    async with signed_in(sandbox, ERIN) as erin:
        created = await em(erin).assignment_requests.post(body)
    assert created is not None
    assert created.request_type == AccessPackageRequestType.AdminAdd


@pytest.mark.parametrize(
    "schedule",
    [
        {"expiration": {"type": "afterDuration", "duration": "PT9H"}},
        {"expiration": {"type": "noExpiration"}},
        {
            "startDateTime": "2099-01-01T00:00:00Z",
            "expiration": {"type": "afterDateTime", "endDateTime": "2099-01-01T08:00:01Z"},
        },
    ],
    ids=["PT9H", "noExpiration", "afterDateTime"],
)
async def test_schedule_longer_than_policy_is_400(
    sandbox: ThreadedSandbox, schedule: dict[str, Any]
) -> None:
    """The local-admin policy allows 8 hours: anything longer is 400."""
    token = await token_for(sandbox, ALICE)
    body = {
        "requestType": "userAdd",
        "justification": "printer",
        "assignment": {
            "targetId": demo_id("alice"),
            "assignmentPolicyId": POLICY,
            "accessPackageId": PACKAGE,
        },
        "schedule": schedule,
    }
    response = await raw(sandbox, token, "POST", "assignmentRequests", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "ScheduleExceedsPolicyMaximum"


async def test_python_timedelta_duration_is_rejected(sandbox: ThreadedSandbox) -> None:
    """A ``timedelta`` in the model is sent as ``"2:00:00"``-style text, not ISO 8601: 400."""
    error = await odata_error(submit_as_alice(sandbox, duration=timedelta(hours=2)))
    assert error.response_status_code == 400


@pytest.mark.parametrize("justification", [None, "   "])
async def test_missing_justification_is_400(
    sandbox: ThreadedSandbox, justification: str | None
) -> None:
    """The policy requires a justification: missing or blank is 400."""
    code = await expect_status(400, submit_as_alice(sandbox, justification=justification))
    assert code == "JustificationRequired"


async def test_custom_schedule_needs_policy_permission(
    make_sandbox: Callable[..., ThreadedSandbox],
) -> None:
    """With ``allowCustomAssignmentSchedule`` false a schedule is 400; without one it is 201."""

    def no_custom(policy: dict[str, Any], tenant: Tenant) -> None:
        policy["requestorSettings"]["allowCustomAssignmentSchedule"] = False

    sb = make_sandbox(custom_tenant(no_custom))
    assert await expect_status(400, submit_as_alice(sb)) == "CustomScheduleNotAllowed"
    created = await submit_as_alice(sb, duration=None)
    assert created.state == AccessPackageRequestState.Submitted


async def test_second_open_request_is_400(sandbox: ThreadedSandbox) -> None:
    """While Alice's request is open, another for the same package and policy is 400."""
    await submit_as_alice(sandbox)
    assert await expect_status(400, submit_as_alice(sandbox)) == "ExistingOpenRequest"


async def test_add_while_assignment_active_is_400(sandbox: ThreadedSandbox) -> None:
    """An active assignment for the package and policy makes another add 400."""
    now = datetime.now(UTC)
    sandbox.call(
        seed_assignment, sandbox.state, PACKAGE, demo_id("alice"), now, now + timedelta(hours=1)
    )
    assert await expect_status(400, submit_as_alice(sandbox)) == "ExistingAssignment"


async def test_guest_is_not_allowed_by_member_only_policy(sandbox: ThreadedSandbox) -> None:
    """``allowedTargetScope: allMemberUsers`` rejects the guest Gary with 400."""
    async with signed_in(sandbox, GARY) as gary:
        code = await expect_status(
            400, em(gary).assignment_requests.post(user_add(demo_id("gary"), POLICY, PACKAGE))
        )
    assert code == "RequestorNotAllowed"


async def test_self_service_for_someone_else_is_400(sandbox: ThreadedSandbox) -> None:
    """A userAdd must target the signed-in user."""
    async with signed_in(sandbox, ALICE) as alice:
        await expect_status(
            400, em(alice).assignment_requests.post(user_add(demo_id("bob"), POLICY, PACKAGE))
        )


@pytest.mark.parametrize(
    ("policy", "package"),
    [(OTHER_POLICY, PACKAGE), (POLICY, demo_id("nope")), (demo_id("nope"), PACKAGE)],
    ids=["policy-of-other-package", "unknown-package", "unknown-policy"],
)
async def test_package_and_policy_must_exist_and_match(
    sandbox: ThreadedSandbox, policy: str, package: str
) -> None:
    """Unknown packages or policies, or a policy of another package, are 400."""
    async with signed_in(sandbox, ALICE) as alice:
        await expect_status(
            400, em(alice).assignment_requests.post(user_add(demo_id("alice"), policy, package))
        )


async def test_specific_directory_users_and_self_add_switch(
    make_sandbox: Callable[..., ThreadedSandbox],
) -> None:
    """``specificDirectoryUsers`` admits listed users/groups only; self-add off rejects all."""

    def specific(policy: dict[str, Any], tenant: Tenant) -> None:
        policy["allowedTargetScope"] = "specificDirectoryUsers"
        policy["specificAllowedTargets"] = [
            {"@odata.type": "#microsoft.graph.singleUser", "userId": demo_id("dave")}
        ]

    sb = make_sandbox(custom_tenant(specific))
    assert await expect_status(400, submit_as_alice(sb)) == "RequestorNotAllowed"
    async with signed_in(sb, DAVE) as dave:
        created = await em(dave).assignment_requests.post(
            user_add(demo_id("dave"), POLICY, PACKAGE)
        )
    assert created is not None

    def self_add_off(policy: dict[str, Any], tenant: Tenant) -> None:
        policy["requestorSettings"]["enableTargetsToSelfAddAccess"] = False

    sb2 = make_sandbox(custom_tenant(self_add_off))
    assert await expect_status(400, submit_as_alice(sb2)) == "RequestorNotAllowed"


async def test_update_and_remove_need_an_existing_own_assignment(sandbox: ThreadedSandbox) -> None:
    """Unknown assignment ids are 400, and so is a userRemove of someone else's assignment."""
    now = datetime.now(UTC)
    bobs = sandbox.call(
        seed_assignment, sandbox.state, PACKAGE, demo_id("bob"), now, now + timedelta(hours=1)
    )
    async with signed_in(sandbox, ALICE) as alice:
        requests = em(alice).assignment_requests
        for kind in (AccessPackageRequestType.UserUpdate, AccessPackageRequestType.UserRemove):
            code = await expect_status(400, requests.post(for_assignment(kind, demo_id("nope"))))
            assert code == "AssignmentNotFound"
        await expect_status(
            400, requests.post(for_assignment(AccessPackageRequestType.UserRemove, bobs["id"]))
        )


async def test_throttled_create_is_retried_and_creates_one_request(
    sandbox: ThreadedSandbox,
) -> None:
    """A 429 on POST assignmentRequests is retried by the SDK; exactly one request exists."""
    await inject_fault(sandbox, path=r"/assignmentRequests$", status=429, count=1, retry_after=1)
    created = await submit_as_alice(sandbox)
    assert sandbox.call(lambda: [rule.count for rule in sandbox.state.faults]) == [0]
    async with app_client(sandbox) as app:
        page = await em(app).assignment_requests.get()
    assert page is not None
    assert [r.id for r in page.value or []] == [created.id]


# --- approvals ------------------------------------------------------------------------------


async def test_app_only_cannot_decide_a_stage(sandbox: ThreadedSandbox) -> None:
    """PATCH of an approval stage is delegated-only: an app token gets 403."""
    request_id, stage_id = await pending_request(sandbox)
    async with app_client(sandbox) as app:
        stages = em(app).access_package_assignment_approvals.by_approval_id(request_id).stages
        await expect_status(
            403,
            stages.by_approval_stage_id(stage_id).patch(ApprovalStage(review_result="Approve")),
        )
        await expect_status(
            403, em(app).access_package_assignment_approvals.by_approval_id(request_id).get()
        )


async def test_second_decision_on_a_stage_is_conflict(sandbox: ThreadedSandbox) -> None:
    """After Bob approves, Carol's decision on the same stage is 409."""
    request_id, stage_id = await pending_request(sandbox)
    await decide(sandbox, BOB, request_id, stage_id)
    error = await odata_error(decide(sandbox, CAROL, request_id, stage_id, "Deny"))
    assert error.response_status_code == 409
    async with signed_in(sandbox, CAROL) as carol:
        approval = (
            await em(carol).access_package_assignment_approvals.by_approval_id(request_id).get()
        )
    assert approval is not None
    (stage,) = approval.stages or []
    assert stage.review_result == "Approved"
    assert stage.status == "Completed"
    assert stage.reviewed_by is not None
    assert stage.reviewed_by.id == demo_id("bob")
    assert stage.justification == "checked"


async def test_requester_cannot_approve_own_request(
    make_sandbox: Callable[..., ThreadedSandbox],
) -> None:
    """Even inside the approver group, the requester gets 403 and is not ``assignedToMe``."""
    sb = make_sandbox(custom_tenant(alice_is_approver))
    request_id, stage_id = await pending_request(sb)
    async with signed_in(sb, ALICE) as alice:
        approvals = em(alice).access_package_assignment_approvals
        await expect_status(
            403,
            approvals.by_approval_id(request_id)
            .stages.by_approval_stage_id(stage_id)
            .patch(ApprovalStage(review_result="Approve", justification="me")),
        )
        mine = await approvals.filter_by_current_user_with_on("approver").get()
    assert mine is not None
    assert mine.value == []
    await decide(sb, BOB, request_id, stage_id)


async def test_non_approver_cannot_read_or_decide(sandbox: ThreadedSandbox) -> None:
    """Dave (not an approver) gets 403 for GET approval and PATCH stage."""
    request_id, stage_id = await pending_request(sandbox)
    async with signed_in(sandbox, DAVE) as dave:
        approvals = em(dave).access_package_assignment_approvals
        await expect_status(403, approvals.by_approval_id(request_id).get())
        await expect_status(
            403,
            approvals.by_approval_id(request_id)
            .stages.by_approval_stage_id(stage_id)
            .patch(ApprovalStage(review_result="Approve", justification="x")),
        )


async def test_unknown_approval_or_stage_is_404(sandbox: ThreadedSandbox) -> None:
    """Unknown approval ids and stage ids are 404."""
    request_id, _ = await pending_request(sandbox)
    async with signed_in(sandbox, BOB) as bob:
        approvals = em(bob).access_package_assignment_approvals
        await expect_status(404, approvals.by_approval_id(demo_id("nope")).get())
        stages = approvals.by_approval_id(request_id).stages
        await expect_status(404, stages.by_approval_stage_id(demo_id("nope")).get())
        listed = await stages.get()
    assert listed is not None
    assert len(listed.value or []) == 1


async def test_review_result_and_approver_justification_are_checked(
    make_sandbox: Callable[..., ThreadedSandbox],
) -> None:
    """A bad reviewResult is 400; so is a blank justification when the stage requires one."""

    def justify(policy: dict[str, Any], tenant: Tenant) -> None:
        policy["requestApprovalSettings"]["stages"][0]["isApproverJustificationRequired"] = True

    sb = make_sandbox(custom_tenant(justify))
    request_id, stage_id = await pending_request(sb)
    async with signed_in(sb, BOB) as bob:
        stage = (
            em(bob)
            .access_package_assignment_approvals.by_approval_id(request_id)
            .stages.by_approval_stage_id(stage_id)
        )
        await expect_status(
            400, stage.patch(ApprovalStage(review_result="Maybe", justification="x"))
        )
        await expect_status(
            400, stage.patch(ApprovalStage(review_result="Approve", justification=" "))
        )
        await stage.patch(ApprovalStage(review_result="Approve", justification="fine"))


# --- filterByCurrentUser ----------------------------------------------------------------


async def test_filter_by_current_user_target_created_by_and_approver(
    sandbox: ThreadedSandbox,
) -> None:
    """target/createdBy list Alice's request for her; approver lists it for Bob, not Dave."""
    request_id, _ = await pending_request(sandbox)
    async with signed_in(sandbox, ALICE) as alice:
        requests = em(alice).assignment_requests
        for on in ("target", "createdBy"):
            mine = await requests.filter_by_current_user_with_on(on).get()
            assert mine is not None
            assert [r.id for r in mine.value or []] == [request_id]
        approving = await requests.filter_by_current_user_with_on("approver").get()
        assert approving is not None
        assert approving.value == []
    async with signed_in(sandbox, BOB) as bob:
        listed = await em(bob).assignment_requests.filter_by_current_user_with_on("approver").get()
        approvals = (
            await em(bob)
            .access_package_assignment_approvals.filter_by_current_user_with_on("approver")
            .get()
        )
    assert listed is not None
    assert [r.id for r in listed.value or []] == [request_id]
    assert approvals is not None
    (approval,) = approvals.value or []
    assert approval.id == request_id
    assert approval.stages is not None
    assert approval.stages[0].assigned_to_me is True
    async with signed_in(sandbox, DAVE) as dave:
        none = await em(dave).assignment_requests.filter_by_current_user_with_on("approver").get()
    assert none is not None
    assert none.value == []


async def test_filter_by_current_user_is_delegated_only(sandbox: ThreadedSandbox) -> None:
    """App tokens get 403 from every filterByCurrentUser function."""
    async with app_client(sandbox) as app:
        await expect_status(
            403, em(app).assignment_requests.filter_by_current_user_with_on("target").get()
        )
        await expect_status(403, em(app).assignments.filter_by_current_user_with_on("target").get())
        await expect_status(
            403,
            em(app)
            .access_package_assignment_approvals.filter_by_current_user_with_on("approver")
            .get(),
        )


async def applicable_requirements(sb: ThreadedSandbox, upn: str) -> list[Any]:
    """getApplicablePolicyRequirements of the local-admin package, signed in as ``upn``."""
    async with signed_in(sb, upn) as client:
        answer = (
            await em(client)
            .access_packages.by_access_package_id(PACKAGE)
            .get_applicable_policy_requirements.post()
        )
    assert answer is not None
    assert undocumented(answer) == []
    return list(answer.value or [])


async def test_applicable_policy_requirements_answer_per_caller(
    make_sandbox: Callable[..., ThreadedSandbox],
) -> None:
    """getApplicablePolicyRequirements lists the policies whose allowed targets include the
    signed-in caller (self-add on), in the documented shape; none: an empty list."""
    sb = make_sandbox(two_policy_tenant())
    answers = {
        upn: sorted(str(r.policy_id) for r in await applicable_requirements(sb, upn))
        for upn in (ALICE, BOB, CAROL, DAVE)
    }
    assert answers == {
        ALICE: [ENGINEERS_POLICY],
        BOB: [SUPPORT_POLICY],
        CAROL: [],
        DAVE: sorted([ENGINEERS_POLICY, SUPPORT_POLICY]),
    }
    (support,) = await applicable_requirements(sb, BOB)
    assert support.policy_display_name == "Local admin: support staff, no approval"
    assert support.is_approval_required_for_add is False
    assert support.allow_custom_assignment_schedule is True
    assert support.schedule.expiration.duration == timedelta(hours=4)

    tenant = two_policy_tenant()
    for policy in tenant.assignment_policies:
        if policy["id"] == SUPPORT_POLICY:
            policy["requestorSettings"]["enableTargetsToSelfAddAccess"] = False
    sb2 = make_sandbox(tenant)
    assert [r.policy_id for r in await applicable_requirements(sb2, DAVE)] == [ENGINEERS_POLICY]


async def test_applicable_policy_requirements_is_delegated_only(sandbox: ThreadedSandbox) -> None:
    """App tokens get 403 from getApplicablePolicyRequirements; an unknown package is 404."""
    async with app_client(sandbox) as app:
        await expect_status(
            403,
            em(app)
            .access_packages.by_access_package_id(PACKAGE)
            .get_applicable_policy_requirements.post(),
        )
    async with signed_in(sandbox, ALICE) as alice:
        await expect_status(
            404,
            em(alice)
            .access_packages.by_access_package_id(demo_id("no-such-package"))
            .get_applicable_policy_requirements.post(),
        )
    assert [r.policy_id for r in await applicable_requirements(sandbox, ALICE)] == [POLICY]


# --- listing ------------------------------------------------------------------------------


async def test_list_filters_select_and_expand(sandbox: ThreadedSandbox) -> None:
    """state, accessPackage/id (with $expand), createdDateTime ge, requestType and ``and``."""
    request_id, _ = await pending_request(sandbox)
    since = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    filters = {
        "state eq 'pendingApproval'": [request_id],
        "state eq 'delivered'": [],
        f"accessPackage/id eq '{PACKAGE}'": [request_id],
        f"accessPackage/id eq '{OTHER_PACKAGE}'": [],
        f"createdDateTime ge {since}": [request_id],
        "requestType eq 'userAdd' and state eq 'pendingApproval'": [request_id],
        "requestType eq 'adminAdd'": [],
    }
    async with app_client(sandbox) as app:
        for text, expected in filters.items():
            page = await em(app).assignment_requests.get(
                request_configuration=query(
                    Requests, filter=text, expand=["accessPackage", "requestor"]
                )
            )
            assert page is not None
            assert [r.id for r in page.value or []] == expected, text
        page = await em(app).assignment_requests.get(
            request_configuration=query(
                Requests, filter="state eq 'pendingApproval'", expand=["accessPackage", "requestor"]
            )
        )
        selected = await em(app).assignment_requests.get(
            request_configuration=query(Requests, select=["id", "state"])
        )
    assert page is not None
    (found,) = page.value or []
    assert not undocumented(found)
    assert found.access_package is not None
    assert found.access_package.id == PACKAGE
    assert found.requestor is not None
    assert found.requestor.principal_name == ALICE
    assert found.requestor.subject_type is not None
    assert found.requestor.subject_type.value == "user"
    assert selected is not None
    assert selected.value is not None
    assert selected.value[0].state == AccessPackageRequestState.PendingApproval
    assert selected.value[0].request_type is None


async def test_request_navigation_and_nested_expand(sandbox: ThreadedSandbox) -> None:
    """requestor/accessPackage/assignment paths, and ``assignment($expand=target,…)``."""
    request_id, _ = await pending_request(sandbox)
    async with app_client(sandbox) as app:
        item = em(app).assignment_requests.by_access_package_assignment_request_id(request_id)
        requestor = await item.requestor.get()
        package = await item.access_package.get()
        assignment = await item.assignment.get()
        expanded = await item.get(
            request_configuration=query(
                Item.AccessPackageAssignmentRequestItemRequestBuilderGetQueryParameters,
                expand=["assignment($expand=target,assignmentPolicy)"],
            )
        )
    assert requestor is not None
    assert requestor.object_id == demo_id("alice")
    assert package is not None
    assert package.id == PACKAGE
    assert assignment is not None
    assert assignment.state is None  # requested, not delivered yet
    assert expanded is not None
    assert expanded.assignment is not None
    assert expanded.assignment.id == assignment.id
    assert expanded.assignment.target is not None
    assert expanded.assignment.target.object_id == demo_id("alice")
    assert expanded.assignment.assignment_policy is not None
    assert expanded.assignment.assignment_policy.id == POLICY


async def test_filter_by_current_user_accepts_encoded_quotes(sandbox: ThreadedSandbox) -> None:
    """``filterByCurrentUser(on=%27target%27)`` is the same function as with plain quotes."""
    request_id, _ = await pending_request(sandbox)
    token = await token_for(sandbox, ALICE)
    for path in ("filterByCurrentUser(on=%27target%27)", "filterByCurrentUser(on='target')"):
        response = await raw(sandbox, token, "GET", f"assignmentRequests/{path}")
        assert response.status_code == 200, response.text
        assert [r["id"] for r in response.json()["value"]] == [request_id]


@pytest.mark.parametrize("text", ["justification eq 'x'", "state eq 'a' or state eq 'b'"])
async def test_unsupported_filter_is_400(sandbox: ThreadedSandbox, text: str) -> None:
    """Filtering on an unsupported property or with ``or`` is 400."""
    async with app_client(sandbox) as app:
        await expect_status(
            400, em(app).assignment_requests.get(request_configuration=query(Requests, filter=text))
        )
        await expect_status(
            400, em(app).assignments.get(request_configuration=query(Assignments, filter=text))
        )


async def test_top_pages_with_absolute_next_links(sandbox: ThreadedSandbox) -> None:
    """``$top`` pages carry absolute nextLinks that PageIterator and ``with_url`` follow."""
    now = datetime.now(UTC)
    seeded = [
        sandbox.call(
            seed_assignment, sandbox.state, OTHER_PACKAGE, user, now, now + timedelta(days=1)
        )["id"]
        for user in (demo_id(n) for n in ("alice", "bob", "carol", "dave", "erin"))
    ]
    async with app_client(sandbox) as app:
        first = await em(app).assignments.get(
            request_configuration=query(
                Assignments,
                top=2,
                filter=f"accessPackage/id eq '{OTHER_PACKAGE}' and state eq 'delivered'",
                expand=["target"],
            )
        )
        assert first is not None
        assert first.odata_next_link is not None
        assert first.odata_next_link.startswith(sandbox.ready["base_url"] + "/v1.0/")
        second = await em(app).assignments.with_url(first.odata_next_link).get()
        assert second is not None
        collected: list[str] = []
        iterator = PageIterator(first, app.request_adapter)
        await iterator.iterate(lambda item: collected.append(item.id) or True)
    assert collected == seeded
    assert [a.id for a in second.value or []] == seeded[2:4]
    assert (second.value or [])[0].target is not None


# --- cancel ---------------------------------------------------------------------------------


async def test_cancel_pending_request_then_cancel_again_is_400(sandbox: ThreadedSandbox) -> None:
    """The requester cancels a pending request (canceled); canceling again is 400."""
    request_id, _ = await pending_request(sandbox)
    async with signed_in(sandbox, ALICE) as alice:
        item = em(alice).assignment_requests.by_access_package_assignment_request_id(request_id)
        await item.cancel.post()
        await expect_status(400, item.cancel.post())
        await expect_status(
            404,
            em(alice)
            .assignment_requests.by_access_package_assignment_request_id(demo_id("nope"))
            .cancel.post(),
        )
    async with app_client(sandbox) as app:
        found = (
            await em(app)
            .assignment_requests.by_access_package_assignment_request_id(request_id)
            .get()
        )
    assert found is not None
    assert found.state == AccessPackageRequestState.Canceled
    assert found.status == "Canceled"
    assert found.completed_date_time is not None


async def test_cancel_by_other_user_is_forbidden_admin_may(sandbox: ThreadedSandbox) -> None:
    """Bob may not cancel Alice's request (403); the assignment-manager app may."""
    request_id, _ = await pending_request(sandbox)
    async with signed_in(sandbox, BOB) as bob:
        item = em(bob).assignment_requests.by_access_package_assignment_request_id(request_id)
        await expect_status(403, item.cancel.post())
    async with app_client(sandbox) as app:
        await (
            em(app)
            .assignment_requests.by_access_package_assignment_request_id(request_id)
            .cancel.post()
        )


async def test_cancel_delivered_request_is_400(sandbox: ThreadedSandbox) -> None:
    """A delivered request is no longer cancellable: 400."""
    async with app_client(sandbox) as app:
        created = await em(app).assignment_requests.post(
            user_add(
                demo_id("bob"),
                OTHER_POLICY,
                OTHER_PACKAGE,
                request_type=AccessPackageRequestType.AdminAdd,
            )
        )
        assert created is not None
        assert created.id is not None
        item = em(app).assignment_requests.by_access_package_assignment_request_id(created.id)

        async def delivered() -> bool:
            found = await item.get()
            return found is not None and found.state == AccessPackageRequestState.Delivered

        await eventually(delivered)
        await expect_status(400, item.cancel.post())
