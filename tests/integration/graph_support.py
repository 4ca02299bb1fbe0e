"""Helpers for the entitlement-management integration tests (sandbox + msgraph-sdk).

``signed_in(sb, upn)``       async context manager: a ``GraphServiceClient`` with a real MSAL
                             sign-in of ``upn`` (delegated token with ``EM_SCOPES``).
``app_client(sb)``           async context manager: an app-only client (azure-identity).
``em(client)``               ``client.identity_governance.entitlement_management``.
``user_add(...)``            a ``userAdd`` request model as the bot builds it.
``query(cls, **kw)``         a ``RequestConfiguration`` with ``cls(**kw)`` query parameters.
``eventually(probe)``        poll an async probe until it returns something truthy (bounded).
``advance(sb, delta)``       move the sandbox clock (control API) and let processors run.
``inject_fault(sb, ...)``    a fault rule through the control API.
``raw(sb, token, ...)``      one raw HTTPS call for what the SDK cannot express.
``undocumented(model)``      keys the SDK could not map to a property, recursively.
``odata_error(...)``         the ``ODataError`` raised by an awaitable.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import isodate
import pytest
from azure.identity.aio import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.identity_governance.entitlement_management.entitlement_management_request_builder import (  # noqa: E501
    EntitlementManagementRequestBuilder,
)
from msgraph.generated.models.access_package_assignment import AccessPackageAssignment
from msgraph.generated.models.access_package_assignment_request import (
    AccessPackageAssignmentRequest,
)
from msgraph.generated.models.access_package_request_type import AccessPackageRequestType
from msgraph.generated.models.entitlement_management_schedule import (
    EntitlementManagementSchedule,
)
from msgraph.generated.models.expiration_pattern import ExpirationPattern
from msgraph.generated.models.expiration_pattern_type import ExpirationPatternType
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from sandbox.server import ThreadedSandbox
from tests.integration.conftest import (
    StaticTokenCredential,
    graph_client,
    sandbox_ssl_context,
    user_token,
)

T = TypeVar("T")
EM_SCOPES = ("EntitlementManagement.ReadWrite.All", "EntitlementMgmt-SubjectAccess.ReadWrite")
ALICE, BOB, CAROL, DAVE, ERIN, GARY = (
    f"{n}@contoso.test" for n in ("alice", "bob", "carol", "dave", "erin", "gary")
)


async def token_for(sb: ThreadedSandbox, upn: str, scopes: tuple[str, ...] = EM_SCOPES) -> str:
    """A delegated Graph token for ``upn`` from a real MSAL auth-code + PKCE sign-in."""
    result = await asyncio.to_thread(user_token, sb, upn, scopes)
    return str(result["access_token"])


@contextlib.asynccontextmanager
async def signed_in(
    sb: ThreadedSandbox, upn: str, scopes: tuple[str, ...] = EM_SCOPES
) -> AsyncIterator[GraphServiceClient]:
    """A ``GraphServiceClient`` acting as ``upn`` (delegated)."""
    token = await token_for(sb, upn, scopes)
    async with graph_client(sb, StaticTokenCredential(token)) as client:
        yield client


@contextlib.asynccontextmanager
async def app_client(sb: ThreadedSandbox) -> AsyncIterator[GraphServiceClient]:
    """An app-only ``GraphServiceClient`` (client credentials through azure-identity)."""
    env = sb.ready["env"]
    credential = ClientSecretCredential(
        env["ELEVATE_TENANT_ID"],
        env["ELEVATE_CLIENT_ID"],
        env["ELEVATE_CLIENT_SECRET"],
        authority=env["ELEVATE_AUTHORITY_URL"],
        connection_verify=env["ELEVATE_CA_BUNDLE"],
        disable_instance_discovery=True,
    )
    async with credential, graph_client(sb, credential) as client:
        yield client


def em(client: GraphServiceClient) -> EntitlementManagementRequestBuilder:
    """The entitlement-management request builder of ``client``."""
    return client.identity_governance.entitlement_management


def user_add(
    target: str,
    policy: str,
    package: str,
    *,
    duration: Any = "PT2H",
    justification: str | None = "Installing a printer driver",
    request_type: AccessPackageRequestType = AccessPackageRequestType.UserAdd,
) -> AccessPackageAssignmentRequest:
    """A ``userAdd`` (or other add) request model, assignment ids in ``additional_data``."""
    schedule = None
    if duration is not None:
        schedule = EntitlementManagementSchedule(
            expiration=ExpirationPattern(
                type=ExpirationPatternType.AfterDuration, duration=duration
            )
        )
    return AccessPackageAssignmentRequest(
        request_type=request_type,
        assignment=AccessPackageAssignment(
            additional_data={
                "targetId": target,
                "assignmentPolicyId": policy,
                "accessPackageId": package,
            }
        ),
        justification=justification,
        schedule=schedule,
    )


def for_assignment(
    request_type: AccessPackageRequestType, assignment_id: str, **kwargs: Any
) -> AccessPackageAssignmentRequest:
    """An update/remove request naming an existing assignment."""
    return AccessPackageAssignmentRequest(
        request_type=request_type, assignment=AccessPackageAssignment(id=assignment_id), **kwargs
    )


def query(params_cls: Callable[..., Any], **kwargs: Any) -> RequestConfiguration[Any]:
    """A request configuration carrying ``params_cls(**kwargs)`` as query parameters."""
    return RequestConfiguration(query_parameters=params_cls(**kwargs))


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 5.0, interval: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


async def control(sb: ThreadedSandbox, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST to the sandbox's control API (``/_sandbox/…``)."""
    async with httpx.AsyncClient(verify=sandbox_ssl_context(sb), trust_env=False) as http:
        return await http.post(f"{sb.ready['base_url']}/_sandbox/{path}", json=body, timeout=10)


