"""The sandbox's Graph $batch and Intune beta configuration policies, over real TLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from msgraph import GraphServiceClient
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem
from msgraph_core.requests.batch_response_content import BatchResponseContent
from msgraph_core.requests.batch_response_item import BatchResponseItem

from sandbox.server import ThreadedSandbox
from sandbox.tenant import demo_id
from tests.integration.conftest import app_token, sandbox_ssl_context, tenant_with

ALICE = "alice@contoso.test"
TEMPLATE = "22968f54-45fa-486c-848e-f8224aa69772_1"
POLICIES = "/beta/deviceManagement/configurationPolicies"
JIT_GROUP = demo_id("jit-group")
INTUNE_APP_PERMISSIONS = ["User.Read.All", "GroupMember.Read.All",
                          "DeviceManagementConfiguration.ReadWrite.All"]  # fmt: skip


async def _client(sb: ThreadedSandbox) -> httpx.AsyncClient:
    token = (await asyncio.to_thread(app_token, sb))["access_token"]
    return httpx.AsyncClient(
        base_url=sb.ready["base_url"],
        verify=sandbox_ssl_context(sb),
        trust_env=False,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.fixture
async def graph_http(sandbox: ThreadedSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """Raw httpx on the demo sandbox with an app token."""
    async with await _client(sandbox) as http:
        yield http


@pytest.fixture
def intune_sandbox(make_sandbox: Callable[..., ThreadedSandbox]) -> ThreadedSandbox:
    """A sandbox whose app also holds DeviceManagementConfiguration.ReadWrite.All."""
    return make_sandbox(tenant_with(application=INTUNE_APP_PERMISSIONS))


@pytest.fixture
async def intune_http(intune_sandbox: ThreadedSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """Raw httpx on ``intune_sandbox`` with an app token."""
    async with await _client(intune_sandbox) as http:
        yield http


def _by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in body["responses"]}


# --- $batch --------------------------------------------------------------------------------


async def test_batch_through_msgraph_core(app_graph: GraphServiceClient) -> None:
    """BatchRequestContent's request (depends_on, relative URLs) answers per item via the SDK."""
    content = BatchRequestContent()
    for item in (
        BatchRequestItem(app_graph.users.by_user_id(ALICE).to_get_request_information(), "u"),
        BatchRequestItem(
            app_graph.groups.by_group_id(JIT_GROUP).to_get_request_information(), "g", ["u"]
        ),
        BatchRequestItem(app_graph.me.to_get_request_information(), "me"),
    ):
        content.add_request(None, item)
    answer = await app_graph.batch.post(batch_request_content=content)
    assert isinstance(answer, BatchResponseContent)
    assert answer.get_response_status_codes() == {"u": 200, "g": 200, "me": 400}
    # msgraph-core 1.5.2 cannot deserialize JSON-object item bodies (it stores str(dict);
    # msgraph-sdk-python-core#835), as with real Graph: read bodies from a raw batch instead.
    user = answer.get_response_by_id("u")
    assert isinstance(user, BatchResponseItem)
    assert user.content_type is not None
    assert user.content_type.startswith("application/json")


