"""uvicorn's supervisor of `ugc serve --workers N`, but a stop closes its listening socket first.

Each worker closes its copy of the listening socket as it begins to drain its connections, but the
supervisor kept its own until every worker had ended, up to GRACEFUL_SHUTDOWN (`ugc/cli/serving.py`)
later: the port went on listening, the kernel completed new connections into the backlog, nobody
accepted them, and they were reset at the end (a proxy answered 502 after waiting that long). A port
that no longer listens refuses a connection at once, and a proxy tries its next upstream, as with
one worker, whose server closes the socket itself.
"""

from __future__ import annotations

from uvicorn.supervisors import Multiprocess


class Workers(Multiprocess):
    def terminate_all(self) -> None:
        """Called once, when the supervisor stops (SIGTERM, SIGINT): stop listening, then stop the workers."""
        for listening in self.sockets:
            listening.close()
        super().terminate_all()
