"""The Entra ID authority (v2.0 endpoints) under ``/{tenant}/…``, for MSAL and azure-identity.

- ``GET  /{tenant}/v2.0/.well-known/openid-configuration`` and ``/{tenant}/discovery/v2.0/keys``
- ``GET|POST /{tenant}/oauth2/v2.0/authorize``: authorization code with PKCE (S256).  A
  ``login_hint`` naming a tenant user signs them in at once; without it a page lists the users.
- ``POST /{tenant}/oauth2/v2.0/token``: ``client_credentials``, ``authorization_code``,
  ``refresh_token`` and on-behalf-of (``urn:ietf:params:oauth:grant-type:jwt-bearer``).
- ``GET  /{tenant}/oauth2/v2.0/logout``.

Apps authenticate with their client secret (body or HTTP Basic) or, for certificates listed in
the tenant file, a client assertion (``private_key_jwt``).  ``{tenant}`` is the tenant id or its
domain.  Errors use AAD's JSON shape
(``error``, ``error_description`` starting ``AADSTS…``, ``error_codes``, ``timestamp``, …).

Deviations from Entra, on purpose: apps have no registered redirect URIs, so any https URI or
http loopback URI is accepted; delegated scopes are granted as the intersection of the request
and the app's ``delegatedPermissions`` (admin consent is assumed, no consent prompt); access
tokens for Graph are v2-shaped and carry this authority's issuer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.auth import GRAPH_RESOURCE, TOKEN_LIFETIME_S, mint_app_token, mint_user_token, now_s
from sandbox.state import GRAPH_AUDIENCES, STATE_KEY, SandboxState
from sandbox.tenant import App, User
from sandbox.tokens import SigningKey

CODE_LIFETIME_S = 600
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
OWN_API_DEFAULT_SCOPE = "access_as_user"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


# --- errors --------------------------------------------------------------------------------


class AuthError(Exception):
    """An OAuth error in AAD's shape: ``error`` plus an ``AADSTS<code>`` description."""

    def __init__(self, error: str, code: int, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.code = code
        self.description = description
        self.status = status

    def response(self, base_url: str) -> web.Response:
        """The JSON error body AAD sends from the token endpoint."""
        trace = str(uuid.uuid4())
        body = {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.description} Trace ID: {trace}",
            "error_codes": [self.code],
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
            "error_uri": f"{base_url}/error?code={self.code}",
        }
        return web.json_response(body, status=self.status)


def _invalid_grant(code: int, description: str) -> AuthError:
    return AuthError("invalid_grant", code, description)


def _invalid_request(code: int, description: str) -> AuthError:
    return AuthError("invalid_request", code, description)


# --- server-side grant records -------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What a delegated token request resolves to: one resource and its scopes."""

    audience: str
    scopes: tuple[str, ...]  # the ``scp`` values
    oidc: frozenset[str]  # openid / profile / offline_access / email requested
    reply: str  # the ``scope`` string of the response, in the client's spelling
    requested: str  # the ``scope`` parameter as asked (what a refresh token is good for)


@dataclass
class AuthCode:
    """An issued authorization code (single use, bound to all it was issued for)."""

    client_id: str
    redirect_uri: str
    user_id: str
    scope: str
    code_challenge: str | None
    nonce: str | None
    expires: float


@dataclass
class RefreshGrant:
    """What a refresh token may be redeemed for."""

    client_id: str
    user_id: str
    scope: str


@dataclass
class AuthorityStore:
    """Codes and refresh tokens the authority issued (``state.services["authority"]``)."""

    codes: dict[str, AuthCode] = field(default_factory=dict)
    redeemed: set[str] = field(default_factory=set)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)


def _store(state: SandboxState) -> AuthorityStore:
    store = state.services.setdefault("authority", AuthorityStore())
    assert isinstance(store, AuthorityStore)
    return store


# --- scopes --------------------------------------------------------------------------------


