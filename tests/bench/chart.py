"""A PNG bar chart of throughput and p99 per path, with no plotting dependency.

Two panels of horizontal bars (req/s, p99 ms), labelled with a built-in 5x7 bitmap font and
written with zlib; enough for a results folder, and nothing to install.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

# 5x7 glyphs, one string of 7 rows per character, each row 5 bits ("#" on).
_GLYPHS = {
    "0": "01110100011001110101110011000101110",
    "1": "00100011000010000100001000010001110",
    "2": "01110100010000100010001000100011111",
    "3": "11111000100010000010000011000101110",
    "4": "00010001100101010010111110001000010",
    "5": "11111100001111000001000011000101110",
    "6": "00110010001000011110100011000101110",
    "7": "11111000010001000100010000100001000",
    "8": "01110100011000101110100011000101110",
    "9": "01110100011000101111000010001001100",
    "A": "01110100011000111111100011000110001",
    "B": "11110100011000111110100011000111110",
    "C": "01110100011000010000100001000101110",
    "D": "11100100101000110001100011001011100",
    "E": "11111100001000011110100001000011111",
    "F": "11111100001000011110100001000010000",
    "G": "01110100011000010111100011000101111",
    "H": "10001100011000111111100011000110001",
    "I": "01110001000010000100001000010001110",
    "J": "00111000100001000010000101001001100",
    "K": "10001100101010011000101001001010001",
    "L": "10000100001000010000100001000011111",
    "M": "10001110111010110101100011000110001",
    "N": "10001100011100110101100111000110001",
    "O": "01110100011000110001100011000101110",
    "P": "11110100011000111110100001000010000",
    "Q": "01110100011000110001101011001001101",
    "R": "11110100011000111110101001001010001",
    "S": "01111100001000001110000010000111110",
    "T": "11111001000010000100001000010000100",
    "U": "10001100011000110001100011000101110",
    "V": "10001100011000110001100010101000100",
    "W": "10001100011000110101101011010101010",
    "X": "10001100010101000100010101000110001",
    "Y": "10001100011000101010001000010000100",
    "Z": "11111000010001000100010001000011111",
    " ": "0" * 35,
    ".": "00000000000000000000000000110001100",
    "/": "00000000010001000100010001000000000",
    "-": "00000000000000011111000000000000000",
    "(": "00010001000100001000010000010000010",
    ")": "01000001000001000010000100010001000",
    ":": "00000011000110000000011000110000000",
    ",": "00000000000000000000001100010001000",
}
_BG, _FG, _GRID = (255, 255, 255), (40, 40, 40), (225, 225, 225)
_COLOURS = {"rps": (66, 133, 244), "p99": (219, 68, 55)}
_SCALE = 2  # each font pixel is 2x2


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(_BG) * width * height)

    def rect(self, x: int, y: int, w: int, h: int, colour: tuple[int, int, int]) -> None:
        for row in range(max(0, y), min(self.height, y + h)):
            start = (row * self.width + max(0, x)) * 3
            end = (row * self.width + min(self.width, x + w)) * 3
            if end > start:
                self.pixels[start:end] = bytes(colour) * ((end - start) // 3)

    def text(self, x: int, y: int, text: str, colour: tuple[int, int, int] = _FG) -> None:
        for index, char in enumerate(text.upper()):
            glyph = _GLYPHS.get(char, _GLYPHS[" "])
            for bit, on in enumerate(glyph):
                if on == "1":
                    gx, gy = bit % 5, bit // 5
                    self.rect(
                        x + (index * 6 + gx) * _SCALE, y + gy * _SCALE, _SCALE, _SCALE, colour
                    )

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[row * self.width * 3 : (row + 1) * self.width * 3])
            for row in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (
                struct.pack(">I", len(data))
                + kind
                + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
            )

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def write(path: Path, results: dict[str, Any]) -> None:
    rows = [(p["title"], p["rps"] or 0.0, p["p99_ms"] or 0.0) for p in results["paths"].values()]
    label_width = max(len(title) for title, _, _ in rows) * 6 * _SCALE + 20
    bar_width, row_height, top = 420, 22, 40
    width = label_width + 2 * (bar_width + 110)
    height = top + row_height * len(rows) + 20
    canvas = Canvas(width, height)
    panels = (
        ("REQ/S (CLOSED LOOP)", 1, "rps", "{:,.0f}"),
        ("P99 MS AT HALF LOAD", 2, "p99", "{:.1f}"),
    )
    for heading, column, key, fmt in panels:
        x0 = label_width + (column - 1) * (bar_width + 110)
        canvas.text(x0, 10, heading)
        peak = max((row[column] for row in rows), default=0.0) or 1.0
        for index, row in enumerate(rows):
            y = top + index * row_height
            canvas.rect(x0, y + row_height - 2, bar_width, 1, _GRID)
            length = int(bar_width * row[column] / peak)
            canvas.rect(x0, y + 2, length, row_height - 6, _COLOURS[key])
            canvas.text(x0 + length + 6, y + 4, fmt.format(row[column]))
    for index, (title, _, _) in enumerate(rows):
        canvas.text(10, top + index * row_height + 4, title)
    path.write_bytes(canvas.png())
