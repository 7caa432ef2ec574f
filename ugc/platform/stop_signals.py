"""A stop (SIGTERM, SIGINT) that comes while a server process starts ends the start there.

uvicorn installs its handlers for both signals before the application's start (its lifespan), and
they only note that the server is to stop once it serves: nothing looks at that note until the start
is over. A start can wait long, though: for the database (`until_reachable`, up to 2 minutes), for
the migration lock another process holds (as long as it holds it). A deploy's stop then waited for
all of it, projections and leases taken included, or for its SIGKILL. So while a start runs, a stop
signal also raises `StopRequested` in the main thread, as Ctrl-C raises KeyboardInterrupt in any
other command: whatever the start waits on (a sleep, a lock, a query) ends there, and what it has
opened is closed on the way out.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequested(BaseException):
    """A stop signal came during the block of `raised_on_stop`. Not an Exception: no `except Exception`
    on the way takes it for a failure of what it interrupted."""


@contextmanager
def raised_on_stop() -> Iterator[None]:
    """While the block runs, a stop signal is handed to the handler installed before (uvicorn's, so it
    still stops and ends by the signal) and then raises `StopRequested`, once: a second signal during the
    way out only reaches that handler. The block must not await: the signal is raised wherever the main
    thread runs, which must be this block's own code, not the event loop's."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread takes signals (an in-process test client starts apps on another)
        return
    before = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    raised = False

    def stop(number: int, frame: FrameType | None) -> None:
        nonlocal raised
        handler = before[signal.Signals(number)]
        if callable(handler) and handler is not signal.default_int_handler:
            handler(number, frame)
        if not raised:
            raised = True
            raise StopRequested(number)

    for number in STOP_SIGNALS:
        signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
