"""Settings of spec/config.md: read once, from ``ELEVATE_*`` variables and an optional TOML file.

``load_settings(environ)`` takes a mapping so tests pass their own; nothing else in Elevate reads
``os.environ``.  Secrets have no defaults.  A missing required setting raises ``ConfigError``
with one line naming the variable(s).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import isodate
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.errors import ConfigError

PREFIX = "ELEVATE_"

_REQUIRED_HELP = {
    "tenant_id": "the Entra tenant id",
    "client_id": "the bot's Entra app (client) id",
    "access_package_id": "the access package that grants local admin",
    "token_key": "a Fernet key (urlsafe base64 of 32 bytes) that encrypts stored user tokens",
}


def _iso_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        parsed = isodate.parse_duration(str(value).strip())
    except (isodate.ISO8601Error, ValueError) as exc:
        raise ValueError(f"{value!r} is not an ISO 8601 duration such as PT15S or PT60M") from exc
    if not isinstance(parsed, timedelta) or parsed <= timedelta():
        raise ValueError(f"{value!r} must be a positive duration in days, hours, minutes, seconds")
    return parsed


class Settings(BaseSettings):
    """Every setting of Elevate (frozen).  Field ``x`` is variable ``ELEVATE_X``."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    config: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=3978, ge=0, le=65535)
    public_url: str | None = None
    database_url: str = "sqlite+aiosqlite:///./elevate.db"
    approval_mode: Literal["entra", "bot"] = "entra"

    tenant_id: str
    client_id: str
    client_secret: SecretStr | None = None
    client_certificate_path: Path | None = None
    authority_url: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com"
    ca_bundle: Path | None = None
    access_package_id: str
    policy_id: str | None = None
    token_key: SecretStr | None = None

    expiry_notices: tuple[timedelta, ...] = (timedelta(minutes=60), timedelta(minutes=15))
    poll_interval: timedelta = timedelta(seconds=15)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_command: str = "/request-admin"
    slack_admin_channel: str | None = None
    slack_approver_channel: str | None = None

    teams_app_id: str | None = None
    teams_app_password: SecretStr | None = None
    teams_app_tenant_id: str | None = None
    teams_service_url: str = "https://smba.trafficmanager.net/teams/"
    teams_admin_channel: str | None = None
    teams_approver_channel: str | None = None
    teams_openid_metadata_url: str = (
        "https://login.botframework.com/v1/.well-known/openidconfiguration"
    )
    teams_token_issuer: str = "https://api.botframework.com"  # noqa: S105 - an issuer URL
    teams_login_url: str = "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"
    teams_oauth_scope: str = "https://api.botframework.com"

    log_format: Literal["json", "console"] | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only explicit values: ``load_settings`` gathers them from the given mapping."""
        return (init_settings,)

    @field_validator("poll_interval", mode="before")
    @classmethod
    def _poll(cls, value: Any) -> timedelta:
        return _iso_duration(value)

    @field_validator("expiry_notices", mode="before")
    @classmethod
    def _notices(cls, value: Any) -> tuple[timedelta, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)
        parsed = sorted({_iso_duration(v) for v in items if str(v).strip()}, reverse=True)
        return tuple(parsed)

    @field_validator("slack_api_url", "teams_service_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("authority_url", "graph_url", "public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("client_certificate_path")
    @classmethod
    def _certificate(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        pem = _read(value)
        try:
            serialization.load_pem_private_key(pem, password=None)
            x509.load_pem_x509_certificate(pem)
        except (ValueError, TypeError):
            raise ValueError(
                f"{value} must be one PEM file holding the app's private key (not "
                "password-protected) and its certificate"
            ) from None
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _bundle(cls, value: Path | None) -> Path | None:
        if value is not None and b"-----BEGIN CERTIFICATE-----" not in _read(value):
            raise ValueError(f"{value} holds no PEM certificate")
        return value

    @model_validator(mode="after")
    def _mode_requirements(self) -> Settings:
        if self.approval_mode == "entra" and self.token_key is None:
            raise ValueError("missing:token_key")
        if self.token_key is not None:
            try:
                Fernet(self.token_key.get_secret_value().encode())
            except ValueError:
                raise ValueError(
                    "ELEVATE_TOKEN_KEY must be a Fernet key (urlsafe base64 of 32 bytes); "
                    "make one with: python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'"
                ) from None
        return self

    @property
    def base_url(self) -> str:
        """Where users' browsers reach the bot (sign-in links)."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def slack_enabled(self) -> bool:
        """The Slack front end is on when both its token and signing secret are set."""
        return self.slack_bot_token is not None and self.slack_signing_secret is not None

    @property
    def teams_enabled(self) -> bool:
        """The Teams front end is on when its app id is set."""
        return bool(self.teams_app_id)


def _from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        key[len(PREFIX) :].lower(): value
        for key, value in environ.items()
        if key.startswith(PREFIX) and value != ""
    }


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``environ`` (default ``os.environ``) and ``ELEVATE_CONFIG``.

    Variables override the file.  Raises ``ConfigError`` naming what is missing or invalid.
    """
    values: dict[str, Any] = _from_environ(os.environ if environ is None else environ)
    config_path = values.get("config")
    if config_path:
        path = Path(config_path)
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"ELEVATE_CONFIG points to {path}, which does not exist.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"ELEVATE_CONFIG file {path} is not valid TOML: {exc}") from None
        values = {**{k.lower(): v for k, v in file_values.items()}, **values}
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None


def _explain(exc: ValidationError) -> str:
    missing: list[str] = []
    invalid: list[str] = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        msg = str(err.get("msg", ""))
        if err["type"] == "missing" or "missing:" in msg:
            field = name or msg.split("missing:", 1)[1]
            missing.append(field)
        elif name:
            invalid.append(f"{PREFIX}{name.upper()}: {msg.removeprefix('Value error, ')}")
        else:
            invalid.append(msg.removeprefix("Value error, "))
    if missing:
        names = ", ".join(
            f"{PREFIX}{f.upper()} ({_REQUIRED_HELP.get(f, 'required')})" for f in missing
        )
        return f"Missing required setting: {names}."
    return "Invalid setting: " + "; ".join(m.rstrip(".") for m in invalid) + "."
