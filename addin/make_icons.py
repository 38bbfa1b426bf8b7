"""Draws the add-in's icons into addin/assets/ — run it again only to change the artwork.

Why a script and not a drawing: Outlook asks for the same mark at many sizes (ribbon buttons at
16-80 px, mobile buttons at 25/32/48 px times 1-3x, the store's 64/128 px icons, the unified
manifest's 192 px colour and 32 px outline icons), and each size drawn from the same geometry stays
sharp and consistent. Pure Python (zlib + struct): no imaging library becomes a dependency just
for icons. The output is byte-for-byte deterministic, so the committed PNGs can be checked against
it (`python addin/make_icons.py --check`).
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
import zlib
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"

# Full-colour icon sizes (px): ribbon buttons (16, 20, 24, 32, 40, 48, 64, 80), mobile buttons
# (25, 32 and 48 at scales 1, 2 and 3: 25, 50, 75, 32, 64, 96, 48, 96, 144), IconUrl (64),
# HighResolutionIconUrl (128) and the unified manifest's colour icon (192).
COLOR_SIZES = (16, 20, 24, 25, 32, 40, 48, 50, 64, 75, 80, 96, 128, 144, 192)
OUTLINE_SIZE = 32  # the unified manifest's outline icon: white on transparent, 32 x 32

BRAND = (0x0F, 0x6C, 0xBD)  # Fluent's default brand blue, so the button sits well in Outlook
WHITE = (0xFF, 0xFF, 0xFF)
SUPERSAMPLE = 4  # 4 x 4 samples per pixel: smooth edges without an imaging library

Point = tuple[float, float]


def _segment_distance(p: Point, a: Point, b: Point) -> float:
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def _glyph_distance(p: Point) -> float:
    """Distance from p to the centre line of a rounded "R" drawn in the unit square."""
    x, y = p
    segments = (
        ((0.36, 0.26), (0.36, 0.76)),  # stem
        ((0.36, 0.26), (0.50, 0.26)),  # top of the bowl
        ((0.36, 0.51), (0.50, 0.51)),  # bottom of the bowl
        ((0.47, 0.51), (0.64, 0.76)),  # leg
    )
    best = min(_segment_distance(p, a, b) for a, b in segments)
    cx, cy, radius = 0.50, 0.385, 0.125  # the bowl's right half
    if x >= cx:
        best = min(best, abs(math.hypot(x - cx, y - cy) - radius))
    return best


def _rounded_square_distance(p: Point, inset: float, radius: float) -> float:
    """Signed distance to a rounded square inset from the unit square's edges (< 0 inside)."""
    half = 0.5 - inset
    qx = abs(p[0] - 0.5) - (half - radius)
    qy = abs(p[1] - 0.5) - (half - radius)
    outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
    return outside + min(max(qx, qy), 0.0) - radius


STROKE = 0.11


def _color_sample(p: Point) -> tuple[float, float]:
    """(background coverage, glyph coverage) at one sample point of the colour icon."""
    inside = _rounded_square_distance(p, 0.0, 0.2) <= 0.0
    glyph = _glyph_distance(p) <= STROKE / 2
    return (1.0 if inside else 0.0), (1.0 if inside and glyph else 0.0)


def _outline_sample(p: Point) -> tuple[float, float]:
    """The outline icon: a white frame and the same glyph, on transparent."""
    frame = abs(_rounded_square_distance(p, 0.04, 0.18)) <= 0.035
    glyph = _glyph_distance(p) <= STROKE / 2
    return (1.0 if frame or glyph else 0.0), 0.0


def _render(size: int, sample: Callable[[Point], tuple[float, float]], outline: bool) -> bytes:
    rows = bytearray()
    step = 1.0 / (size * SUPERSAMPLE)
    offsets = [(i + 0.5) * step for i in range(SUPERSAMPLE)]
    count = SUPERSAMPLE * SUPERSAMPLE
    for row in range(size):
        rows.append(0)  # PNG filter type 0 (None) for every scanline
        for col in range(size):
            cover = mark = 0.0
            for oy in offsets:
                for ox in offsets:
                    c, m = sample((col / size + ox, row / size + oy))
                    cover += c
                    mark += m
            cover /= count
            mark /= count
            share = 1.0 if outline else (mark / cover if cover else 0.0)
            rgb = [round(b + (w - b) * share) for b, w in zip(BRAND, WHITE, strict=True)]
            rows.extend((*rgb, round(cover * 255)))
    return _png(size, size, bytes(rows))


def _png(width: int, height: int, raw: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def icons(only: Collection[str] | None = None) -> Iterator[tuple[str, bytes]]:
    """Every icon file (or those named in `only`): (name, PNG bytes)."""
    for size in COLOR_SIZES:
        name = f"icon-{size}.png"
        if only is None or name in only:
            yield name, _render(size, _color_sample, outline=False)
    name = f"outline-{OUTLINE_SIZE}.png"
    if only is None or name in only:
        yield name, _render(OUTLINE_SIZE, _outline_sample, outline=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if assets/ is out of date")
    args = parser.parse_args(argv)
    stale = []
    ASSETS.mkdir(exist_ok=True)
    for name, data in icons():
        path = ASSETS / name
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(name)
        else:
            path.write_bytes(data)
    if stale:
        sys.stderr.write(f"out of date: {', '.join(stale)}; run python addin/make_icons.py\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
