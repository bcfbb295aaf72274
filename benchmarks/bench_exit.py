"""How long does a short script take to exit when the collector is dead?

Two subprocess scripts do the same ~0.1 s of work with spans: one uses plain OpenTelemetry
(``TracerProvider`` + ``BatchSpanProcessor`` + ``OTLPSpanExporter``, all defaults), the other uses
``build_telemetry``. Both point at a peer that is broken in one of two ways:

- refused: nothing listens on the port (connection refused at once);
- hanging: a TCP server accepts the connection and never answers.

Run from the repository root::

    python -m benchmarks.bench_exit            # grpc and http/protobuf
    python -m benchmarks.bench_exit --protocol grpc

The floor is ours <= 2 s for a 2 s deadline; the ratio shows what plain OpenTelemetry costs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

# A run that takes longer than this is reported as a hang rather than waited for forever.
HANG_LIMIT_SECONDS = 60.0
OURS_FLOOR_SECONDS = 2.0

WORK = textwrap.dedent(
    """
    import time
    def work(tracer):
        started = time.monotonic()
        with tracer.start_as_current_span("invoke_workflow bench"):
            while time.monotonic() - started < 0.1:
                with tracer.start_as_current_span("execute_tool step"):
                    time.sleep(0.005)
        # Wall-clock time, so the parent can tell exit time from start-up and work.
        print("work-done", time.time(), flush=True)
    """
)

PLAIN_SCRIPT = WORK + textwrap.dedent(
    """
    import sys
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    protocol, endpoint = sys.argv[1], sys.argv[2]
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces")
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    work(provider.get_tracer("bench"))
    """
)

OURS_SCRIPT = WORK + textwrap.dedent(
    """
    import sys
    from otel_execaudit.telemetry.build import build_telemetry
    protocol, endpoint = sys.argv[1], sys.argv[2]
    telemetry = build_telemetry(service_name="bench", protocol=protocol, endpoint=endpoint)
    work(telemetry.tracer)
    """
)


@dataclass(frozen=True)
class Run:
    """One subprocess run: spawn to exit, end of work to exit, and how it ended."""

    seconds: float
    exit_seconds: float | None  # None: the work never finished
    return_code: int | None  # None: killed after HANG_LIMIT_SECONDS


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port nobody listens on: bind, read the port, close."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port


@contextlib.contextmanager
def hanging_peer() -> Iterator[int]:
    """A TCP server that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stopping = threading.Event()

    def accept_forever() -> None:
        while not stopping.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)  # keep it open: the peer hangs, it does not hang up

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stopping.set()
        server.close()
        for connection in held:
            connection.close()


def run_script(script: str, protocol: str, endpoint: str) -> Run:
    """Run one script in a fresh interpreter and time it from spawn to exit."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", script, protocol, endpoint],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=HANG_LIMIT_SECONDS)
        return_code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return_code = None
    ended_wall, ended = time.time(), time.monotonic()
    work_done = [float(line.split()[1]) for line in output.splitlines() if line.startswith("work-done ")]
    return Run(ended - started, ended_wall - work_done[0] if work_done else None, return_code)


def main(argv: list[str] | None = None) -> int:
    """Print a table of exit times; return 1 if ours misses the floor.

    Example::

        python -m benchmarks.bench_exit --protocol grpc
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["grpc", "http/protobuf", "both"], default="both")
    arguments = parser.parse_args(argv)
    protocols = ["grpc", "http/protobuf"] if arguments.protocol == "both" else [arguments.protocol]
    peers = {"refused": refused_port, "hanging": hanging_peer}

    print("exit = end of work to process exit; total = spawn to exit (start-up, imports, 0.1 s work)")
    print(f"{'protocol':<14} {'peer':<8} {'plain exit':>11} {'ours exit':>10} {'ratio':>7}   "
          f"{'plain total':>11} {'ours total':>10}")
    within_floor = True
    for protocol in protocols:
        for peer_name, peer in peers.items():
            with peer() as port:
                endpoint = f"http://127.0.0.1:{port}"
                plain = run_script(PLAIN_SCRIPT, protocol, endpoint)
                ours = run_script(OURS_SCRIPT, protocol, endpoint)
            ours_ok = ours.return_code == 0 and ours.exit_seconds is not None
            within_floor &= ours_ok and ours.exit_seconds <= OURS_FLOOR_SECONDS
            ratio = f"{plain.exit_seconds / ours.exit_seconds:>6.1f}x" if ours_ok and plain.exit_seconds else "    n/a"
            print(
                f"{protocol:<14} {peer_name:<8} {describe(plain, plain.exit_seconds):>11} "
                f"{describe(ours, ours.exit_seconds):>10} {ratio:>7}   "
                f"{describe(plain, plain.seconds):>11} {describe(ours, ours.seconds):>10}"
            )
    print(f"floor: ours exit <= {OURS_FLOOR_SECONDS:.1f} s ... {'met' if within_floor else 'MISSED'}")
    return 0 if within_floor else 1


def describe(run: Run, seconds: float | None) -> str:
    if run.return_code is None:
        return f">{HANG_LIMIT_SECONDS:.0f} s"
    if run.return_code != 0 or seconds is None:
        return f"rc={run.return_code}"
    return f"{seconds:.2f} s"


if __name__ == "__main__":
    sys.exit(main())
