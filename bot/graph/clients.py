"""Graph clients: one app-only client and per-user delegated clients, built on msgraph-sdk.

App-only credentials come from azure-identity (client secret, certificate, or managed /
workload identity).  Delegated clients get tokens from each user's MSAL token cache, which is
stored encrypted (``ELEVATE_TOKEN_KEY``) and refreshed silently.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import httpx
import msal
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity.aio import CertificateCredential, ClientSecretCredential, DefaultAzureCredential
from cryptography.fernet import Fernet, InvalidToken
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as graph_adapter_options
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from bot.config import Settings
from bot.errors import ConfigError, GraphAuthError
from bot.graph.transport import GraphTransport
from bot.graph.trust import requests_session, ssl_context

GRAPH_RESOURCE = "https://graph.microsoft.com"
APP_SCOPE = f"{GRAPH_RESOURCE}/.default"
# Delegated permissions asked for at sign-in: requesters need SubjectAccess; approvers need
# EntitlementManagement.ReadWrite.All to record decisions (spec/graph.md §3).
DELEGATED_SCOPES = (
    f"{GRAPH_RESOURCE}/User.Read",
    f"{GRAPH_RESOURCE}/EntitlementMgmt-SubjectAccess.ReadWrite",
    f"{GRAPH_RESOURCE}/EntitlementManagement.ReadWrite.All",
)
HTTP_TIMEOUT_S = 10.0
USER_CLIENTS_KEPT = 256


class TokenCacheStore(Protocol):
    """Where encrypted per-user MSAL caches live (the bot's store)."""

    async def save_token_cache(self, principal_id: str, blob: bytes) -> None:
        """Store the encrypted cache of ``principal_id``."""

    async def load_token_cache(self, principal_id: str) -> bytes | None:
        """The encrypted cache of ``principal_id``, if any."""


class TokenCipher:
    """Encrypts token caches at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def encrypt(self, plain: str) -> bytes:
        """Ciphertext of ``plain``."""
        return self._fernet.encrypt(plain.encode())

    def decrypt(self, blob: bytes) -> str | None:
        """Plain text, or None when the blob was made with another key or was tampered with."""
        try:
            return self._fernet.decrypt(blob).decode()
        except InvalidToken:
            return None


class UserTokenCredential(AsyncTokenCredential):
    """A user's delegated Graph token, from their stored MSAL cache (refreshed silently)."""

    def __init__(self, clients: GraphClients, principal_id: str) -> None:
        self._clients = clients
        self._principal_id = principal_id

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """Silently acquire (or refresh) the user's access token; GraphAuthError if impossible."""
        token, expires_on = await self._clients.user_access_token(self._principal_id)
        return AccessToken(token, expires_on)

    async def close(self) -> None:
        """Nothing to close: the MSAL app is shared."""

    async def __aexit__(self, *args: object) -> None:
        await self.close()


class GraphClients:
    """Owns the HTTP clients, credentials and Graph clients; create once, ``close()`` at exit."""

    def __init__(self, settings: Settings, caches: TokenCacheStore | None = None) -> None:
        self.settings = settings
        self._caches = caches
        self._ssl = ssl_context(settings.ca_bundle)
        self._cipher = (
            TokenCipher(settings.token_key.get_secret_value()) if settings.token_key else None
        )
        # msgraph-core's transport wrapper does not close the transport it wraps: own it here.
        self._transport = GraphTransport(self._ssl)
        self._http = httpx.AsyncClient(
            transport=self._transport, timeout=HTTP_TIMEOUT_S, trust_env=False
        )
        self._aio_session: aiohttp.ClientSession | None = None
        self._credential: AsyncTokenCredential | None = None
        self._app_client: GraphServiceClient | None = None
        self._user_clients: OrderedDict[str, GraphServiceClient] = OrderedDict()
        self._msal_http_cache: dict[Any, Any] = {}
        self._msal_session = requests_session(settings.ca_bundle)
        self._user_apps: dict[str, msal.ConfidentialClientApplication] = {}
        self._user_locks: dict[str, asyncio.Lock] = {}

    @property
    def authority(self) -> str:
        """``{authority}/{tenant}``."""
        return f"{self.settings.authority_url}/{self.settings.tenant_id}"

    # --- app-only -------------------------------------------------------------------------

    def _app_credential(self) -> AsyncTokenCredential:
        s = self.settings
        self._aio_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl))
        common: dict[str, Any] = {
            "authority": s.authority_url,
            "disable_instance_discovery": True,
            "transport": AioHttpTransport(session=self._aio_session, session_owner=False),
        }
        if s.client_secret is not None:
            return ClientSecretCredential(
                s.tenant_id, s.client_id, s.client_secret.get_secret_value(), **common
            )
        if s.client_certificate_path is not None:
            return CertificateCredential(
                s.tenant_id, s.client_id, certificate_path=str(s.client_certificate_path), **common
            )
        return DefaultAzureCredential(
            managed_identity_client_id=s.client_id,
            workload_identity_client_id=s.client_id,
            workload_identity_tenant_id=s.tenant_id,
            exclude_developer_cli_credential=True,
            exclude_cli_credential=True,
            exclude_powershell_credential=True,
            exclude_visual_studio_code_credential=True,
            exclude_shared_token_cache_credential=True,
            exclude_interactive_browser_credential=True,
            **common,
        )

    def _client(self, credential: AsyncTokenCredential) -> GraphServiceClient:
        auth = AzureIdentityAuthenticationProvider(credential, scopes=[APP_SCOPE])
        http = GraphClientFactory.create_with_default_middleware(
            client=self._http, options=graph_adapter_options
        )
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = f"{self.settings.graph_url}/v1.0"
        return GraphServiceClient(request_adapter=adapter)

    @property
    def app(self) -> GraphServiceClient:
        """The app-only Graph client."""
        if self._app_client is None:
            self._credential = self._app_credential()
            self._app_client = self._client(self._credential)
        return self._app_client

    async def app_token(self) -> str:
        """An app-only Graph access token (for raw calls such as ``/beta``)."""
        _ = self.app
        assert self._credential is not None
        return (await self._credential.get_token(APP_SCOPE)).token

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared httpx client (trusting the configured CAs)."""
        return self._http

    # --- delegated ------------------------------------------------------------------------

    def for_user(self, principal_id: str) -> GraphServiceClient:
        """A Graph client acting as ``principal_id`` with their stored sign-in."""
        client = self._user_clients.get(principal_id)
        if client is None:
            client = self._client(UserTokenCredential(self, principal_id))
            self._user_clients[principal_id] = client
            while len(self._user_clients) > USER_CLIENTS_KEPT:
                self._user_clients.popitem(last=False)
        else:
            self._user_clients.move_to_end(principal_id)
        return client

    def msal_app(
        self, cache: msal.SerializableTokenCache | None = None
    ) -> msal.ConfidentialClientApplication:
        """An MSAL confidential client for this bot app (sign-in and silent refresh)."""
        s = self.settings
        credential: Any
        if s.client_secret is not None:
            credential = s.client_secret.get_secret_value()
        elif s.client_certificate_path is not None:
            credential = _certificate_credential(s.client_certificate_path)
        else:
            raise ConfigError(
                "Sign-in needs ELEVATE_CLIENT_SECRET or ELEVATE_CLIENT_CERTIFICATE_PATH "
                "(managed identity cannot redeem user sign-ins)."
            )
        return msal.ConfidentialClientApplication(
            s.client_id,
            client_credential=credential,
            authority=self.authority,
            instance_discovery=False,
            http_client=self._msal_session,
            http_cache=self._msal_http_cache,
            token_cache=cache,
            timeout=HTTP_TIMEOUT_S,
        )

    async def store_user_cache(self, principal_id: str, cache: msal.SerializableTokenCache) -> None:
        """Encrypt and store a user's MSAL cache."""
        if self._caches is None or self._cipher is None:
            raise ConfigError("Storing sign-ins needs ELEVATE_TOKEN_KEY.")
        await self._caches.save_token_cache(principal_id, self._cipher.encrypt(cache.serialize()))

    async def _load_user_app(self, principal_id: str) -> msal.ConfidentialClientApplication:
        app = self._user_apps.get(principal_id)
        if app is not None:
            return app
        if self._caches is None or self._cipher is None:
            raise GraphAuthError("Sign-in is not configured.", detail="no store or token key")
        blob = await self._caches.load_token_cache(principal_id)
        plain = self._cipher.decrypt(blob) if blob else None
        if plain is None:
            raise GraphAuthError(
                "Your Microsoft sign-in has expired. Please sign in again.",
                detail="no usable token cache",
            )
        cache = msal.SerializableTokenCache()
        cache.deserialize(plain)
        app = await asyncio.to_thread(self.msal_app, cache)
        self._user_apps[principal_id] = app
        return app

    async def user_access_token(self, principal_id: str) -> tuple[str, int]:
        """The user's access token and its expiry (epoch seconds), refreshed when needed."""
        lock = self._user_locks.setdefault(principal_id, asyncio.Lock())
        async with lock:
            app = await self._load_user_app(principal_id)
            accounts = await asyncio.to_thread(app.get_accounts)
            account = next(
                (a for a in accounts if a.get("local_account_id") == principal_id),
                accounts[0] if accounts else None,
            )
            result = None
            if account is not None:
                result = await asyncio.to_thread(
                    app.acquire_token_silent, list(DELEGATED_SCOPES), account
                )
            if not result or "access_token" not in result:
                self._user_apps.pop(principal_id, None)
                raise GraphAuthError(
                    "Your Microsoft sign-in has expired. Please sign in again.",
                    detail=(result or {}).get("error_description", "no account in cache"),
                )
            cache = app.token_cache
            if isinstance(cache, msal.SerializableTokenCache) and cache.has_state_changed:
                await self.store_user_cache(principal_id, cache)
                cache.has_state_changed = False
            expires_on = int(time.time()) + int(result.get("expires_in", 300))
            return str(result["access_token"]), expires_on

    def forget_user(self, principal_id: str) -> None:
        """Drop what is held in memory for a user (after a new sign-in)."""
        self._user_apps.pop(principal_id, None)
        self._user_clients.pop(principal_id, None)

    async def close(self) -> None:
        """Close credentials and HTTP clients."""
        if self._credential is not None:
            await self._credential.close()
        if self._aio_session is not None:
            await self._aio_session.close()
        await self._http.aclose()
        await self._transport.aclose()
        # Closed TLS transports finish shutting down on the next loop turns; without this
        # pause a loop closed right after leaks their sockets (ResourceWarning).
        await asyncio.sleep(0.1)
        await asyncio.to_thread(self._msal_session.close)


def _certificate_credential(path: Path) -> dict[str, str]:
    """MSAL's certificate credential from a PEM file holding the key and the certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    pem = path.read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    return {
        "private_key": pem.decode(),
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - x5t is SHA-1 by spec
        "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }
