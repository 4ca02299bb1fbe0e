"""Placeholder until implemented."""

from aiohttp import web

from sandbox.state import SandboxState


def register(app: web.Application, state: SandboxState) -> None:
    """Register routes."""
