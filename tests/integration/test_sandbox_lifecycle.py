"""The asynchronous life of requests and assignments in the sandbox, on its clock: delivery,
approval stages, denial and timeout, updates, removal, expiry, scheduling, snapshots, paging."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from msgraph import GraphServiceClient
from msgraph.generated.identity_governance.entitlement_management.assignment_requests.assignment_requests_request_builder import (  # noqa: E501
    AssignmentRequestsRequestBuilder,
)
from msgraph.generated.identity_governance.entitlement_management.assignment_requests.item.access_package_assignment_request_item_request_builder import (  # noqa: E501
    AccessPackageAssignmentRequestItemRequestBuilder,
)
from msgraph.generated.identity_governance.entitlement_management.assignments.assignments_request_builder import (  # noqa: E501
    AssignmentsRequestBuilder,
)
from msgraph.generated.models.access_package_assignment_request import (
    AccessPackageAssignmentRequest,
)
from msgraph.generated.models.access_package_assignment_state import AccessPackageAssignmentState
from msgraph.generated.models.access_package_request_state import AccessPackageRequestState
from msgraph.generated.models.access_package_request_type import AccessPackageRequestType
from msgraph.generated.models.approval_stage import ApprovalStage
from msgraph.generated.models.entitlement_management_schedule import (
    EntitlementManagementSchedule,
)
from msgraph.generated.models.expiration_pattern import ExpirationPattern
from msgraph.generated.models.expiration_pattern_type import ExpirationPatternType
from msgraph_core import PageIterator

from sandbox.graph.entitlement import seed_assignment
from sandbox.server import ThreadedSandbox
from sandbox.tenant import Tenant, demo_id, demo_tenant
from tests.integration.graph_support import (
    ALICE,
    BOB,
    DAVE,
    advance,
    app_client,
    em,
    eventually,
    for_assignment,
    odata_error,
    query,
    signed_in,
    snapshot,
    undocumented,
    user_add,
)

PACKAGE, POLICY = demo_id("package"), demo_id("policy")
OTHER_PACKAGE, OTHER_POLICY = demo_id("other-package"), demo_id("other-policy")
GROUP = demo_id("jit-group")
Item = AccessPackageAssignmentRequestItemRequestBuilder
Requests = AssignmentRequestsRequestBuilder.AssignmentRequestsRequestBuilderGetQueryParameters
Assignments = AssignmentsRequestBuilder.AssignmentsRequestBuilderGetQueryParameters
S = AccessPackageRequestState


def sandbox_now(sb: ThreadedSandbox) -> datetime:
    """The sandbox clock."""
    now: datetime = sb.call(sb.state.clock.now)
    return now


def hours(n: float) -> EntitlementManagementSchedule:
    """An ``afterDuration`` schedule of ``n`` hours (ISO text, as the SDK must send it)."""
    return EntitlementManagementSchedule(
        expiration=ExpirationPattern(type=ExpirationPatternType.AfterDuration, duration=f"PT{n}H")
    )


def custom_tenant(change: Callable[[dict[str, Any]], None]) -> Tenant:
    """The demo tenant with its local-admin policy edited by ``change``."""
    tenant = demo_tenant()
    change(tenant.assignment_policies[0])
    return tenant


async def fetch(client: GraphServiceClient, request_id: str) -> AccessPackageAssignmentRequest:
    """A request with its assignment and requestor expanded."""
    found = (
        await em(client)
        .assignment_requests.by_access_package_assignment_request_id(request_id)
        .get(
            request_configuration=query(
                Item.AccessPackageAssignmentRequestItemRequestBuilderGetQueryParameters,
                expand=["assignment", "requestor", "accessPackage"],
            )
        )
    )
    assert found is not None
    return found


async def reach(
    client: GraphServiceClient, request_id: str, state: S, seen: list[S] | None = None
) -> AccessPackageAssignmentRequest:
    """Poll until the request is in ``state``; every state observed goes into ``seen``."""

    async def probe() -> AccessPackageAssignmentRequest | None:
        found = await fetch(client, request_id)
        if seen is not None and found.state is not None and (not seen or seen[-1] != found.state):
            seen.append(found.state)
        return found if found.state == state else None

    return await eventually(probe, interval=0.02)


async def members(client: GraphServiceClient) -> set[str]:
    """Member ids of the local-admin group."""
    page = await client.groups.by_group_id(GROUP).members.get()
    assert page is not None
    return {m.id for m in page.value or [] if m.id}


async def post(client: GraphServiceClient, body: AccessPackageAssignmentRequest) -> str:
    """Create a request; its id."""
    created = await em(client).assignment_requests.post(body)
    assert created is not None
    assert created.id is not None
    return created.id


async def current_stage(sb: ThreadedSandbox, request_id: str, upn: str) -> Any:
    """The in-progress stage of an approval as ``upn`` sees it."""
    async with signed_in(sb, upn) as client:
        approval = (
            await em(client).access_package_assignment_approvals.by_approval_id(request_id).get()
        )
    assert approval is not None
    return next(s for s in approval.stages or [] if s.status == "InProgress")


async def decide(
    sb: ThreadedSandbox, upn: str, request_id: str, stage_id: str, result: str
) -> None:
    """``upn`` decides a stage."""
    async with signed_in(sb, upn) as client:
        approvals = em(client).access_package_assignment_approvals
        await (
            approvals.by_approval_id(request_id)
            .stages.by_approval_stage_id(stage_id)
            .patch(ApprovalStage(review_result=result, justification="looked at it"))
        )


async def alice_requests(sb: ThreadedSandbox, **kwargs: Any) -> str:
    """Alice's userAdd for local admin; its id."""
    async with signed_in(sb, ALICE) as alice:
        return await post(alice, user_add(demo_id("alice"), POLICY, PACKAGE, **kwargs))


