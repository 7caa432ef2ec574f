"""`make run`'s bootstrap, the first thing a fresh clone meets: the venv and the Python it is made with.

Run where a Python older than the project's 3.11 is on PATH (python3.10 down to python3.8), as on
Ubuntu 22.04, whose python3 is 3.10; skipped elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def older_python() -> str | None:
    """A working interpreter on PATH older than the project needs, if there is one."""
    for name in ("python3.10", "python3.9", "python3.8"):
        found = shutil.which(name)
        if found is None:
            continue
        probe = subprocess.run([found, "-c", "import sys; sys.exit(sys.version_info >= (3, 11))"], capture_output=True)
        if probe.returncode == 0:
            return found
    return None


OLDER = older_python()
pytestmark = pytest.mark.skipif(
    OLDER is None or shutil.which("make") is None, reason="needs make and a Python older than 3.11 on PATH"
)


def make(clone: Path, python: str) -> subprocess.CompletedProcess[str]:
    """The venv's stamp made with `python`; the project's own install left out (PIP_INSTALL=true):
    what is tested is which interpreter the venv is made with."""
    return subprocess.run(
        ["make", f"PYTHON={python}", "PIP_INSTALL=true", ".venv/bin/.installed"],
        cwd=clone,
        env=os.environ | {"PIP_NO_INDEX": "1"},  # pip's upgrade of itself finds nothing newer, offline
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_an_older_python_is_refused_in_one_line_before_a_venv_is_made(clone: Path) -> None:
    assert OLDER is not None
    result = make(clone, OLDER)

    assert result.returncode != 0
    assert "UGC Market needs Python 3.11 or later" in result.stderr, result.stderr
    assert not (clone / ".venv").exists()


def test_a_venv_an_older_python_made_is_made_again_with_the_python_given(clone: Path) -> None:
    assert OLDER is not None
    subprocess.run([OLDER, "-m", "venv", ".venv"], cwd=clone, check=True)  # a first `make run` on python3.10

    result = make(clone, sys.executable)

    assert result.returncode == 0, result.stderr
    made = subprocess.run(
        [clone / ".venv" / "bin" / "python", "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert made.stdout.strip() == str(sys.version_info[:2])
