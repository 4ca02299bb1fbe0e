"""``elevate manifest teams``: the Teams app package (``manifest.json`` + two icons, zipped).

The template and icons live in ``manifest/teams/`` of the source tree.  ``{{APP_ID}}`` becomes
the bot's Microsoft app id (also the app's id), ``{{URL}}`` the bot's public https URL and
``{{DOMAIN}}`` its host (``validDomains``: the sign-in links open there).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "manifest" / "teams"
ICONS = ("color.png", "outline.png")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def render(*, app_id: str, url: str, template_dir: Path = TEMPLATE_DIR) -> dict[str, Any]:
    """The manifest for ``app_id`` served at ``url``; ``ValueError`` for a bad id or URL."""
    if not _GUID.match(app_id):
        raise ValueError(f"--app-id must be the bot's Microsoft app id (a GUID), not {app_id!r}")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"--url must be an https:// URL, not {url!r}")
    values = {"{{APP_ID}}": app_id, "{{URL}}": url.rstrip("/"), "{{DOMAIN}}": parts.netloc}
    template = json.loads((template_dir / "manifest.json").read_text(encoding="utf-8"))
    rendered: dict[str, Any] = _fill(template, values)
    return rendered


def _fill(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        for placeholder, value in values.items():
            node = node.replace(placeholder, value)
        return node
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _fill(item, values) for key, item in node.items()}
    return node


def build(*, app_id: str, url: str, out: Path, template_dir: Path = TEMPLATE_DIR) -> Path:
    """Write the upload zip: ``manifest.json``, ``color.png`` and ``outline.png`` at its root."""
    manifest = render(app_id=app_id, url=url, template_dir=template_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        for icon in ICONS:
            package.write(template_dir / icon, icon)
    return out
