"""Bytes of uploaded files on disk, each under a random key.

A key is made here (`secrets.token_urlsafe`), never taken from a client, so no uploaded name can
reach the file system; `path` accepts only strings shaped like the keys this store makes, so a key
from a URL cannot climb out of the root either. Bytes arrive in a temporary file beside the final
place and are renamed into it once complete, so a reader never sees half a file and a failed or
refused upload leaves nothing behind. An upload whose process died (SIGKILL, a forced stop) leaves
its temporary file: `sweep_incoming` removes those (`ugc/platform/abandoned_uploads.py` calls it).

    incoming = media.begin()
    try:
        incoming.write(chunk) ...
        key = incoming.commit()
    except BaseException:
        incoming.discard()
        raise
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ugc.platform.durable import sync_directory

# 24 random bytes -> 32 URL-safe characters.
_KEY_BYTES = 24
_KEY = re.compile(r"[A-Za-z0-9_-]{32}")
_INCOMING = ".incoming"


def is_key(text: object) -> bool:
    """Whether `text` is shaped like the keys this store makes (whatever is stored under it)."""
    return isinstance(text, str) and _KEY.fullmatch(text) is not None


class UnknownKey(KeyError):
    """Not a key this store makes, or no bytes are stored under it."""


class MediaUnavailable(RuntimeError):
    """The file system refused the store: a full or read-only disk, a permission, a root that is no
    directory. Not the request's fault, nor a bug: the API answers 503 (api/errors.py)."""


@contextlib.contextmanager
def _file_system() -> Iterator[None]:
    try:
        yield
    except OSError as error:
        raise _unavailable(error) from error


def _unavailable(error: OSError) -> MediaUnavailable:
    return MediaUnavailable(f"{type(error).__name__}: {error}")


class MediaStore:
    """Files under `root`: `<root>/<first two characters of the key>/<key>`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def begin(self) -> Incoming:
        """Start receiving a new file under a fresh random key."""
        incoming_dir = self.root / _INCOMING
        with _file_system():
            incoming_dir.mkdir(parents=True, exist_ok=True)
            return Incoming(self, secrets.token_urlsafe(_KEY_BYTES), incoming_dir)

    def path(self, key: str) -> Path:
        """Where the bytes of `key` are (or would be); `UnknownKey` if `key` is not shaped like a key."""
        if not is_key(key):
            raise UnknownKey(key)
        return self.root / key[:2] / key

    def exists(self, key: str) -> bool:
        try:
            return self.path(key).is_file()
        except UnknownKey:
            return False

    def readable(self, key: str) -> os.stat_result:
        """The stored file of `key` (its size and times), once opened for reading: `UnknownKey` if there is
        none, `MediaUnavailable` if the file system will not read it (a permission, a share gone, an
        I/O error). A download asks before it answers: once its 200 has gone out, a refusal can only
        cut the connection."""
        path = self.path(key)
        try:
            with path.open("rb") as file:
                found = os.fstat(file.fileno())
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise UnknownKey(key) from None
        except OSError as error:
            raise _unavailable(error) from error
        if not stat.S_ISREG(found.st_mode):
            raise UnknownKey(key)
        return found

    def open(self, key: str) -> BinaryIO:
        """The stored bytes of `key`, for reading; `UnknownKey` if there are none."""
        path = self.path(key)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise UnknownKey(key) from None
        except OSError as error:
            raise _unavailable(error) from error

    def delete(self, key: str) -> None:
        """Forget the bytes of `key`: only for bytes no stored event refers to (a command that failed)."""
        self.path(key).unlink(missing_ok=True)

    def sweep_incoming(self, untouched_for: float) -> int:
        """Remove the temporary files of uploads whose process died; the number removed.

        A file goes when it was untouched for `untouched_for` seconds and no upload holds its lock (an
        `Incoming` holds it from its first byte until it renames or removes the file, so a slow upload's
        file stays however old). The age covers the instant between a file's creation and its lock.
        """
        cutoff = time.time() - untouched_for
        removed = 0
        for path in (self.root / _INCOMING).glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime <= cutoff and _remove_unless_held(path):
                    removed += 1
        return removed


def _remove_unless_held(path: Path) -> bool:
    """Unlink `path` unless a live upload holds its lock (a dead process's lock went with it)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(descriptor)


class Incoming:
    """A file being received: written chunk by chunk, then committed under its key or discarded.

    Counts its size and SHA-256 as the bytes go by, so nothing has to read the file again.
    """

    def __init__(self, store: MediaStore, key: str, directory: Path) -> None:
        self.store = store
        self.key = key
        self.size = 0
        self._digest = hashlib.sha256()
        self._temporary = directory / f"{key}.part"
        # Readable by this service's user only; closed by commit or discard. Locked while it is open, so
        # that `MediaStore.sweep_incoming` tells it from a file whose upload died.
        descriptor = os.open(self._temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError:
            os.close(descriptor)
            os.unlink(self._temporary)
            raise
        self._file: BinaryIO | None = os.fdopen(descriptor, "wb")
        self.committed = False
        self.kept = False

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise ValueError("the file is already committed or discarded")
        with _file_system():
            self._file.write(data)
        self.size += len(data)
        self._digest.update(data)

    def commit(self) -> str:
        """Make the bytes durable and visible under `key` (an atomic rename); returns the key."""
        if self._file is None:
            raise ValueError("the file is already committed or discarded")
        file, self._file = self._file, None
        final = self.store.path(self.key)
        with _file_system():
            try:
                file.flush()
                os.fsync(file.fileno())
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self._temporary, final)  # before the close ends the lock: no sweep takes it
                sync_directory(final.parent)  # the name too: the event about to be stored refers to it
            finally:
                file.close()
        self.committed = True
        return self.key

    def keep(self) -> None:
        """A stored event names the committed bytes now: no `discard` removes them any more."""
        self.kept = True

    def discard(self) -> None:
        """Remove the bytes, committed or not, unless kept: call it when no event will refer to them.
        Idempotent."""
        if self.kept:
            return
        # On a file system that refuses, a leftover stays where no event refers to it: harmless, and
        # the error that brought us here is the one to report.
        with contextlib.suppress(OSError):
            if self._file is not None:
                self._file.close()
                self._file = None
            self._temporary.unlink(missing_ok=True)
            if self.committed:
                self.store.delete(self.key)
                self.committed = False
