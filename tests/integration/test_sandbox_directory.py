"""The sandbox's Graph directory (users, /me, managers, groups) through msgraph-sdk over TLS."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.groups.item.members.members_request_builder import MembersRequestBuilder
from msgraph.generated.models.directory_object_collection_response import (
    DirectoryObjectCollectionResponse,
)
from msgraph.generated.models.group import Group
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.user import User
from msgraph.generated.users.item.check_member_groups.check_member_groups_post_request_body import (
    CheckMemberGroupsPostRequestBody,
)
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core import PageIterator

from sandbox.server import ThreadedSandbox
from sandbox.tenant import demo_id
from tests.integration.conftest import (
    StaticTokenCredential,
    app_token,
    graph_client,
    sandbox_ssl_context,
    tenant_with,
    user_token,
)

ALICE = "alice@contoso.test"
APPROVERS = demo_id("approvers")
JIT_GROUP = demo_id("jit-group")
# Keys an SDK model may keep in additional_data: annotations, never documented properties.
ANNOTATIONS = {"@odata.context"}


def _users_query(**params: Any) -> RequestConfiguration[Any]:
    return RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(**params)
    )


async def _raw_get(sb: ThreadedSandbox, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(verify=sandbox_ssl_context(sb), trust_env=False) as http:
        return await http.get(f"{sb.ready['base_url']}{path}", headers=headers)


async def _delegated(sb: ThreadedSandbox, upn: str, scopes: list[str]) -> str:
    result = await asyncio.to_thread(user_token, sb, upn, scopes)
    return str(result["access_token"])


# --- users ---------------------------------------------------------------------------------


async def test_user_by_upn_has_graphs_default_properties(app_graph: GraphServiceClient) -> None:
    """GET /users/{upn} (the SDK encodes @) returns the user with Graph's default property set."""
    user = await app_graph.users.by_user_id(ALICE).get()
    assert isinstance(user, User)
    assert user.id == demo_id("alice")
    assert user.display_name == "Alice Requester"
    assert user.user_principal_name == ALICE
    assert user.mail == ALICE
    assert user.job_title == "Engineer"
    assert user.business_phones == []
    assert user.user_type is None  # not in the default $select, as in Graph
    assert set(user.additional_data) <= ANNOTATIONS


async def test_user_select_returns_extra_properties(app_graph: GraphServiceClient) -> None:
    """$select can ask for properties outside the default set, such as userType."""
    config = RequestConfiguration(
        query_parameters=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
            select=["id", "userType", "accountEnabled"]
        )
    )
    user = await app_graph.users.by_user_id(demo_id("gary")).get(request_configuration=config)
    assert user is not None
    assert user.user_type == "Guest"
    assert user.account_enabled is True
    assert user.display_name is None


async def test_users_filter_by_mail_and_upn(app_graph: GraphServiceClient) -> None:
    """$filter=mail eq '…' and userPrincipalName eq '…' find exactly that user."""
    by_mail = await app_graph.users.get(
        request_configuration=_users_query(
            filter="mail eq 'bob@contoso.test'", select=["id", "displayName", "mail"]
        )
    )
    by_upn = await app_graph.users.get(
        request_configuration=_users_query(filter="userPrincipalName eq 'CAROL@contoso.test'")
    )
    assert by_mail is not None
    assert by_upn is not None
    assert [u.id for u in by_mail.value or []] == [demo_id("bob")]
    assert by_mail.value is not None
    assert by_mail.value[0].job_title is None  # not selected
    assert [u.user_principal_name for u in by_upn.value or []] == ["carol@contoso.test"]


async def test_users_pages_follow_next_link(app_graph: GraphServiceClient) -> None:
    """$top pages the user list; @odata.nextLink is absolute and PageIterator follows it."""
    first = await app_graph.users.get(request_configuration=_users_query(top=2))
    assert first is not None
    assert first.odata_next_link is not None
    assert first.odata_next_link.startswith("https://127.0.0.1:")
    seen: list[str] = []

    def collect(user: User) -> bool:
        seen.append(user.user_principal_name or "")
        return True

    iterator = PageIterator(first, app_graph.request_adapter)
    await iterator.iterate(collect)
    assert len(seen) == 6
    assert len(set(seen)) == 6


async def test_unsupported_filter_is_400(app_graph: GraphServiceClient) -> None:
    """A $filter the sandbox does not support (startswith) answers 400."""
    with pytest.raises(ODataError) as caught:
        await app_graph.users.get(
            request_configuration=_users_query(filter="startswith(displayName,'A')")
        )
    assert caught.value.response_status_code == 400


async def test_unknown_user_is_404_request_resource_not_found(
    app_graph: GraphServiceClient,
) -> None:
    """An unknown id or UPN answers 404 Request_ResourceNotFound with Graph's message."""
    with pytest.raises(ODataError) as caught:
        await app_graph.users.by_user_id("nobody@contoso.test").get()
    assert caught.value.response_status_code == 404
    assert caught.value.error is not None
    assert caught.value.error.code == "Request_ResourceNotFound"
    assert caught.value.error.message == (
        "Resource 'nobody@contoso.test' does not exist or one of its queried "
        "reference-property objects are not present."
    )