# --- delivery -----------------------------------------------------------------------------


async def test_admin_add_is_delivered_without_approval(sandbox: ThreadedSandbox) -> None:
    """adminAdd (app): submitted → delivering → delivered; assignment and membership follow."""

    def admin_add(who: str, policy: str, package: str) -> AccessPackageAssignmentRequest:
        kind = AccessPackageRequestType.AdminAdd
        return user_add(demo_id(who), policy, package, duration=None, request_type=kind)

    async with app_client(sandbox) as app:
        # The SDK imports its model modules on first parse (seconds): warm it up with another
        # request, so that polling the measured one is fast enough to see each 200 ms step.
        await reach(
            app, await post(app, admin_add("carol", OTHER_POLICY, OTHER_PACKAGE)), S.Delivered
        )
        request_id = await post(app, admin_add("bob", POLICY, PACKAGE))
        seen: list[S] = []
        done = await reach(app, request_id, S.Delivered, seen)
        group = await members(app)
    assert seen[-2:] == [S.Delivering, S.Delivered]
    assert S.PendingApproval not in seen
    assert not undocumented(done)
    assert done.status == "Delivered"
    assert done.requestor is not None
    assert done.requestor.subject_type is not None
    assert done.requestor.subject_type.value == "servicePrincipal"
    assignment = done.assignment
    assert assignment is not None
    assert assignment.state == AccessPackageAssignmentState.Delivered
    assert assignment.schedule is not None
    assert assignment.schedule.expiration is not None
    assert assignment.schedule.start_date_time is not None
    assert assignment.schedule.expiration.end_date_time is not None
    policy_length = (
        assignment.schedule.expiration.end_date_time - assignment.schedule.start_date_time
    )
    assert policy_length == timedelta(hours=8)
    assert demo_id("bob") in group


async def test_user_add_on_policy_without_approval_is_delivered(sandbox: ThreadedSandbox) -> None:
    """Alice's userAdd on the no-approval policy is delivered (for the policy's default P30D)."""
    async with signed_in(sandbox, ALICE) as alice:
        request_id = await post(
            alice, user_add(demo_id("alice"), OTHER_POLICY, OTHER_PACKAGE, duration=None)
        )
        done = await reach(alice, request_id, S.Delivered)
        mine = await em(alice).assignments.filter_by_current_user_with_on("target").get()
    assert done.assignment is not None
    assert mine is not None
    assert [a.id for a in mine.value or []] == [done.assignment.id]
    schedule = done.assignment.schedule
    assert schedule is not None
    assert schedule.expiration is not None
    assert schedule.expiration.type == ExpirationPatternType.AfterDateTime
    assert schedule.start_date_time is not None
    assert schedule.expiration.end_date_time - schedule.start_date_time == timedelta(days=30)


