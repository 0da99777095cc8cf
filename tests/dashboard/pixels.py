"""Enough of PNG to read a browser's screenshot (8-bit RGB or RGBA, not interlaced): the screenshot
test measures what is drawn without an imaging library."""

from __future__ import annotations

import struct
import zlib
from collections import Counter

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def decode(png: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(width, height, RGB pixels row by row)."""
    assert png[:8] == SIGNATURE, "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            idat += data
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    pixels = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            add = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            line[i] = (line[i] + add) & 0xFF
        pixels += [(line[i], line[i + 1], line[i + 2]) for i in range(0, stride, bpp)]
        prev = line
    return width, height, pixels


def palette(pixels: list[tuple[int, int, int]], bits: int = 4) -> Counter[tuple[int, int, int]]:
    """Colours quantized to ``bits`` per channel, with how often each occurs."""
    shift = 8 - bits
    return Counter((r >> shift, g >> shift, b >> shift) for r, g, b in pixels)


def colourful(pixels: list[tuple[int, int, int]], spread: int = 80) -> float:
    """Share of pixels that are clearly coloured (badges, chart lines, bars), not greys and navies."""
    return sum(1 for p in pixels if max(p) - min(p) >= spread) / max(1, len(pixels))