async def test_batch_depends_on_and_failed_dependency(graph_http: httpx.AsyncClient) -> None:
    """dependsOn (and depends_on) orders requests; dependents of a failure get 424."""
    body = {
        "requests": [
            {"id": "3", "method": "GET", "url": "/groups/" + JIT_GROUP, "dependsOn": ["2"]},
            {"id": "1", "method": "GET", "url": "/users/nobody@contoso.test"},
            {"id": "2", "method": "GET", "url": "users/" + ALICE, "depends_on": ["1"]},
            {"id": "4", "method": "GET", "url": "/users/bob%40contoso.test"},
            {"id": "5", "method": "GET", "url": "/users/" + ALICE + "/manager",
             "dependsOn": ["4"]},
        ]
    }  # fmt: skip
    response = await graph_http.post("/v1.0/$batch", json=body)
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["responses"]] == ["3", "1", "2", "4", "5"]
    items = _by_id(response.json())
    assert {k: v["status"] for k, v in items.items()} == {
        "1": 404, "2": 424, "3": 424, "4": 200, "5": 200,
    }  # fmt: skip
    assert items["1"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert items["2"]["body"]["error"]["code"] == "FailedDependency"
    assert items["4"]["body"]["userPrincipalName"] == "bob@contoso.test"
    assert items["4"]["headers"]["Content-Type"].startswith("application/json")


async def test_batch_item_can_be_throttled_alone(
    sandbox: ThreadedSandbox, graph_http: httpx.AsyncClient
) -> None:
    """A fault on one sub-request's path gives that item 429 + Retry-After; the batch is 200."""
    fault = {"path": "^/v1.0/groups/", "status": 429, "count": 1, "retry_after": 7}
    assert (await graph_http.post("/_sandbox/faults", json=fault)).status_code == 200
    body = {
        "requests": [
            {"id": "a", "method": "GET", "url": f"/groups/{JIT_GROUP}"},
            {"id": "b", "method": "GET", "url": f"/users/{ALICE}"},
        ]
    }
    response = await graph_http.post("/v1.0/$batch", json=body)
    assert response.status_code == 200
    items = _by_id(response.json())
    assert items["a"]["status"] == 429
    assert items["a"]["headers"]["Retry-After"] == "7"
    assert items["a"]["body"]["error"]["code"] == "TooManyRequests"
    assert items["b"]["status"] == 200


WRITE_WITHOUT_CONTENT_TYPE = {
    "id": "1",
    "method": "POST",
    "url": "/users/x/checkMemberGroups",
    "body": {"groupIds": []},
}


@pytest.mark.parametrize(
    ("requests", "why"),
    [
        ([{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)], "21 requests"),
        ([], "no requests"),
        ([{"id": "1", "method": "GET", "url": "/users"}] * 2, "duplicate ids"),
        ([{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}], "unknown dep"),
        (
            [
                {"id": "1", "method": "GET", "url": "/users", "dependsOn": ["2"]},
                {"id": "2", "method": "GET", "url": "/users", "dependsOn": ["1"]},
            ],
            "cycle",
        ),
        ([{"id": "1", "method": "GET", "url": "https://evil.example/users"}], "absolute url"),
        ([WRITE_WITHOUT_CONTENT_TYPE], "write without content-type"),
        ([{"id": "1", "method": "POST", "url": "/$batch"}], "nested batch"),
    ],
)
async def test_invalid_batches_are_400(
    graph_http: httpx.AsyncClient, requests: list[dict[str, Any]], why: str
) -> None:
    """Batches Graph refuses as a whole (over 20, bad ids or dependencies…) answer 400."""
    response = await graph_http.post("/v1.0/$batch", json={"requests": requests})
    assert response.status_code == 400, why
    assert response.json()["error"]["code"] == "BadRequest"


async def test_batch_needs_a_token(sandbox: ThreadedSandbox) -> None:
    """A batch without a bearer token answers 401 as a whole."""
    async with httpx.AsyncClient(verify=sandbox_ssl_context(sandbox), trust_env=False) as http:
        response = await http.post(
            f"{sandbox.ready['base_url']}/v1.0/$batch",
            json={"requests": [{"id": "1", "method": "GET", "url": "/users"}]},
        )
    assert response.status_code == 401


# --- Intune --------------------------------------------------------------------------------


def local_admins_policy(sid: str, name: str = "LocalAdmins-JIT") -> dict[str, Any]:
    """The "Local user group membership" policy body of spec/graph.md §9.1 for ``sid``."""
    prefix = "device_vendor_msft_policy_config_localusersandgroups_configure"
    group = f"{prefix}_groupconfiguration_accessgroup"
    choice = "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance"
    return {
        "name": name,
        "description": "Members of the JIT group are local administrators.",
        "platforms": "windows10",
        "technologies": "mdm",
        "roleScopeTagIds": ["0"],
        "templateReference": {"templateId": TEMPLATE},
        "settings": [
            {
                "@odata.type": "#microsoft.graph.deviceManagementConfigurationSetting",
                "settingInstance": {
                    "@odata.type": "#microsoft.graph.deviceManagementConfigurationGroupSettingCollectionInstance",  # noqa: E501
                    "settingDefinitionId": prefix,
                    "settingInstanceTemplateReference": {
                        "settingInstanceTemplateId": "de06bec1-4852-48a0-9799-cf7b85992d45"
                    },
                    "groupSettingCollectionValue": [{"children": [{
                        "@odata.type": "#microsoft.graph.deviceManagementConfigurationGroupSettingCollectionInstance",  # noqa: E501
                        "settingDefinitionId": group,
                        "groupSettingCollectionValue": [{"children": [
                            {"@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingCollectionInstance",  # noqa: E501
                             "settingDefinitionId": f"{group}_desc",
                             "choiceSettingCollectionValue": [
                                 {"value": f"{group}_desc_administrators", "children": []}]},
                            {"@odata.type": choice, "settingDefinitionId": f"{group}_action",
                             "choiceSettingValue": {"value": f"{group}_action_add_update",
                                                    "children": []}},
                            {"@odata.type": choice,
                             "settingDefinitionId": f"{group}_userselectiontype",
                             "choiceSettingValue": {
                                 "value": f"{group}_userselectiontype_users",
                                 "children": [{
                                     "@odata.type": "#microsoft.graph.deviceManagementConfigurationSimpleSettingCollectionInstance",  # noqa: E501
                                     "settingDefinitionId": f"{group}_users",
                                     "simpleSettingCollectionValue": [{
                                         "@odata.type": "#microsoft.graph.deviceManagementConfigurationStringSettingValue",  # noqa: E501
                                         "value": sid}]}]}},
                        ]}],
                    }]}],
                },
            }
        ],
    }  # fmt: skip


async def _jit_sid(http: httpx.AsyncClient) -> str:
    group = await http.get(f"/v1.0/groups/{JIT_GROUP}?$select=securityIdentifier")
    assert group.status_code == 200
    return str(group.json()["securityIdentifier"])


async def test_intune_policy_create_list_get(intune_http: httpx.AsyncClient) -> None:
    """A Local-admins policy is created (201 with id, dates, settingCount), listed and read."""
    created = await intune_http.post(
        POLICIES, json=local_admins_policy(await _jit_sid(intune_http))
    )
    assert created.status_code == 201, created.text
    policy = created.json()
    assert policy["@odata.context"].startswith("https://graph.microsoft.com/beta/$metadata#")
    assert policy["name"] == "LocalAdmins-JIT"
    assert policy["settingCount"] == 1
    assert policy["createdDateTime"] == policy["lastModifiedDateTime"]
    assert policy["templateReference"]["templateFamily"] == "endpointSecurityAccountProtection"
    assert "settings" not in policy
    listed = await intune_http.get(POLICIES)
    assert [p["id"] for p in listed.json()["value"]] == [policy["id"]]
    got = await intune_http.get(f"{POLICIES}/{policy['id']}?$expand=settings")
    users = got.json()["settings"][0]["settingInstance"]["groupSettingCollectionValue"]
    assert await _jit_sid(intune_http) in str(users)
    missing = await intune_http.get(f"{POLICIES}/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404


async def test_intune_list_pages(intune_http: httpx.AsyncClient) -> None:
    """The policy list pages with $top and an absolute beta nextLink."""
    sid = await _jit_sid(intune_http)
    for n in range(3):
        response = await intune_http.post(POLICIES, json=local_admins_policy(sid, f"P{n}"))
        assert response.status_code == 201
    first = (await intune_http.get(f"{POLICIES}?$top=2")).json()
    assert len(first["value"]) == 2
    assert first["@odata.nextLink"].startswith(str(intune_http.base_url).rstrip("/") + "/beta/")
    second = (await intune_http.get(first["@odata.nextLink"])).json()
    assert [p["name"] for p in first["value"] + second["value"]] == ["P0", "P1", "P2"]


async def test_intune_assign_and_read_assignments(intune_http: httpx.AsyncClient) -> None:
    """POST …/assign stores the group assignments and …/assignments lists them."""
    created = await intune_http.post(
        POLICIES, json=local_admins_policy(await _jit_sid(intune_http))
    )
    policy_id = created.json()["id"]
    target = {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": JIT_GROUP}
    assigned = await intune_http.post(
        f"{POLICIES}/{policy_id}/assign", json={"assignments": [{"target": target}]}
    )
    assert assigned.status_code == 200, assigned.text
    (value,) = assigned.json()["value"]
    assert value["target"]["groupId"] == JIT_GROUP
    assert value["sourceId"] == policy_id
    listed = await intune_http.get(f"{POLICIES}/{policy_id}/assignments")
    assert listed.json()["value"] == [value]
    assert (await intune_http.get(f"{POLICIES}/{policy_id}")).json()["isAssigned"] is True
    unknown_group = {**target, "groupId": "00000000-0000-0000-0000-000000000000"}
    refused = await intune_http.post(
        f"{POLICIES}/{policy_id}/assign", json={"assignments": [{"target": unknown_group}]}
    )
    assert refused.status_code == 400


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"templateReference": {"templateId": "nope_1"}}, "unknown template"),
        ({"platforms": "windows11"}, "unknown platform"),
        ({"technologies": None}, "missing technologies"),
        ({"settings": {"not": "a list"}}, "settings not a list"),
        ({"settings": [{"settingInstance": {}}]}, "setting without type"),
        ({"name": ""}, "empty name"),
    ],
)
async def test_intune_create_validates(
    intune_sandbox: ThreadedSandbox,
    intune_http: httpx.AsyncClient,
    change: dict[str, Any],
    why: str,
) -> None:
    """Invalid policy bodies answer 400 and create nothing."""
    body = local_admins_policy("S-1-12-1-1-2-3-4") | change
    response = await intune_http.post(POLICIES, json=body)
    assert response.status_code == 400, why
    assert (await intune_http.get(POLICIES)).json()["value"] == []


async def test_intune_needs_device_management_permission(
    graph_http: httpx.AsyncClient,
) -> None:
    """Without DeviceManagementConfiguration.ReadWrite.All creating and listing are 403."""
    created = await graph_http.post(POLICIES, json=local_admins_policy("S-1-12-1-1-2-3-4"))
    listed = await graph_http.get(POLICIES)
    assert created.status_code == 403
    assert listed.status_code == 403


async def test_faulted_create_changes_nothing(intune_http: httpx.AsyncClient) -> None:
    """A create that hits an injected 503 stores no policy; the retry creates exactly one."""
    fault = {"path": "^/beta/deviceManagement/configurationPolicies$", "status": 503, "count": 1}
    await intune_http.post("/_sandbox/faults", json=fault)
    body = local_admins_policy("S-1-12-1-1-2-3-4")
    assert (await intune_http.post(POLICIES, json=body)).status_code == 503
    assert (await intune_http.get(POLICIES)).json()["value"] == []
    assert (await intune_http.post(POLICIES, json=body)).status_code == 201
    assert len((await intune_http.get(POLICIES)).json()["value"]) == 1
