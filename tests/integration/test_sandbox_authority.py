"""The sandbox's Entra authority, driven by MSAL, azure-identity and raw HTTP over real TLS."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
import trustme
from azure.identity.aio import CertificateCredential, ClientSecretCredential, OnBehalfOfCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from sandbox.server import ThreadedSandbox
from sandbox.tenant import User, demo_tenant
from tests.integration.conftest import (
    GRAPH_DEFAULT_SCOPE,
    REDIRECT_URI,
    msal_app,
    requests_session,
    user_token,
)

ALICE = "alice@contoso.test"


def _root(sb: ThreadedSandbox) -> str:
    return f"{sb.ready['base_url']}/{sb.ready['tenant_id']}"


def _verify(sb: ThreadedSandbox, token: str, audience: str) -> dict[str, Any]:
    """Verify ``token`` against the published JWKS, like a resource server would."""
    jwks = jwt.PyJWKClient(
        f"{_root(sb)}/discovery/v2.0/keys",
        ssl_context=ssl.create_default_context(cafile=sb.ready["ca_bundle"]),
    )
    key = jwks.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=f"{_root(sb)}/v2.0",
        options={"require": ["exp", "iat", "iss", "aud"]},
    )
    return claims


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _authorize(sb: ThreadedSandbox, **params: str) -> requests.Response:
    """GET the authorize endpoint as a browser would, without following redirects."""
    with requests_session(sb) as browser:
        return browser.get(
            f"{_root(sb)}/oauth2/v2.0/authorize?{urlencode(params)}",
            allow_redirects=False,
            timeout=10,
        )


def _code(sb: ThreadedSandbox, challenge: str, scope: str = "User.Read offline_access") -> str:
    """An authorization code for Alice via a query-mode redirect."""
    response = _authorize(
        sb,
        client_id=sb.ready["env"]["ELEVATE_CLIENT_ID"],
        response_type="code",
        redirect_uri=REDIRECT_URI,
        scope=scope,
        state="s1",
        code_challenge=challenge,
        code_challenge_method="S256",
        login_hint=ALICE,
    )
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


def _token(sb: ThreadedSandbox, auth: Any = None, **form: str) -> requests.Response:
    """POST the token endpoint (client secret in the body unless ``auth`` is given)."""
    env = sb.ready["env"]
    if auth is None:
        form = {
            "client_id": env["ELEVATE_CLIENT_ID"],
            "client_secret": env["ELEVATE_CLIENT_SECRET"],
        } | form
    with requests_session(sb) as session:
        return session.post(f"{_root(sb)}/oauth2/v2.0/token", data=form, auth=auth, timeout=10)


def _assert_aad_error(response: requests.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert body["error_description"].startswith(f"AADSTS{body['error_codes'][0]}: ")
    assert {"timestamp", "trace_id", "correlation_id"} <= body.keys()
    return body


# --- discovery -----------------------------------------------------------------------------


def test_discovery_document_names_this_tenants_endpoints(sandbox: ThreadedSandbox) -> None:
    """The OpenID configuration carries the issuer and endpoints under the tenant id."""
    with requests_session(sandbox) as session:
        doc = session.get(f"{_root(sandbox)}/v2.0/.well-known/openid-configuration").json()
        by_domain = session.get(
            f"{sandbox.ready['base_url']}/contoso.test/v2.0/.well-known/openid-configuration"
        ).json()
    root = _root(sandbox)
    assert doc["issuer"] == f"{root}/v2.0"
    assert doc["authorization_endpoint"] == f"{root}/oauth2/v2.0/authorize"
    assert doc["token_endpoint"] == f"{root}/oauth2/v2.0/token"
    assert doc["jwks_uri"] == f"{root}/discovery/v2.0/keys"
    assert doc["end_session_endpoint"] == f"{root}/oauth2/v2.0/logout"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "code" in doc["response_types_supported"]
    assert by_domain == doc


def test_jwks_publishes_the_signing_key(sandbox: ThreadedSandbox) -> None:
    """The JWKS holds the RSA key whose kid signs the authority's tokens."""
    with requests_session(sandbox) as session:
        keys = session.get(f"{_root(sandbox)}/discovery/v2.0/keys").json()["keys"]
    kid = sandbox.call(lambda: sandbox.state.entra_key.kid)
    assert [k["kid"] for k in keys] == [kid]
    assert keys[0]["kty"] == "RSA"
    assert keys[0]["use"] == "sig"


