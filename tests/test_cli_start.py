"""`ugc` waiting for its database at start: a database that is not there yet is waited for, a stop
still stops the wait."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import end_process, server_environment

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/ugc"  # nothing listens on port 1: refused at once


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM)])
def test_a_projector_waiting_for_its_database_stops_when_told(
    tmp_path: Path, stop: signal.Signals, status: int
) -> None:
    """`ugc project` runs "until interrupted", the wait for its database included: it ends as
    `ugc migrate` does there (Ctrl-C: 130), not up to 2 minutes later."""
    log_path = tmp_path / "project.log"
    env = {"UGC_VAR_DIR": str(tmp_path), "UGC_DATABASE_URL": UNREACHABLE, "UGC_PROJECTIONS": "external"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ugc.cli", "project"],
            env=server_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Ctrl-C as at a terminal, even where this test runs with SIGINT ignored (a background job).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 30
        while "database not reachable" not in log_path.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        process.send_signal(stop)
        assert process.wait(timeout=10) == status, log_path.read_text()
    finally:
        end_process(process)
