"""Child processes for the end-to-end tests: free loopback ports, readiness by polling with a
deadline (never a fixed sleep), logs kept for failure reports, and a stop that always happens."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
STOP_GRACE_S = 10.0
POLL_INTERVAL_S = 0.1


class BackendError(RuntimeError):
    """A backend process could not be started, did not become ready, or misbehaved."""


def free_port() -> int:
    """Return a TCP port on the loopback interface that the OS reports free right now.

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_accepts_connections(
    port: int, host: str = LOOPBACK, timeout: float = 0.5
) -> bool:
    """Whether something accepts TCP connections on ``host:port``.

    >>> port_accepts_connections(free_port())
    False
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """Send one HTTP request and return ``(status, body)``; HTTP error statuses are returned too.

    Connection failures raise ``OSError`` (``urllib.error.URLError`` is one).
    """
    request = urllib.request.Request(
        url, data=body, method=method, headers=dict(headers or {})
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL if the test run dies without its finalizers."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(Exception):  # best effort, Linux only
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


_PREEXEC = _die_with_parent if sys.platform.startswith("linux") else None


def _scrubbed_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without settings that would point a backend somewhere else."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PHOENIX_", "OTEL_", "ROTEL_")) and key != "PYTHONPATH"
    }
    environment.update(extra)
    return environment


@dataclass
class ManagedProcess:
    """A child process with its output in a log file, started in a session of its own.

    Example::

        process = ManagedProcess("echo", ["echo", "hi"], log_path=tmp / "echo.log")
        process.start()
        process.wait_until_ready(lambda: "hi" in process.log_text(), deadline_s=5)
        process.stop()
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start the process (again, if it ran before); its output is appended to the log."""
        if self.is_running():
            raise BackendError(f"{self.name} is already running (pid {self.popen.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(
                f"\n===== starting {self.name}: {' '.join(map(str, self.argv))}\n".encode()
            )
            log.flush()
            self.popen = subprocess.Popen(
                list(map(str, self.argv)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                start_new_session=True,
                # prctl must run in the child; the fixtures start processes from the main thread
                preexec_fn=_PREEXEC,  # noqa: PLW1509
            )

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def is_running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_until_ready(
        self, probe: Callable[[], bool], *, deadline_s: float
    ) -> float:
        """Poll ``probe`` until it returns true; return the seconds it took.

        Raises ``BackendError`` with the log tail if the process exits or the deadline passes.
        Exceptions from ``probe`` count as "not ready yet".
        """
        started = time.monotonic()
        deadline = started + deadline_s
        while True:
            if not self.is_running():
                code = self.popen.returncode if self.popen is not None else None
                raise BackendError(
                    f"{self.name} exited with code {code} before it was ready\n{self.log_report()}"
                )
            with contextlib.suppress(Exception):  # a probe that fails means "not yet"
                if probe():
                    return time.monotonic() - started
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"{self.name} was not ready within {deadline_s:.0f} s\n{self.log_report()}"
                )
            time.sleep(POLL_INTERVAL_S)

    def _signal_group(self, signum: int) -> None:
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError:
            self.popen.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the process and everything it spawned, without any chance to flush."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGKILL)
        try:
            self.popen.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        # SIGKILL also reaches children that outlived their leader
        self._signal_group(signal.SIGKILL)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL; return the exit code. Idempotent."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        # children left behind by a leader that exited on its own
        self._signal_group(signal.SIGKILL)
        return self.popen.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_report(self, max_chars: int = 6000) -> str:
        """The tail of the log, framed, for an error message or a test report."""
        text = self.log_text()
        if len(text) > max_chars:
            text = "[... earlier output cut ...]\n" + text[-max_chars:]
        return f"----- {self.name} log ({self.log_path}) -----\n{text}\n----- end of {self.name} log -----"


