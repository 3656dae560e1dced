#!/usr/bin/env python3
"""Generates the PWA icons of espace-ps with the Python standard library only.

A blue (#000091) rounded square with a white medical cross:

  icon-192.png, icon-512.png   purpose "any": rounded square, transparent corners
  maskable-512.png             purpose "maskable": full-bleed blue, the cross
                               well inside the safe zone (a centred circle of
                               radius 40 % of the size)
  apple-touch-icon.png         180 px, opaque full-bleed (iOS fills
                               transparency with black and rounds corners)

Run from anywhere: python3 make-icons.py  (writes next to this script).
The PNGs are committed; rerun only when the design changes.
"""

import math
import os
import struct
import zlib

BLUE = (0x00, 0x00, 0x91)
WHITE = (0xFF, 0xFF, 0xFF)
SUPERSAMPLE = 4  # 4x4 samples per pixel for anti-aliased edges

# Cross geometry, as fractions of the icon size, centred.
CROSS_HALF_LENGTH = 0.30  # the cross spans 60 % of the icon
CROSS_HALF_WIDTH = 0.10  # each arm is 20 % wide
CROSS_CORNER = 0.025  # small rounding of the arm ends
SQUARE_RADIUS = 0.18  # corner radius of the rounded square ("any" icons)


def in_rounded_rect(x, y, x0, y0, x1, y1, r):
    """True when point (x, y) lies in the rectangle with rounded corners."""
    if x < x0 or x > x1 or y < y0 or y > y1:
        return False
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def in_cross(x, y):
    """Point in unit coordinates (0..1), cross centred at (0.5, 0.5)."""
    a, b, r = CROSS_HALF_LENGTH, CROSS_HALF_WIDTH, CROSS_CORNER
    return in_rounded_rect(x, y, 0.5 - a, 0.5 - b, 0.5 + a, 0.5 + b, r) or in_rounded_rect(
        x, y, 0.5 - b, 0.5 - a, 0.5 + b, 0.5 + a, r
    )


def render(size, full_bleed):
    """Returns RGBA rows for one icon."""
    n = SUPERSAMPLE
    rows = []
    for py in range(size):
        row = bytearray()
        for px in range(size):
            bg = 0  # samples inside the blue shape
            fg = 0  # samples inside the white cross
            for sy in range(n):
                y = (py + (sy + 0.5) / n) / size
                for sx in range(n):
                    x = (px + (sx + 0.5) / n) / size
                    inside = full_bleed or in_rounded_rect(x, y, 0, 0, 1, 1, SQUARE_RADIUS)
                    if inside:
                        bg += 1
                        if in_cross(x, y):
                            fg += 1
            total = n * n
            if bg == 0:
                row += bytes((0, 0, 0, 0))
                continue
            # Colour of the covered part, alpha from the coverage.
            t = fg / bg
            rgb = [round(BLUE[i] * (1 - t) + WHITE[i] * t) for i in range(3)]
            alpha = round(255 * bg / total)
            row += bytes(rgb + [alpha])
        rows.append(bytes(row))
    return rows


def write_png(path, size, rows):
    """Writes 8-bit RGBA, no interlace, filter 0 on every row."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + r for r in rows)
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9))
    png += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def check_safe_zone():
    """The maskable icon's cross must fit in the circle of radius 0.4."""
    a, b = CROSS_HALF_LENGTH, CROSS_HALF_WIDTH
    far = math.hypot(a, b)
    assert far <= 0.40, f"cross corner at {far:.3f} leaves the maskable safe zone"


def main():
    check_safe_zone()
    here = os.path.dirname(os.path.abspath(__file__))
    for name, size, full_bleed in (
        ("icon-192.png", 192, False),
        ("icon-512.png", 512, False),
        ("maskable-512.png", 512, True),
        ("apple-touch-icon.png", 180, True),
    ):
        write_png(os.path.join(here, name), size, render(size, full_bleed))
        print(f"wrote {name} ({size}x{size})")


if __name__ == "__main__":
    main()