async def test_manager_and_missing_manager(app_graph: GraphServiceClient) -> None:
    """/users/{id}/manager returns the manager as a user; none is a 404."""
    boss = await app_graph.users.by_user_id(ALICE).manager.get()
    assert isinstance(boss, User)
    assert boss.id == demo_id("dave")
    assert set(boss.additional_data) <= ANNOTATIONS
    with pytest.raises(ODataError) as caught:
        await app_graph.users.by_user_id(demo_id("dave")).manager.get()
    assert caught.value.response_status_code == 404


# --- groups and membership -----------------------------------------------------------------


async def test_group_has_security_identifier(app_graph: GraphServiceClient) -> None:
    """GET /groups/{id} carries securityIdentifier and no undocumented keys."""
    group = await app_graph.groups.by_group_id(JIT_GROUP).get()
    assert isinstance(group, Group)
    assert group.display_name == "Local Admins (JIT)"
    assert group.security_identifier is not None
    assert group.security_identifier.startswith("S-1-12-1-")
    assert group.security_enabled is True
    assert set(group.additional_data) <= ANNOTATIONS


async def test_group_members_page_with_top(app_graph: GraphServiceClient) -> None:
    """/groups/{id}/members pages by $top; items are users typed #microsoft.graph.user."""
    config = RequestConfiguration(
        query_parameters=MembersRequestBuilder.MembersRequestBuilderGetQueryParameters(top=1)
    )
    first = await app_graph.groups.by_group_id(APPROVERS).members.get(request_configuration=config)
    assert isinstance(first, DirectoryObjectCollectionResponse)
    assert first.odata_next_link
    assert first.value is not None
    assert len(first.value) == 1
    members: list[Any] = []
    await PageIterator(first, app_graph.request_adapter).iterate(
        lambda m: members.append(m) or True
    )
    assert all(isinstance(m, User) for m in members)
    assert {m.id for m in members} == {demo_id("bob"), demo_id("carol")}


async def test_membership_follows_the_tenant_object(
    sandbox: ThreadedSandbox, app_graph: GraphServiceClient
) -> None:
    """Members added to or removed from the tenant group show at once in members/memberOf."""
    alice = demo_id("alice")

    def add() -> None:
        group = sandbox.state.tenant.group(JIT_GROUP)
        assert group is not None
        group.members.append(alice)

    sandbox.call(add)
    members = await app_graph.groups.by_group_id(JIT_GROUP).members.get()
    assert members is not None
    assert [m.id for m in members.value or []] == [alice]
    member_of = await app_graph.users.by_user_id(alice).member_of.get()
    assert member_of is not None
    assert [g.id for g in member_of.value or []] == [JIT_GROUP]
    assert all(isinstance(g, Group) for g in member_of.value or [])
    check = await app_graph.users.by_user_id(alice).check_member_groups.post(
        CheckMemberGroupsPostRequestBody(group_ids=[JIT_GROUP, APPROVERS])
    )
    assert check is not None
    assert check.value == [JIT_GROUP]
    sandbox.call(lambda: sandbox.state.tenant.group(JIT_GROUP).members.remove(alice))
    members = await app_graph.groups.by_group_id(JIT_GROUP).members.get()
    assert members is not None
    assert members.value == []


async def test_transitive_members_include_nested_groups(
    sandbox: ThreadedSandbox, app_graph: GraphServiceClient
) -> None:
    """transitiveMembers expands a nested group; members lists the group itself."""
    sandbox.call(lambda: sandbox.state.tenant.group(JIT_GROUP).members.append(APPROVERS))
    direct = await app_graph.groups.by_group_id(JIT_GROUP).members.get()
    every = await app_graph.groups.by_group_id(JIT_GROUP).transitive_members.get()
    assert direct is not None
    assert every is not None
    assert [type(m) for m in direct.value or []] == [Group]
    assert {m.id for m in every.value or []} == {APPROVERS, demo_id("bob"), demo_id("carol")}
    check = await app_graph.users.by_user_id(demo_id("bob")).check_member_groups.post(
        CheckMemberGroupsPostRequestBody(group_ids=[JIT_GROUP])
    )
    assert check is not None
    assert check.value == [JIT_GROUP]


async def test_check_member_groups_takes_at_most_20_ids(app_graph: GraphServiceClient) -> None:
    """checkMemberGroups with 21 ids answers 400."""
    body = CheckMemberGroupsPostRequestBody(group_ids=[APPROVERS] * 21)
    with pytest.raises(ODataError) as caught:
        await app_graph.users.by_user_id(ALICE).check_member_groups.post(body)
    assert caught.value.response_status_code == 400


async def test_malformed_group_id_is_400(app_graph: GraphServiceClient) -> None:
    """A group id that is not a GUID answers 400 Request_BadRequest."""
    with pytest.raises(ODataError) as caught:
        await app_graph.groups.by_group_id("not-a-guid").get()
    assert caught.value.response_status_code == 400


