"""The issue's "done when" scenario, end to end against the sandbox: a user asks for local admin
for two hours, an approver approves, Entra delivers group membership, and it ends on time.

Only what a deployment has is used: the ready line's ``env``, msgraph-sdk, azure-identity and
MSAL sign-ins (through the shared fixtures), and the control API to move the clock.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from msgraph import GraphServiceClient
from msgraph.generated.identity_governance.entitlement_management.access_packages.item.access_package_item_request_builder import (  # noqa: E501
    AccessPackageItemRequestBuilder,
)
from msgraph.generated.identity_governance.entitlement_management.assignment_requests.item.access_package_assignment_request_item_request_builder import (  # noqa: E501
    AccessPackageAssignmentRequestItemRequestBuilder,
)
from msgraph.generated.models.access_package_assignment_request import (
    AccessPackageAssignmentRequest,
)
from msgraph.generated.models.access_package_assignment_state import AccessPackageAssignmentState
from msgraph.generated.models.access_package_request_state import AccessPackageRequestState
from msgraph.generated.models.approval_stage import ApprovalStage

from sandbox.server import ThreadedSandbox
from tests.integration.conftest import StaticTokenCredential, graph_client, user_token
from tests.integration.graph_support import (
    ALICE,
    BOB,
    EM_SCOPES,
    advance,
    em,
    eventually,
    query,
    signed_in,
    undocumented,
    user_add,
)

RequestItem = AccessPackageAssignmentRequestItemRequestBuilder


async def _group_of_package(app: GraphServiceClient, package_id: str) -> str:
    package = (
        await em(app)
        .access_packages.by_access_package_id(package_id)
        .get(
            request_configuration=query(
                AccessPackageItemRequestBuilder.AccessPackageItemRequestBuilderGetQueryParameters,
                expand=["resourceRoleScopes($expand=role,scope)"],
            )
        )
    )
    assert package is not None
    assert package.resource_role_scopes
    scope = package.resource_role_scopes[0].scope
    assert scope is not None
    assert scope.origin_system == "AadGroup"
    assert scope.origin_id
    return scope.origin_id


async def _members(app: GraphServiceClient, group_id: str) -> set[str]:
    """Group member ids through Graph (``/groups/{id}/members``)."""
    page = await app.groups.by_group_id(group_id).members.get()
    assert page is not None
    return {m.id for m in page.value or [] if m.id}


async def test_user_requests_two_hours_gets_approved_delivered_and_expired(
    sandbox: ThreadedSandbox, ready_env: dict[str, str], app_graph: GraphServiceClient
) -> None:
    """userAdd PT2H → pendingApproval → approved → delivered + member → expired, member gone."""
    package_id = ready_env["ELEVATE_ACCESS_PACKAGE_ID"]
    policy_id = ready_env["ELEVATE_POLICY_ID"]
    group_id = await _group_of_package(app_graph, package_id)

    sign_in = await asyncio.to_thread(user_token, sandbox, ALICE, EM_SCOPES)
    me = sign_in["id_token_claims"]["oid"]
    async with graph_client(sandbox, StaticTokenCredential(sign_in["access_token"])) as alice:
        created = await em(alice).assignment_requests.post(
            user_add(me, policy_id, package_id, duration="PT2H")
        )
    assert created is not None
    assert created.id
    assert created.state == AccessPackageRequestState.Submitted
    assert created.status == "Accepted"
    assert set(created.additional_data) <= {"@odata.context"}
    assert not undocumented(created)
    request = em(app_graph).assignment_requests.by_access_package_assignment_request_id(created.id)

    async def state_is(wanted: AccessPackageRequestState) -> AccessPackageAssignmentRequest | None:
        current = await request.get(
            request_configuration=query(
                RequestItem.AccessPackageAssignmentRequestItemRequestBuilderGetQueryParameters,
                expand=["assignment", "requestor"],
            )
        )
        return current if current is not None and current.state == wanted else None

    pending = await eventually(lambda: state_is(AccessPackageRequestState.PendingApproval))
    assert pending.requestor is not None
    assert pending.requestor.object_id == me

    async with signed_in(sandbox, BOB) as bob:
        approvals = em(bob).access_package_assignment_approvals
        approval = await approvals.by_approval_id(created.id).get()
        assert approval is not None
        assert approval.stages
        assert not undocumented(approval)
        stage = approval.stages[0]
        assert stage.assigned_to_me is True
        assert stage.review_result == "NotReviewed"
        assert stage.id is not None
        await (
            approvals.by_approval_id(created.id)
            .stages.by_approval_stage_id(stage.id)
            .patch(ApprovalStage(review_result="Approve", justification="ok"))
        )

    delivered = await eventually(lambda: state_is(AccessPackageRequestState.Delivered))
    assert delivered.completed_date_time is not None
    assert not undocumented(delivered)
    assignment = delivered.assignment
    assert assignment is not None
    assert assignment.id
    assert assignment.state == AccessPackageAssignmentState.Delivered
    schedule = assignment.schedule
    assert schedule is not None
    assert schedule.start_date_time is not None
    assert schedule.expiration is not None
    assert schedule.expiration.end_date_time is not None
    assert schedule.expiration.end_date_time - schedule.start_date_time == timedelta(hours=2)
    assert me in await _members(app_graph, group_id)

    await advance(sandbox, timedelta(hours=2, minutes=1))
    ended = await em(app_graph).assignments.by_access_package_assignment_id(assignment.id).get()
    assert ended is not None
    assert ended.state == AccessPackageAssignmentState.Expired
    assert ended.expired_date_time is not None
    assert me not in await _members(app_graph, group_id)
