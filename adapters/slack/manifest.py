"""``elevate manifest slack --url https://…``: the Slack app manifest for a public URL.

The manifest lives in ``manifest/slack/manifest.yaml`` with ``${URL}`` where the bot's public
URL goes (slash command and interactivity both post to ``{url}/slack/events``).
"""

from __future__ import annotations

from pathlib import Path
from string import Template

MANIFEST = Path(__file__).resolve().parents[2] / "manifest" / "slack" / "manifest.yaml"


def render(url: str, *, template: Path = MANIFEST) -> str:
    """The manifest YAML with ``url`` (trailing slash dropped) as the request URL."""
    if not url.startswith("https://"):
        raise ValueError("Slack needs an https:// request URL")
    return Template(template.read_text(encoding="utf-8")).substitute(URL=url.rstrip("/"))
