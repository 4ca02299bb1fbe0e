"""JSON batching, ``POST /v1.0/$batch`` and ``/beta/$batch`` (spec/graph.md §8.1).

Each sub-request is sent back to this same server over HTTPS with the batch's bearer token, so
it passes through exactly what a direct call would: authentication, permissions and injected
faults (a sub-request can be throttled with its own ``Retry-After`` while the batch is 200).

Requests run one after another in dependency order (``dependsOn``, or msgraph-core's
``depends_on``); dependents of a request that did not succeed get 424.  Responses come back in
the order of the requests.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from sandbox.auth import graph_caller
from sandbox.errors import BAD_REQUEST, GraphError, envelope
from sandbox.graph import odata
from sandbox.state import SandboxState

MAX_REQUESTS = 20
METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}
WRITE_METHODS = {"POST", "PATCH", "PUT"}
FAILED_DEPENDENCY = "FailedDependency"
# Response headers worth passing back per item.
KEPT_HEADERS = ("Content-Type", "Retry-After", "Location", "ETag", "Preference-Applied")
# Request headers a sub-request may not set (the batch's own token is used).
DROPPED_HEADERS = {"authorization", "host", "content-length"}


@dataclass
class Item:
    """One validated sub-request."""

    id: str
    method: str
    url: str
    headers: dict[str, str]
    body: Any
    depends_on: list[str] = field(default_factory=list)


def _bad(message: str) -> GraphError:
    return GraphError(400, BAD_REQUEST, message)


def _parse_item(raw: Any) -> Item:
    if not isinstance(raw, dict):
        raise _bad("Invalid batch payload format: each request must be a JSON object.")
    item_id, method, url = raw.get("id"), raw.get("method"), raw.get("url")
    if not isinstance(item_id, str) or not item_id:
        raise _bad("Invalid batch payload format: every request needs a string 'id'.")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _bad(f"Request id {item_id}: unsupported method '{method}'.")
    if not isinstance(url, str) or not url or "://" in url or ".." in url:
        raise _bad(f"Request id {item_id}: 'url' must be relative to the version root.")
    if url.lstrip("/").lower().startswith("$batch"):
        raise _bad(f"Request id {item_id}: nested batch requests are not supported.")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise _bad(f"Request id {item_id}: 'headers' must map names to strings.")
    depends = raw.get("dependsOn", raw.get("depends_on")) or []
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        raise _bad(f"Request id {item_id}: 'dependsOn' must be a list of request ids.")
    body = raw.get("body")
    has_type = any(k.lower() == "content-type" for k in headers)
    if body is not None and method.upper() in WRITE_METHODS and not has_type:
        raise _bad(f"Write request id : {item_id} does not contain Content-Type header or body.")
    return Item(item_id, method.upper(), url, dict(headers), body, list(depends))


def parse_batch(payload: Mapping[str, Any]) -> list[Item]:
    """Validate a batch body; 400 for anything Graph would refuse as a whole."""
    raw = payload.get("requests")
    if not isinstance(raw, list) or not raw:
        raise _bad("Invalid batch payload format: 'requests' must be a non-empty list.")
    if len(raw) > MAX_REQUESTS:
        raise _bad(f"Number of batch requests ({len(raw)}) exceeds the limit of {MAX_REQUESTS}.")
    items = [_parse_item(r) for r in raw]
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise _bad("Invalid batch payload format: request ids must be unique.")
    for item in items:
        unknown = [d for d in item.depends_on if d not in ids or d == item.id]
        if unknown:
            raise _bad(f"Request id {item.id} depends on unknown request(s) {unknown}.")
    execution_order(items)  # rejects cycles
    return items


def execution_order(items: list[Item]) -> list[Item]:
    """Items ordered so each comes after what it depends on (stable); 400 on a cycle."""
    done: set[str] = set()
    ordered: list[Item] = []
    pending = list(items)
    while pending:
        ready = [i for i in pending if all(d in done for d in i.depends_on)]
        if not ready:
            raise _bad("Invalid batch payload format: dependsOn forms a cycle.")
        for item in ready:
            ordered.append(item)
            done.add(item.id)
        pending = [i for i in pending if i.id not in done]
    return ordered


def _failed_dependency(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "status": 424,
        "headers": {"Content-Type": "application/json"},
        "body": envelope(FAILED_DEPENDENCY, "The request failed because a dependency failed."),
    }


async def _send(
    session: aiohttp.ClientSession, root: str, item: Item, authorization: str | None
) -> dict[str, Any]:
    """Run one sub-request against this server and describe its response."""
    path = item.url if item.url.startswith("/") else f"/{item.url}"
    headers = {k: v for k, v in item.headers.items() if k.lower() not in DROPPED_HEADERS}
    if authorization:
        headers["Authorization"] = authorization
    data = None
    if item.body is not None:
        data = item.body if isinstance(item.body, str) else json.dumps(item.body)
    async with session.request(
        item.method, URL(root + path, encoded=True), headers=headers, data=data
    ) as response:
        raw = await response.read()
        kept = {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}
        result: dict[str, Any] = {"id": item.id, "status": response.status, "headers": kept}
        if raw:
            try:
                result["body"] = json.loads(raw)
            except ValueError:
                result["body"] = raw.decode("utf-8", "replace")
        return result


def register(app: web.Application, state: SandboxState) -> None:
    """Add ``POST /v1.0/$batch`` and ``POST /beta/$batch``."""

    async def batch(request: web.Request) -> web.Response:
        graph_caller(state, request)  # the batch itself needs a valid token (401)
        items = parse_batch(await odata.read_json(request))
        version = request.path.split("/")[1]
        ssl_ctx = ssl.create_default_context(cafile=str(state.state_dir / "ca.pem"))
        authorization = request.headers.get("Authorization")
        results: dict[str, dict[str, Any]] = {}
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(ssl=ssl_ctx)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for item in execution_order(items):
                if any(not 200 <= results[d]["status"] < 300 for d in item.depends_on):
                    results[item.id] = _failed_dependency(item)
                    continue
                results[item.id] = await _send(
                    session, f"{state.base_url}/{version}", item, authorization
                )
        return odata.json_response({"responses": [results[i.id] for i in items]})

    app.router.add_post("/v1.0/$batch", batch)
    app.router.add_post("/beta/$batch", batch)