# --- /me and delegated tokens --------------------------------------------------------------


async def test_me_with_a_delegated_token(sandbox: ThreadedSandbox) -> None:
    """/me and /me/manager answer for the signed-in user with only User.Read."""
    token = await _delegated(sandbox, ALICE, ["User.Read"])
    async with graph_client(sandbox, StaticTokenCredential(token)) as client:
        me = await client.me.get()
        boss = await client.me.manager.get()
    assert me is not None
    assert me.user_principal_name == ALICE
    assert set(me.additional_data) <= ANNOTATIONS
    assert boss is not None
    assert boss.id == demo_id("dave")


async def test_user_read_alone_cannot_read_other_users(sandbox: ThreadedSandbox) -> None:
    """With only User.Read a user may read themself by id but not someone else (403)."""
    token = await _delegated(sandbox, ALICE, ["User.Read"])
    async with graph_client(sandbox, StaticTokenCredential(token)) as client:
        me = await client.users.by_user_id(demo_id("alice")).get()
        with pytest.raises(ODataError) as caught:
            await client.users.by_user_id(demo_id("bob")).get()
    assert me is not None
    assert caught.value.response_status_code == 403


async def test_me_with_an_app_token_is_400(app_graph: GraphServiceClient) -> None:
    """/me with an app-only token answers Graph's 400 BadRequest."""
    with pytest.raises(ODataError) as caught:
        await app_graph.me.get()
    assert caught.value.response_status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "BadRequest"
    assert caught.value.error.message == (
        "/me request is only valid with delegated authentication flow."
    )


# --- tokens and permissions ----------------------------------------------------------------


async def test_missing_application_permission_is_403(make_sandbox: Any) -> None:
    """An app token without User.Read.All gets 403 on /users/{id}."""
    sb = make_sandbox(tenant_with(application=["GroupMember.Read.All"]))
    token = (await asyncio.to_thread(app_token, sb))["access_token"]
    async with graph_client(sb, StaticTokenCredential(token)) as client:
        with pytest.raises(ODataError) as caught:
            await client.users.by_user_id(ALICE).get()
        group = await client.groups.by_group_id(APPROVERS).get()
    assert caught.value.response_status_code == 403
    assert group is not None


async def test_no_token_is_401(sandbox: ThreadedSandbox) -> None:
    """A call without Authorization answers 401 InvalidAuthenticationToken."""
    response = await _raw_get(sandbox, f"/v1.0/users/{demo_id('alice')}", None)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def _claims(sb: ThreadedSandbox, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "aud": "https://graph.microsoft.com",
        "iss": sb.state.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "tid": sb.ready["tenant_id"],
        "appid": sb.ready["env"]["ELEVATE_CLIENT_ID"],
        "idtyp": "app",
        "roles": ["User.Read.All"],
    } | changes


async def test_forged_token_is_401(sandbox: ThreadedSandbox) -> None:
    """A well-formed token signed by an unpublished key answers 401."""
    forged = sandbox.call(lambda: sandbox.state.unknown_key.sign(_claims(sandbox)))
    response = await _raw_get(sandbox, f"/v1.0/users/{demo_id('alice')}", forged)
    assert response.status_code == 401


async def test_expired_token_is_401(sandbox: ThreadedSandbox) -> None:
    """A validly signed but expired token answers 401."""
    past = int(time.time()) - 7200
    expired = sandbox.call(
        lambda: sandbox.state.entra_key.sign(_claims(sandbox, iat=past, nbf=past, exp=past + 3600))
    )
    response = await _raw_get(sandbox, f"/v1.0/users/{demo_id('alice')}", expired)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


async def test_token_for_another_audience_is_401(sandbox: ThreadedSandbox) -> None:
    """A token minted for the app's own API is not accepted by Graph."""
    other = sandbox.call(
        lambda: sandbox.state.entra_key.sign(
            _claims(sandbox, aud=sandbox.ready["env"]["ELEVATE_CLIENT_ID"])
        )
    )
    response = await _raw_get(sandbox, f"/v1.0/users/{demo_id('alice')}", other)
    assert response.status_code == 401


async def test_count_needs_consistency_level(sandbox: ThreadedSandbox) -> None:
    """$count=true on /users needs ConsistencyLevel: eventual, then reports the total."""
    token = (await asyncio.to_thread(app_token, sandbox))["access_token"]
    plain = await _raw_get(sandbox, "/v1.0/users?$count=true&$top=1", token)
    assert plain.status_code == 400
    async with httpx.AsyncClient(verify=sandbox_ssl_context(sandbox), trust_env=False) as http:
        counted = await http.get(
            f"{sandbox.ready['base_url']}/v1.0/users?$count=true&$top=1",
            headers={"Authorization": f"Bearer {token}", "ConsistencyLevel": "eventual"},
        )
    assert counted.json()["@odata.count"] == 6
    assert len(counted.json()["value"]) == 1