def test_unknown_tenant_is_rejected_in_aad_format(sandbox: ThreadedSandbox) -> None:
    """A tenant id the sandbox does not host gets AADSTS90002."""
    other = "00000000-0000-0000-0000-000000000001"
    with requests_session(sandbox) as session:
        response = session.get(
            f"{sandbox.ready['base_url']}/{other}/v2.0/.well-known/openid-configuration"
        )
    assert _assert_aad_error(response, 400, "invalid_request")["error_codes"] == [90002]


# --- client credentials --------------------------------------------------------------------


async def test_client_credentials_with_azure_identity(sandbox: ThreadedSandbox) -> None:
    """azure-identity's aio ClientSecretCredential gets an app token carrying the app's roles."""
    env = sandbox.ready["env"]
    credential = ClientSecretCredential(
        env["ELEVATE_TENANT_ID"],
        env["ELEVATE_CLIENT_ID"],
        env["ELEVATE_CLIENT_SECRET"],
        authority=env["ELEVATE_AUTHORITY_URL"],
        connection_verify=env["ELEVATE_CA_BUNDLE"],
        disable_instance_discovery=True,
    )
    async with credential:
        token = await credential.get_token(GRAPH_DEFAULT_SCOPE)
    claims = _verify(sandbox, token.token, "https://graph.microsoft.com")
    assert set(claims["roles"]) == {
        "EntitlementManagement.ReadWrite.All",
        "User.Read.All",
        "GroupMember.Read.All",
    }
    assert claims["tid"] == env["ELEVATE_TENANT_ID"]
    assert claims["appid"] == env["ELEVATE_CLIENT_ID"]
    assert "scp" not in claims


def test_client_credentials_with_msal(sandbox: ThreadedSandbox) -> None:
    """MSAL's acquire_token_for_client gets a Bearer app token with expiry fields."""
    with msal_app(sandbox) as app:
        result = app.acquire_token_for_client([GRAPH_DEFAULT_SCOPE])
    assert result["token_type"] == "Bearer"
    assert 3000 < result["expires_in"] <= 3600
    claims = _verify(sandbox, result["access_token"], "https://graph.microsoft.com")
    assert claims["idtyp"] == "app"


def test_client_credentials_accepts_http_basic_client_auth(sandbox: ThreadedSandbox) -> None:
    """The client secret may come in an HTTP Basic header instead of the body."""
    env = sandbox.ready["env"]
    response = _token(
        sandbox,
        auth=(env["ELEVATE_CLIENT_ID"], env["ELEVATE_CLIENT_SECRET"]),
        grant_type="client_credentials",
        scope=GRAPH_DEFAULT_SCOPE,
    )
    assert response.status_code == 200, response.text
    assert response.json()["ext_expires_in"] > 0


def test_wrong_secret_is_invalid_client_401(sandbox: ThreadedSandbox) -> None:
    """A wrong client secret is refused with 401 invalid_client (AADSTS7000215)."""
    response = _token(
        sandbox,
        client_id=sandbox.ready["env"]["ELEVATE_CLIENT_ID"],
        client_secret="not-the-secret",
        grant_type="client_credentials",
        scope=GRAPH_DEFAULT_SCOPE,
    )
    assert _assert_aad_error(response, 401, "invalid_client")["error_codes"] == [7000215]


def test_client_credentials_needs_a_default_scope(sandbox: ThreadedSandbox) -> None:
    """client_credentials with a scope other than ``<resource>/.default`` is invalid_scope."""
    response = _token(sandbox, grant_type="client_credentials", scope="User.Read.All")
    _assert_aad_error(response, 400, "invalid_scope")


def test_unsupported_grant_type(sandbox: ThreadedSandbox) -> None:
    """An unknown grant_type answers 400 unsupported_grant_type."""
    response = _token(sandbox, grant_type="password", username=ALICE, password="x")
    _assert_aad_error(response, 400, "unsupported_grant_type")


# --- authorization code --------------------------------------------------------------------


