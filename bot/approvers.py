"""Resolve a policy stage's approvers to people (spec/graph.md §5 "Finding the approvers").

``singleUser`` → that user; ``groupMembers`` → the group's members; ``requestorManager`` →
the requester's manager (``managerLevel`` 2 = the manager's manager).  When the primary set
resolves to nobody, the stage's fallback approvers are used.  The requester is never an
approver of their own request.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.domain import ApproverSet, PolicyStage, Principal, SubjectSet
from bot.ports import Directory


async def _resolve_one(
    directory: Directory, subject: SubjectSet, requester_id: str
) -> list[Principal]:
    if subject.kind == "singleUser" and subject.user_id:
        user = await directory.get_user(subject.user_id)
        return [user] if user else []
    if subject.kind == "groupMembers" and subject.group_id:
        return await directory.group_members(subject.group_id)
    if subject.kind == "requestorManager":
        person: Principal | None = None
        current = requester_id
        for _ in range(max(1, subject.manager_level)):
            person = await directory.get_manager(current)
            if person is None:
                return []
            current = person.id
        return [person] if person else []
    return []  # sponsors, attribute rules, connected organisations: not resolvable here


async def resolve_subjects(
    directory: Directory, subjects: Iterable[SubjectSet], requester_id: str
) -> tuple[Principal, ...]:
    """Everyone the subject sets name, in order, without duplicates or the requester."""
    seen: dict[str, Principal] = {}
    for subject in subjects:
        for person in await _resolve_one(directory, subject, requester_id):
            if person.id != requester_id and person.id not in seen:
                seen[person.id] = person
    return tuple(seen.values())


async def resolve_stage(directory: Directory, stage: PolicyStage, requester_id: str) -> ApproverSet:
    """The approvers of ``stage`` for ``requester_id`` (fallback when the primary set is empty)."""
    primary = await resolve_subjects(directory, stage.primary, requester_id)
    if primary:
        return ApproverSet(stage_index=stage.index, approvers=primary)
    fallback = await resolve_subjects(directory, stage.fallback, requester_id)
    return ApproverSet(stage_index=stage.index, approvers=fallback, from_fallback=True)