async def advance(sb: ThreadedSandbox, delta: timedelta) -> None:
    """Move the sandbox clock forward by ``delta``; lifecycle processors run right after."""
    response = await control(sb, "clock", {"advance": isodate.duration_isoformat(delta)})
    assert response.status_code < 300, response.text


async def inject_fault(sb: ThreadedSandbox, **rule: Any) -> None:
    """Add a fault rule (``path`` regex, ``status``, ``count``, ``retry_after``)."""
    response = await control(sb, "faults", rule)
    assert response.status_code < 300, response.text


async def snapshot(sb: ThreadedSandbox) -> dict[str, Any]:
    """``GET /_sandbox/state``."""
    async with httpx.AsyncClient(verify=sandbox_ssl_context(sb), trust_env=False) as http:
        response = await http.get(f"{sb.ready['base_url']}/_sandbox/state", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def raw(
    sb: ThreadedSandbox, token: str, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """One HTTPS call to ``/v1.0/identityGovernance/entitlementManagement/{path}``."""
    url = f"{sb.ready['base_url']}/v1.0/identityGovernance/entitlementManagement/{path}"
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(verify=sandbox_ssl_context(sb), trust_env=False) as http:
        return await http.request(method, url, headers=headers, timeout=10, **kwargs)


def undocumented(model: Any, path: str = "") -> list[str]:
    """Properties the SDK left in ``additional_data`` (``@odata.*`` annotations excepted)."""
    found = [f"{path}{k}" for k in getattr(model, "additional_data", {}) if not k.startswith("@")]
    if dataclasses.is_dataclass(model):
        for field in dataclasses.fields(model):
            value = getattr(model, field.name, None)
            for item in value if isinstance(value, list) else [value]:
                if dataclasses.is_dataclass(item) and hasattr(item, "additional_data"):
                    found += undocumented(item, f"{path}{field.name}.")
    return found


async def odata_error(awaitable: Awaitable[Any]) -> ODataError:
    """The ``ODataError`` that ``awaitable`` raises (fails the test if it succeeds)."""
    with pytest.raises(ODataError) as caught:
        await awaitable
    return caught.value
