"""The one aiohttp server hosting sign-in, health, metrics and the chat front ends."""

from __future__ import annotations


def serve() -> int:
    """Run the bot (filled in by the core issue)."""
    print("elevate serve: not implemented yet")
    return 1
