"""Peak memory of `ugc serve` while it receives a large upload: the body must stream to disk.

Starts its own `ugc serve` (one worker, so the server is one process) on a fresh SQLite database
(or PostgreSQL with --postgres), warms it up with a small upload, then streams a 20 MiB file to
POST /api/v1/files/upload/ with httpx (no Content-Length, 64 KiB chunks) and reads the server's
resident set size (/proc/<pid>/status) before and after. The peak (VmHWM) is reset just before the
upload (`5` into /proc/<pid>/clear_refs), so the figure is the upload's own peak, not start-up's or
a password hash's; VmRSS is also sampled every few milliseconds while the upload runs. It then
downloads the file back and checks its SHA-256. Prints the figures and writes them to a dated file
in bench/results/ (common.record).

Usage:  .venv/bin/python bench/upload_memory.py [--postgres] [--mib 20] [--no-record]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
from common import VENV_BIN, free_port, fresh_database, record, server

CHUNK = 64 * 1024


def status_kib(pid: int, field: str) -> int:
    """A `kB` line of /proc/<pid>/status, e.g. VmHWM (peak resident set) or VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


def reset_peak(pid: int) -> None:
    """Make VmHWM start again from the current RSS (Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class RssSampler:
    """Samples VmRSS of `pid` in a thread until stopped; `peak` is the highest sample, in KiB."""

    def __init__(self, pid: int, interval: float = 0.002) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = status_kib(pid, "VmRSS")
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def chunks(size: int, seed: bytes) -> Iterator[bytes]:
    """`size` pseudo-random bytes (incompressible, no recognisable signature), generated as sent."""
    block = hashlib.sha256(seed).digest() * (CHUNK // 32)
    sent = 0
    while sent < size:
        piece = block[: min(CHUNK, size - sent)]
        block = hashlib.sha256(block[:32]).digest() * (CHUNK // 32)
        sent += len(piece)
        yield piece


def expected_sha256(size: int, seed: bytes) -> str:
    digest = hashlib.sha256()
    for piece in chunks(size, seed):
        digest.update(piece)
    return digest.hexdigest()


def multipart(size: int, seed: bytes, boundary: str) -> Iterator[bytes]:
    yield (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield from chunks(size, seed)
    yield f"\r\n--{boundary}--\r\n".encode()


def upload(client: httpx.Client, token: str, size: int, seed: bytes) -> httpx.Response:
    boundary = secrets.token_hex(16)
    return client.post(
        "/api/v1/files/upload/",
        headers={"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=multipart(size, seed, boundary),
    )


def signed_in(client: httpx.Client) -> str:
    name = f"bench_{secrets.token_hex(4)}"
    password = "bench-Password-1"
    registered = client.post(
        "/api/auth/register/", json={"username": name, "email": f"{name}@example.com", "password": password}
    )
    registered.raise_for_status()
    token = client.post("/api/auth/token/", json={"username": name, "password": password})
    token.raise_for_status()
    access: str = token.json()["access"]
    return access


def measure(database_url: str, var_dir: Path, mib: int) -> dict[str, object]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("UGC_")} | {
        "UGC_DATABASE_URL": database_url,
        "UGC_VAR_DIR": str(var_dir),
        "UGC_SECRET_KEY": secrets.token_urlsafe(48),
        "UGC_PUBLIC_URL": f"http://127.0.0.1:{port}",
        # A cheap password hash: the measurement is about the upload, and VmHWM is reset anyway.
        "UGC_ARGON2_MEMORY_KIB": "8192",
        "UGC_ARGON2_TIME_COST": "1",
    }
    argv = [str(VENV_BIN / "ugc"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    size = mib * 1024 * 1024
    with server(argv, port, env=env, log=var_dir / "server.log") as process:
        pid = process.pid
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            token = signed_in(client)
            warm = upload(client, token, 256 * 1024, b"warm-up")
            warm.raise_for_status()
            client.get(warm.json()["url"], headers={"Authorization": f"Bearer {token}"}).raise_for_status()
            time.sleep(0.5)
            reset_peak(pid)
            before = {"hwm": status_kib(pid, "VmHWM"), "rss": status_kib(pid, "VmRSS")}
            started = time.perf_counter()
            with RssSampler(pid) as upload_sampler:
                response = upload(client, token, size, b"big")
            seconds = time.perf_counter() - started
            response.raise_for_status()
            after_upload = {
                "hwm": status_kib(pid, "VmHWM"),
                "rss": status_kib(pid, "VmRSS"),
                "sampled": upload_sampler.peak,
                "samples": upload_sampler.samples,
            }
            reset_peak(pid)
            digest = hashlib.sha256()
            with RssSampler(pid) as download_sampler:
                url = response.json()["url"]
                with client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as got:
                    got.raise_for_status()
                    for piece in got.iter_bytes():
                        digest.update(piece)
            after_download = {
                "hwm": status_kib(pid, "VmHWM"),
                "rss": status_kib(pid, "VmRSS"),
                "sampled": download_sampler.peak,
                "samples": download_sampler.samples,
            }
    if digest.hexdigest() != expected_sha256(size, b"big"):
        raise SystemExit("the downloaded file differs from the uploaded one")
    return {
        "size_mib": mib,
        "upload_s": seconds,
        "before": before,
        "after_upload": after_upload,
        "after_download": after_download,
        "stored_size": response.json()["size"],
    }


def report(figures: dict[str, object], backend: str, command: str) -> str:
    before, upload_, download = figures["before"], figures["after_upload"], figures["after_download"]
    assert isinstance(before, dict) and isinstance(upload_, dict) and isinstance(download, dict)
    mib = figures["size_mib"]

    def m(kib: int) -> str:
        return f"{kib / 1024:.1f}"

    return "\n".join(
        [
            f"## Upload memory — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"`{command}` — one `ugc serve` worker on {backend}; a {mib} MiB file streamed to "
            "`POST /api/v1/files/upload/` by httpx (chunked, 64 KiB pieces), then downloaded back "
            "(SHA-256 checked). Server memory from `/proc/<pid>/status`.",
            "",
            "| moment | peak RSS since reset (VmHWM), MiB | highest sampled VmRSS, MiB | VmRSS after, MiB |",
            "| --- | ---: | ---: | ---: |",
            f"| before (after warm-up, peak reset) | {m(before['hwm'])} | | {m(before['rss'])} |",
            f"| {mib} MiB upload ({figures['stored_size']} bytes stored, {figures['upload_s']:.2f} s, "
            f"{upload_['samples']} samples) "
            f"| {m(upload_['hwm'])} | {m(upload_['sampled'])} | {m(upload_['rss'])} |",
            f"| downloading it back ({download['samples']} samples) "
            f"| {m(download['hwm'])} | {m(download['sampled'])} | {m(download['rss'])} |",
            "",
            f"Peak RSS rose by **{m(upload_['hwm'] - before['rss'])} MiB** during the {mib} MiB upload "
            f"and by {m(download['hwm'] - upload_['rss'])} MiB during the download (each against the RSS "
            "at the moment its peak was reset).",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", action="store_true", help="use a fresh PostgreSQL database (default: SQLite)")
    parser.add_argument("--mib", type=int, default=20, help="size of the upload in MiB (default 20)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not write bench/results/")
    args = parser.parse_args()
    command = "python bench/upload_memory.py" + (" --postgres" if args.postgres else "")
    with ExitStack() as stack:
        var_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ugc-upload-bench-")))
        if args.postgres:
            database_url = stack.enter_context(fresh_database("ugc_bench_upload"))
        else:
            database_url = f"sqlite:///{var_dir / 'ugc.sqlite3'}"
        figures = measure(database_url, var_dir, args.mib)
    section = report(figures, "PostgreSQL" if args.postgres else "SQLite", command)
    print(section)
    if not args.no_record:
        record(section, "upload-memory-" + ("postgres" if args.postgres else "sqlite"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
