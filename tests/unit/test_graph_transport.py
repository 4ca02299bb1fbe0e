"""The Graph clients' HTTP transport closes a connection whose TLS handshake is cancelled."""

from __future__ import annotations

import asyncio

import pytest

from bot.config import load_settings
from bot.graph.clients import GraphClients

SETTINGS = {
    "ELEVATE_TENANT_ID": "t",
    "ELEVATE_CLIENT_ID": "c",
    "ELEVATE_ACCESS_PACKAGE_ID": "p",
    "ELEVATE_APPROVAL_MODE": "bot",
}


async def test_a_call_cancelled_during_the_tls_handshake_closes_its_connection() -> None:
    """Cancelled mid-handshake (as at shutdown), the connection closes at once instead of
    staying open until garbage collection."""
    hello = asyncio.Event()
    closed = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await reader.read(4096):  # the ClientHello; no answer, ever
            hello.set()
        while await reader.read(4096):
            pass
        closed.set()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients = GraphClients(load_settings(SETTINGS))
    try:
        call = asyncio.create_task(clients.http.get(f"https://127.0.0.1:{port}/v1.0/me"))
        await asyncio.wait_for(hello.wait(), 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.wait_for(closed.wait(), 2)
    finally:
        await clients.close()
        server.close()
        await server.wait_closed()
