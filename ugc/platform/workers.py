"""uvicorn's supervisor of `ugc serve --workers N`, but a stop closes its listening socket first, and a
second stop signal reaches the workers.

Each worker closes its copy of the listening socket as it begins to drain its connections, but the
supervisor kept its own until every worker had ended, up to UGC_STOP_GRACE (`ugc/cli/serving.py`)
later: the port went on listening, the kernel completed new connections into the backlog, nobody
accepted them, and they were reset at the end (a proxy answered 502 after waiting that long). A port
that no longer listens refuses a connection at once, and a proxy tries its next upstream, as with
one worker, whose server closes the socket itself.

While the workers drain, uvicorn's supervisor only queued the signals it received: a second SIGTERM
(a supervisor's "now": Docker, systemd), which only the supervisor receives, never reached them. It
is passed on to them now, as is a second stop signal that came with the first (uvicorn handles the
signals queued every 0.5 s, all at once: a second SIGTERM 0.1 s after the first went unseen).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from uvicorn.supervisors import Multiprocess

from ugc.platform import metrics_files

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POLL = 0.1  # seconds between two looks at the workers and the signals while they stop


class Workers(Multiprocess):
    stops = 0  # stop signals (SIGTERM, SIGINT) handled so far
    _metrics_of: set[int] = set()  # the workers whose metrics files were left in place last

    def handle_term(self) -> None:
        self.stops += 1
        super().handle_term()

    def handle_int(self) -> None:
        self.stops += 1
        super().handle_int()

    def keep_subprocess_alive(self) -> None:
        """Replace the workers that died or hung, then fold the metrics files of those that ended
        (replaced here, or at a SIGHUP just before): `ugc/platform/metrics_files.py`."""
        super().keep_subprocess_alive()
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        alive = {process.pid for process in self.processes if process.pid is not None}
        if directory and alive != self._metrics_of:
            metrics_files.retire(Path(directory), alive | {os.getpid()})
            self._metrics_of = alive

    def terminate_all(self) -> None:
        """Called once, when the supervisor stops (SIGTERM, SIGINT): stop listening, then stop the workers."""
        for listening in self.sockets:
            listening.close()
        super().terminate_all()

    def join_all(self) -> None:
        """Wait for the workers to end; a second stop signal, before or meanwhile, is passed on to each as a
        second SIGTERM, which ends it at once (`ugc/platform/forced_stop.py`)."""
        forwarded = False
        for process in self.processes:
            while process.exitcode is None:
                process.process.join(POLL)
                if not forwarded and self.stops + sum(n in STOP_SIGNALS for n in self.signal_queue) > 1:
                    forwarded = True
                    for running in self.processes:
                        if running.exitcode is None and running.pid is not None:
                            with contextlib.suppress(ProcessLookupError):  # it has ended meanwhile
                                os.kill(running.pid, signal.SIGTERM)
            process.join()  # ended: logs that it was waited for
