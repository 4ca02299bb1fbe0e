"""Shared fixtures for integration tests against the sandbox, over real HTTPS with real SDKs.

Fixtures
--------
``sandbox``        a started ``ThreadedSandbox`` on the demo tenant (delivery delay 200 ms).
``make_sandbox``   factory ``make_sandbox(tenant=None, **kwargs) -> ThreadedSandbox`` for custom
                   tenants or options; every sandbox it starts is stopped after the test.
``ready_env``      the ready line's ``env`` dict of ``sandbox``.
``ca_path``        path (str) of ``sandbox``'s ``ca.pem``.
``ssl_context``    an ``ssl.SSLContext`` trusting that CA only.
``app_graph``      async: a ``msgraph.GraphServiceClient`` with an app-only credential
                   (azure-identity aio ``ClientSecretCredential``) against ``sandbox``.

Helpers (import them: ``from tests.integration.conftest import user_token, ...``)
--------------------------------------------------------------------------------
``user_token(sb, upn, scopes)``       real MSAL auth-code + PKCE sign-in; the MSAL result dict.
``authorize_code(sb, app, upn, scopes)`` MSAL flow + the form_post fields (code, state) only.
``app_token(sb)``                     real MSAL client-credentials token; the MSAL result dict.
``msal_app(sb)``                      context manager: a ``ConfidentialClientApplication``.
``requests_session(sb)``              a ``requests.Session`` trusting only the sandbox CA
                                      (close it: ``with requests_session(sb) as s``).
``sandbox_ssl_context(sb)``           the ``ssl.SSLContext`` behind the ``ssl_context`` fixture.
``graph_client(sb, credential)``      async context manager yielding a ``GraphServiceClient``.
``StaticTokenCredential(token)``      azure.core ``AsyncTokenCredential`` returning one token.
``tenant_with(**changes)``            the demo tenant with the first app's permissions changed.

MSAL and ``requests`` are blocking: call them with ``asyncio.to_thread`` from async tests.
Trust is explicit everywhere (``trust_env=False``): this host sets ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest
import requests
from azure.core.credentials import AccessToken
from azure.identity.aio import ClientSecretCredential
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.graph_request_adapter import options as MSGRAPH_CLIENT_OPTIONS
from msgraph_core import GraphClientFactory

from sandbox.server import ThreadedSandbox
from sandbox.tenant import Tenant, demo_tenant

GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
REDIRECT_URI = "http://localhost/cb"
DELIVERY_DELAY = timedelta(milliseconds=200)


# --- helpers -------------------------------------------------------------------------------


def tenant_with(
    *,
    application: Sequence[str] | None = None,
    delegated: Sequence[str] | None = None,
    entitlement_roles: Sequence[str] | None = None,
) -> Tenant:
    """The demo tenant with its app's application/delegated permissions (or roles) replaced."""
    tenant = demo_tenant()
    app = tenant.apps[0]
    if application is not None:
        app.application_permissions = list(application)
    if delegated is not None:
        app.delegated_permissions = list(delegated)
    if entitlement_roles is not None:
        app.entitlement_roles = list(entitlement_roles)
    return tenant


def sandbox_ssl_context(sb: ThreadedSandbox) -> ssl.SSLContext:
    """An SSL context trusting the sandbox's CA and nothing else."""
    return ssl.create_default_context(cafile=sb.ready["ca_bundle"])


def requests_session(sb: ThreadedSandbox) -> requests.Session:
    """A ``requests`` session that ignores the environment and trusts only the sandbox CA."""
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides verify
    session.verify = sb.ready["ca_bundle"]
    return session


@contextlib.contextmanager
def msal_app(
    sb: ThreadedSandbox,
    *,
    client_id: str | None = None,
    secret: str | dict[str, str] | None = None,
) -> Iterator[msal.ConfidentialClientApplication]:
    """MSAL's confidential client for the sandbox tenant's app; closes its HTTP session after.

    ``with msal_app(sb) as app: ...``.  Unclosed sessions leave TLS connections the sandbox
    cannot shut down (ResourceWarning, an error under ``filterwarnings = error``).
    """
    env = sb.ready["env"]
    with requests_session(sb) as session:
        yield msal.ConfidentialClientApplication(
            client_id or env["ELEVATE_CLIENT_ID"],
            client_credential=secret or env["ELEVATE_CLIENT_SECRET"],
            authority=f"{sb.ready['base_url']}/{sb.ready['tenant_id']}",
            instance_discovery=False,
            http_client=session,
        )


class _FormFields(HTMLParser):
    """Collects the action and hidden inputs of a ``response_mode=form_post`` page."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = found.get("action", "")
        elif tag == "input" and "name" in found:
            self.fields[found["name"]] = found.get("value", "")


def authorize_code(
    sb: ThreadedSandbox, app: msal.ConfidentialClientApplication, upn: str, scopes: Sequence[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Start MSAL's auth-code flow for ``upn`` and play the browser at ``authorize``.

    Uses ``response_mode=form_post`` (MSAL warns about anything else); returns MSAL's flow and
    the fields the page would post to the redirect URI (``code``, ``state``, …).
    """
    flow = app.initiate_auth_code_flow(
        list(scopes), redirect_uri=REDIRECT_URI, login_hint=upn, response_mode="form_post"
    )
    with requests_session(sb) as browser:
        response = browser.get(flow["auth_uri"], allow_redirects=False, timeout=10)
    assert response.status_code == 200, response.text
    form = _FormFields()
    form.feed(response.text)
    assert form.action == REDIRECT_URI, response.text
    return flow, form.fields


