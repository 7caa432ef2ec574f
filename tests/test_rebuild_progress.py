"""`ugc rebuild` shows its progress: a bar on a terminal, plain lines in a log."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

from projections.rebuild_progress import RebuildProgress
from tests.backends import environment
from tests.conftest import Api
from ugc.config import Settings


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_every_few_seconds_when_not_on_a_terminal() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = RebuildProgress("orders", 1000, out, clock=lambda: now[0])
    for _ in range(10):
        now[0] += 1.0
        progress.advance(50)
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "orders: 250/1,000 events (25%), 50 events/s, ETA 0:15"
    assert lines[-1] == "orders: 500/1,000 events (50%), 50 events/s, ETA 0:10"
    assert "\r" not in out.getvalue() and len(lines) == 3


def test_a_bar_redrawn_in_place_on_a_terminal() -> None:
    out = Terminal()
    progress = RebuildProgress("orders", 100, out)
    for _ in range(4):
        progress.advance(25)
    progress.finish()
    text = out.getvalue()
    last = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).rstrip().split("\r")[-1]
    assert "orders" in last and "100/100 events" in last and "events/s" in last and "ETA" in last, repr(last)
    assert "\x1b[" in text  # drawn with a terminal's escape codes, not as plain lines


def test_ugc_rebuild_reports_progress_and_ends_with_every_event(api: Api, settings: Settings, backend: str) -> None:
    api.user()
    env = os.environ | environment(backend, settings.database_url, settings.var_dir)
    done = subprocess.run(
        [sys.executable, "-m", "ugc.cli", "rebuild", "accounts"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "rebuilt accounts (switched at accounts " in done.stdout
    last = [line for line in done.stderr.splitlines() if line.startswith("accounts: ")][-1]
    assert "(100%)" in last and "took" in last, done.stderr