def _resource_of(app: App, resource: str) -> str | None:
    """The token audience for a scope's resource part, or None when it is not known here."""
    bare = resource.rstrip("/")
    if bare in GRAPH_AUDIENCES:
        return GRAPH_RESOURCE
    if bare in (app.client_id, f"api://{app.client_id}") or (
        bare.startswith("api://") and bare.endswith(app.client_id)
    ):
        return app.client_id
    return None


def delegated_grant(state: SandboxState, app: App, scope_text: str) -> Grant:
    """Resolve a delegated ``scope`` parameter for ``app`` (400 ``invalid_scope`` if it can't).

    Graph scopes are granted as the intersection with the app's delegated permissions;
    ``.default`` means all of them.  Scopes of the app's own API (``api://<clientId>/x``) are
    granted as asked.  All non-OIDC scopes must name one resource.
    """
    oidc: set[str] = set()
    audience: str | None = None
    granted: list[str] = []
    reply: list[str] = []
    consented = {p.lower(): p for p in app.delegated_permissions if p not in OIDC_SCOPES}
    for token in scope_text.split():
        if token.lower() in OIDC_SCOPES:
            oidc.add(token.lower())
            continue
        resource, _, name = token.rpartition("/")
        target = _resource_of(app, resource) if resource else GRAPH_RESOURCE
        if target is None:
            raise AuthError(
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{state.tenant.id}.",
            )
        if audience not in (None, target):
            raise AuthError(
                "invalid_scope",
                28000,
                "Provided value for the input parameter scope is not "
                "valid because it contains more than one resource.",
            )
        audience = target
        if target == GRAPH_RESOURCE:
            names = (
                list(consented.values())
                if name == ".default"
                else [consented[name.lower()]]
                if name.lower() in consented
                else []
            )
        else:
            names = [OWN_API_DEFAULT_SCOPE if name == ".default" else name]
        if names:
            granted.extend(n for n in names if n not in granted)
            reply.append(token)
    if audience is None:  # only OIDC scopes: Entra issues a Graph token for them
        audience = GRAPH_RESOURCE
        granted = sorted(oidc - {"offline_access"})
    reply.extend(sorted(oidc - {"offline_access"}))
    return Grant(audience, tuple(granted), frozenset(oidc), " ".join(reply), scope_text)


# --- tokens --------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def client_info(state: SandboxState, user: User) -> str:
    """MSAL's ``client_info``: base64url JSON ``{uid, utid}``."""
    return _b64url(json.dumps({"uid": user.id, "utid": state.tenant.id}).encode())


def mint_id_token(state: SandboxState, app: App, user: User, nonce: str | None) -> str:
    """An OIDC id_token for ``user`` signed with the authority's key (``aud`` = client id)."""
    now = now_s()
    claims: dict[str, Any] = {
        "aud": app.client_id,
        "iss": state.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + TOKEN_LIFETIME_S,
        "auth_time": now,
        "sub": _b64url(hashlib.sha256(f"{user.id}:{app.client_id}".encode()).digest()),
        "oid": user.id,
        "tid": state.tenant.id,
        "name": user.display_name,
        "preferred_username": user.user_principal_name,
        "ver": "2.0",
        "uti": uuid.uuid4().hex,
    }
    if user.mail:
        claims["email"] = user.mail
    if nonce:
        claims["nonce"] = nonce
    return state.entra_key.sign(claims)


def _expires_in(token: str) -> int:
    exp = int(jwt.decode(token, options={"verify_signature": False})["exp"])
    return max(exp - now_s() - 1, 0)


def delegated_response(
    state: SandboxState,
    app: App,
    user: User,
    grant: Grant,
    *,
    nonce: str | None = None,
    want_client_info: bool = False,
) -> dict[str, Any]:
    """The token endpoint's answer to a delegated grant (auth code, refresh, OBO)."""
    access = mint_user_token(state, app, user, grant.scopes, audience=grant.audience)
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": grant.reply,
        "expires_in": _expires_in(access),
        "ext_expires_in": _expires_in(access),
        "access_token": access,
    }
    if "offline_access" in grant.oidc:
        refresh = secrets.token_urlsafe(48)
        _store(state).refresh_tokens[refresh] = RefreshGrant(
            app.client_id, user.id, grant.requested
        )
        body["refresh_token"] = refresh
    if "openid" in grant.oidc:
        body["id_token"] = mint_id_token(state, app, user, nonce)
    if want_client_info:
        body["client_info"] = client_info(state, user)
    return body


