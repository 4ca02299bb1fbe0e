"""Graph v1.0 directory (spec/graph.md §6): users, ``/me``, managers, groups and memberships.

Membership is read from ``state.tenant.groups[*].members`` on every call: entitlement
management adds and removes members there as assignments are delivered and expire.

Like Graph, a user is returned with the default property set unless ``$select`` asks for more
(``userType``, ``accountEnabled``, …).  ``$filter`` on ``/users`` and ``/groups`` supports
``eq`` on a few properties (joined with ``and``); anything else is 400.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from aiohttp import web

from sandbox.auth import (
    GROUP_READ_APP,
    GROUP_READ_DELEGATED,
    USER_READ_APP,
    Caller,
    graph_caller,
    require,
)
from sandbox.errors import BAD_REQUEST, DIRECTORY_NOT_FOUND, GraphError
from sandbox.graph import odata
from sandbox.state import SandboxState
from sandbox.tenant import Group, User

CONTEXT = "https://graph.microsoft.com/v1.0/$metadata#"
USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"
MAX_CHECK_GROUPS = 20
CREATED = "2024-01-01T00:00:00Z"  # the tenant file has no creation times
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

# Graph's default $select for users (what GET /users/{id} returns without $select).
USER_DEFAULT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
USER_FILTERABLE = (
    "id",
    "mail",
    "userPrincipalName",
    "displayName",
    "userType",
    "givenName",
    "surname",
    "jobTitle",
    "accountEnabled",
)
GROUP_FILTERABLE = ("id", "displayName", "securityEnabled", "mailEnabled", "securityIdentifier")

# Delegated permissions for reading someone other than the signed-in user.
USER_OTHERS_DELEGATED = ("User.ReadBasic.All", "User.Read.All", "Directory.Read.All")
MANAGER_APP = ("User.Read.All", "Directory.Read.All")
MANAGER_DELEGATED = ("User.Read.All", "Directory.Read.All")
MEMBERSHIP_APP = (*GROUP_READ_APP, "User.Read.All")
MEMBERSHIP_DELEGATED = (*GROUP_READ_DELEGATED, "User.Read.All")
SELF_DELEGATED = ("User.Read",)


# --- rendering -----------------------------------------------------------------------------


def user_json(user: User) -> dict[str, Any]:
    """Every user property the sandbox knows, in Graph's v1.0 names."""
    return {
        "id": user.id,
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": user.given_name,
        "jobTitle": user.job_title,
        "mail": user.mail,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": user.surname,
        "userPrincipalName": user.user_principal_name,
        "userType": user.user_type,
        "accountEnabled": True,
        "createdDateTime": CREATED,
        "department": None,
        "employeeId": None,
        "mailNickname": user.user_principal_name.split("@", 1)[0],
        "usageLocation": None,
    }


def group_json(group: Group) -> dict[str, Any]:
    """A security group as Graph v1.0 returns it."""
    return {
        "id": group.id,
        "deletedDateTime": None,
        "classification": None,
        "createdDateTime": CREATED,
        "description": group.description,
        "displayName": group.display_name,
        "expirationDateTime": None,
        "groupTypes": [],
        "isAssignableToRole": None,
        "mail": None,
        "mailEnabled": False,
        "mailNickname": re.sub(r"[^A-Za-z0-9]", "", group.display_name) or group.id[:8],
        "membershipRule": None,
        "membershipRuleProcessingState": None,
        "onPremisesDomainName": None,
        "onPremisesLastSyncDateTime": None,
        "onPremisesSamAccountName": None,
        "onPremisesSecurityIdentifier": None,
        "onPremisesSyncEnabled": None,
        "preferredDataLocation": None,
        "preferredLanguage": None,
        "proxyAddresses": [],
        "renewedDateTime": CREATED,
        "resourceBehaviorOptions": [],
        "resourceProvisioningOptions": [],
        "securityEnabled": True,
        "securityIdentifier": group.security_identifier,
        "theme": None,
        "visibility": None,
        "onPremisesProvisioningErrors": [],
        "serviceProvisioningErrors": [],
    }


def _user_view(user: User, fields: str | None) -> dict[str, Any]:
    """The user with ``$select`` applied, or Graph's default property set."""
    full = user_json(user)
    if fields:
        return odata.select(full, fields)
    return {k: full[k] for k in USER_DEFAULT}


def _as_directory_object(obj: dict[str, Any], odata_type: str) -> dict[str, Any]:
    return {"@odata.type": odata_type, **obj}


def _context(entity_set: str, fields: str | None, entity: bool) -> str:
    """``@odata.context`` as Graph writes it, e.g. ``users(id,mail)/$entity``."""
    shape = f"{entity_set}({fields})" if fields else entity_set
    return f"{CONTEXT}{shape}{'/$entity' if entity else ''}"


# --- lookups -------------------------------------------------------------------------------


