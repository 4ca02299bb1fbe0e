"""Intune settings-catalog policies, ``/beta/deviceManagement/configurationPolicies`` (§9).

Create, list, get, delete, ``assign`` and ``assignments``.  Creation validates what Intune would
refuse: the name, the ``platforms`` and ``technologies`` flags, a known ``templateId`` and a
``settings`` list of setting instances.  ``settings`` is a navigation property: it is not echoed
in the entity, but served by ``…/{id}/settings`` and ``$expand=settings``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.auth import INTUNE_READ, INTUNE_WRITE, require
from sandbox.clock import iso
from sandbox.errors import BAD_REQUEST, GraphError
from sandbox.graph import odata
from sandbox.state import SandboxState

BETA_CONTEXT = "https://graph.microsoft.com/beta/$metadata#"
ENTITY_SET = "deviceManagement/configurationPolicies"
NOT_FOUND = "NotFound"

PLATFORMS = {
    "none",
    "android",
    "iOS",
    "macOS",
    "windows10X",
    "windows10",
    "linux",
    "unknownFutureValue",
}
TECHNOLOGIES = {
    "none",
    "mdm",
    "windows10XManagement",
    "configManager",
    "intuneManagementExtension",
    "thirdParty",
    "documentGateway",
    "appleRemoteManagement",
    "microsoftSense",
    "exchangeOnline",
    "mobileApplicationManagement",
    "linuxMdm",
    "enrollment",
    "endpointPrivilegeManagement",
    "unknownFutureValue",
    "windowsOsRecovery",
    "android",
}
# Templates the sandbox knows: Endpoint security → Account protection → Local user group
# membership (spec/graph.md §9.1).
TEMPLATES = {
    "22968f54-45fa-486c-848e-f8224aa69772_1": {
        "templateFamily": "endpointSecurityAccountProtection",
        "templateDisplayName": "Local user group membership",
        "templateDisplayVersion": "Version 1",
    }
}
TARGET_TYPES = {
    "#microsoft.graph.groupAssignmentTarget",
    "#microsoft.graph.exclusionGroupAssignmentTarget",
    "#microsoft.graph.allDevicesAssignmentTarget",
    "#microsoft.graph.allLicensedUsersAssignmentTarget",
}
GROUP_TARGETS = {
    "#microsoft.graph.groupAssignmentTarget",
    "#microsoft.graph.exclusionGroupAssignmentTarget",
}


@dataclass
class Policy:
    """A stored configuration policy: the entity, its settings and its assignments."""

    entity: dict[str, Any]
    settings: list[dict[str, Any]]
    assignments: list[dict[str, Any]] = field(default_factory=list)


def _bad(message: str) -> GraphError:
    return GraphError(400, BAD_REQUEST, message)


def _flags(value: Any, allowed: set[str], name: str) -> str:
    """A flags enum value such as ``windows10`` or ``mdm,configManager``."""
    if not isinstance(value, str) or not value:
        raise _bad(f"'{name}' is required.")
    parts = [p.strip() for p in value.split(",")]
    unknown = [p for p in parts if p not in allowed]
    if unknown:
        raise _bad(f"Cannot convert the literal '{value}' to the expected type '{name}'.")
    return ",".join(parts)


def _template(value: Any) -> dict[str, Any]:
    if value is None:
        return {
            "templateId": "",
            "templateFamily": "none",
            "templateDisplayName": None,
            "templateDisplayVersion": None,
        }
    if not isinstance(value, dict):
        raise _bad("'templateReference' must be an object.")
    template_id = value.get("templateId")
    if template_id not in TEMPLATES:
        raise _bad(f"The template '{template_id}' does not exist.")
    return {"templateId": template_id, **TEMPLATES[template_id]}


def _settings(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _bad("'settings' must be a list of deviceManagementConfigurationSetting.")
    result = []
    for index, setting in enumerate(value):
        instance = setting.get("settingInstance") if isinstance(setting, dict) else None
        if not isinstance(instance, dict) or not isinstance(instance.get("@odata.type"), str):
            raise _bad(f"settings[{index}] needs a settingInstance with an @odata.type.")
        if not isinstance(instance.get("settingDefinitionId"), str):
            raise _bad(f"settings[{index}].settingInstance needs a settingDefinitionId.")
        result.append({"id": str(index), "settingInstance": instance})
    return result


def new_policy(body: dict[str, Any], now: str) -> Policy:
    """Validate a create body and build the stored policy (400 on invalid input)."""
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _bad("'name' is required.")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise _bad("'description' must be a string.")
    tags = body.get("roleScopeTagIds", ["0"])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _bad("'roleScopeTagIds' must be a list of strings.")
    settings = _settings(body.get("settings"))
    entity = {
        "id": str(uuid.uuid4()),
        "name": name,
        "description": description or "",
        "platforms": _flags(body.get("platforms"), PLATFORMS, "platforms"),
        "technologies": _flags(body.get("technologies"), TECHNOLOGIES, "technologies"),
        "roleScopeTagIds": tags,
        "templateReference": _template(body.get("templateReference")),
        "createdDateTime": now,
        "lastModifiedDateTime": now,
        "creationSource": None,
        "settingCount": len(settings),
        "isAssigned": False,
        "priorityMetaData": None,
    }
    return Policy(entity=entity, settings=settings)


def _assignments(policy_id: str, body: dict[str, Any], group_exists: Any) -> list[dict[str, Any]]:
    raw = body.get("assignments")
    if not isinstance(raw, list):
        raise _bad("'assignments' must be a list.")
    result = []
    for index, assignment in enumerate(raw):
        target = assignment.get("target") if isinstance(assignment, dict) else None
        kind = target.get("@odata.type") if isinstance(target, dict) else None
        if not isinstance(target, dict) or kind not in TARGET_TYPES:
            raise _bad(f"assignments[{index}].target needs a known @odata.type.")
        target_id = kind.rsplit(".", 1)[-1]
        if kind in GROUP_TARGETS:
            group_id = target.get("groupId")
            if not isinstance(group_id, str) or not group_exists(group_id):
                raise _bad(f"assignments[{index}]: group '{group_id}' does not exist.")
            target_id = group_id
        result.append(
            {
                "id": f"{policy_id}_{target_id}",
                "source": "direct",
                "sourceId": policy_id,
                "target": {
                    "deviceAndAppManagementAssignmentFilterId": None,
                    "deviceAndAppManagementAssignmentFilterType": "none",
                    **target,
                },
            }
        )
    return result


def _beta(response: web.Response) -> web.Response:
    """``odata.collection`` writes a v1.0 context; Intune answers from beta."""
    assert response.text is not None
    body = json.loads(response.text)
    body["@odata.context"] = body["@odata.context"].replace("/v1.0/", "/beta/", 1)
    return odata.json_response(body)


def register(app: web.Application, state: SandboxState) -> None:
    """Add the configuration-policy routes and a ``configurationPolicies`` state snapshot."""
    policies: dict[str, Policy] = state.services.setdefault("intune", {})

    def find(request: web.Request) -> Policy:
        policy = policies.get(request.match_info["id"])
        if policy is None:
            raise GraphError(404, NOT_FOUND, f"Policy '{request.match_info['id']}' not found.")
        return policy

    def view(policy: Policy, request: web.Request) -> dict[str, Any]:
        body = odata.select(dict(policy.entity), request.query.get("$select"))
        expand = odata.parse_expand(request.query.get("$expand"))
        if "settings" in expand:
            body["settings"] = policy.settings
        if "assignments" in expand:
            body["assignments"] = policy.assignments
        return body

    async def create(request: web.Request) -> web.Response:
        require(state, request, application=INTUNE_WRITE, delegated=INTUNE_WRITE)
        policy = new_policy(await odata.read_json(request), iso(state.clock.now()) or "")
        policies[policy.entity["id"]] = policy
        body = {"@odata.context": f"{BETA_CONTEXT}{ENTITY_SET}/$entity", **policy.entity}
        return odata.json_response(body, status=201)

    async def list_policies(request: web.Request) -> web.Response:
        require(state, request, application=INTUNE_READ, delegated=INTUNE_READ)
        clauses = odata.parse_filter(request.query.get("$filter"))
        odata.check_paths(
            clauses, ("name", "platforms", "technologies", "templateReference/templateId")
        )
        found = [view(p, request) for p in policies.values() if odata.matches(clauses, p.entity)]
        return _beta(odata.collection(request, state.base_url, found, context=ENTITY_SET))

    async def get_policy(request: web.Request) -> web.Response:
        require(state, request, application=INTUNE_READ, delegated=INTUNE_READ)
        body = view(find(request), request)
        return odata.json_response(
            {"@odata.context": f"{BETA_CONTEXT}{ENTITY_SET}/$entity", **body}
        )

    async def delete_policy(request: web.Request) -> web.Response:
        require(state, request, application=INTUNE_WRITE, delegated=INTUNE_WRITE)
        policies.pop(find(request).entity["id"])
        return web.Response(status=204)

    async def settings(request: web.Request) -> web.Response:
        require(state, request, application=INTUNE_READ, delegated=INTUNE_READ)
        policy = find(request)
        context = f"{ENTITY_SET}('{policy.entity['id']}')/settings"
        return _beta(odata.collection(request, state.base_url, policy.settings, context=context))

    async def assign(request: web.Request) -> web.Response:
        require(state, request, application=INTUNE_WRITE, delegated=INTUNE_WRITE)
        policy = find(request)
        body = await odata.read_json(request)
        policy.assignments = _assignments(
            policy.entity["id"], body, lambda gid: state.tenant.group(gid) is not None
        )
        policy.entity["isAssigned"] = bool(policy.assignments)
        policy.entity["lastModifiedDateTime"] = iso(state.clock.now())
        context = "Collection(microsoft.graph.deviceManagementConfigurationPolicyAssignment)"
        return odata.json_response(
            {"@odata.context": f"{BETA_CONTEXT}{context}", "value": policy.assignments}
        )

    async def assignments(request: web.Request) -> web.Response:
        require(state, request, application=INTUNE_READ, delegated=INTUNE_READ)
        policy = find(request)
        context = f"{ENTITY_SET}('{policy.entity['id']}')/assignments"
        return _beta(odata.collection(request, state.base_url, policy.assignments, context=context))

    base = f"/beta/{ENTITY_SET}"
    app.router.add_post(base, create)
    app.router.add_get(base, list_policies)
    app.router.add_get(f"{base}/{{id}}", get_policy)
    app.router.add_delete(f"{base}/{{id}}", delete_policy)
    app.router.add_get(f"{base}/{{id}}/settings", settings)
    app.router.add_post(f"{base}/{{id}}/assign", assign)
    app.router.add_get(f"{base}/{{id}}/assignments", assignments)
    state.snapshots["configurationPolicies"] = lambda: [
        {**p.entity, "assignments": p.assignments} for p in policies.values()
    ]
