"""Approver resolution of a policy stage, against a fake directory."""

from __future__ import annotations

from bot.approvers import resolve_stage
from bot.domain import PolicyStage, Principal, SubjectSet


def person(key: str) -> Principal:
    """A principal whose id, UPN and name derive from ``key``."""
    return Principal(id=key, upn=f"{key}@x.test", display_name=key.title())


class FakeDirectory:
    """Users, managers and groups held in dicts."""

    def __init__(self) -> None:
        self.users = {k: person(k) for k in ("alice", "bob", "carol", "dave", "erin", "frank")}
        self.managers = {"alice": "dave", "dave": "frank"}
        self.groups = {"approvers": ["bob", "carol", "alice"], "empty": []}

    async def get_user(self, key: str) -> Principal | None:
        """A user by id."""
        return self.users.get(key)

    async def find_user_by_mail(self, mail: str) -> Principal | None:
        """Not used here."""
        return None

    async def get_manager(self, user_id: str) -> Principal | None:
        """The user's manager."""
        manager = self.managers.get(user_id)
        return self.users[manager] if manager else None

    async def group_members(self, group_id: str) -> list[Principal]:
        """Members of a group."""
        return [self.users[m] for m in self.groups.get(group_id, [])]


async def test_group_members_resolved_without_the_requester() -> None:
    """groupMembers gives the members; the requester never approves their own request."""
    stage = PolicyStage(index=0, primary=(SubjectSet("groupMembers", group_id="approvers"),))
    result = await resolve_stage(FakeDirectory(), stage, "alice")
    assert [p.id for p in result.approvers] == ["bob", "carol"]
    assert not result.from_fallback
    assert result.contains("bob")
    assert not result.contains("alice")


async def test_requestor_manager_levels() -> None:
    """managerLevel 1 is the manager; 2 is the manager's manager."""
    directory = FakeDirectory()
    one = PolicyStage(index=0, primary=(SubjectSet("requestorManager", manager_level=1),))
    two = PolicyStage(index=0, primary=(SubjectSet("requestorManager", manager_level=2),))
    assert [p.id for p in (await resolve_stage(directory, one, "alice")).approvers] == ["dave"]
    assert [p.id for p in (await resolve_stage(directory, two, "alice")).approvers] == ["frank"]


async def test_fallback_used_when_primary_resolves_to_nobody() -> None:
    """No manager and an empty group: the fallback approvers are used."""
    stage = PolicyStage(
        index=1,
        primary=(
            SubjectSet("requestorManager", manager_level=1),
            SubjectSet("groupMembers", group_id="empty"),
        ),
        fallback=(SubjectSet("singleUser", user_id="erin"),),
    )
    result = await resolve_stage(FakeDirectory(), stage, "erin-less-user")
    assert [p.id for p in result.approvers] == ["erin"]
    assert result.from_fallback
    assert result.stage_index == 1


async def test_duplicates_removed_and_unknown_subjects_ignored() -> None:
    """A person named twice appears once; unsupported subject types resolve to nobody."""
    stage = PolicyStage(
        index=0,
        primary=(
            SubjectSet("singleUser", user_id="bob"),
            SubjectSet("groupMembers", group_id="approvers"),
            SubjectSet("internalSponsors"),
            SubjectSet("singleUser", user_id="ghost"),
        ),
    )
    result = await resolve_stage(FakeDirectory(), stage, "alice")
    assert [p.id for p in result.approvers] == ["bob", "carol"]


def test_group_member_json_becomes_a_principal_and_non_users_are_skipped() -> None:
    """Members read as JSON: users become principals; groups and devices are skipped."""
    from bot.graph.convert import principal_from_json

    user = {
        "@odata.type": "#microsoft.graph.user",
        "id": "u1",
        "userPrincipalName": "bob@x.test",
        "displayName": "Bob",
        "mail": "bob@x.test",
    }
    person = principal_from_json(user)
    assert person == Principal(id="u1", upn="bob@x.test", display_name="Bob", mail="bob@x.test")
    assert principal_from_json({"@odata.type": "#microsoft.graph.group", "id": "g1"}) is None
    assert principal_from_json({"@odata.type": "#microsoft.graph.user"}) is None
