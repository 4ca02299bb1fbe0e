"""Tokens the sandbox's authority mints and Graph's checks of them (signature, audience,
expiry, and the permission each call needs: app ``roles`` vs delegated ``scp``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from aiohttp import web

from sandbox.errors import ACCESS_DENIED, UNAUTHORIZED, GraphError
from sandbox.state import GRAPH_AUDIENCES, SandboxState
from sandbox.tenant import App, User
from sandbox.tokens import unverified_kid

TOKEN_LIFETIME_S = 3600
GRAPH_RESOURCE = "https://graph.microsoft.com"


@dataclass(frozen=True)
class Caller:
    """Who is calling Graph, as proven by the bearer token."""

    kind: Literal["app", "user"]
    client_id: str
    user_id: str | None
    roles: frozenset[str]
    scopes: frozenset[str]

    def has_any(self, permissions: Iterable[str]) -> bool:
        """True when the token carries one of ``permissions`` (roles for app, scp for user)."""
        held = self.roles if self.kind == "app" else self.scopes
        return any(p in held for p in permissions)


def mint_app_token(state: SandboxState, app: App, audience: str = GRAPH_RESOURCE) -> str:
    """An app-only access token (``roles`` = the app's application permissions)."""
    now = now_s()
    return state.entra_key.sign(
        {
            "aud": audience,
            "iss": state.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_S,
            "tid": state.tenant.id,
            "appid": app.client_id,
            "azp": app.client_id,
            "oid": _app_sp_id(app),
            "sub": _app_sp_id(app),
            "idtyp": "app",
            "roles": list(app.application_permissions),
            "ver": "2.0",
            "uti": uuid.uuid4().hex,
        }
    )


def mint_user_token(
    state: SandboxState,
    app: App,
    user: User,
    scopes: Iterable[str],
    audience: str = GRAPH_RESOURCE,
) -> str:
    """A delegated access token for ``user`` with the granted ``scopes`` in ``scp``."""
    now = now_s()
    return state.entra_key.sign(
        {
            "aud": audience,
            "iss": state.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_S,
            "tid": state.tenant.id,
            "appid": app.client_id,
            "azp": app.client_id,
            "oid": user.id,
            "sub": user.id,
            "upn": user.user_principal_name,
            "preferred_username": user.user_principal_name,
            "name": user.display_name,
            "idtyp": "user",
            "scp": " ".join(sorted(set(scopes))),
            "ver": "2.0",
            "uti": uuid.uuid4().hex,
        }
    )


def _app_sp_id(app: App) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "sp:" + app.client_id))


def verify_graph_token(state: SandboxState, token: str) -> dict[str, Any]:
    """Claims of a valid Graph token, or a 401 ``GraphError``."""
    if unverified_kid(token) != state.entra_key.kid:
        raise GraphError(401, UNAUTHORIZED, "Access token validation failure. Invalid signature.")
    # Token lifetimes follow real time, not the sandbox clock: clients cache tokens by real
    # time, and moving the lifecycle clock must not invalidate them.
    try:
        return state.entra_key.verify(token, audience=list(GRAPH_AUDIENCES), issuer=state.issuer)
    except jwt.InvalidAudienceError as exc:
        raise GraphError(
            401, UNAUTHORIZED, "Access token validation failure. Invalid audience."
        ) from exc
    except jwt.ExpiredSignatureError as exc:
        raise GraphError(
            401, UNAUTHORIZED, "Lifetime validation failed, the token is expired."
        ) from exc
    except jwt.PyJWTError as exc:
        raise GraphError(401, UNAUTHORIZED, f"Access token validation failure: {exc}.") from exc


def graph_caller(state: SandboxState, request: web.Request) -> Caller:
    """The verified caller of a Graph request; 401 when the token is missing or invalid."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise GraphError(401, UNAUTHORIZED, "Access token is empty.")
    claims = verify_graph_token(state, header[7:].strip())
    if claims.get("idtyp") == "app" or "scp" not in claims:
        return Caller(
            kind="app",
            client_id=str(claims.get("appid", "")),
            user_id=None,
            roles=frozenset(claims.get("roles", [])),
            scopes=frozenset(),
        )
    return Caller(
        kind="user",
        client_id=str(claims.get("appid", "")),
        user_id=str(claims["oid"]),
        roles=frozenset(),
        scopes=frozenset(str(claims.get("scp", "")).split()),
    )


def require(
    state: SandboxState,
    request: web.Request,
    *,
    application: Iterable[str] = (),
    delegated: Iterable[str] = (),
) -> Caller:
    """The caller, after checking it holds one of the permissions for its kind (403 if not).

    An empty ``application`` list means the call is delegated-only (app tokens get 403).
    """
    caller = graph_caller(state, request)
    allowed = list(application) if caller.kind == "app" else list(delegated)
    if not caller.has_any(allowed):
        if caller.kind == "app" and not allowed:
            message = "This operation does not support application permissions."
        else:
            message = "Either the signed-in user or the app lacks the permission this call needs."
        raise GraphError(403, ACCESS_DENIED, message)
    return caller


# Permission sets the Graph handlers use (spec/graph.md and the v1.0 permission tables).
USER_READ_APP = ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All")
USER_READ_DELEGATED = (
    "User.Read",
    "User.ReadBasic.All",
    "User.Read.All",
    "Directory.Read.All",
)
GROUP_READ_APP = ("GroupMember.Read.All", "Group.Read.All", "Directory.Read.All")
GROUP_READ_DELEGATED = ("GroupMember.Read.All", "Group.Read.All", "Directory.Read.All")
EM_READ = ("EntitlementManagement.Read.All", "EntitlementManagement.ReadWrite.All")
EM_WRITE = ("EntitlementManagement.ReadWrite.All",)
EM_SUBJECT = ("EntitlementMgmt-SubjectAccess.ReadWrite", "EntitlementManagement.ReadWrite.All")
INTUNE_WRITE = ("DeviceManagementConfiguration.ReadWrite.All",)
INTUNE_READ = (
    "DeviceManagementConfiguration.Read.All",
    "DeviceManagementConfiguration.ReadWrite.All",
)


def now_s() -> int:
    """Real wall-clock seconds (for things not on the sandbox clock)."""
    return int(time.time())
