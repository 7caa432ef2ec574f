"""A backup's manifest: what `ugc backup` took, written last, and checked first by `ugc restore`.

`manifest.json` names every file of the backup with its size and SHA-256, each log's head (position
and link) at backup time, when the backup began and ended and the code that took it. It is signed
with `UGC_AUDIT_KEY` as the checkpoints are, so neither a file of the backup nor the manifest itself
can be edited without the restore naming it. A directory without one is no complete backup.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ugc.platform.checkpoints import signature, signature_matches
from ugc.platform.personal_data import derived_key

FORMAT = "ugc-backup/1"
NAME = "manifest.json"
KEY_CHECK = b"ugc backup key check v1"  # the purpose of the value that tells a backup's UGC_DATA_KEY
CHUNK = 1 << 20


class BackupRefused(Exception):
    """A backup or restore refused before it wrote anything, for the reason given (exit status 2)."""


def file_entry(path: Path) -> dict[str, Any]:
    """A file's size and SHA-256, as the manifest lists it."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def files_under(root: Path) -> Iterator[Path]:
    """Every regular file under `root`, sorted, but the manifest."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and path != root / NAME:
            yield path


def data_key_check(data_key: str) -> str:
    """A value derived from UGC_DATA_KEY that tells whether a restore holds the backup's key, before
    the database is written, and reveals nothing of the key (HKDF for a purpose of its own)."""
    return derived_key(data_key, KEY_CHECK).hex()[:32]


def write_manifest(directory: Path, key: str, document: dict[str, Any]) -> Path:
    """Sign `document` and write it as the backup's manifest, durably: the last file of a backup."""
    signed = {"format": FORMAT, **document}
    signed["signature"] = signature(signed, key)
    path = directory / NAME
    with path.open("w") as file:
        file.write(json.dumps(signed, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
        file.flush()
        os.fsync(file.fileno())
    return path


def read_manifest(directory: Path, keys: tuple[str, ...], data_key: str) -> dict[str, Any]:
    """The manifest of the backup in `directory`, once it and every file it lists check out.

    Raises BackupRefused naming what does not: no manifest (not a backup, or one never finished),
    a signature that matches none of `keys` (UGC_AUDIT_KEY and those being rotated out), another
    UGC_DATA_KEY, a file missing, extra, or of other bytes than those backed up.
    """
    path = directory / NAME
    if not directory.is_dir():
        raise BackupRefused(f"{directory} is no directory")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
        files: dict[str, dict[str, Any]] = manifest["files"]
        given = str(manifest["signature"])
    except FileNotFoundError:
        raise BackupRefused(f"{directory} has no {NAME}: not a backup, or one that never finished") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BackupRefused(f"{path} is not a readable manifest: {error}") from None
    if manifest.get("format") != FORMAT or not signature_matches(given, manifest, keys):
        raise BackupRefused(
            f"{path} is not signed with this UGC_AUDIT_KEY: the manifest was edited, or the backup is of "
            "a deployment with another key"
        )
    if manifest.get("data_key_check") != data_key_check(data_key):
        raise BackupRefused("UGC_DATA_KEY is not the key of the backed-up deployment: its personal data would not open")
    problems = [f"{name} is missing" for name in files if not (directory / name).is_file()]
    for name, expected in files.items():
        if (directory / name).is_file() and file_entry(directory / name) != expected:
            problems.append(f"{name} differs from the file backed up (size or SHA-256)")
    problems += [
        f"{file.relative_to(directory)} is not in the manifest"
        for file in files_under(directory)
        if str(file.relative_to(directory)) not in files
    ]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise BackupRefused(f"the backup in {directory} is damaged: {shown}")
    return manifest