def user_token(
    sb: ThreadedSandbox,
    upn: str,
    scopes: Sequence[str] = ("User.Read",),
    *,
    app: msal.ConfidentialClientApplication | None = None,
) -> dict[str, Any]:
    """Sign ``upn`` in for real (auth code + PKCE through MSAL); MSAL's result dict.

    Scopes are Graph scopes without the resource prefix (``User.Read``) or
    ``https://graph.microsoft.com/.default``.  Pass ``app`` (from ``msal_app``) to keep the
    account in its cache.  Blocking: use ``asyncio.to_thread``.
    """
    if app is None:
        with msal_app(sb) as own:
            return user_token(sb, upn, scopes, app=own)
    flow, fields = authorize_code(sb, app, upn, scopes)
    result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, fields)
    assert "access_token" in result, result
    return result


def app_token(sb: ThreadedSandbox) -> dict[str, Any]:
    """An app-only Graph token via MSAL client credentials; MSAL's result dict (blocking)."""
    with msal_app(sb) as app:
        result: dict[str, Any] = app.acquire_token_for_client([GRAPH_DEFAULT_SCOPE])
    assert "access_token" in result, result
    return result


class StaticTokenCredential:
    """An azure.core ``AsyncTokenCredential`` that always returns the same bearer token."""

    def __init__(self, token: str, expires_in: int = 3600) -> None:
        self._token = AccessToken(token, int(time.time()) + expires_in)

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """The fixed token, whatever the scopes."""
        return self._token

    async def close(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@contextlib.asynccontextmanager
async def graph_client(
    sb: ThreadedSandbox, credential: Any, *, version: str = "v1.0"
) -> AsyncIterator[GraphServiceClient]:
    """A ``GraphServiceClient`` on ``sb`` authenticating with ``credential``; closes its client."""
    # msgraph-core's AsyncGraphTransport replaces the client's transport and its aclose() does
    # not close the one it wraps: keep our own handle on the pool and close it ourselves.
    transport = httpx.AsyncHTTPTransport(verify=sandbox_ssl_context(sb), trust_env=False)
    http = httpx.AsyncClient(transport=transport, trust_env=False, timeout=30)
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_DEFAULT_SCOPE])
    # Pass msgraph's own options: without them the ``/users/me-token-to-replace`` → ``/me``
    # rewrite is off for a caller-supplied client and ``client.me`` calls a bogus user.
    graph_http = GraphClientFactory.create_with_default_middleware(
        client=http, options=MSGRAPH_CLIENT_OPTIONS
    )
    adapter = GraphRequestAdapter(auth, client=graph_http)
    adapter.base_url = f"{sb.ready['base_url']}/{version}"
    try:
        yield GraphServiceClient(request_adapter=adapter)
    finally:
        await http.aclose()
        await transport.aclose()


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[Callable[..., ThreadedSandbox]]:
    """Factory: ``make_sandbox(tenant=None, **kwargs)`` starts a sandbox, stopped after the test."""
    started: list[ThreadedSandbox] = []

    def start(tenant: Tenant | None = None, **kwargs: Any) -> ThreadedSandbox:
        kwargs.setdefault("delivery_delay", DELIVERY_DELAY)
        sb = ThreadedSandbox(tmp_path / f"sandbox-{len(started)}", tenant=tenant, **kwargs)
        sb.__enter__()
        started.append(sb)
        return sb

    yield start
    for sb in reversed(started):
        sb.__exit__(None, None, None)


@pytest.fixture
def sandbox(make_sandbox: Callable[..., ThreadedSandbox]) -> ThreadedSandbox:
    """A running sandbox on the demo tenant (its own loop in a thread)."""
    return make_sandbox()


@pytest.fixture
def ready_env(sandbox: ThreadedSandbox) -> dict[str, str]:
    """The ``env`` of ``sandbox``'s ready line."""
    return dict(sandbox.ready["env"])


@pytest.fixture
def ca_path(sandbox: ThreadedSandbox) -> str:
    """Path of ``sandbox``'s CA certificate (PEM)."""
    return str(sandbox.ready["ca_bundle"])


@pytest.fixture
def ssl_context(sandbox: ThreadedSandbox) -> ssl.SSLContext:
    """An SSL context trusting only ``sandbox``'s CA."""
    return sandbox_ssl_context(sandbox)


@pytest.fixture
async def app_graph(sandbox: ThreadedSandbox) -> AsyncIterator[GraphServiceClient]:
    """A ``GraphServiceClient`` with an app-only ``ClientSecretCredential`` on ``sandbox``."""
    env = sandbox.ready["env"]
    credential = ClientSecretCredential(
        env["ELEVATE_TENANT_ID"],
        env["ELEVATE_CLIENT_ID"],
        env["ELEVATE_CLIENT_SECRET"],
        authority=env["ELEVATE_AUTHORITY_URL"],
        connection_verify=env["ELEVATE_CA_BUNDLE"],
        disable_instance_discovery=True,
    )
    async with credential, graph_client(sandbox, credential) as client:
        yield client
