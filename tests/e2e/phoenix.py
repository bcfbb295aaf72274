"""Arize Phoenix as a real trace backend for the end-to-end tests: started on loopback ports with
its database in a temporary directory, read back through its REST API."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .processes import (
    LOOPBACK,
    REPO_ROOT,
    BackendError,
    ManagedProcess,
    _scrubbed_environment,
    free_port,
    http_request,
    port_accepts_connections,
)

# Phoenix imports a large stack (FastAPI, SQLAlchemy, grpc, pandas) and migrates a new SQLite
# database before it answers: about 11 s on a 2-core machine, 23 s on the first start after an
# install (byte-compiling). The deadline leaves room for a slow CI machine.
PHOENIX_READY_DEADLINE_S = float(
    os.environ.get("EXECAUDIT_PHOENIX_READY_TIMEOUT", "120")
)

# Phoenix binds its gRPC receiver to every interface ("[::]:port", not configurable as of
# arize-phoenix 20.x). Our tests must listen on loopback only, so Phoenix runs with this
# sitecustomize on its PYTHONPATH, which rewrites the wildcard bind address of any grpc.aio server.
_LOOPBACK_GRPC_SITECUSTOMIZE = '''\
"""Written by tests/e2e/phoenix.py: bind Phoenix's gRPC receiver to loopback only."""
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


