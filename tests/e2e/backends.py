"""Real trace backends for the end-to-end tests: Arize Phoenix and the rotel-agent collector.

Each backend is a child process on free loopback ports, with its output captured to a log file in a
temporary directory. Start-up waits by polling the backend itself (an HTTP readiness endpoint or a
TCP connect) until a deadline, never by a fixed sleep; if the process dies or the deadline passes,
the error carries the tail of its log. Every process runs in a session of its own so that stopping
it also stops anything it spawned.

The topology the tests build::

    OpenTelemetry SDK ──OTLP gRPC / HTTP──> rotel-agent ──OTLP HTTP (or gRPC)──> Phoenix ──REST──> test

Example (what the fixtures in ``conftest.py`` do)::

    phoenix = PhoenixServer.start(locate_phoenix_binary(), work_dir / "phoenix")
    rotel = RotelAgent.start_new(locate_rotel_agent(), work_dir / "rotel",
                                 exporter_endpoint=phoenix.base_url)
    ...  # export spans to rotel.grpc_endpoint, then
    spans = phoenix.wait_for_spans(trace_id, count=3)
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Phoenix imports a large stack (FastAPI, SQLAlchemy, grpc, pandas) and migrates a new SQLite
# database before it answers: about 11 s on a 2-core machine, 23 s on the first start after an
# install (byte-compiling). The deadline leaves room for a slow CI machine.
PHOENIX_READY_DEADLINE_S = float(
    os.environ.get("EXECAUDIT_PHOENIX_READY_TIMEOUT", "120")
)
ROTEL_READY_DEADLINE_S = 30.0
STOP_GRACE_S = 10.0
POLL_INTERVAL_S = 0.1

# Phoenix binds its gRPC receiver to every interface ("[::]:port", not configurable as of
# arize-phoenix 20.x). Our tests must listen on loopback only, so Phoenix runs with this
# sitecustomize on its PYTHONPATH, which rewrites the wildcard bind address of any grpc.aio server.
_LOOPBACK_GRPC_SITECUSTOMIZE = '''\
"""Written by tests/e2e/backends.py: bind Phoenix's gRPC receiver to loopback only."""
import os
import sys

_host = os.environ.get("EXECAUDIT_GRPC_BIND_HOST")
if _host:
    try:
        from grpc.aio import _server as _grpc_aio_server

        def _rewrite(address):
            for wildcard in ("[::]:", "0.0.0.0:"):
                if address.startswith(wildcard):
                    return _host + ":" + address[len(wildcard):]
            return address

        _insecure = _grpc_aio_server.Server.add_insecure_port
        _secure = _grpc_aio_server.Server.add_secure_port

        def add_insecure_port(self, address):
            address = _rewrite(address)
            sys.stderr.write("execaudit-e2e: gRPC receiver bound to %s\\n" % address)
            return _insecure(self, address)

        def add_secure_port(self, address, server_credentials):
            return _secure(self, _rewrite(address), server_credentials)

        _grpc_aio_server.Server.add_insecure_port = add_insecure_port
        _grpc_aio_server.Server.add_secure_port = add_secure_port
    except Exception as error:  # the server still starts; the log says why the bind is wide
        sys.stderr.write("execaudit-e2e: could not patch the gRPC bind address: %r\\n" % (error,))
