"""Which of a package's policies admit a requester (``bot`` mode reads allowed targets)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain import Policy, Principal, SubjectSet
from bot.policy_targets import admits, applicable, target_groups

MEMBER = Principal(id="u-member", upn="m@contoso.test", display_name="Member")
GUEST = Principal(id="u-guest", upn="g@contoso.test", display_name="Guest", user_type="Guest")


def policy(policy_id: str, scope: str, *targets: SubjectSet) -> Policy:
    """A self-service policy with the given allowed targets."""
    return Policy(
        id=policy_id,
        display_name=policy_id,
        package_id="pkg",
        max_duration=timedelta(hours=8),
        justification_required=False,
        approval_required_for_add=False,
        approval_required_for_update=False,
        allow_custom_schedule=True,
        target_scope=scope,
        allowed_targets=targets,
    )


ENGINEERS = policy("eng", "specificDirectoryUsers", SubjectSet("groupMembers", group_id="g-eng"))
SUPPORT = policy(
    "sup",
    "specificDirectoryUsers",
    SubjectSet("groupMembers", group_id="g-sup"),
    SubjectSet("singleUser", user_id="u-guest"),
    SubjectSet("groupMembers", group_id="g-eng"),
)


@pytest.mark.parametrize(
    ("scope", "member", "guest"),
    [
        ("allMemberUsers", True, False),
        ("allDirectoryUsers", True, True),
        ("allExternalUsers", False, True),
        ("notSpecified", False, False),
        ("specificConnectedOrganizationUsers", False, False),
        ("allDirectoryServicePrincipals", False, False),
    ],
)
def test_scope_alone_decides_for_the_all_scopes(scope: str, member: bool, guest: bool) -> None:
    """allMemberUsers admits members, allDirectoryUsers anyone, allExternalUsers guests;
    notSpecified and scopes Elevate cannot check admit nobody."""
    assert admits(policy("p", scope), MEMBER, ()) is member
    assert admits(policy("p", scope), GUEST, ()) is guest


def test_specific_users_by_single_user_or_group_membership() -> None:
    """specificDirectoryUsers admits a listed user, or a member of a listed group."""
    assert admits(ENGINEERS, MEMBER, {"g-eng"})
    assert not admits(ENGINEERS, MEMBER, {"g-sup"})
    assert not admits(ENGINEERS, MEMBER, ())
    assert admits(SUPPORT, GUEST, ())  # singleUser
    assert not admits(SUPPORT, MEMBER, ())


def test_target_groups_lists_each_group_to_check_once() -> None:
    """Only the specific scopes' groups are looked up, each once, in order."""
    everyone = policy("all", "allMemberUsers", SubjectSet("groupMembers", group_id="g-x"))
    assert target_groups([ENGINEERS, SUPPORT, everyone]) == ("g-eng", "g-sup")
    assert target_groups([everyone]) == ()


def test_applicable_keeps_the_policies_meant_for_the_requester() -> None:
    """Each requester gets the policies that admit them: one, several, or none."""
    both = [ENGINEERS, policy("sup-only", "specificDirectoryUsers", *SUPPORT.allowed_targets[:1])]
    assert [p.id for p in applicable(both, MEMBER, {"g-eng"})] == ["eng"]
    assert [p.id for p in applicable(both, MEMBER, {"g-sup"})] == ["sup-only"]
    assert [p.id for p in applicable(both, MEMBER, {"g-eng", "g-sup"})] == ["eng", "sup-only"]
    assert applicable(both, MEMBER, ()) == []


def test_a_packages_only_policy_is_used_even_when_not_specified() -> None:
    """A notSpecified policy is no way to ask, unless it is the package's only policy (as
    Elevate has always used a package's only policy)."""
    direct = policy("direct", "notSpecified")
    assert applicable([direct], MEMBER, ()) == [direct]
    assert applicable([direct, ENGINEERS], MEMBER, {"g-eng"}) == [ENGINEERS]
    assert applicable([direct, ENGINEERS], MEMBER, ()) == []