def _not_found(key: str) -> GraphError:
    return GraphError(
        404,
        DIRECTORY_NOT_FOUND,
        f"Resource '{key}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def _group(state: SandboxState, group_id: str) -> Group:
    if not _GUID.match(group_id):
        raise GraphError(400, "Request_BadRequest", f"Invalid object identifier '{group_id}'.")
    group = state.tenant.group(group_id)
    if group is None:
        raise _not_found(group_id)
    return group


def _member_objects(state: SandboxState, group: Group) -> Iterator[dict[str, Any]]:
    """Direct members as directory objects (users; nested groups when a member id is a group)."""
    for member_id in list(group.members):
        user = state.tenant.user(member_id)
        if user is not None:
            yield _as_directory_object(user_json(user), USER_TYPE)
        elif (nested := state.tenant.group(member_id)) is not None:
            yield _as_directory_object(group_json(nested), GROUP_TYPE)


def _transitive_members(state: SandboxState, group: Group) -> Iterator[dict[str, Any]]:
    """Members of ``group`` and of the groups nested in it, each object once."""
    seen: set[str] = set()
    stack = [group]
    while stack:
        current = stack.pop()
        for obj in _member_objects(state, current):
            if obj["id"] in seen:
                continue
            seen.add(obj["id"])
            yield obj
            if obj["@odata.type"] == GROUP_TYPE:
                nested = state.tenant.group(obj["id"])
                if nested is not None:
                    stack.append(nested)


def groups_of(state: SandboxState, object_id: str, *, transitive: bool) -> list[Group]:
    """Groups ``object_id`` is a member of (directly, or through nested groups)."""
    direct = [g for g in state.tenant.groups if object_id in g.members]
    if not transitive:
        return direct
    found = {g.id: g for g in direct}
    frontier = list(direct)
    while frontier:
        parent_of = [g for g in state.tenant.groups if any(f.id in g.members for f in frontier)]
        frontier = [g for g in parent_of if g.id not in found]
        found.update((g.id, g) for g in frontier)
    return list(found.values())


# --- query options -------------------------------------------------------------------------


def _filtered(
    request: web.Request, items: Iterable[dict[str, Any]], allowed: Iterable[str], entity: str
) -> list[dict[str, Any]]:
    """Apply ``$filter`` (``eq`` on ``allowed`` properties only); 400 for anything else."""
    if "$search" in request.query:
        raise GraphError(400, BAD_REQUEST, "$search is not supported by the sandbox.")
    clauses = odata.parse_filter(request.query.get("$filter"))
    odata.check_paths(clauses, allowed)
    for clause in clauses:
        if clause.op != "eq":
            raise GraphError(
                400,
                BAD_REQUEST,
                f"Unsupported or invalid query filter clause specified for property "
                f"'{'/'.join(clause.path)}' of resource '{entity}'.",
            )
    return [item for item in items if odata.matches(clauses, item)]


def _page(
    request: web.Request,
    state: SandboxState,
    items: list[dict[str, Any]],
    *,
    context: str,
    view: Any = None,
) -> web.Response:
    """One page via ``odata.collection``; ``$count=true`` needs ``ConsistencyLevel: eventual``."""
    counting = request.query.get("$count", "").lower() == "true"
    if counting and request.headers.get("ConsistencyLevel", "").lower() != "eventual":
        raise GraphError(
            400,
            "Request_BadRequest",
            "$count is not currently supported without the ConsistencyLevel: eventual header.",
        )
    response = odata.collection(request, state.base_url, items, context=context, render=view)
    if counting and response.text is not None:
        body = json.loads(response.text)
        body["@odata.count"] = len(items)
        response = odata.json_response(body)
    return response


def _no_query_filter(request: web.Request) -> None:
    if "$filter" in request.query or "$search" in request.query:
        raise GraphError(400, BAD_REQUEST, "$filter and $search are not supported here.")


# --- subjects and permissions ----------------------------------------------------------------


def _subject(
    state: SandboxState,
    request: web.Request,
    *,
    application: Iterable[str],
    delegated: Iterable[str],
) -> tuple[Caller, User]:
    """The user a ``/users/{id}/…`` or ``/me/…`` call is about, after the permission check.

    Order as in Graph: 401 (token), then ``/me`` with an app token (400), then 403, then 404.
    """
    caller = graph_caller(state, request)
    key = request.match_info.get("user")
    if key is None:  # /me
        if caller.kind == "app":
            raise GraphError(
                400, BAD_REQUEST, "/me request is only valid with delegated authentication flow."
            )
        key = caller.user_id or ""
    user = state.tenant.user(key)
    is_self = caller.kind == "user" and user is not None and user.id == caller.user_id
    require(
        state,
        request,
        application=application,
        delegated=(*delegated, *(SELF_DELEGATED if is_self else ())),
    )
    if user is None:
        raise _not_found(key)
    return caller, user


# --- handlers ------------------------------------------------------------------------------


def register(app: web.Application, state: SandboxState) -> None:
    """Add the directory routes (``/v1.0/users…``, ``/v1.0/me…``, ``/v1.0/groups…``)."""

    async def list_users(request: web.Request) -> web.Response:
        require(state, request, application=USER_READ_APP, delegated=USER_OTHERS_DELEGATED)
        users = _filtered(
            request, (user_json(u) for u in state.tenant.users), USER_FILTERABLE, "User"
        )
        fields = request.query.get("$select")

        def view(obj: dict[str, Any]) -> dict[str, Any]:
            return obj if fields else {k: obj[k] for k in USER_DEFAULT}

        return _page(request, state, users, context=_context("users", fields, False), view=view)

    async def get_user(request: web.Request) -> web.Response:
        _, user = _subject(
            state, request, application=USER_READ_APP, delegated=USER_OTHERS_DELEGATED
        )
        fields = request.query.get("$select")
        body = {"@odata.context": _context("users", fields, True), **_user_view(user, fields)}
        return odata.json_response(body)

    async def manager(request: web.Request) -> web.Response:
        _, user = _subject(state, request, application=MANAGER_APP, delegated=MANAGER_DELEGATED)
        boss = state.tenant.user(user.manager_id) if user.manager_id else None
        if boss is None:
            raise _not_found("manager")
        fields = request.query.get("$select")
        body = {
            "@odata.context": f"{CONTEXT}directoryObjects/$entity",
            **_as_directory_object(_user_view(boss, fields), USER_TYPE),
        }
        return odata.json_response(body)

    async def member_of(request: web.Request) -> web.Response:
        _, user = _subject(
            state, request, application=MEMBERSHIP_APP, delegated=MEMBERSHIP_DELEGATED
        )
        _no_query_filter(request)
        transitive = request.path.endswith("/transitiveMemberOf")
        groups = [
            _as_directory_object(group_json(g), GROUP_TYPE)
            for g in groups_of(state, user.id, transitive=transitive)
        ]
        return _page(request, state, groups, context="directoryObjects")

    async def check_member_groups(request: web.Request) -> web.Response:
        _, user = _subject(
            state, request, application=MEMBERSHIP_APP, delegated=MEMBERSHIP_DELEGATED
        )
        body = await odata.read_json(request)
        ids = body.get("groupIds")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise GraphError(400, BAD_REQUEST, "groupIds must be a list of group ids.")
        if len(ids) > MAX_CHECK_GROUPS:
            raise GraphError(
                400,
                "Request_BadRequest",
                f"The number of groupIds ({len(ids)}) exceeds the limit of {MAX_CHECK_GROUPS}.",
            )
        member = {g.id for g in groups_of(state, user.id, transitive=True)}
        return odata.json_response(
            {
                "@odata.context": f"{CONTEXT}Collection(Edm.String)",
                "value": [i for i in ids if i in member],
            }
        )

    async def list_groups(request: web.Request) -> web.Response:
        require(state, request, application=GROUP_READ_APP, delegated=GROUP_READ_DELEGATED)
        groups = _filtered(
            request, (group_json(g) for g in state.tenant.groups), GROUP_FILTERABLE, "Group"
        )
        fields = request.query.get("$select")
        return _page(request, state, groups, context=_context("groups", fields, False))

    async def get_group(request: web.Request) -> web.Response:
        require(state, request, application=GROUP_READ_APP, delegated=GROUP_READ_DELEGATED)
        group = _group(state, request.match_info["group"])
        fields = request.query.get("$select")
        body = {
            "@odata.context": _context("groups", fields, True),
            **odata.select(group_json(group), fields),
        }
        return odata.json_response(body)

    async def members(request: web.Request) -> web.Response:
        require(state, request, application=GROUP_READ_APP, delegated=GROUP_READ_DELEGATED)
        group = _group(state, request.match_info["group"])
        _no_query_filter(request)
        fields = request.query.get("$select")
        walk = (
            _transitive_members if request.path.endswith("/transitiveMembers") else _member_objects
        )
        objects = list(walk(state, group))

        def view(obj: dict[str, Any]) -> dict[str, Any]:
            if fields or obj["@odata.type"] != USER_TYPE:
                return obj
            return {"@odata.type": USER_TYPE, **{k: obj[k] for k in USER_DEFAULT}}

        return _page(request, state, objects, context="directoryObjects", view=view)

    for prefix in ("/v1.0/users/{user}", "/v1.0/me"):
        app.router.add_get(prefix, get_user)
        app.router.add_get(f"{prefix}/manager", manager)
        app.router.add_get(f"{prefix}/memberOf", member_of)
        app.router.add_get(f"{prefix}/transitiveMemberOf", member_of)
        app.router.add_post(f"{prefix}/checkMemberGroups", check_member_groups)
    app.router.add_get("/v1.0/users", list_users)
    app.router.add_get("/v1.0/groups", list_groups)
    app.router.add_get("/v1.0/groups/{group}", get_group)
    app.router.add_get("/v1.0/groups/{group}/members", members)
    app.router.add_get("/v1.0/groups/{group}/transitiveMembers", members)
