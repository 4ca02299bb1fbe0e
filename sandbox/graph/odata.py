"""OData query handling shared by the Graph stand-ins: ``$filter``, ``$select``, ``$expand``,
``$top`` and absolute ``@odata.nextLink`` paging (spec/graph.md §8.4)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from sandbox.errors import BAD_REQUEST, GraphError

DEFAULT_PAGE = 100
MAX_PAGE = 999

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<lp>\()|(?P<rp>\))|(?P<word>[^\s()']+))")
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")


@dataclass(frozen=True)
class Clause:
    """``path op value``, e.g. ``accessPackage/id eq 'x'``."""

    path: tuple[str, ...]
    op: str
    value: Any


def _literal(token: str) -> Any:
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    low = token.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    if _DATETIME.match(token):
        return datetime.fromisoformat(token.replace("Z", "+00:00"))
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        raise GraphError(
            400, BAD_REQUEST, f"Invalid filter clause: unexpected '{token}'."
        ) from None


def parse_filter(text: str | None) -> list[Clause]:
    """Parse a conjunction of comparisons (``and`` only); 400 for anything else."""
    if not text or not text.strip():
        return []
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise GraphError(400, BAD_REQUEST, f"Invalid filter clause near '{text[pos:]}'.")
        tok = m.group("str") or m.group("lp") or m.group("rp") or m.group("word")
        if tok:
            tokens.append(tok)
        pos = m.end()
    tokens = [t for t in tokens if t not in ("(", ")")]
    clauses: list[Clause] = []
    i = 0
    while i < len(tokens):
        if len(tokens) - i < 3 or tokens[i + 1].lower() not in _OPS:
            raise GraphError(400, BAD_REQUEST, f"Invalid filter clause: '{text}'.")
        path = tuple(tokens[i].split("/"))
        clauses.append(Clause(path=path, op=tokens[i + 1].lower(), value=_literal(tokens[i + 2])))
        i += 3
        if i < len(tokens):
            if tokens[i].lower() != "and":
                raise GraphError(
                    400, BAD_REQUEST, f"Unsupported filter operator '{tokens[i]}' (only 'and')."
                )
            i += 1
    return clauses


def _resolve(obj: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        key = next((k for k in obj if k.lower() == part.lower()), None)
        if key is None:
            return None
        obj = obj[key]
    return obj


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if isinstance(expected, datetime) and isinstance(actual, str):
        try:
            actual = datetime.fromisoformat(actual.replace("Z", "+00:00"))
        except ValueError:
            return False
    if isinstance(actual, str) and isinstance(expected, str):
        actual, expected = actual.lower(), expected.lower()
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if actual is None or expected is None:
        return False
    try:
        return bool(
            {
                "gt": actual > expected,
                "ge": actual >= expected,
                "lt": actual < expected,
                "le": actual <= expected,
            }[op]
        )
    except TypeError:
        return False


def matches(clauses: Iterable[Clause], obj: dict[str, Any]) -> bool:
    """True when ``obj`` satisfies every clause."""
    return all(_compare(_resolve(obj, c.path), c.op, c.value) for c in clauses)


def check_paths(clauses: Iterable[Clause], allowed: Iterable[str]) -> None:
    """400 unless every clause's path is one of ``allowed`` (``a/b`` form, case-insensitive)."""
    ok = {a.lower() for a in allowed}
    for c in clauses:
        if "/".join(c.path).lower() not in ok:
            raise GraphError(
                400,
                BAD_REQUEST,
                f"Invalid filter clause: the property '{'/'.join(c.path)}' is not supported.",
            )


def parse_expand(text: str | None) -> dict[str, str]:
    """``a,b($expand=c,d)`` → ``{"a": "", "b": "$expand=c,d"}`` (top level only)."""
    result: dict[str, str] = {}
    if not text:
        return result
    depth, start = 0, 0
    parts: list[str] = []
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    for part in parts:
        part = part.strip()
        if not part:
            continue
        if "(" in part and part.endswith(")"):
            name, inner = part.split("(", 1)
            result[name.strip()] = inner[:-1]
        else:
            result[part] = ""
    return result


def select(obj: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """Keep only ``$select`` fields (and ``@odata`` annotations); ``id`` is always kept."""
    if not fields:
        return obj
    wanted = {f.strip().lower() for f in fields.split(",") if f.strip()} | {"id"}
    return {k: v for k, v in obj.items() if k.lower() in wanted or k.startswith("@odata")}


def json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON response with Graph's content type."""
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        charset="utf-8",
    )


def _skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        return int(json.loads(base64.urlsafe_b64decode(padded))["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise GraphError(400, BAD_REQUEST, "Invalid $skiptoken.") from exc


def page_size(request: web.Request, default: int = DEFAULT_PAGE) -> int:
    """``$top`` (1..999) or ``default``; 400 when invalid."""
    raw = request.query.get("$top")
    if raw is None:
        return default
    try:
        top = int(raw)
    except ValueError:
        raise GraphError(400, BAD_REQUEST, f"Invalid $top value '{raw}'.") from None
    if not 1 <= top <= MAX_PAGE:
        raise GraphError(400, BAD_REQUEST, f"$top must be between 1 and {MAX_PAGE}.")
    return top


def collection(
    request: web.Request,
    base_url: str,
    items: Iterable[dict[str, Any]],
    *,
    context: str,
    render: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    default_top: int = DEFAULT_PAGE,
) -> web.Response:
    """One page of ``items`` (already filtered) with an absolute ``@odata.nextLink``.

    ``items`` may be a generator: only the requested page (plus one) is materialised.
    """
    top = page_size(request, default_top)
    offset = _offset(request.query.get("$skiptoken"))
    page: list[dict[str, Any]] = []
    more = False
    for index, item in enumerate(items):
        if index < offset:
            continue
        if len(page) == top:
            more = True
            break
        page.append(item)
    fields = request.query.get("$select")
    value = [select(render(i) if render else i, fields) for i in page]
    body: dict[str, Any] = {
        "@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#{context}",
        "value": value,
    }
    if request.query.get("$count", "").lower() == "true":
        body["@odata.count"] = None  # filled by callers that know the total
    if more:
        params = {k: v for k, v in request.query.items() if k != "$skiptoken"}
        params["$skiptoken"] = _skiptoken(offset + top)
        body["@odata.nextLink"] = f"{base_url}{request.path}?{urlencode(params)}"
    return json_response(body)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; 400 in Graph's envelope otherwise."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise GraphError(400, BAD_REQUEST, "Unable to read JSON request payload.") from exc
    if not isinstance(body, dict):
        raise GraphError(400, BAD_REQUEST, "The request body must be a JSON object.")
    return body


def skip_offset(request: web.Request) -> int:
    """How many items earlier pages covered (decoded ``$skiptoken``; 0 on the first page)."""
    return _offset(request.query.get("$skiptoken"))