# --- approvals -----------------------------------------------------------------------------


async def test_denied_request_ends_denied_without_assignment(sandbox: ThreadedSandbox) -> None:
    """A deny decision ends the request denied; no assignment is listed."""
    request_id = await alice_requests(sandbox)
    async with app_client(sandbox) as app:
        await reach(app, request_id, S.PendingApproval)
        stage = await current_stage(sandbox, request_id, BOB)
        await decide(sandbox, BOB, request_id, stage.id, "Deny")
        denied = await fetch(app, request_id)
        listed = await em(app).assignments.get()
    assert denied.state == S.Denied
    assert denied.status == "Denied"
    assert denied.completed_date_time is not None
    assert listed is not None
    assert listed.value == []


async def test_approval_times_out_after_duration_before_automatic_denial(
    sandbox: ThreadedSandbox,
) -> None:
    """Past the stage's P1D the request ends denied with status Expired; the stage Expired."""
    request_id = await alice_requests(sandbox)
    async with app_client(sandbox) as app:
        await reach(app, request_id, S.PendingApproval)
        await advance(sandbox, timedelta(days=1, minutes=1))
        ended = await fetch(app, request_id)
    assert ended.state == S.Denied
    assert ended.status == "Expired"
    states = await snapshot(sandbox)
    (approval,) = [a for a in states["approvals"] if a["id"] == request_id]
    assert approval["stages"][0]["status"] == "Expired"
    assert approval["stages"][0]["reviewResult"] == "NotReviewed"


async def test_two_stage_policy_needs_both_approvals(
    make_sandbox: Callable[..., ThreadedSandbox],
) -> None:
    """Stage 2 (the requester's manager) starts after stage 1; delivery waits for both."""

    def two_stages(policy: dict[str, Any]) -> None:
        stages = policy["requestApprovalSettings"]["stages"]
        stages.append(
            {
                **stages[0],
                "primaryApprovers": [
                    {"@odata.type": "#microsoft.graph.requestorManager", "managerLevel": 1}
                ],
                "fallbackPrimaryApprovers": [],
            }
        )

    sb = make_sandbox(custom_tenant(two_stages))
    request_id = await alice_requests(sb)
    async with app_client(sb) as app:
        await reach(app, request_id, S.PendingApproval)
        first = await current_stage(sb, request_id, BOB)
        await decide(sb, BOB, request_id, first.id, "Approve")
        second = await current_stage(sb, request_id, DAVE)
        assert second.id != first.id
        assert second.assigned_to_me is True
        error = await odata_error(decide(sb, BOB, request_id, second.id, "Approve"))
        assert error.response_status_code == 403
        assert (await fetch(app, request_id)).state == S.PendingApproval
        await decide(sb, DAVE, request_id, second.id, "Approve")
        await reach(app, request_id, S.Delivered)
    async with signed_in(sb, DAVE) as dave:
        approval = (
            await em(dave).access_package_assignment_approvals.by_approval_id(request_id).get()
        )
    assert approval is not None
    assert [s.review_result for s in approval.stages or []] == ["Approved", "Approved"]
    assert [s.status for s in approval.stages or []] == ["Completed", "Completed"]


async def test_manager_chain_falls_back_when_nobody_resolves(
    make_sandbox: Callable[..., ThreadedSandbox],
) -> None:
    """requestorManager level 2 resolves to nobody for Alice, so the fallback (Erin) approves."""

    def skip_level(policy: dict[str, Any]) -> None:
        stage = policy["requestApprovalSettings"]["stages"][0]
        stage["primaryApprovers"] = [
            {"@odata.type": "#microsoft.graph.requestorManager", "managerLevel": 2}
        ]

    sb = make_sandbox(custom_tenant(skip_level))
    request_id = await alice_requests(sb)
    async with app_client(sb) as app:
        await reach(app, request_id, S.PendingApproval)
    states = await snapshot(sb)
    (approval,) = [a for a in states["approvals"] if a["id"] == request_id]
    assert approval["stages"][0]["approvers"] == [demo_id("erin")]


# --- update, remove, expiry ----------------------------------------------------------------


