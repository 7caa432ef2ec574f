"""/readyz's checks under a deadline: an answer within READY_DEADLINE whatever the database does.

Orchestrators' probes give up after about a second. A query of the checks can wait far longer: for a
lock on an event log (each statement up to STORE_LOCK_TIMEOUT: 5-15 s were measured with
`orders_events` locked), for a pooled connection, for a server that does not answer. So a probe
waits for the checks at most READY_DEADLINE and then names the check still under way as the one
that could not complete (503). The checks run as one task that probes share: a probe that comes
while one runs waits on that one rather than start another, so probes of a stuck database hold one
thread and one connection between them, not one each. That thread and connection are the checks'
own (`Services.check`, `Database.probing`): a busy process is not an unready one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

READY_DEADLINE = 0.8  # seconds; room for the answer to travel within a probe's one-second timeout


@dataclass
class Report:
    """What the checks found so far; `underway` is the check running now (None once all are done)."""

    checks: dict[str, str] = field(default_factory=dict)
    failing: list[str] = field(default_factory=list)
    underway: str | None = None

    def begin(self, check: str) -> None:
        self.underway = check


class Readiness:
    """The one run of the checks that probes share (its state lives on the event loop)."""

    def __init__(self, deadline: float = READY_DEADLINE) -> None:
        self.deadline = deadline
        self._task: asyncio.Task[None] | None = None
        self._report = Report()

    async def report(self, run_checks: Callable[[Report], Coroutine[Any, Any, None]]) -> Report:
        """The checks' findings: those of the run under way, or of a new one; when they are not all in
        within the deadline, the one under way is reported failing."""
        if self._task is None or self._task.done():
            self._report = Report()
            self._task = asyncio.get_running_loop().create_task(run_checks(self._report))
        report = self._report
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.deadline)
        except TimeoutError:
            late = Report(dict(report.checks), list(report.failing))
            underway = report.underway or "checks"
            late.checks[underway] = f"no answer within {self.deadline:g} s"
            late.failing.append(underway)
            return late
        return report
