"""Draws the cards' source icon (services/cds_hooks/static/icon.png): 100x100, as CDS Hooks asks
of Source.icon. Pure Python (zlib), made the same way everywhere: `python -m tools.make_icon`."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

SIZE = 100
OUT = Path(__file__).parents[1] / "services" / "cds_hooks" / "static" / "icon.png"
BLUE, WHITE = (36, 50, 74, 255), (255, 255, 255, 255)
CLEAR = (0, 0, 0, 0)


def pixel(x: int, y: int) -> tuple[int, int, int, int]:
    # a rounded square (radius 18) with the letters "OI": a ring and a bar
    r = 18
    cx, cy = min(max(x, r), SIZE - 1 - r), min(max(y, r), SIZE - 1 - r)
    if (x - cx) ** 2 + (y - cy) ** 2 > r * r:
        return CLEAR
    ring = (x - 38) ** 2 + (y - 50) ** 2
    if 17**2 <= ring <= 26**2:
        return WHITE
    if 66 <= x <= 76 and 24 <= y <= 76:
        return WHITE
    return BLUE


def png() -> bytes:
    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(SIZE)) for y in range(SIZE))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    OUT.write_bytes(png())
    print(f"wrote {OUT}")
