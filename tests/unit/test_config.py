"""Settings: read once from a mapping (and a TOML file), clear errors naming the variable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import trustme
from cryptography.fernet import Fernet

from bot.config import load_settings
from bot.errors import ConfigError

BASE = {
    "ELEVATE_TENANT_ID": "t",
    "ELEVATE_CLIENT_ID": "c",
    "ELEVATE_ACCESS_PACKAGE_ID": "p",
    "ELEVATE_APPROVAL_MODE": "bot",
}


def test_defaults_follow_the_contract() -> None:
    """Unset variables take the documented defaults."""
    s = load_settings(BASE)
    assert (s.host, s.port) == ("127.0.0.1", 3978)
    assert s.database_url == "sqlite+aiosqlite:///./elevate.db"
    assert s.expiry_notices == (timedelta(minutes=60), timedelta(minutes=15))
    assert s.poll_interval == timedelta(seconds=15)
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.slack_command == "/request-admin"
    assert s.base_url == "http://127.0.0.1:3978"
    assert not s.slack_enabled
    assert not s.teams_enabled


def test_missing_required_settings_are_named_in_one_line() -> None:
    """Each missing required variable is named, with what it is for."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"ELEVATE_CLIENT_ID": "c"})
    message = caught.value.user_message
    assert "\n" not in message
    assert "ELEVATE_TENANT_ID" in message
    assert "ELEVATE_ACCESS_PACKAGE_ID" in message
    assert "ELEVATE_CLIENT_ID" not in message


def test_entra_mode_requires_a_valid_token_key() -> None:
    """entra mode needs ELEVATE_TOKEN_KEY, and it must be a Fernet key."""
    entra = {**BASE, "ELEVATE_APPROVAL_MODE": "entra"}
    with pytest.raises(ConfigError, match="ELEVATE_TOKEN_KEY"):
        load_settings(entra)
    with pytest.raises(ConfigError, match="Fernet key"):
        load_settings({**entra, "ELEVATE_TOKEN_KEY": "not-a-key"})
    key = Fernet.generate_key().decode()
    assert load_settings({**entra, "ELEVATE_TOKEN_KEY": key}).token_key is not None


def test_durations_are_iso_8601_and_invalid_ones_are_explained() -> None:
    """Poll interval and notice lead times parse ISO 8601; garbage names the variable."""
    s = load_settings(
        {**BASE, "ELEVATE_EXPIRY_NOTICES": "PT15M, PT2H", "ELEVATE_POLL_INTERVAL": "PT5S"}
    )
    assert s.expiry_notices == (timedelta(hours=2), timedelta(minutes=15))
    assert s.poll_interval == timedelta(seconds=5)
    with pytest.raises(ConfigError, match="ELEVATE_POLL_INTERVAL"):
        load_settings({**BASE, "ELEVATE_POLL_INTERVAL": "15 seconds"})


def test_toml_file_is_read_and_variables_override_it(tmp_path: Path) -> None:
    """ELEVATE_CONFIG names a TOML file; environment variables win over it."""
    path = tmp_path / "elevate.toml"
    path.write_text('tenant_id = "from-file"\nport = 4000\nslack_command = "/admin"\n')
    s = load_settings({**BASE, "ELEVATE_CONFIG": str(path), "ELEVATE_PORT": "5000"})
    assert s.tenant_id == "t"
    assert s.port == 5000
    assert s.slack_command == "/admin"
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({**BASE, "ELEVATE_CONFIG": str(tmp_path / "missing.toml")})


def test_settings_are_frozen_and_secrets_hidden() -> None:
    """The settings object cannot change and does not print secrets."""
    s = load_settings({**BASE, "ELEVATE_CLIENT_SECRET": "hunter2"})
    with pytest.raises(ValueError, match="frozen"):
        s.port = 1  # type: ignore[misc]
    assert "hunter2" not in repr(s)
    assert s.client_secret is not None
    assert s.client_secret.get_secret_value() == "hunter2"


def test_credential_and_ca_files_are_checked_at_start(tmp_path: Path) -> None:
    """A certificate credential must be a readable PEM file with the key and the certificate,
    a CA bundle a readable PEM file: otherwise the start stops naming the variable and why."""
    leaf = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert(
        "app.test", key_type=trustme.KeyType.RSA
    )
    good = tmp_path / "app.pem"
    good.write_bytes(leaf.private_key_and_cert_chain_pem.bytes())
    key_only = tmp_path / "key.pem"
    key_only.write_bytes(leaf.private_key_pem.bytes())
    s = load_settings({**BASE, "ELEVATE_CLIENT_CERTIFICATE_PATH": str(good)})
    assert s.client_certificate_path == good
    for path, why in (
        (tmp_path / "missing.pem", "cannot read"),
        (key_only, "must be one PEM file holding the app's private key"),
    ):
        with pytest.raises(ConfigError) as caught:
            load_settings({**BASE, "ELEVATE_CLIENT_CERTIFICATE_PATH": str(path)})
        assert caught.value.user_message.startswith("Invalid setting: ELEVATE_CLIENT_CERTIFICATE")
        assert why in caught.value.user_message
    with pytest.raises(ConfigError, match=r"ELEVATE_CA_BUNDLE: .* holds no PEM certificate"):
        load_settings({**BASE, "ELEVATE_CA_BUNDLE": str(key_only)})
    with pytest.raises(ConfigError, match="ELEVATE_CA_BUNDLE: cannot read"):
        load_settings({**BASE, "ELEVATE_CA_BUNDLE": str(tmp_path / "none.pem")})
    ca = tmp_path / "ca.pem"
    ca.write_bytes(leaf.cert_chain_pems[0].bytes())
    assert load_settings({**BASE, "ELEVATE_CA_BUNDLE": str(ca)}).ca_bundle == ca
