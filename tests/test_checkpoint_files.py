"""A checkpoint's file is written whole through a draft; the drafts a crash leaves behind do not pile up."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from ugc.platform.checkpoints import STALE_DRAFT, latest_path, read_checkpoint, write_checkpoint

KEY = "test-audit-key-that-is-long-enough-1357924680"


def aged(path: Path, seconds: float) -> Path:
    path.write_text('{"format": "ugc-audit-checkpoint/1", "he')  # cut off mid-write
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_the_drafts_a_crash_left_go_at_the_next_checkpoint_and_a_live_one_stays(tmp_path: Path) -> None:
    crashed = aged(tmp_path / ".checkpoint-20261205T100000000000Z.json.partial", STALE_DRAFT + 5)
    crashed_before = aged(tmp_path / "checkpoint-20261204T100000000000Z.partial", STALE_DRAFT + 5)  # older naming
    live = aged(tmp_path / ".checkpoint-20261205T100001000000Z.json.partial", 1)  # another writer's, being written
    path = write_checkpoint(tmp_path, KEY, {"orders": None}, datetime.now(UTC))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, live.name])
    assert not crashed.exists() and not crashed_before.exists()
    assert latest_path(tmp_path) == path and read_checkpoint(path, (KEY,)).signed
