"""Progress of a long import: a bar with rate and ETA on a terminal, plain lines otherwise.

A terminal gets one line redrawn in place (``\\r``) at most every ``BAR_INTERVAL_S``; a pipe or
a log file gets a whole line every ``PLAIN_INTERVAL_S`` (no control characters in logs). The
clock is passed in so that the arithmetic can be tested without waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TextIO

BAR_WIDTH: Final = 30
BAR_INTERVAL_S: Final = 0.2
PLAIN_INTERVAL_S: Final = 5.0


def duration(seconds: float) -> str:
    """``0:07`` or ``1:02:03``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


class Progress:
    """Reports how far an import is through its input (``total_bytes`` None: unknown size)."""

    def __init__(
        self,
        stream: TextIO,
        total_bytes: int | None,
        clock: Callable[[], float],
        is_tty: bool,
        what: str = "lines",
    ) -> None:
        self._stream = stream
        self._total_bytes = total_bytes
        self._clock = clock
        self._is_tty = is_tty
        self._what = what
        self._started_s = clock()
        self._shown_s = self._started_s
        self._drawn = False

    def update(self, done_bytes: int, done_count: int, force: bool = False) -> None:
        now_s = self._clock()
        interval_s = BAR_INTERVAL_S if self._is_tty else PLAIN_INTERVAL_S
        if not force and now_s - self._shown_s < interval_s:
            return
        self._shown_s = now_s
        line = self.line(done_bytes, done_count, now_s - self._started_s)
        if self._is_tty:
            self._stream.write("\r" + line + "\x1b[K")
            self._drawn = True
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def line(self, done_bytes: int, done_count: int, elapsed_s: float) -> str:
        """The progress as text: percent, count, rate and ETA (when the size is known)."""
        rate = done_count / elapsed_s if elapsed_s > 0 else 0.0
        parts = [f"{done_count:,} {self._what}", f"{rate:,.0f} {self._what}/s"]
        if self._total_bytes:
            fraction = min(1.0, done_bytes / self._total_bytes)
            filled = round(fraction * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            eta_s = elapsed_s * (1 - fraction) / fraction if fraction > 0 else 0.0
            prefix = f"[{bar}] {fraction:4.0%}" if self._is_tty else f"{fraction:.0%}"
            parts = [prefix, *parts, f"ETA {duration(eta_s)}"]
        return "  ".join(parts)

    def close(self) -> None:
        """Ends the bar's line so that what follows starts on a fresh one."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
