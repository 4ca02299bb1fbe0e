"""The Slack app manifest (manifest/slack/manifest.yaml) and ``elevate manifest slack``."""

from __future__ import annotations

import re

import pytest

from adapters.cli import main
from adapters.slack.manifest import render


def _bot_scopes(text: str) -> list[str]:
    block = text.split("    bot:\n", 1)[1].split("settings:", 1)[0]
    return re.findall(r"^\s+- ([a-z:.]+)$", block, flags=re.M)


def test_render_points_command_and_interactivity_at_slack_events() -> None:
    """Both request URLs are {url}/slack/events; no placeholder is left."""
    text = render("https://bot.example.com/")
    assert "${" not in text
    assert "      url: https://bot.example.com/slack/events\n" in text
    assert "    request_url: https://bot.example.com/slack/events\n" in text
    assert "    - command: /request-admin\n" in text


def test_manifest_asks_only_for_the_scopes_used() -> None:
    """commands, chat:write, users:read(.email) and im:write: nothing more."""
    assert _bot_scopes(render("https://x.test")) == [
        "commands",
        "chat:write",
        "users:read",
        "users:read.email",
        "im:write",
    ]


def test_render_refuses_plain_http() -> None:
    """Slack only calls https request URLs."""
    with pytest.raises(ValueError, match="https"):
        render("http://bot.example.com")


def test_cli_prints_the_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    """``elevate manifest slack --url`` prints the rendered manifest."""
    assert main(["manifest", "slack", "--url", "https://bot.example.com"]) == 0
    assert capsys.readouterr().out == render("https://bot.example.com")
