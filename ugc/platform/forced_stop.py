"""A second stop signal forces the stop of `ugc serve` and `ugc project`: operators and supervisors send
SIGTERM twice, or press Ctrl-C twice, to mean "now".

A server's first signal drains its connections for up to UGC_STOP_GRACE (`ugc/cli/serving.py`), then
stops its projections and waits for the commands under way; a projector's stops its projections. uvicorn
forced on a SIGINT after the first signal but never on a second SIGTERM, and its forced exit skipped the
lifespan's shutdown, whose cancellation was logged as a traceback at ERROR. Here a forcing signal ends
the process at once, wherever its stop waits, with one warning line: the requests under way are cut
(their connections close), and the leases lapse within seconds for another process to take them.

A SIGINT and then a SIGTERM do not force: that is what one Ctrl-C does to each worker of `--workers N`
(the terminal's SIGINT, then its supervisor's SIGTERM, `ugc/platform/workers.py`).

A hangup (SIGHUP: the terminal of `make run` closed) stops a server or a projector as SIGTERM does, and
counts as the terminal's SIGINT does. Left to its default action it ended the process at once: requests
under way cut, the leases left to lapse. A supervisor of `--workers N` keeps uvicorn's meaning of its
own SIGHUP, a replacement of its workers, which it stops with SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

import uvicorn

log = logging.getLogger(__name__)


# The stop signals of a server or projector process; those a whole process group receives at once
# (a terminal's Ctrl-C, its hangup) come with a supervisor's SIGTERM, which they therefore do not force.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GROUP_SIGNALS = (signal.SIGINT, signal.SIGHUP)


def forcing(received: list[int], number: int) -> bool:
    """Whether signal `number`, after those `received` in this stop, forces it."""
    return bool(received) and (number in GROUP_SIGNALS or signal.SIGTERM in received)


def exit_forced(what: str) -> None:
    """Log the forced stop and end this process now, whatever its threads still wait on, with status 0
    as a stop that goes as planned: it was asked for, it is no failure (a supervisor that restarts
    failed services must not restart it)."""
    log.warning("forced stop: %s", what)
    logging.shutdown()
    os._exit(0)


class ServerStop:
    """A server process's handler of the stop signals once it serves, in place of uvicorn's: the first
    goes to uvicorn (the drain; a hangup as SIGTERM, which uvicorn does not handle), a forcing one
    (`forcing`) ends the process."""

    def __init__(self, server: uvicorn.Server) -> None:
        self.server = server
        self.received: list[int] = []

    @classmethod
    def install(cls) -> None:
        """Take the stop signals over from uvicorn's server, where it has them: a server process's main
        thread, not an in-process test client's, which starts apps on another thread."""
        if threading.current_thread() is not threading.main_thread():
            return
        server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
        if isinstance(server, uvicorn.Server):
            handler = cls(server)
            for number in STOP_SIGNALS:
                signal.signal(number, handler)

    def __call__(self, number: int, frame: FrameType | None) -> None:
        if forcing(self.received, number):
            exit_forced(f"{len(self.server.server_state.tasks)} request(s) under way cut")
        self.received.append(number)
        # uvicorn raises the signals it handled again once it has stopped, with their handlers from
        # before it served: a hangup goes on as the SIGTERM whose end `ugc` knows (ugc/cli/__init__.py).
        self.server.handle_exit(signal.SIGTERM if number == signal.SIGHUP else number, frame)


class ProjectorStop:
    """`ugc project`'s handler of the stop signals: the first sets `stop` (the runner stops, gives its
    leases up and closes what it holds), a forcing one ends the process."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.received: list[int] = []

    def __call__(self, number: int, frame: FrameType | None) -> None:
        if forcing(self.received, number):
            exit_forced("the projections' batches under way cut, their leases left to lapse")
        self.received.append(number)
        self.stop.set()