# --- routing helpers -----------------------------------------------------------------------


def _tenant_ok(state: SandboxState, tenant: str) -> bool:
    return tenant.lower() in (state.tenant.id.lower(), state.tenant.domain.lower())


def _unknown_tenant(tenant: str) -> AuthError:
    return _invalid_request(
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud.",
    )


def _endpoints(state: SandboxState) -> dict[str, str]:
    root = f"{state.base_url}/{state.tenant.id}"
    return {
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "jwks_uri": f"{root}/discovery/v2.0/keys",
    }


# --- discovery -----------------------------------------------------------------------------


def openid_configuration(state: SandboxState) -> dict[str, Any]:
    """The v2.0 OpenID Provider metadata, as Entra publishes it (endpoints use the tenant id)."""
    return {
        **_endpoints(state),
        "issuer": state.issuer,
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "response_modes_supported": ["query", "form_post"],
        "response_types_supported": ["code"],
        "grant_types_supported": [
            "authorization_code",
            "client_credentials",
            "refresh_token",
            JWT_BEARER,
        ],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "name",
            "oid",
            "tid",
            "preferred_username",
            "email",
            "ver",
        ],
        "request_uri_parameter_supported": False,
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "tenant_region_scope": None,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }


async def _discovery(request: web.Request) -> web.Response:
    state: SandboxState = request.app[STATE_KEY]
    tenant = request.match_info["tenant"]
    if not _tenant_ok(state, tenant):
        return _unknown_tenant(tenant).response(state.base_url)
    return web.json_response(openid_configuration(state))


async def _keys(request: web.Request) -> web.Response:
    state: SandboxState = request.app[STATE_KEY]
    tenant = request.match_info["tenant"]
    if not _tenant_ok(state, tenant):
        return _unknown_tenant(tenant).response(state.base_url)
    return web.json_response({"keys": [state.entra_key.jwk(issuer=state.issuer)]})


# --- authorize -----------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 28rem; margin: 3rem auto; color: #1b1b1b; }}
h1 {{ font-size: 1.3rem; font-weight: 600; }}
ul {{ list-style: none; padding: 0; }}
li a {{ display: block; padding: .6rem .8rem; margin: .4rem 0; border: 1px solid #ccc;
        border-radius: 6px; text-decoration: none; color: inherit; }}
