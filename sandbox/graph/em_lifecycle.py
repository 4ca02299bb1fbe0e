"""The asynchronous life of assignment requests and assignments (spec/graph.md §1.2).

A processor registered in ``state.processors`` moves every open request one step whenever its
``next_at`` (sandbox clock) has passed; each step waits ``state.delivery_delay``:

    submitted ─▶ pendingApproval ─(all stages approve)─▶ [scheduled ─▶] delivering ─▶ delivered
        │              ├─(a stage denies)──▶ denied (Denied)
        │              └─(durationBeforeAutomaticDenial)──▶ AUTO_DENIAL_STATE (AUTO_DENIAL_STATUS)
        └─(no approval needed)─▶ [scheduled ─▶] delivering ─▶ delivered

Delivering an add creates the assignment (``delivering`` then ``delivered``) and puts the target
in the package's group; an update changes the assignment's schedule; a remove expires it.  An
assignment reaching its end expires, leaves the group, and Entra's ``systemRemove`` request is
recorded (delivered).  Every change calls ``state.notify_changed()``.
"""

from __future__ import annotations

from datetime import datetime

from sandbox.graph.em_model import (
    Approval,
    Assignment,
    EmStore,
    Request,
    Stage,
    new_id,
    parse_duration,
)
from sandbox.graph.em_policy import (
    approval_stages,
    find_policy,
    needs_approval,
    policy_expiration,
    stage_approvers,
)
from sandbox.state import SandboxState
from sandbox.tenant import Group, Tenant

# What an approval that timed out ends as.  Graph documents only the portal's "Expired"; the
# v1.0 request state is unverified (spec/graph.md §1.2), so both are configurable here.
AUTO_DENIAL_STATE = "denied"
AUTO_DENIAL_STATUS = "Expired"
# ``status`` text of an assignment that ended (free text in Graph).
ASSIGNMENT_ENDED_STATUS = "Expired"
STATUS_TEXT = {
    "submitted": "Accepted",
    "pendingApproval": "PendingApproval",
    "scheduled": "Scheduled",
    "delivering": "Delivering",
    "delivered": "Delivered",
    "denied": "Denied",
    "canceled": "Canceled",
    "deliveryFailed": "DeliveryFailed",
}
CANCELLABLE_STATES = frozenset({"submitted", "pendingApproval", "scheduled"})


class MemberSets:
    """Group membership changes with O(1) checks (a benchmark seeds tens of thousands of
    assignments into one group).  Each set mirrors a group's ``members`` list and is rebuilt
    when that list was replaced or changed length behind its back."""

    def __init__(self) -> None:
        self._views: dict[str, tuple[list[str], int, set[str]]] = {}

    def _view(self, group: Group) -> set[str]:
        view = self._views.get(group.id)
        if view is None or view[0] is not group.members or view[1] != len(group.members):
            view = (group.members, len(group.members), set(group.members))
            self._views[group.id] = view
        return view[2]

    def add(self, group: Group, user_id: str) -> None:
        """Make ``user_id`` a member (once)."""
        members = self._view(group)
        if user_id not in members:
            group.members.append(user_id)
            members.add(user_id)
            self._views[group.id] = (group.members, len(group.members), members)

    def discard(self, group: Group, user_id: str) -> None:
        """Take ``user_id`` out of the group if present."""
        members = self._view(group)
        if user_id in members:
            group.members.remove(user_id)
            members.discard(user_id)
            self._views[group.id] = (group.members, len(group.members), members)


