"""Rows as an aligned text table (what the admin CLI prints unless ``--json`` is given)."""

from __future__ import annotations

from collections.abc import Sequence

COLUMN_GAP = "  "


def render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The header and the rows, each column as wide as its widest cell (the last unpadded)."""
    widths = [len(name) for name in header]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append(COLUMN_GAP.join(cells).rstrip())
    return "\n".join(lines)


def text(value: bytes | str | int | float) -> str:
    """A reply value as printable text (bytes that are not UTF-8 are shown escaped)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)
