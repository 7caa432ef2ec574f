"""What `ugc rebuild` shows while it replays: events done of the total, events per second, and
the time left — a bar redrawn in place on a terminal, a plain line every few seconds otherwise
(a log file or CI output gets no carriage returns)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 30
TERMINAL_EVERY = 0.2  # seconds between redraws of the bar
PLAIN_EVERY = 5.0  # seconds between lines when not on a terminal


class RebuildProgress:
    def __init__(self, name: str, total: int, stream: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.total = total
        self.stream = stream
        self.clock = clock
        self.terminal = stream.isatty()
        self.done = 0
        self.started = clock()
        self._shown_at = self.started

    def advance(self, events: int) -> None:
        self.done += events
        now = self.clock()
        if now - self._shown_at >= (TERMINAL_EVERY if self.terminal else PLAIN_EVERY):
            self._shown_at = now
            self._show(now)

    def finish(self) -> None:
        self._show(self.clock(), final=True)

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        total = max(self.total, self.done)
        percent = 100.0 * self.done / total if total else 100.0
        left = (total - self.done) / rate if rate > 0 else 0.0
        return (
            f"{self.name}: {self.done:,}/{total:,} events ({percent:.0f}%), {rate:,.0f} events/s, "
            f"{'ETA ' + _duration(left) if self.done < total else 'took ' + _duration(elapsed)}"
        )

    def _show(self, now: float, *, final: bool = False) -> None:
        text = self.line(now)
        if self.terminal:
            total = max(self.total, self.done)
            filled = BAR_WIDTH if not total else int(BAR_WIDTH * self.done / total)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {text}" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
