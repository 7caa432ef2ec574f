"""What `ugc rebuild` shows while it replays: events done of the total, events per second, and
the time left — a bar redrawn in place on a terminal (rich's progress display), a plain line every
few seconds otherwise (a log file or CI output gets no carriage returns or colours). `ugc backup`
counts files the same way."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

PLAIN_EVERY = 5.0  # seconds between lines when not on a terminal


class PerSecond(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}/s" if speed is not None else f"? {self.unit}/s")


class RebuildProgress:
    def __init__(
        self,
        name: str,
        total: int,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "events",
    ) -> None:
        self.name = name
        self.unit = unit
        self.total = total
        self.stream = stream
        self.clock = clock
        self.terminal = stream.isatty()
        self.done = 0
        self.started = clock()
        self._shown_at = self.started
        self._bar: Progress | None = None
        if self.terminal:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(unit),
                PerSecond(unit),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=Console(file=stream, force_terminal=True),
            )
            self._task = self._bar.add_task(name, total=total)
            self._bar.start()

    def advance(self, events: int) -> None:
        self.done += events
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, total=max(self.total, self.done))
            return
        now = self.clock()
        if now - self._shown_at >= PLAIN_EVERY:
            self._shown_at = now
            self._line(now)

    def finish(self) -> None:
        """The last figures: the bar completed on a terminal, a last line otherwise."""
        if self._bar is not None:
            self.total = self.done = max(self.total, self.done)
            self._bar.update(self._task, completed=self.done, total=self.total)
        self.close()
        if not self.terminal:
            self._line(self.clock())

    def close(self) -> None:
        """Stop redrawing the bar (also when the rebuild failed or was interrupted)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        total = max(self.total, self.done)
        percent = 100.0 * self.done / total if total else 100.0
        left = (total - self.done) / rate if rate > 0 else 0.0
        return (
            f"{self.name}: {self.done:,}/{total:,} {self.unit} ({percent:.0f}%), {rate:,.0f} {self.unit}/s, "
            f"{'ETA ' + _duration(left) if self.done < total else 'took ' + _duration(elapsed)}"
        )

    def _line(self, now: float) -> None:
        self.stream.write(self.line(now) + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