def test_auth_code_with_pkce_through_msal(sandbox: ThreadedSandbox) -> None:
    """MSAL's auth-code flow with login_hint yields delegated, id and refresh tokens."""
    env = sandbox.ready["env"]
    result = user_token(sandbox, ALICE, ["User.Read", "EntitlementMgmt-SubjectAccess.ReadWrite"])
    alice = sandbox.call(lambda: sandbox.state.tenant.user(ALICE))
    access = _verify(sandbox, result["access_token"], "https://graph.microsoft.com")
    assert access["oid"] == alice.id
    assert set(access["scp"].split()) == {"User.Read", "EntitlementMgmt-SubjectAccess.ReadWrite"}
    assert "roles" not in access
    id_claims = _verify(sandbox, result["id_token"], env["ELEVATE_CLIENT_ID"])
    assert id_claims["preferred_username"] == ALICE
    assert id_claims["oid"] == alice.id
    assert id_claims["nonce"]  # MSAL itself checked it against its flow
    assert result["refresh_token"]
    assert result["id_token_claims"]["tid"] == env["ELEVATE_TENANT_ID"]


def test_delegated_scopes_are_limited_to_the_apps_permissions(sandbox: ThreadedSandbox) -> None:
    """A scope the app was not granted is left out of scp; .default grants all it has."""
    asked = user_token(sandbox, ALICE, ["User.Read", "Mail.Send"])
    assert _verify(sandbox, asked["access_token"], "https://graph.microsoft.com")["scp"] == (
        "User.Read"
    )
    everything = user_token(sandbox, ALICE, [GRAPH_DEFAULT_SCOPE])
    scp = _verify(sandbox, everything["access_token"], "https://graph.microsoft.com")["scp"]
    assert set(scp.split()) == {
        "EntitlementMgmt-SubjectAccess.ReadWrite",
        "EntitlementManagement.ReadWrite.All",
        "User.Read",
    }


