"""rotel-agent, the real OpenTelemetry collector shipped in the `rotel` PyPI package, for the
end-to-end tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .processes import (
    LOOPBACK,
    BackendError,
    ManagedProcess,
    _scrubbed_environment,
    free_port,
    http_request,
    port_accepts_connections,
)

ROTEL_READY_DEADLINE_S = 30.0


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


