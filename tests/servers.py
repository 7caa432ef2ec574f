"""Real `ugc serve` processes for end-to-end tests: start, wait until healthy, stop.

    with start_server(environment(...), log_dir=tmp_path) as server:
        httpx.get(f"{server.url}/healthz")

A server inherits `os.environ` minus any `UGC_*` variable of the caller's shell (so a developer's
settings never leak into a test), plus `env`. Its stdout and stderr go to a log file, whose tail
is quoted when the server fails to come up.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from tests.backends import environment, fresh_database
from ugc.config import Settings

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ServerFailed(AssertionError):
    """A server process exited or did not answer /healthz in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (all sockets are held open together, so none repeats)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def server_environment(env: Mapping[str, str]) -> dict[str, str]:
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("UGC_")}
    return inherited | {"PYTHONUNBUFFERED": "1"} | dict(env)


def start_projector(env: Mapping[str, str], log_path: Path, only: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """A `ugc project` process (UGC_PROJECTIONS=external), of the projections `only` names if any, its
    output appended to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ugc.cli", "project", *(["--only", *only] if only else [])],
            env=server_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def end_process(process: subprocess.Popen[bytes]) -> None:
    """Stop `process` (woken first, if a test froze it): SIGTERM, then SIGKILL after 15 s."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def run_ugc(
    env: Mapping[str, str], *args: str, stdin: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`ugc ARGS` run to its end (`stdin` its input), its output kept."""
    return subprocess.run(
        [sys.executable, "-m", "ugc.cli", *args],
        env=server_environment(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Server:
    """One `ugc serve` process on 127.0.0.1:`port`; a context manager that stops it on exit."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path, log_file: IO[bytes]) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path
        self._log_file = log_file

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"<log {self.log_path} unreadable: {error}>"
        return text[-chars:]

    def fail(self, reason: str) -> ServerFailed:
        return ServerFailed(f"server on port {self.port} {reason}; log {self.log_path} ends with:\n{self.log_tail()}")

    def wait_until_healthy(self, timeout: float = START_TIMEOUT, *, deadline: float | None = None) -> None:
        """Return once GET /healthz answers 200; raise `ServerFailed` (with the log's tail) otherwise."""
        deadline = deadline if deadline is not None else time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(base_url=self.url, timeout=1.0) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise self.fail(f"exited with status {code} before answering /healthz")
                try:
                    response = client.get("/healthz")
                except httpx.TransportError as error:
                    last = repr(error)
                else:
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                if time.monotonic() >= deadline:
                    raise self.fail(f"did not answer /healthz with 200 in time (last: {last})")
                time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL; returns the exit status. Idempotent."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout)
            return self.process.returncode
        finally:
            self._log_file.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def launch_server(
    env: Mapping[str, str],
    port: int | None = None,
    *,
    log_dir: Path | None = None,
    cwd: Path | None = None,
    workers: int = 1,
    prefix: Sequence[str] = (),
) -> Server:
    """Start `ugc serve` (`--workers N`) without waiting for it (see `Server.wait_until_healthy`);
    `prefix` runs it under another command (e.g. `setpriv`, to drop root's privileges)."""
    port = port or free_port()
    if log_dir is None:
        var_dir = env.get("UGC_VAR_DIR")
        log_dir = Path(var_dir) if var_dir else Path(tempfile.mkdtemp(prefix="ugc-server-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{port}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by Server.stop
    try:
        process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "ugc.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
            + (["--workers", str(workers)] if workers > 1 else []),
            env=server_environment(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    except BaseException:
        log_file.close()
        raise
    return Server(process, port, log_path, log_file)


def start_server(
    env: Mapping[str, str],
    port: int | None = None,
    *,
    log_dir: Path | None = None,
    cwd: Path | None = None,
    timeout: float = START_TIMEOUT,
    prefix: Sequence[str] = (),
) -> Server:
    """Start `ugc serve` and return once it answers /healthz (the server is stopped if it does not)."""
    server = launch_server(env, port, log_dir=log_dir, cwd=cwd, prefix=prefix)
    try:
        server.wait_until_healthy(timeout)
    except BaseException:
        server.stop()
        raise
    return server


def stop_servers(servers: list[Server], timeout: float = STOP_TIMEOUT) -> None:
    """Stop several servers in parallel: SIGTERM to all first, then wait (and kill) one by one."""
    for server in servers:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for server in servers:
        try:
            server.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            server.process.kill()
        server.stop()


@contextmanager
def served_fresh(backend: str, var_dir: Path) -> Iterator[tuple[Server, Settings]]:
    """`ugc serve` on a new database of `backend`, and the settings its clients read (the public URL
    as `ugc serve` derives it from the port)."""
    with fresh_database(backend, var_dir) as url:
        env = environment(backend, url, var_dir)
        with start_server(env, log_dir=var_dir) as running:
            yield running, Settings.from_env(env | {"UGC_PUBLIC_URL": running.url})


@contextmanager
def upgraded_socket(
    port: int, target: str, *, receive_buffer: int | None = None
) -> Iterator[tuple[socket.socket, bytes]]:
    """A raw TCP connection to the server on `port` whose WebSocket handshake for `target` (a path and
    its query) was answered 101: the socket, and what came after the answer's head. For frames a
    client library will not send (unmasked, not UTF-8), or sends only as it reads. `receive_buffer`
    (bytes) makes it a client whose buffer fills soon when it reads nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(4096)
        assert received.startswith(b"HTTP/1.1 101"), received
        yield sock, received.partition(b"\r\n\r\n")[2]
