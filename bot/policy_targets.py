"""Which of an access package's assignment policies a requester may use (pure functions).

Graph answers this for a signed-in user (``getApplicablePolicyRequirements``, delegated only);
in ``bot`` mode Elevate works app-only and reads each policy's ``allowedTargetScope`` and
``specificAllowedTargets`` itself (spec/graph.md §5):

- ``allMemberUsers``: users whose ``userType`` is ``Member``;
- ``allDirectoryUsers``: any user of the directory;
- ``allExternalUsers``: guests;
- ``specificDirectoryUsers``: the listed ``singleUser``s and the members of the listed
  ``groupMembers`` groups (membership is looked up in Graph, see ``target_groups``);
- ``notSpecified`` (a direct-assignment policy): nobody asks through it, unless it is the
  package's only policy (Elevate has always used a package's only policy);
- anything else (connected organisations, service principals, attribute rules): never.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bot.domain import Policy, Principal

NOT_SPECIFIED = "notSpecified"


def target_groups(policies: Sequence[Policy]) -> tuple[str, ...]:
    """The group ids whose membership decides who ``policies`` admit (each once, in order)."""
    ids: dict[str, None] = {}
    for policy in policies:
        if policy.target_scope.lower() != "specificdirectoryusers":
            continue
        for subject in policy.allowed_targets:
            if subject.kind == "groupMembers" and subject.group_id:
                ids.setdefault(subject.group_id)
    return tuple(ids)


def admits(policy: Policy, person: Principal, member_of: Collection[str]) -> bool:
    """Whether ``policy``'s allowed targets include ``person``, a member of the groups
    ``member_of`` (among those of ``target_groups``)."""
    scope = policy.target_scope.lower()
    user_type = person.user_type.lower()
    if scope == "alldirectoryusers":
        return True
    if scope == "allmemberusers":
        return user_type == "member"
    if scope == "allexternalusers":
        return user_type == "guest"
    if scope == "specificdirectoryusers":
        return any(
            (subject.kind == "singleUser" and subject.user_id == person.id)
            or (subject.kind == "groupMembers" and subject.group_id in member_of)
            for subject in policy.allowed_targets
        )
    return False


def applicable(
    policies: Sequence[Policy], person: Principal, member_of: Collection[str]
) -> list[Policy]:
    """The policies of one package that ``person`` may request through."""
    if len(policies) == 1 and policies[0].target_scope.lower() == NOT_SPECIFIED.lower():
        return list(policies)
    return [p for p in policies if admits(p, person, member_of)]
