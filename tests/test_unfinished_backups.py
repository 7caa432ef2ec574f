"""A `ugc backup` killed half-way (SIGKILL, a host going down) leaves its hidden, unfinished copy of the
deployment beside the backups (`.<dest>.partial-<hex>`): the next `ugc backup` into that directory
removes it, and leaves alone the one a backup under way is making (it holds a lock on it)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.backends import environment, fresh_database
from tests.servers import run_ugc, server_environment

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

MEDIA_FILES = 3000  # enough that a backup copies for a while


def unfinished(directory: Path) -> list[Path]:
    return sorted(path for path in directory.iterdir() if ".partial-" in path.name)


def test_a_killed_backup_s_copy_is_removed_by_the_next_backup_and_one_under_way_is_not(
    backend: str, tmp_path: Path
) -> None:
    media = tmp_path / "media" / "ab"
    media.mkdir(parents=True)
    for number in range(MEDIA_FILES):
        (media / f"file-{number}").write_bytes(b"m" * 1024)
    backups = tmp_path / "backups"
    backups.mkdir()
    with fresh_database(backend, tmp_path, migrated=True) as url:
        env = environment(backend, url, tmp_path)
        killed = subprocess.Popen(
            [sys.executable, "-m", "ugc.cli", "backup", str(backups / "first")],
            env=server_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not any((path / "media").is_dir() for path in unfinished(backups)):
            assert killed.poll() is None and time.monotonic() < deadline, "the backup never copied the media"
            time.sleep(0.002)
        killed.kill()
        killed.wait(10)
        [left] = unfinished(backups)
        assert not (backups / "first").exists()

        under_way = backups / ".second.partial-0123abcd"  # as a backup running meanwhile holds its own
        under_way.mkdir()
        held = os.open(under_way, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(held, fcntl.LOCK_EX)
            done = run_ugc(env, "backup", str(backups / "third"), timeout=120)
            assert done.returncode == 0, done.stderr
            assert f"removed {left}: a backup that was killed before it finished" in done.stderr
            assert unfinished(backups) == [under_way]
            assert (backups / "third" / "manifest.json").is_file()
        finally:
            os.close(held)
