"""The Teams app package: the manifest against the official v1.25 schema (offline), the icons'
sizes and transparency, and ``elevate manifest teams``."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from adapters.cli import main
from adapters.teams.manifest import build, render

SCHEMA = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "schemas" / "teams-manifest-1.25.json"
)
APP_ID = "6f1c2d3e-4b5a-4978-8a6b-1c2d3e4f5a6b"
URL = "https://elevate.contoso.com"
COMMANDS = {"request-admin", "status", "cancel", "extend", "release", "help"}


def _package(tmp_path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(build(app_id=APP_ID, url=URL, out=tmp_path / "elevate-teams.zip"))


def _png(data: bytes) -> tuple[int, int, int, list[list[tuple[int, ...]]]]:
    """Width, height, colour type and pixel rows of an 8-bit PNG (all five row filters)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, color_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8
    channels = {2: 3, 6: 4}[color_type]
    raw, stride, rows, prior = (
        zlib.decompress(idat),
        width * channels,
        [],
        bytearray(width * channels),
    )
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = prior[i], prior[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append([tuple(line[x : x + channels]) for x in range(0, stride, channels)])
        prior = line
    return width, height, color_type, rows


def test_manifest_validates_against_the_v1_25_schema(tmp_path: Path) -> None:
    """The generated manifest passes the official schema (Draft 4) and the checks it leaves out."""
    if not SCHEMA.is_file():
        pytest.skip("../shared/schemas/teams-manifest-1.25.json not present")
    with _package(tmp_path) as package:
        manifest = json.loads(package.read("manifest.json"))
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema).validate(manifest)
    assert manifest["manifestVersion"] == "1.25"  # ``const`` is draft 6: Draft4 ignores it
    assert manifest["name"]["short"] != manifest["name"]["full"]
    for key in ("websiteUrl", "privacyUrl", "termsOfUseUrl"):
        assert manifest["developer"][key].startswith("https://")  # the schema accepts http


def test_manifest_has_the_bot_its_scopes_and_commands() -> None:
    """One bot (the app id), personal/team/groupChat, the six commands, the bot's domain."""
    manifest: dict[str, Any] = render(app_id=APP_ID, url=URL + "/")
    assert manifest["id"] == APP_ID
    [bot] = manifest["bots"]
    assert bot["botId"] == APP_ID
    assert set(bot["scopes"]) == {"personal", "team", "groupChat"}
    titles = {c["title"] for lst in bot["commandLists"] for c in lst["commands"]}
    assert titles == COMMANDS
    assert manifest["validDomains"] == ["elevate.contoso.com"]
    assert manifest["developer"]["websiteUrl"] == URL
    assert "{{" not in json.dumps(manifest)


def test_icons_have_the_sizes_teams_requires(tmp_path: Path) -> None:
    """colour 192×192; outline 32×32, transparent, and white where it is drawn."""
    with _package(tmp_path) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        color = _png(package.read("color.png"))
        outline = _png(package.read("outline.png"))
    assert color[:2] == (192, 192)
    width, height, color_type, rows = outline
    assert (width, height) == (32, 32)
    assert color_type == 6  # RGBA
    pixels = [p for row in rows for p in row]
    assert any(p[3] == 0 for p in pixels)
    drawn = [p for p in pixels if p[3] > 0]
    assert drawn
    assert all(p[:3] == (255, 255, 255) for p in drawn)


def test_bad_app_id_or_plain_http_url_is_refused() -> None:
    """The app id must be a GUID and the URL https."""
    with pytest.raises(ValueError, match="GUID"):
        render(app_id="not-a-guid", url=URL)
    with pytest.raises(ValueError, match="https"):
        render(app_id=APP_ID, url="http://elevate.contoso.com")


def test_cli_builds_the_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`elevate manifest teams --app-id … --url https://… --out x.zip` writes the package."""
    out = tmp_path / "out" / "elevate-teams.zip"
    assert main(["manifest", "teams", "--app-id", APP_ID, "--url", URL, "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with zipfile.ZipFile(out) as package:
        assert json.loads(package.read("manifest.json"))["bots"][0]["botId"] == APP_ID