li a:hover {{ background: #f3f6fb; border-color: #0067b8; }}
small {{ color: #555; }} .error {{ color: #a4262c; }}
</style></head>
<body><p><small>Elevate sandbox · {tenant}</small></p><h1>{title}</h1>{body}</body></html>
"""


def _page(state: SandboxState, title: str, body: str, status: int = 200) -> web.Response:
    text = _PAGE.format(
        title=html.escape(title), tenant=html.escape(state.tenant.domain), body=body
    )
    return web.Response(status=status, text=text, content_type="text/html", charset="utf-8")


def _error_page(state: SandboxState, code: int, message: str) -> web.Response:
    body = f'<p class="error">AADSTS{code}: {html.escape(message)}</p>'
    return _page(state, "Sorry, but we’re having trouble signing you in.", body, status=400)


def _redirect_uri_ok(uri: str) -> bool:
    parts = urlsplit(uri)
    if not parts.netloc or parts.fragment:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK


def _reply(redirect_uri: str, params: Mapping[str, str], response_mode: str) -> web.StreamResponse:
    """Send the authorization response to the client (query redirect or form_post)."""
    if response_mode == "form_post":
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        text = (
            '<!doctype html><html><body onload="document.forms[0].submit()">'
            f'<form method="post" action="{html.escape(redirect_uri)}">{inputs}'
            "<noscript><button>Continue</button></noscript></form></body></html>"
        )
        return web.Response(text=text, content_type="text/html", charset="utf-8")
    sep = "&" if urlsplit(redirect_uri).query else "?"
    return _redirect(f"{redirect_uri}{sep}{urlencode(params)}")


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


def _picker(
    state: SandboxState, params: Mapping[str, str], notice: str | None = None
) -> web.Response:
    """The sign-in page: one link per tenant user, each completing the flow for them."""
    base = {k: v for k, v in params.items() if k not in ("login_hint", "prompt")}
    items = []
    for user in state.tenant.users:
        href = "?" + urlencode({**base, "login_hint": user.user_principal_name})
        items.append(
            f'<li><a href="{html.escape(href)}">{html.escape(user.display_name)}<br>'
            f"<small>{html.escape(user.user_principal_name)}</small></a></li>"
        )
    note = f'<p class="error">{html.escape(notice)}</p>' if notice else ""
    return _page(state, "Pick an account", f"{note}<ul>{''.join(items)}</ul>")


async def _params(request: web.Request) -> dict[str, str]:
    if request.method == "POST":
        return {k: str(v) for k, v in (await request.post()).items()}
    return dict(request.query)


async def _authorize(request: web.Request) -> web.StreamResponse:
    state: SandboxState = request.app[STATE_KEY]
    tenant = request.match_info["tenant"]
    params = await _params(request)
    if not _tenant_ok(state, tenant):
        return _error_page(state, 90002, f"Tenant '{tenant}' not found.")
    client_id = params.get("client_id", "")
    app = state.tenant.app(client_id)
    if app is None:
        return _error_page(
            state,
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{state.tenant.domain}'.",
        )
    redirect_uri = params.get("redirect_uri", "")
    if not _redirect_uri_ok(redirect_uri):
        return _error_page(
            state,
            50011,
            f"The redirect URI '{redirect_uri}' specified in the request does not match the "
            "redirect URIs configured for the application (https, or http on loopback).",
        )
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method", "plain" if challenge else "")
    if challenge and method != "S256":
        return _error_page(
            state, 50148, f"The code_challenge_method '{method}' is not supported; use S256."
        )
    mode = params.get("response_mode", "query")
    reply_state = {"state": params["state"]} if "state" in params else {}

    def fail(error: str, description: str) -> web.StreamResponse:
        return _reply(
            redirect_uri, {"error": error, "error_description": description, **reply_state}, mode
        )

    if mode not in ("query", "form_post"):
        return _error_page(state, 900144, f"The response_mode '{mode}' is not supported.")
    if params.get("response_type") != "code":
        return fail("unsupported_response_type", "AADSTS700054: response_type must be 'code'.")
    try:
        delegated_grant(state, app, params.get("scope", ""))
    except AuthError as exc:
        return fail(exc.error, f"AADSTS{exc.code}: {exc.description}")
    hint = params.get("login_hint", "")
    prompt = params.get("prompt", "")
    if not hint or prompt == "select_account":
        if prompt == "none":
            return fail(
                "login_required",
                "AADSTS50058: A silent sign-in request was sent but no user is signed in.",
            )
        return _picker(state, params)
    user = state.tenant.user(hint)
    if user is None:
        if prompt == "none":
            return fail("login_required", f"AADSTS50058: No signed-in user matches '{hint}'.")
        return _picker(state, params, notice=f"There is no account '{hint}' in this tenant.")
    code = secrets.token_urlsafe(32)
    _store(state).codes[code] = AuthCode(
        client_id=app.client_id,
        redirect_uri=redirect_uri,
        user_id=user.id,
        scope=params.get("scope", ""),
        code_challenge=challenge,
        nonce=params.get("nonce"),
        expires=time.time() + CODE_LIFETIME_S,
    )
    return _reply(
        redirect_uri,
        {"code": code, **reply_state, "session_state": str(uuid.uuid4())},
        mode,
    )


async def _logout(request: web.Request) -> web.StreamResponse:
    state: SandboxState = request.app[STATE_KEY]
    target = request.query.get("post_logout_redirect_uri")
    if target and _redirect_uri_ok(target):
        return _redirect(target)
    return _page(state, "You signed out of your account", "<p>You can close this window.</p>")


# --- token ---------------------------------------------------------------------------------


def _authenticate_client(
    state: SandboxState, form: Mapping[str, str], authorization: str | None
) -> App:
    """The calling app, after checking its secret (body or HTTP Basic); 401 ``invalid_client``."""
    client_id = form.get("client_id", "")
    secret = form.get("client_secret")
    if authorization and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip()).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        basic_id, _, basic_secret = decoded.partition(":")
        client_id, secret = unquote(basic_id), unquote(basic_secret)
    if not client_id:
        raise _invalid_request(
            900144, "The request body must contain the following parameter: 'client_id'."
        )
    app = state.tenant.app(client_id)
    if app is None:
        raise AuthError(
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{state.tenant.domain}'.",
        )
    if form.get("client_assertion_type") == CLIENT_ASSERTION_TYPE:
        _check_client_assertion(state, app, form.get("client_assertion", ""))
        return app
    if secret is None:
        raise AuthError(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
            status=401,
        )
    if not secrets.compare_digest(secret.encode(), app.client_secret.encode()):
        raise AuthError(
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            f"client secret value, not the client secret ID, for a secret added to app "
            f"'{app.client_id}'.",
            status=401,
        )
    return app


def _check_client_assertion(state: SandboxState, app: App, assertion: str) -> None:
    """A certificate credential (``private_key_jwt``): a JWT signed with the key of a
    certificate registered on the app, named in its header by ``x5t#S256`` (PS256, what
    current SDKs send) or ``x5t`` (RS256), with ``iss`` = ``sub`` = the client id, ``aud`` =
    this tenant's token endpoint, ``exp`` and ``jti``; five minutes of clock skew allowed.
    An assertion may be reused until it expires (MSAL does)."""

    def refused(code: int, description: str) -> AuthError:
        return AuthError("invalid_client", code, description, status=401)

    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.DecodeError as exc:
        raise refused(50027, "JWT token is invalid or malformed.") from exc
    alg = header.get("alg")
    if alg not in ("PS256", "RS256"):
        raise refused(5002738, f"Client assertion is signed with an unsupported algorithm {alg!r}.")
    certificate = _registered_certificate(app, header)
    if certificate is None:
        raise refused(
            700027,
            "The certificate with identifier used to sign the client assertion is not "
            f"registered on application. [Reason - The key was not found., Thumbprint of key "
            f"used by client: '{header.get('x5t#S256') or header.get('x5t')}'; Please visit "
            f"the Azure Portal to verify the keys registered on application {app.client_id}.]",
        )
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise refused(700027, "The certificate used to sign the client assertion is not RSA.")
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise refused(700027, "The certificate used to sign the client assertion has expired.")
    endpoints = [
        f"{state.base_url}/{tenant}/oauth2/v2.0/token"
        for tenant in (state.tenant.id, state.tenant.domain)
    ]
    try:
        claims = jwt.decode(
            assertion,
            key,
            algorithms=[alg],
            audience=endpoints,
            leeway=300,
            options={"require": ["aud", "iss", "sub", "exp", "jti"]},
        )
    except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError) as exc:
        raise refused(700024, "Client assertion is not within its valid time range.") from exc
    except jwt.InvalidAudienceError as exc:
        raise refused(
            50013,
            "Assertion audience claim does not match the required value: it must be the "
            f"tenant's token endpoint, {endpoints[0]}.",
        ) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise refused(50027, f"JWT token is missing the '{exc.claim}' claim.") from exc
    except jwt.InvalidTokenError as exc:
        raise refused(700027, "Client assertion failed signature validation.") from exc
    if claims["iss"] != app.client_id or claims["sub"] != app.client_id:
        raise refused(
            700021, "Client assertion application identifier doesn't match 'client_id' parameter."
        )


def _registered_certificate(app: App, header: Mapping[str, Any]) -> x509.Certificate | None:
    """The app's registered certificate the assertion header names by thumbprint."""
    digest: hashes.HashAlgorithm
    if isinstance(header.get("x5t#S256"), str):
        wanted, digest = header["x5t#S256"], hashes.SHA256()
    elif isinstance(header.get("x5t"), str):
        wanted, digest = header["x5t"], hashes.SHA1()  # noqa: S303 - x5t is SHA-1 by RFC 7515
    else:
        return None
    for pem in app.certificates:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        thumbprint = base64.urlsafe_b64encode(certificate.fingerprint(digest)).rstrip(b"=")
        if secrets.compare_digest(thumbprint, wanted.rstrip("=").encode()):
            return certificate
    return None


def _user(state: SandboxState, user_id: str) -> User:
    user = state.tenant.user(user_id)
    if user is None:
        raise _invalid_grant(50034, "The user account does not exist in the directory.")
    return user


def _client_credentials(state: SandboxState, app: App, form: Mapping[str, str]) -> dict[str, Any]:
    scope = form.get("scope", "").strip()
    resource, _, name = scope.rpartition("/")
    if " " in scope or name != ".default" or not resource:
        raise AuthError(
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must "
            "have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI).",
        )
    audience = _resource_of(app, resource)
    if audience is None:
        raise AuthError(
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{state.tenant.id}.",
        )
    token = mint_app_token(state, app, audience=audience)
    return {
        "token_type": "Bearer",
        "expires_in": _expires_in(token),
        "ext_expires_in": _expires_in(token),
        "access_token": token,
    }


def _pkce_ok(challenge: str, verifier: str | None) -> bool:
    if not verifier:
        return False
    computed = _b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
    return secrets.compare_digest(computed, challenge)


def _authorization_code(state: SandboxState, app: App, form: Mapping[str, str]) -> dict[str, Any]:
    store = _store(state)
    code = form.get("code", "")
    if code in store.redeemed:
        raise _invalid_grant(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code "
            "or use an existing refresh token.",
        )
    issued = store.codes.pop(code, None)
    if issued is None:
        raise _invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid: "
            "the provided value for the 'code' parameter is not valid.",
        )
    store.redeemed.add(code)
    if issued.expires < time.time():
        raise _invalid_grant(
            70008, "The provided authorization code or refresh token has expired due to inactivity."
        )
    if issued.client_id != app.client_id:
        raise _invalid_grant(70000, "The provided authorization code was issued to another client.")
    if form.get("redirect_uri") != issued.redirect_uri:
        raise _invalid_grant(
            50148, "The redirect_uri does not match the one used in the authorization request."
        )
    if issued.code_challenge and not _pkce_ok(issued.code_challenge, form.get("code_verifier")):
        raise _invalid_grant(
            501481,
            "The Code_Verifier does not match the code_challenge "
            "supplied in the authorization request.",
        )
    grant = delegated_grant(state, app, form.get("scope") or issued.scope)
    return delegated_response(
        state,
        app,
        _user(state, issued.user_id),
        grant,
        nonce=issued.nonce,
        want_client_info=form.get("client_info") == "1",
    )


def _refresh_token(state: SandboxState, app: App, form: Mapping[str, str]) -> dict[str, Any]:
    # Entra keeps a refresh token valid after use (it also returns a new one); so does this.
    held = _store(state).refresh_tokens.get(form.get("refresh_token", ""))
    if held is None:
        raise _invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid: the refresh token is not valid.",
        )
    if held.client_id != app.client_id:
        raise _invalid_grant(70000, "The provided refresh token was issued to another client.")
    grant = delegated_grant(state, app, form.get("scope") or held.scope)
    return delegated_response(
        state,
        app,
        _user(state, held.user_id),
        grant,
        want_client_info=form.get("client_info") == "1",
    )


def _assertion_claims(state: SandboxState, app: App, assertion: str) -> dict[str, Any]:
    """Claims of an OBO assertion: a user token for ``app``'s API signed by a sandbox key."""
    audiences = [app.client_id, f"api://{app.client_id}"]
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise _invalid_grant(50027, f"JWT token is invalid or malformed: {exc}.") from exc
    aud = unverified.get("aud")
    if isinstance(aud, str) and aud.startswith("api://") and aud.endswith(app.client_id):
        audiences.append(aud)  # e.g. Teams SSO's api://botid-<clientId>
    keys: dict[str, tuple[SigningKey, str | None]] = {
        state.entra_key.kid: (state.entra_key, state.issuer),
        state.botframework_key.kid: (state.botframework_key, None),
    }
    key, issuer = keys.get(header.get("kid", ""), (None, None))
    if key is None:
        raise _invalid_grant(50013, "Assertion failed signature validation.")
    try:
        claims = key.verify(assertion, audience=audiences, issuer=issuer)
    except jwt.ExpiredSignatureError as exc:
        raise _invalid_grant(500133, "Assertion is not within its valid time range.") from exc
    except jwt.InvalidAudienceError as exc:
        raise _invalid_grant(
            50013,
            f"Assertion audience does not match the Client app presenting the assertion "
            f"'{app.client_id}'.",
        ) from exc
    except jwt.PyJWTError as exc:
        raise _invalid_grant(50013, f"Assertion failed signature validation: {exc}.") from exc
    if "oid" not in claims or "scp" not in claims:
        raise _invalid_grant(50013, "Assertion is not a delegated (user) token.")
    return claims


def _on_behalf_of(state: SandboxState, app: App, form: Mapping[str, str]) -> dict[str, Any]:
    if form.get("requested_token_use") != "on_behalf_of":
        raise _invalid_request(
            900144,
            "The request body must contain the following parameter: "
            "'requested_token_use' with value 'on_behalf_of'.",
        )
    claims = _assertion_claims(state, app, form.get("assertion", ""))
    grant = delegated_grant(state, app, form.get("scope", ""))
    return delegated_response(
        state,
        app,
        _user(state, str(claims["oid"])),
        grant,
        want_client_info=form.get("client_info") == "1",
    )


_GRANTS: dict[str, Callable[[SandboxState, App, Mapping[str, str]], dict[str, Any]]] = {
    "client_credentials": _client_credentials,
    "authorization_code": _authorization_code,
    "refresh_token": _refresh_token,
    JWT_BEARER: _on_behalf_of,
}


async def _token(request: web.Request) -> web.Response:
    state: SandboxState = request.app[STATE_KEY]
    tenant = request.match_info["tenant"]
    try:
        if not _tenant_ok(state, tenant):
            raise _unknown_tenant(tenant)
        form = {k: str(v) for k, v in (await request.post()).items()}
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise _invalid_request(
                900144, "The request body must contain the following parameter: 'grant_type'."
            )
        handler = _GRANTS.get(grant_type)
        if handler is None:
            raise AuthError(
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        app = _authenticate_client(state, form, request.headers.get("Authorization"))
        body = handler(state, app, form)
    except AuthError as exc:
        return exc.response(state.base_url)
    return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


# --- registration --------------------------------------------------------------------------


def _tenant_pattern(state: SandboxState) -> str:
    """``{tenant}`` matches a GUID or this tenant's domain, leaving other paths to other modules."""
    return f"{{tenant:(?:{_GUID}|{re.escape(state.tenant.domain)})}}"


def register(app: web.Application, state: SandboxState) -> None:
    """Add the authority's routes."""
    t = _tenant_pattern(state)
    routes: Iterable[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = (
        ("GET", f"/{t}/v2.0/.well-known/openid-configuration", _discovery),
        ("GET", f"/{t}/discovery/v2.0/keys", _keys),
        ("GET", f"/{t}/oauth2/v2.0/authorize", _authorize),
        ("POST", f"/{t}/oauth2/v2.0/authorize", _authorize),
        ("POST", f"/{t}/oauth2/v2.0/token", _token),
        ("GET", f"/{t}/oauth2/v2.0/logout", _logout),
    )
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
