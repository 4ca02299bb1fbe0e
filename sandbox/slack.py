"""The Slack stand-in: a workspace with the Elevate app installed (spec/config.md, chat.md §5–7).

``register`` wires three parts around one ``Workspace`` (``sandbox.slack_world``):

- ``sandbox.slack_api`` — the Web API at ``/slack/api/{method}`` and response URLs at
  ``/slack/response/{id}``;
- ``sandbox.slack_control`` — ``/_sandbox/slack/…``: signed commands, button clicks and modal
  submissions delivered to ``{bot_url}/slack/events``, and listings of what the bot did;
- the ready line's Slack variables (below) and ``/_sandbox/state``'s ``slack`` (messages).

The bot token and signing secret are generated at start and published in the ready line.
"""

from __future__ import annotations

from aiohttp import web

from sandbox import slack_api, slack_control
from sandbox.slack_world import Workspace
from sandbox.state import SandboxState

ADMIN_CHANNEL = "it-admins"
APPROVER_CHANNEL = "admin-approvals"


def register(app: web.Application, state: SandboxState) -> None:
    """Create the workspace and register its routes, ready-line variables and snapshot."""
    ws = Workspace(state.tenant, state.clock)
    state.services["slack"] = ws
    state.env_parts.append(lambda: slack_env(state, ws))
    state.snapshots["slack"] = lambda: [ws.describe(m) for m in ws.messages]
    slack_api.register(app, state, ws)
    slack_control.register(app, state, ws)


def slack_env(state: SandboxState, ws: Workspace) -> dict[str, str]:
    """``ELEVATE_SLACK_*`` for the ready line (called once ``base_url`` is known)."""
    env = {
        "ELEVATE_SLACK_BOT_TOKEN": ws.identity.bot_token,
        "ELEVATE_SLACK_SIGNING_SECRET": ws.identity.signing_secret,
        "ELEVATE_SLACK_API_URL": f"{state.base_url}/slack/api/",
    }
    channels = state.tenant.slack_channels
    admin = next(
        (c for c in channels if c.name == ADMIN_CHANNEL), channels[0] if channels else None
    )
    if admin is not None:
        env["ELEVATE_SLACK_ADMIN_CHANNEL"] = admin.id
    approver = next((c for c in channels if c.name == APPROVER_CHANNEL), None)
    if approver is not None:
        env["ELEVATE_SLACK_APPROVER_CHANNEL"] = approver.id
    return env
