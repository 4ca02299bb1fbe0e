"""``ELEVATE_CLIENT_CERTIFICATE_PATH`` instead of a client secret: app-only Graph calls
(azure-identity) and users' sign-ins (MSAL) both authenticate with the certificate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from sandbox.server import ThreadedSandbox
from sandbox.tenant import demo_tenant
from tests.integration.bot_harness import start_bot

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CAROL = "carol@contoso.test"


@pytest.fixture
def app_pem(tmp_path: Path) -> tuple[Path, str]:
    """A PEM file with the app's RSA key and certificate; the certificate alone (PEM)."""
    leaf = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert(
        "elevate-app.contoso.test", key_type=trustme.KeyType.RSA
    )
    path = tmp_path / "elevate-app.pem"
    path.write_bytes(leaf.private_key_and_cert_chain_pem.bytes())
    return path, leaf.cert_chain_pems[0].bytes().decode()


def _certificate_only(path: Path) -> dict[str, str]:
    return {"ELEVATE_CLIENT_SECRET": "", "ELEVATE_CLIENT_CERTIFICATE_PATH": str(path)}


async def test_entra_mode_runs_on_a_certificate_alone(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path, app_pem: tuple[Path, str]
) -> None:
    """With only the certificate registered and configured: ready, a user signs in (the code
    is redeemed with a client assertion), the request is made and reaches both approvers."""
    path, certificate = app_pem
    tenant = demo_tenant()
    tenant.apps[0].certificates = [certificate]
    sandbox = make_sandbox(tenant=tenant)
    async with start_bot(sandbox, tmp_path, env=_certificate_only(path)) as bot:
        assert bot.components.settings.client_secret is None
        ready = await bot.browser.get(f"{bot.url}/readyz")
        assert ready.status_code == 200, ready.text

        alice = bot.slack_user(ALICE)
        first = await bot.service.run_command(alice, "request-admin 2h certificate check")
        assert first.kind == "signin"
        callback = await bot.sign_in(first.signin_url)
        assert callback.status_code == 200, callback.text

        alice_id = bot.user_id(ALICE)
        await bot.wait_for(lambda: bool(bot.notifier.notices_to(alice_id)), track=False)
        assert bot.notifier.notices_to(alice_id)[0].kind == "submitted"
        tracked = await bot.components.store.find_open_request_for(alice_id)
        assert tracked is not None
        assert tracked.justification == "certificate check"
        await bot.wait_for(lambda: len(bot.notifier.cards_for(tracked.request_id)) == 2)
        approvers = {c.ref.recipient_id for c in bot.notifier.cards_for(tracked.request_id)}
        assert approvers == {bot.user_id(BOB), bot.user_id(CAROL)}


async def test_an_unregistered_certificate_shows_in_readiness(
    make_sandbox: Callable[..., ThreadedSandbox], tmp_path: Path, app_pem: tuple[Path, str]
) -> None:
    """A certificate Entra does not know: /readyz is 503 and names Entra's refusal code."""
    path, _ = app_pem
    sandbox = make_sandbox()
    async with start_bot(sandbox, tmp_path, mode="bot", env=_certificate_only(path)) as bot:
        ready = await bot.browser.get(f"{bot.url}/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["graph"] == "credential refused (AADSTS700027)"