class EmLifecycle:
    """The entitlement-management records of a sandbox and the rules that move them."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.store = EmStore(created=state.clock.now())
        self._members = MemberSets()

    @property
    def tenant(self) -> Tenant:
        """The sandbox's tenant."""
        return self.state.tenant

    def now(self) -> datetime:
        """Sandbox time."""
        return self.state.clock.now()

    def changed(self) -> None:
        """Forget paging shortcuts and wake watchers."""
        self.store.touch()
        self.state.notify_changed()

    # --- requests ------------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        """Record a validated new request; the processor takes it from ``submitted``."""
        request.next_at = request.created + self.state.delivery_delay
        self.store.add_request(request)
        self.changed()

    def set_state(self, request: Request, state: str, status: str | None = None) -> None:
        """Move ``request`` to ``state`` (and its status text); finished requests get completed."""
        request.state = state
        request.status = status or STATUS_TEXT.get(state, state)
        if request.open:
            self.store.open[request.id] = request
        else:
            self.store.open.pop(request.id, None)
            request.completed = self.now()
            request.next_at = None

    def process(self) -> None:
        """One pass: move every request that is due, expire every assignment that ended."""
        now = self.now()
        due = [r for r in self.store.open.values() if r.next_at is not None and r.next_at <= now]
        for request in due:
            self._step(request, now)
        expired = list(self.store.due_expiries(now))
        for assignment in expired:
            self.expire(assignment, assignment.end or now)
            self._record_system_remove(assignment, now)
        if due or expired:
            self.changed()

    def _step(self, request: Request, now: datetime) -> None:
        delay = self.state.delivery_delay
        if request.state == "submitted":
            policy = find_policy(self.tenant, request.policy_id) or {}
            if needs_approval(policy, request.request_type):
                self.set_state(request, "pendingApproval")
                request.approval = Approval(id=request.id, policy_stages=approval_stages(policy))
                self._start_stage(request, 0, now)
            else:
                self._approved(request, now)
        elif request.state == "pendingApproval":
            if request.approved:
                self._approved(request, now)
            else:
                self._auto_deny(request)
        elif request.state == "scheduled":
            self._begin_delivery(request)
            request.next_at = now + delay
        elif request.state == "delivering":
            self._complete(request, now)

    def _approved(self, request: Request, now: datetime) -> None:
        start = request.schedule.start if request.schedule else None
        if request.kind == "add" and start is not None and start > now:
            self.set_state(request, "scheduled")
            request.next_at = start
            return
        self._begin_delivery(request)
        request.next_at = now + self.state.delivery_delay

    def _begin_delivery(self, request: Request) -> None:
        self.set_state(request, "delivering")
        if request.kind == "add":
            assignment = self.store.assignments[request.assignment_id]
            assignment.state, assignment.status = "delivering", "Delivering"

    def _complete(self, request: Request, now: datetime) -> None:
        assignment = self.store.assignments[request.assignment_id]
        if request.kind == "add":
            self._apply_schedule(request, assignment, now)
        elif assignment.state != "delivered":
            # The assignment ended while this request waited: a removal has nothing left to
            # do, an update has nothing to change.
            if request.kind == "update":
                self.set_state(request, "deliveryFailed")
                return
        elif request.kind == "remove":
            self.expire(assignment, now)
        elif request.schedule is not None and request.schedule.custom:
            self._apply_schedule(request, assignment, now)
        self.set_state(request, "delivered")

    def _apply_schedule(self, request: Request, assignment: Assignment, now: datetime) -> None:
        """Deliver an add, or change the schedule of an update; the policy fills gaps."""
        schedule = request.schedule
        base = (schedule.start if schedule else None) or now
        if request.kind == "add" or (schedule and schedule.start):
            assignment.start = base
        if schedule and schedule.expiration.type != "notSpecified":
            end = schedule.expiration.end_from(base)
        else:
            policy = find_policy(self.tenant, assignment.policy_id) or {}
            end = policy_expiration(policy).end_from(base)
        assignment.end = end
        assignment.expiration_type = "afterDateTime" if end else "noExpiration"
        assignment.state, assignment.status = "delivered", "Delivered"
        self._set_membership(assignment, present=True)
        self.store.watch_expiry(assignment)

    # --- approvals -----------------------------------------------------------------------

    def _start_stage(self, request: Request, index: int, now: datetime) -> None:
        approval = request.approval
        assert approval is not None
        approval.stages.append(Stage(id=new_id(), index=index, started=now))
        timeout = approval.policy_stages[index].get("durationBeforeAutomaticDenial") or "P14D"
        request.next_at = now + parse_duration(timeout, "durationBeforeAutomaticDenial")

    def _auto_deny(self, request: Request) -> None:
        if request.approval and request.approval.current:
            request.approval.current.status = "Expired"
        self.set_state(request, AUTO_DENIAL_STATE, AUTO_DENIAL_STATUS)

    def approvers(self, request: Request, stage: Stage) -> list[str]:
        """User ids who may decide ``stage`` of ``request`` (never its requestor or target)."""
        approval = request.approval
        target = self.tenant.user(request.target_id)
        if approval is None or target is None:
            return []
        excluded = {request.target_id}
        if request.requestor is not None:
            excluded.add(request.requestor.object_id)
        return stage_approvers(self.tenant, approval.policy_stages[stage.index], target, excluded)

    def decide(
        self, request: Request, stage: Stage, reviewer: str, approve: bool, justification: str
    ) -> None:
        """Record one approver's decision on the current stage (checks done by the caller)."""
        now = self.now()
        stage.review_result = "Approved" if approve else "Denied"
        stage.status = "Completed"
        stage.reviewed_by, stage.reviewed_at = reviewer, now
        stage.justification = justification
        approval = request.approval
        assert approval is not None
        if not approve:
            self.set_state(request, "denied")
        elif stage.index + 1 < len(approval.policy_stages):
            self._start_stage(request, stage.index + 1, now)
        else:
            request.approved = True
            request.next_at = now + self.state.delivery_delay
        self.changed()

    def cancel(self, request: Request) -> None:
        """Cancel a request in a cancellable state (checks done by the caller)."""
        if request.approval and request.approval.current:
            request.approval.current.status = "Completed"
        self.set_state(request, "canceled")
        self.changed()

    # --- assignments ---------------------------------------------------------------------

    def expire(self, assignment: Assignment, when: datetime) -> None:
        """End an assignment (as of ``when``) and take its target out of the package's group."""
        assignment.state, assignment.status = "expired", ASSIGNMENT_ENDED_STATUS
        assignment.expired = when
        self._set_membership(assignment, present=False)

    def _record_system_remove(self, assignment: Assignment, now: datetime) -> None:
        request = Request(
            id=new_id(),
            request_type="systemRemove",
            package_id=assignment.package_id,
            policy_id=assignment.policy_id,
            target_id=assignment.target_id,
            assignment_id=assignment.id,
            requestor=None,
            created=now,
            state="delivered",
            status="Delivered",
            completed=now,
        )
        self.store.add_request(request)

    def _set_membership(self, assignment: Assignment, *, present: bool) -> None:
        """Add the target to the package's group, or remove them unless access remains."""
        package = next(
            (p for p in self.tenant.access_packages if p.id == assignment.package_id), None
        )
        group = self.tenant.group(package.group_id) if package else None
        if group is None:
            return
        user_id = assignment.target_id
        if present:
            self._members.add(group, user_id)
        elif not any(
            other.active and other.package_id == assignment.package_id
            for other in self.store.of_target(user_id)
        ):
            self._members.discard(group, user_id)

    def seed_assignment(
        self,
        package_id: str,
        user_id: str,
        start: datetime,
        end: datetime | None,
        policy_id: str | None = None,
    ) -> Assignment:
        """Add a delivered assignment and the group membership (``entitlement.seed_assignment``)."""
        if policy_id is None:
            policy = next(
                (
                    p
                    for p in self.tenant.assignment_policies
                    if (p.get("accessPackage") or {}).get("id") == package_id
                ),
                None,
            )
            if policy is None:
                raise ValueError(f"access package {package_id} has no policy")
            policy_id = str(policy["id"])
        assignment = Assignment(
            id=new_id(),
            package_id=package_id,
            policy_id=policy_id,
            target_id=user_id,
            state="delivered",
            status="Delivered",
            start=start,
            end=end,
            expiration_type="afterDateTime" if end else "noExpiration",
        )
        self.store.add_assignment(assignment)
        self._set_membership(assignment, present=True)
        self.store.watch_expiry(assignment)
        self.changed()
        return assignment