async def test_user_update_extends_the_end(sandbox: ThreadedSandbox) -> None:
    """userUpdate with PT4H moves the end of Alice's active assignment; the start stays."""
    now = sandbox_now(sandbox)
    seeded = sandbox.call(
        seed_assignment, sandbox.state, PACKAGE, demo_id("alice"), now, now + timedelta(hours=1)
    )
    async with signed_in(sandbox, ALICE) as alice:
        request_id = await post(
            alice,
            for_assignment(
                AccessPackageRequestType.UserUpdate,
                seeded["id"],
                schedule=hours(4),
                justification="need longer",
            ),
        )
        done = await reach(alice, request_id, S.Delivered)
    assignment = done.assignment
    assert assignment is not None
    assert assignment.id == seeded["id"]
    schedule = assignment.schedule
    assert schedule is not None
    assert schedule.start_date_time == now.replace(microsecond=now.microsecond // 10000 * 10000)
    assert schedule.expiration is not None
    assert schedule.expiration.end_date_time is not None
    assert schedule.expiration.end_date_time > now + timedelta(hours=3, minutes=59)


async def test_admin_update_changes_only_the_schedule_it_sends(sandbox: ThreadedSandbox) -> None:
    """adminUpdate without a schedule keeps the end; with ``afterDateTime`` it sets it."""
    now = sandbox_now(sandbox).replace(microsecond=0)
    seeded = sandbox.call(
        seed_assignment, sandbox.state, PACKAGE, demo_id("bob"), now, now + timedelta(hours=1)
    )
    new_end = now + timedelta(hours=3)
    until = EntitlementManagementSchedule(
        expiration=ExpirationPattern(
            type=ExpirationPatternType.AfterDateTime, end_date_time=new_end
        )
    )
    kind = AccessPackageRequestType.AdminUpdate
    async with app_client(sandbox) as app:
        unchanged = await reach(
            app, await post(app, for_assignment(kind, seeded["id"])), S.Delivered
        )
        moved = await reach(
            app, await post(app, for_assignment(kind, seeded["id"], schedule=until)), S.Delivered
        )
    for done, end in ((unchanged, now + timedelta(hours=1)), (moved, new_end)):
        assert done.assignment is not None
        assert done.assignment.schedule is not None
        assert done.assignment.schedule.expiration is not None
        assert done.assignment.schedule.expiration.end_date_time == end


async def test_user_update_waits_for_approval_when_policy_requires(
    make_sandbox: Callable[..., ThreadedSandbox],
) -> None:
    """With ``isApprovalRequiredForUpdate`` a userUpdate goes to pendingApproval."""

    def approve_updates(policy: dict[str, Any]) -> None:
        policy["requestApprovalSettings"]["isApprovalRequiredForUpdate"] = True

    sb = make_sandbox(custom_tenant(approve_updates))
    now = sandbox_now(sb)
    seeded = sb.call(
        seed_assignment, sb.state, PACKAGE, demo_id("alice"), now, now + timedelta(hours=1)
    )
    async with signed_in(sb, ALICE) as alice:
        request_id = await post(
            alice,
            for_assignment(
                AccessPackageRequestType.UserUpdate,
                seeded["id"],
                schedule=hours(2),
                justification="more",
            ),
        )
        await reach(alice, request_id, S.PendingApproval)


async def test_remove_requests_expire_assignments_and_end_membership(
    sandbox: ThreadedSandbox,
) -> None:
    """userRemove (own) and adminRemove (app) expire the assignment and leave the group."""
    now = sandbox_now(sandbox)
    alices, bobs = (
        sandbox.call(
            seed_assignment, sandbox.state, PACKAGE, demo_id(who), now, now + timedelta(hours=4)
        )
        for who in ("alice", "bob")
    )
    async with signed_in(sandbox, ALICE) as alice, app_client(sandbox) as app:
        assert {demo_id("alice"), demo_id("bob")} <= await members(app)
        removals = [
            await post(alice, for_assignment(AccessPackageRequestType.UserRemove, alices["id"])),
            await post(app, for_assignment(AccessPackageRequestType.AdminRemove, bobs["id"])),
        ]
        for request_id in removals:
            done = await reach(app, request_id, S.Delivered)
            assert done.assignment is not None
            assert done.assignment.state == AccessPackageAssignmentState.Expired
            assert done.assignment.expired_date_time is not None
        assert not {demo_id("alice"), demo_id("bob")} & await members(app)


async def test_expiry_ends_membership_and_records_system_remove(sandbox: ThreadedSandbox) -> None:
    """At its end an assignment expires, leaves the group and a delivered systemRemove exists."""
    now = sandbox_now(sandbox)
    seeded = sandbox.call(
        seed_assignment, sandbox.state, PACKAGE, demo_id("alice"), now, now + timedelta(hours=1)
    )
    async with app_client(sandbox) as app:
        await advance(sandbox, timedelta(hours=1, seconds=1))
        ended = await em(app).assignments.by_access_package_assignment_id(seeded["id"]).get()
        removes = await em(app).assignment_requests.get(
            request_configuration=query(
                Requests, filter="requestType eq 'systemRemove'", expand=["assignment"]
            )
        )
        group = await members(app)
    assert ended is not None
    assert ended.state == AccessPackageAssignmentState.Expired
    assert ended.expired_date_time is not None
    assert removes is not None
    (remove,) = removes.value or []
    assert remove.state == S.Delivered
    assert remove.assignment is not None
    assert remove.assignment.id == seeded["id"]
    assert demo_id("alice") not in group


async def test_future_start_is_scheduled_until_it_begins(sandbox: ThreadedSandbox) -> None:
    """adminAdd starting in an hour stays scheduled, then delivers with that start."""
    start = sandbox_now(sandbox) + timedelta(hours=1)
    body = user_add(
        demo_id("carol"), POLICY, PACKAGE, request_type=AccessPackageRequestType.AdminAdd
    )
    body.schedule = hours(2)
    body.schedule.start_date_time = start.replace(microsecond=0)
    async with app_client(sandbox) as app:
        request_id = await post(app, body)
        await reach(app, request_id, S.Scheduled)
        assert demo_id("carol") not in await members(app)
        await advance(sandbox, timedelta(hours=1))
        done = await reach(app, request_id, S.Delivered)
        assert demo_id("carol") in await members(app)
    assert done.assignment is not None
    schedule = done.assignment.schedule
    assert schedule is not None
    assert schedule.start_date_time == start.replace(microsecond=0)
    assert schedule.expiration is not None
    assert schedule.expiration.end_date_time == start.replace(microsecond=0) + timedelta(hours=2)


# --- observation and scale -------------------------------------------------------------------


async def test_snapshots_show_requests_approvals_and_assignments(
    sandbox: ThreadedSandbox,
) -> None:
    """``/_sandbox/state`` lists requests (expanded), approvals (with approvers), assignments."""
    request_id = await alice_requests(sandbox)
    async with app_client(sandbox) as app:
        await reach(app, request_id, S.PendingApproval)
    now = sandbox_now(sandbox)
    seeded = sandbox.call(seed_assignment, sandbox.state, OTHER_PACKAGE, demo_id("bob"), now, None)
    states = await snapshot(sandbox)
    (request,) = states["requests"]
    assert request["id"] == request_id
    assert request["requestor"]["principalName"] == ALICE
    assert request["accessPackage"]["id"] == PACKAGE
    (approval,) = states["approvals"]
    assert approval["requestState"] == "pendingApproval"
    assert sorted(approval["stages"][0]["approvers"]) == sorted([demo_id("bob"), demo_id("carol")])
    (assignment,) = states["assignments"]
    assert assignment["id"] == seeded["id"]
    assert assignment["target"]["objectId"] == demo_id("bob")
    assert assignment["schedule"]["expiration"]["type"] == "noExpiration"


async def test_paging_through_many_seeded_assignments(sandbox: ThreadedSandbox) -> None:
    """1,500 seeded assignments page out complete, in insertion order, through nextLinks."""
    now = sandbox_now(sandbox)

    def seed_many() -> list[str]:
        return [
            seed_assignment(
                sandbox.state, PACKAGE, str(uuid.uuid4()), now, now + timedelta(days=1)
            )["id"]
            for _ in range(1500)
        ]

    seeded = sandbox.call(seed_many)
    async with app_client(sandbox) as app:
        first = await em(app).assignments.get(
            request_configuration=query(
                Assignments, filter=f"accessPackage/id eq '{PACKAGE}' and state eq 'delivered'"
            )
        )
        assert first is not None
        collected: list[str] = []
        await PageIterator(first, app.request_adapter).iterate(
            lambda item: collected.append(item.id) or True
        )
    assert collected == seeded