'''


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


# --------------------------------------------------------------------------------------------
# Arize Phoenix


def locate_phoenix_binary() -> Path:
    """``$EXECAUDIT_PHOENIX_BIN``, else ``<repo>/.venv-phoenix/bin/phoenix``; fails if missing."""
    configured = os.environ.get("EXECAUDIT_PHOENIX_BIN")
    candidate = (
        Path(configured)
        if configured
        else REPO_ROOT / ".venv-phoenix" / "bin" / "phoenix"
    )
    if not candidate.is_file() or not os.access(candidate, os.X_OK):
        source = "EXECAUDIT_PHOENIX_BIN" if configured else "the default location"
        raise BackendError(
            f"Arize Phoenix is not installed: no executable at {candidate} ({source}). "
            "Run `make e2e-deps` in the repository root to create .venv-phoenix, "
            "or set EXECAUDIT_PHOENIX_BIN to a `phoenix` executable."
        )
    return candidate


@dataclass
class PhoenixServer:
    """A running ``phoenix serve`` on loopback, with a REST client for reading spans back.

    Phoenix receives OTLP/HTTP (protobuf) at ``otlp_http_endpoint`` and OTLP/gRPC at
    ``otlp_grpc_endpoint``. Spans go to the project named by the resource attribute
    ``openinference.project.name`` (else the project ``default``).

    Example::

        spans = phoenix.wait_for_spans(trace_id, count=3)
        root = root_span(spans)
        assert root["name"] == "invoke_workflow demo"
    """

    process: ManagedProcess
    http_port: int
    grpc_port: int
    working_dir: Path
    startup_seconds: float = 0.0
    version: str = ""
    default_project: str = "default"

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def otlp_http_endpoint(self) -> str:
        """Full OTLP/HTTP traces URL (for an SDK ``OTLPSpanExporter(endpoint=...)``)."""
        return f"{self.base_url}/v1/traces"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.grpc_port}"

    @staticmethod
    def locate_binary() -> Path:
        return locate_phoenix_binary()

    @classmethod
    def start(
        cls,
        binary: Path,
        working_dir: Path,
        *,
        ready_deadline_s: float = PHOENIX_READY_DEADLINE_S,
        attempts: int = 3,
    ) -> PhoenixServer:
        """Start Phoenix with its database in ``working_dir`` and wait until it is ready.

        A free port can be taken by someone else before Phoenix binds it, so a start that dies
        early is retried on new ports, up to ``attempts`` times.
        """
        shim_dir = working_dir / "sitecustomize"
        shim_dir.mkdir(parents=True, exist_ok=True)
        (shim_dir / "sitecustomize.py").write_text(_LOOPBACK_GRPC_SITECUSTOMIZE)
        last_error: BackendError | None = None
        for attempt in range(1, attempts + 1):
            http_port, grpc_port = free_port(), free_port()
            while grpc_port == http_port:
                grpc_port = free_port()
            data_dir = working_dir / f"data-{attempt}"
            data_dir.mkdir(parents=True, exist_ok=True)
            environment = _scrubbed_environment(
                {
                    "PHOENIX_WORKING_DIR": str(data_dir),
                    "PHOENIX_HOST": LOOPBACK,
                    "PHOENIX_PORT": str(http_port),
                    "PHOENIX_GRPC_PORT": str(grpc_port),
                    # no web analytics pixels, fonts or downloads: the machine has no internet
                    "PHOENIX_TELEMETRY_ENABLED": "false",
                    "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
                    # features we do not test, each one less thing to start
                    "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
                    "PHOENIX_ENABLE_MCP_SERVER": "false",
                    "PHOENIX_LOG_MIGRATIONS": "false",
                    "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": str(shim_dir),
                    "EXECAUDIT_GRPC_BIND_HOST": LOOPBACK,
                }
            )
            process = ManagedProcess(
                name="phoenix",
                argv=[binary, "serve"],
                log_path=working_dir / "phoenix.log",
                env=environment,
                cwd=data_dir,
            )
            server = cls(process, http_port, grpc_port, data_dir)
            process.start()
            try:
                server.startup_seconds = process.wait_until_ready(
                    server._ready, deadline_s=ready_deadline_s
                )
                # readyz answers once the HTTP app is up; the gRPC receiver starts alongside
                process.wait_until_ready(
                    lambda port=grpc_port: port_accepts_connections(port),
                    deadline_s=30.0,
                )
            except BackendError as error:
                exited_early = not process.is_running()
                process.stop()
                if not exited_early:
                    raise
                last_error = error  # probably lost a race for a port: try new ones
                continue
            if (
                f"gRPC receiver bound to {LOOPBACK}:{grpc_port}"
                not in process.log_text()
            ):
                process.stop()
                raise BackendError(
                    "Phoenix's gRPC receiver may listen on every interface: the loopback "
                    f"sitecustomize shim did not run\n{process.log_report()}"
                )
            status, body = http_request(
                "GET", f"{server.base_url}/arize_phoenix_version"
            )
            server.version = body.decode().strip() if status == 200 else "unknown"
            return server
        assert last_error is not None
        raise last_error

    def _ready(self) -> bool:
        status, _ = http_request("GET", f"{self.base_url}/readyz", timeout=2.0)
        return status == 200

    def stop(self) -> None:
        self.process.stop()

    # ---- REST API -------------------------------------------------------------------------

    def get_json(
        self, path: str, params: Iterable[tuple[str, str]] = ()
    ) -> tuple[int, Any]:
        """GET ``path`` (relative to the base URL) and decode the JSON body."""
        query = urllib.parse.urlencode(list(params))
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        status, body = http_request("GET", url, headers={"Accept": "application/json"})
        try:
            return status, json.loads(body) if body else None
        except json.JSONDecodeError:
            return status, body.decode(errors="replace")

    def projects(self) -> list[str]:
        """Names of the projects Phoenix knows (a project appears with its first span)."""
        names: list[str] = []
        cursor: str | None = None
        while True:
            params = [("limit", "100")] + ([("cursor", cursor)] if cursor else [])
            status, payload = self.get_json("/v1/projects", params)
            if status != 200:
                raise BackendError(f"GET /v1/projects answered {status}: {payload}")
            names.extend(project["name"] for project in payload["data"])
            cursor = payload.get("next_cursor")
            if not cursor:
                return names

    def spans(
        self,
        trace_id: str | None = None,
        *,
        project: str | None = None,
        filters: Iterable[tuple[str, str]] = (),
        page_size: int = 1000,
    ) -> list[dict[str, Any]]:
        """All spans of a project (optionally of one trace), oldest first, following the cursor.

        Uses ``GET /v1/projects/{project}/spans``. A project that has no span yet does not exist
        in Phoenix and gives ``[]``. ``filters`` are extra query parameters, e.g.
        ``[("status_code", "ERROR"), ("name", "execute_tool fetch")]``.
        """
        project_name = project or self.default_project
        path = f"/v1/projects/{urllib.parse.quote(project_name, safe='')}/spans"
        base_params = [
            ("limit", str(page_size)),
            ("sort", "start_time"),
            ("order", "asc"),
        ]
        if trace_id is not None:
            base_params.append(("trace_id", trace_id))
        base_params.extend(filters)
        collected: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = base_params + ([("cursor", cursor)] if cursor else [])
            status, payload = self.get_json(path, params)
            if status == 404:
                return []
            if status != 200:
                raise BackendError(f"GET {path} answered {status}: {payload}")
            collected.extend(payload["data"])
            cursor = payload.get("next_cursor")
            if not cursor:
                return collected

    def wait_for_spans(
        self,
        trace_id: str,
        count: int,
        timeout: float = 30.0,
        *,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """Poll until at least ``count`` spans of ``trace_id`` are readable; return them all.

        Raises ``AssertionError`` naming what did arrive if the deadline passes first.
        """
        deadline = time.monotonic() + timeout
        interval = 0.1
        spans: list[dict[str, Any]] = []
        while True:
            spans = self.spans(trace_id, project=project)
            if len(spans) >= count:
                return spans
            if time.monotonic() >= deadline:
                names = sorted(span["name"] for span in spans)
                raise AssertionError(
                    f"Phoenix holds {len(spans)} of {count} expected spans of trace {trace_id} "
                    f"in project {project or self.default_project!r} after {timeout:.0f} s: "
                    f"{names}; projects: {self.projects()}"
                )
            time.sleep(interval)
            interval = min(interval * 1.5, 1.0)


# --------------------------------------------------------------------------------------------
# rotel-agent


def locate_rotel_agent() -> Path:
    """The ``rotel-agent`` binary shipped inside the ``rotel`` wheel of the test environment."""
    try:
        import rotel  # the package is a test extra: import it only when needed
    except ImportError as error:
        raise BackendError(
            "The `rotel` package is not installed in this environment "
            f"({sys.prefix}); install the test extra: pip install -e '.[test]'"
        ) from error
    binary = Path(rotel.__file__).parent / "rotel-agent"
    if not binary.is_file():
        raise BackendError(f"The rotel package has no rotel-agent binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


@dataclass
class RotelAgent:
    """A running ``rotel-agent`` receiving OTLP gRPC and HTTP on loopback and exporting over OTLP.

    ``kill()`` simulates a collector that dies mid-run; ``start()`` brings it back on the same
    ports; ``stop()`` is a clean SIGTERM shutdown.

    Example::

        exporter = OTLPSpanExporter(endpoint=rotel.grpc_endpoint, insecure=True)
        ...
        rotel.kill()
        assert not rotel.accepts_connections()
    """

    process: ManagedProcess
    grpc_port: int
    http_port: int
    exporter_endpoint: str
    exporter_protocol: str
    startup_seconds: float = 0.0

    @property
    def grpc_endpoint(self) -> str:
        """For ``opentelemetry.exporter.otlp.proto.grpc...OTLPSpanExporter(endpoint=...)``."""
        return f"http://{LOOPBACK}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """Base URL of the OTLP/HTTP receiver (the value for ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def http_traces_endpoint(self) -> str:
        """Full traces URL, for ``...proto.http...OTLPSpanExporter(endpoint=...)``."""
        return f"{self.http_endpoint}/v1/traces"

    @staticmethod
    def command(
        binary: Path,
        *,
        grpc_port: int,
        http_port: int,
        exporter_endpoint: str,
        exporter_protocol: str,
        state_dir: Path,
        extra_args: Sequence[str] = (),
    ) -> list[str]:
        """The ``rotel-agent start`` command line (flags checked against ``start --help``)."""
        return [
            str(binary),
            "start",
            "--otlp-grpc-endpoint", f"{LOOPBACK}:{grpc_port}",
            "--otlp-http-endpoint", f"{LOOPBACK}:{http_port}",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", exporter_endpoint,
            "--otlp-exporter-protocol", exporter_protocol,
            # flush what arrived after 100 ms (default 200 ms) so tests read spans back quickly
            "--batch-timeout", "100ms",
            "--otlp-exporter-request-timeout", "5s",
            "--otlp-exporter-retry-initial-backoff", "250ms",
            "--otlp-exporter-retry-max-backoff", "2s",
            "--otlp-exporter-retry-max-elapsed-time", "30s",
            # only used when daemonised, but the defaults are shared paths under /tmp
            "--pid-file", str(state_dir / "rotel-agent.pid"),
            "--log-file", str(state_dir / "rotel-agent.log"),
            *extra_args,
        ]  # fmt: skip

    @classmethod
    def start_new(
        cls,
        binary: Path,
        state_dir: Path,
        *,
        exporter_endpoint: str,
        exporter_protocol: str = "http",
        extra_args: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
        ready_deadline_s: float = ROTEL_READY_DEADLINE_S,
        attempts: int = 3,
    ) -> RotelAgent:
        """Start an agent on new free ports and wait until both receivers answer.

        ``exporter_endpoint`` is a base URL: for ``http`` rotel appends ``/v1/traces`` itself
        (give Phoenix's ``base_url``); for ``grpc`` give Phoenix's ``otlp_grpc_endpoint``.
        ``extra_env`` adds ``ROTEL_*`` settings; command-line flags win over them.
        """
        state_dir.mkdir(parents=True, exist_ok=True)
        last_error: BackendError | None = None
        for _ in range(attempts):
            grpc_port, http_port = free_port(), free_port()
            while http_port == grpc_port:
                http_port = free_port()
            process = ManagedProcess(
                name="rotel-agent",
                argv=cls.command(
                    binary,
                    grpc_port=grpc_port,
                    http_port=http_port,
                    exporter_endpoint=exporter_endpoint,
                    exporter_protocol=exporter_protocol,
                    state_dir=state_dir,
                    extra_args=extra_args,
                ),
                log_path=state_dir / "rotel-agent.out",
                env=_scrubbed_environment({**(extra_env or {}), "NO_COLOR": "1"}),
                cwd=state_dir,
            )
            agent = cls(
                process, grpc_port, http_port, exporter_endpoint, exporter_protocol
            )
            try:
                agent.start(ready_deadline_s=ready_deadline_s)
                return agent
            except BackendError as error:
                exited_early = not process.is_running()
                process.stop()
                if not exited_early:
                    raise
                last_error = error  # probably lost a race for a port: try new ones
        assert last_error is not None
        raise last_error

    def start(self, *, ready_deadline_s: float = ROTEL_READY_DEADLINE_S) -> float:
        """(Re)start the agent on its ports and wait until ready; return the seconds it took."""
        self.process.start()
        self.startup_seconds = self.process.wait_until_ready(
            self._ready, deadline_s=ready_deadline_s
        )
        return self.startup_seconds

    def _ready(self) -> bool:
        # An empty but valid OTLP/JSON export proves the HTTP receiver parses requests;
        # a TCP connect is the most gRPC offers without a health service.
        status, _ = http_request(
            "POST",
            self.http_traces_endpoint,
            body=b'{"resourceSpans":[]}',
            headers={"Content-Type": "application/json"},
            timeout=2.0,
        )
        return status == 200 and port_accepts_connections(self.grpc_port)

    def accepts_connections(self) -> bool:
        """Whether either receiver port still accepts TCP connections."""
        return port_accepts_connections(self.grpc_port) or port_accepts_connections(
            self.http_port
        )

    def kill(self) -> None:
        """SIGKILL: the collector vanishes mid-run, buffered spans are lost."""
        self.process.kill()

    def stop(self) -> int | None:
        """Clean shutdown (SIGTERM; rotel flushes its batches), SIGKILL after a grace period."""
        return self.process.stop()

    def is_running(self) -> bool:
        return self.process.is_running()


# --------------------------------------------------------------------------------------------
# Reading a span tree back


def spans_by_name(spans: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Index Phoenix span dicts by name; a name that occurs twice is an error."""
    index: dict[str, dict[str, Any]] = {}
    for span in spans:
        if span["name"] in index:
            raise AssertionError(f"span name {span['name']!r} occurs more than once")
        index[span["name"]] = dict(span)
    return index


def root_span(spans: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The single span without a parent."""
    roots = [dict(span) for span in spans if not span.get("parent_id")]
    if len(roots) != 1:
        raise AssertionError(
            f"expected one root span, found {[r['name'] for r in roots]}"
        )
    return roots[0]


def children_of(
    spans: Iterable[Mapping[str, Any]], parent: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Spans whose ``parent_id`` is ``parent``'s span id, in start order."""
    parent_id = parent["context"]["span_id"]
    children = [dict(span) for span in spans if span.get("parent_id") == parent_id]
    return sorted(children, key=lambda span: span["start_time"])