def test_authorize_redirects_with_code_state_and_session_state(sandbox: ThreadedSandbox) -> None:
    """With login_hint, authorize answers 302 to redirect_uri with code, state, session_state."""
    _, challenge = _pkce()
    response = _authorize(
        sandbox,
        client_id=sandbox.ready["env"]["ELEVATE_CLIENT_ID"],
        response_type="code",
        redirect_uri="https://bot.example/auth/callback",
        scope="User.Read",
        state="xyz",
        code_challenge=challenge,
        code_challenge_method="S256",
        login_hint=ALICE,
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.netloc == "bot.example"
    assert location.path == "/auth/callback"
    assert set(parse_qs(location.query)) == {"code", "state", "session_state"}


def test_wrong_pkce_verifier_is_invalid_grant(sandbox: ThreadedSandbox) -> None:
    """Redeeming a code with a verifier that does not match its challenge fails."""
    _, challenge = _pkce()
    code = _code(sandbox, challenge)
    response = _token(
        sandbox,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        code_verifier=_pkce()[0],
    )
    _assert_aad_error(response, 400, "invalid_grant")


def test_code_cannot_be_redeemed_twice(sandbox: ThreadedSandbox) -> None:
    """An authorization code is single use: the replay is invalid_grant (AADSTS54005)."""
    verifier, challenge = _pkce()
    code = _code(sandbox, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    assert _token(sandbox, **form).status_code == 200
    body = _assert_aad_error(_token(sandbox, **form), 400, "invalid_grant")
    assert body["error_codes"] == [54005]


def test_code_is_bound_to_its_redirect_uri(sandbox: ThreadedSandbox) -> None:
    """Redeeming with another redirect_uri than the authorize request's fails."""
    verifier, challenge = _pkce()
    response = _token(
        sandbox,
        grant_type="authorization_code",
        code=_code(sandbox, challenge),
        redirect_uri="http://localhost/other",
        code_verifier=verifier,
    )
    _assert_aad_error(response, 400, "invalid_grant")


def test_picker_lists_users_escaped_and_completes_the_flow(
    make_sandbox: Any,
) -> None:
    """Without login_hint a page lists the users (HTML-escaped); each link signs that user in."""
    tenant = demo_tenant()
    tenant.users.append(
        User(
            id="6d2b3e4f-0000-4000-8000-000000000001",
            user_principal_name="mallory@contoso.test",
            display_name="<script>alert(1)</script> & co",
        )
    )
    sb = make_sandbox(tenant)
    params = {
        "client_id": sb.ready["env"]["ELEVATE_CLIENT_ID"],
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "User.Read",
        "state": "pick",
    }
    page = _authorize(sb, **params)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page.text
    for user in tenant.users:
        assert user.user_principal_name in page.text
    hrefs = [part.split('"', 1)[0] for part in page.text.split('href="')[1:]]
    bob_link = next(h for h in hrefs if "bob%40contoso.test" in h).replace("&amp;", "&")
    with requests_session(sb) as browser:
        chosen = browser.get(
            f"{_root(sb)}/oauth2/v2.0/authorize{bob_link}", allow_redirects=False, timeout=10
        )
    assert chosen.status_code == 302
    assert "code=" in chosen.headers["Location"]


def test_prompt_none_without_a_user_redirects_login_required(sandbox: ThreadedSandbox) -> None:
    """prompt=none without login_hint returns error=login_required to the redirect URI."""
    response = _authorize(
        sandbox,
        client_id=sandbox.ready["env"]["ELEVATE_CLIENT_ID"],
        response_type="code",
        redirect_uri=REDIRECT_URI,
        scope="User.Read",
        state="silent",
        prompt="none",
    )
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["login_required"]
    assert query["state"] == ["silent"]


@pytest.mark.parametrize(
    ("change", "aadsts"),
    [
        ({"client_id": "11111111-2222-3333-4444-555555555555"}, "AADSTS700016"),
        ({"redirect_uri": ""}, "AADSTS50011"),
        ({"redirect_uri": "http://evil.example/cb"}, "AADSTS50011"),
        ({"code_challenge": "abc", "code_challenge_method": "plain"}, "AADSTS50148"),
    ],
)
def test_authorize_errors_are_pages_not_redirects(
    sandbox: ThreadedSandbox, change: dict[str, str], aadsts: str
) -> None:
    """Unknown client, bad redirect_uri or non-S256 PKCE get a 400 page, never a redirect."""
    params = {
        "client_id": sandbox.ready["env"]["ELEVATE_CLIENT_ID"],
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "User.Read",
        "login_hint": ALICE,
    } | change
    response = _authorize(sandbox, **params)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert aadsts in response.text


# --- refresh and on-behalf-of --------------------------------------------------------------


def test_refresh_token_through_msal(sandbox: ThreadedSandbox) -> None:
    """MSAL refreshes silently; the old refresh token stays usable, as in Entra."""
    with msal_app(sandbox) as app:
        first = user_token(sandbox, ALICE, ["User.Read"], app=app)
        (account,) = app.get_accounts()
        assert account["username"] == ALICE
        refreshed = app.acquire_token_silent(["User.Read"], account, force_refresh=True)
        assert refreshed is not None
        assert refreshed["access_token"] != first["access_token"]
        again = app.acquire_token_by_refresh_token(first["refresh_token"], ["User.Read"])
    assert "access_token" in again, again
    claims = _verify(sandbox, again["access_token"], "https://graph.microsoft.com")
    assert claims["preferred_username"] == ALICE


def test_refresh_without_scope_reuses_the_original_grant(sandbox: ThreadedSandbox) -> None:
    """A refresh request without scope gets the scopes first granted and a new refresh token."""
    verifier, challenge = _pkce()
    first = _token(
        sandbox,
        grant_type="authorization_code",
        code=_code(sandbox, challenge),
        redirect_uri=REDIRECT_URI,
        code_verifier=verifier,
    ).json()
    refreshed = _token(sandbox, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    assert body["refresh_token"] != first["refresh_token"]
    claims = _verify(sandbox, body["access_token"], "https://graph.microsoft.com")
    assert claims["scp"] == "User.Read"


def test_unknown_refresh_token_is_invalid_grant(sandbox: ThreadedSandbox) -> None:
    """A refresh token the authority never issued is invalid_grant."""
    response = _token(sandbox, grant_type="refresh_token", refresh_token="nope", scope="User.Read")
    _assert_aad_error(response, 400, "invalid_grant")


async def test_on_behalf_of_exchanges_an_api_token_for_graph(sandbox: ThreadedSandbox) -> None:
    """OBO turns a user token for the app's own API into a delegated Graph token."""
    env = sandbox.ready["env"]
    client_id = env["ELEVATE_CLIENT_ID"]
    sso = user_token(sandbox, ALICE, [f"api://{client_id}/access_as_user"])
    assert _verify(sandbox, sso["access_token"], client_id)["scp"] == "access_as_user"
    credential = OnBehalfOfCredential(
        env["ELEVATE_TENANT_ID"],
        client_id,
        client_secret=env["ELEVATE_CLIENT_SECRET"],
        user_assertion=sso["access_token"],
        authority=env["ELEVATE_AUTHORITY_URL"],
        connection_verify=env["ELEVATE_CA_BUNDLE"],
        disable_instance_discovery=True,
    )
    async with credential:
        token = await credential.get_token(GRAPH_DEFAULT_SCOPE)
    claims = _verify(sandbox, token.token, "https://graph.microsoft.com")
    assert claims["preferred_username"] == ALICE
    assert "User.Read" in claims["scp"].split()


def test_on_behalf_of_rejects_a_forged_assertion(sandbox: ThreadedSandbox) -> None:
    """An assertion signed by a key the authority does not publish is invalid_grant."""
    env = sandbox.ready["env"]
    state = sandbox.state
    forged = sandbox.call(
        lambda: state.unknown_key.sign(
            {
                "aud": env["ELEVATE_CLIENT_ID"],
                "iss": state.issuer,
                "oid": "x",
                "scp": "a",
                "exp": 4102444800,
            }
        )
    )
    response = _token(
        sandbox,
        grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
        requested_token_use="on_behalf_of",
        assertion=forged,
        scope=GRAPH_DEFAULT_SCOPE,
    )
    _assert_aad_error(response, 400, "invalid_grant")


def test_client_info_names_user_and_tenant(sandbox: ThreadedSandbox) -> None:
    """client_info is base64url JSON with uid and utid (MSAL builds accounts from it)."""
    verifier, challenge = _pkce()
    response = _token(
        sandbox,
        grant_type="authorization_code",
        code=_code(sandbox, challenge, scope="openid User.Read"),
        redirect_uri=REDIRECT_URI,
        code_verifier=verifier,
        client_info="1",
    )
    raw = response.json()["client_info"]
    info = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    alice = sandbox.call(lambda: sandbox.state.tenant.user(ALICE))
    assert info == {"uid": alice.id, "utid": sandbox.ready["tenant_id"]}


# --- certificate credentials (private_key_jwt) ---------------------------------------------


@pytest.fixture(scope="module")
def app_certificate() -> trustme.LeafCert:
    """An RSA certificate and key for the app (what ELEVATE_CLIENT_CERTIFICATE_PATH holds)."""
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    return ca.issue_cert("elevate-app.contoso.test", key_type=trustme.KeyType.RSA)


@pytest.fixture
def cert_sandbox(
    make_sandbox: Callable[..., ThreadedSandbox], app_certificate: trustme.LeafCert
) -> ThreadedSandbox:
    """A sandbox whose app has ``app_certificate`` registered (tenant file ``certificates``)."""
    tenant = demo_tenant()
    tenant.apps[0].certificates = [app_certificate.cert_chain_pems[0].bytes().decode()]
    return make_sandbox(tenant=tenant)


def _thumbprint(cert: trustme.LeafCert, digest: hashes.HashAlgorithm) -> str:
    loaded = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    return base64.urlsafe_b64encode(loaded.fingerprint(digest)).rstrip(b"=").decode()


def _assertion(
    sb: ThreadedSandbox, cert: trustme.LeafCert, *, key_pem: bytes | None = None, **claims: Any
) -> str:
    """A client assertion as azure-identity makes one (PS256, ``x5t#S256``), with ``claims``
    overriding the usual ones (``None`` drops a claim)."""
    client_id = sb.ready["env"]["ELEVATE_CLIENT_ID"]
    now = int(time.time())
    body = {
        "aud": f"{_root(sb)}/oauth2/v2.0/token",
        "iss": client_id,
        "sub": client_id,
        "jti": secrets.token_hex(8),
        "nbf": now,
        "exp": now + 600,
    } | claims
    key = serialization.load_pem_private_key(key_pem or cert.private_key_pem.bytes(), None)
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None},
        key,  # type: ignore[arg-type]
        algorithm="PS256",
        headers={"x5t#S256": _thumbprint(cert, hashes.SHA256())},
    )


def _assertion_token(sb: ThreadedSandbox, assertion: str) -> requests.Response:
    return _token(
        sb,
        auth=False,
        client_id=sb.ready["env"]["ELEVATE_CLIENT_ID"],
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=assertion,
        grant_type="client_credentials",
        scope=GRAPH_DEFAULT_SCOPE,
    )


async def test_certificate_credential_with_azure_identity(
    cert_sandbox: ThreadedSandbox, app_certificate: trustme.LeafCert, tmp_path: Path
) -> None:
    """azure-identity's CertificateCredential (PS256, x5t#S256) gets an app token for a
    registered certificate."""
    env = cert_sandbox.ready["env"]
    pem = tmp_path / "app.pem"
    pem.write_bytes(app_certificate.private_key_and_cert_chain_pem.bytes())
    credential = CertificateCredential(
        env["ELEVATE_TENANT_ID"],
        env["ELEVATE_CLIENT_ID"],
        certificate_path=str(pem),
        authority=env["ELEVATE_AUTHORITY_URL"],
        connection_verify=env["ELEVATE_CA_BUNDLE"],
        disable_instance_discovery=True,
    )
    async with credential:
        token = await credential.get_token(GRAPH_DEFAULT_SCOPE)
    claims = _verify(cert_sandbox, token.token, "https://graph.microsoft.com")
    assert claims["appid"] == env["ELEVATE_CLIENT_ID"]
    assert "GroupMember.Read.All" in claims["roles"]


def test_certificate_credential_with_msal_sha1_thumbprint(
    cert_sandbox: ThreadedSandbox, app_certificate: trustme.LeafCert
) -> None:
    """MSAL given a SHA-1 thumbprint signs RS256 with ``x5t``; that is accepted too."""
    loaded = x509.load_pem_x509_certificate(app_certificate.cert_chain_pems[0].bytes())
    credential = {
        "private_key": app_certificate.private_key_pem.bytes().decode(),
        "thumbprint": loaded.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - x5t is SHA-1
    }
    with msal_app(cert_sandbox, secret=credential) as app:
        result = app.acquire_token_for_client([GRAPH_DEFAULT_SCOPE])
    assert "access_token" in result, result
    assert _verify(cert_sandbox, result["access_token"], "https://graph.microsoft.com")


def test_unregistered_certificate_is_refused(
    sandbox: ThreadedSandbox, app_certificate: trustme.LeafCert
) -> None:
    """A well-formed assertion signed with a certificate the app does not have: 401
    invalid_client, AADSTS700027 naming the thumbprint."""
    response = _assertion_token(sandbox, _assertion(sandbox, app_certificate))
    body = _assert_aad_error(response, 401, "invalid_client")
    assert body["error_codes"] == [700027]
    assert _thumbprint(app_certificate, hashes.SHA256()) in body["error_description"]


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"exp": int(time.time()) - 3600, "nbf": int(time.time()) - 7200}, 700024),
        ({"aud": "https://login.example.com/other/oauth2/v2.0/token"}, 50013),
        ({"iss": "someone-else", "sub": "someone-else"}, 700021),
        ({"jti": None}, 50027),
    ],
    ids=["expired", "wrong-audience", "other-issuer", "no-jti"],
)
def test_bad_client_assertions_are_refused(
    cert_sandbox: ThreadedSandbox,
    app_certificate: trustme.LeafCert,
    claims: dict[str, Any],
    code: int,
) -> None:
    """Time range, audience (the tenant's token endpoint), issuer = subject = client id and a
    jti are checked: each failure is 401 invalid_client with its AADSTS code."""
    response = _assertion_token(cert_sandbox, _assertion(cert_sandbox, app_certificate, **claims))
    assert _assert_aad_error(response, 401, "invalid_client")["error_codes"] == [code]


def test_assertion_signed_by_another_key_is_refused(
    cert_sandbox: ThreadedSandbox, app_certificate: trustme.LeafCert
) -> None:
    """Naming the registered certificate's thumbprint but signing with another key fails the
    signature check (AADSTS700027); the same assertion correctly signed is accepted."""
    other = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert(
        "x.test", key_type=trustme.KeyType.RSA
    )
    forged = _assertion(cert_sandbox, app_certificate, key_pem=other.private_key_pem.bytes())
    response = _assertion_token(cert_sandbox, forged)
    assert _assert_aad_error(response, 401, "invalid_client")["error_codes"] == [700027]
    genuine = _assertion_token(cert_sandbox, _assertion(cert_sandbox, app_certificate))
    assert genuine.status_code == 200, genuine.text
