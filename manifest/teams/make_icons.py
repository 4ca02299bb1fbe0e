"""Draw the Teams app icons (``color.png`` 192×192, ``outline.png`` 32×32) with no dependencies.

Run ``python manifest/teams/make_icons.py`` to regenerate them; the output is deterministic.
The mark is an upward arrow ("elevate"): white on the accent colour for the colour icon, a
white outline on a transparent background for the outline icon (Teams' rules for both).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ACCENT = (0x2B, 0x57, 0x97)
WHITE = (0xFF, 0xFF, 0xFF)
SAMPLES = 4  # supersampling per axis, for smooth edges

# The arrow, in unit coordinates (x right, y down).
ARROW = [
    (0.50, 0.16),
    (0.82, 0.50),
    (0.63, 0.50),
    (0.63, 0.84),
    (0.37, 0.84),
    (0.37, 0.50),
    (0.18, 0.50),
]
Point = tuple[float, float]


def inside(point: Point, polygon: list[Point]) -> bool:
    """Even-odd rule point-in-polygon test."""
    x, y = point
    result = False
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            result = not result
    return result


def edge_distance(point: Point, polygon: list[Point]) -> float:
    """Distance from ``point`` to the polygon's outline."""
    px, py = point
    best = float("inf")
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        dx, dy = x2 - x1, y2 - y1
        t = max(0.0, min(1.0, ((px - x1) * dx + (py - y1) * dy) / (dx * dx + dy * dy)))
        best = min(best, ((px - x1 - t * dx) ** 2 + (py - y1 - t * dy) ** 2) ** 0.5)
    return best


def coverage(size: int, hit: Callable[[Point], bool]) -> list[list[float]]:
    """The fraction of each pixel that ``hit`` covers (supersampled)."""
    rows = []
    for y in range(size):
        row = []
        for x in range(size):
            hits = sum(
                hit(((x + (i + 0.5) / SAMPLES) / size, (y + (j + 0.5) / SAMPLES) / size))
                for i in range(SAMPLES)
                for j in range(SAMPLES)
            )
            row.append(hits / SAMPLES**2)
        rows.append(row)
    return rows


def png(size: int, pixels: list[list[tuple[int, int, int, int]]]) -> bytes:
    """An 8-bit RGBA PNG (filter 0 on every row)."""
    raw = b"".join(b"\x00" + b"".join(bytes(p) for p in row) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def color_icon(size: int = 192) -> bytes:
    """White arrow on the accent colour, full bleed."""
    cover = coverage(size, lambda p: inside(p, ARROW))

    def blend(c: float) -> tuple[int, int, int, int]:
        r, g, b = (round(a + (w - a) * c) for a, w in zip(ACCENT, WHITE, strict=True))
        return (r, g, b, 255)

    return png(size, [[blend(c) for c in row] for row in cover])


def outline_icon(size: int = 32, stroke: float = 2.0) -> bytes:
    """A white arrow outline on a transparent background."""
    width = stroke / size
    cover = coverage(size, lambda p: inside(p, ARROW) and edge_distance(p, ARROW) <= width)
    pixels = [[(*WHITE, round(255 * c)) for c in row] for row in cover]
    return png(size, pixels)


def main() -> None:
    """Write ``color.png`` and ``outline.png`` next to this script."""
    (HERE / "color.png").write_bytes(color_icon())
    (HERE / "outline.png").write_bytes(outline_icon())


if __name__ == "__main__":
    main()
