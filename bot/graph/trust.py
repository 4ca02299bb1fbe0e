"""TLS trust built explicitly: system CAs plus ``ELEVATE_CA_BUNDLE``.

Hosts often set ``REQUESTS_CA_BUNDLE`` and friends; ``requests`` would let them override a
session's ``verify``.  So every client here gets its trust from one ``ssl.SSLContext`` and
``requests`` sessions ignore the environment (``trust_env = False``).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """A client context trusting the system CAs and, when given, the extra bundle."""
    ctx = ssl.create_default_context()
    if ca_bundle is not None:
        ctx.load_verify_locations(cafile=str(ca_bundle))
    return ctx


class _ContextAdapter(HTTPAdapter):
    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._ctx = ctx
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._ctx
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self._ctx
        return super().proxy_manager_for(*args, **kwargs)


def requests_session(ca_bundle: Path | None, timeout_s: float = 10.0) -> requests.Session:
    """A ``requests`` session for MSAL that trusts exactly ``ssl_context(ca_bundle)``."""
    session = requests.Session()
    session.trust_env = False
    adapter = _ContextAdapter(ssl_context(ca_bundle))
    session.mount("https://", adapter)
    session.request = _with_timeout(session.request, timeout_s)  # type: ignore[method-assign]
    return session


def _with_timeout(request: Any, timeout_s: float) -> Any:
    def call(method: str, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout_s)
        return request(method, url, **kwargs)

    return call
