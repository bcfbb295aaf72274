"""A real OTLP collector for benchmarks: rotel-agent (from the ``rotel`` PyPI package) with its
blackhole exporter, on a free loopback port, stopped when the block ends."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import rotel


def rotel_agent_binary() -> Path:
    return Path(rotel.__file__).parent / "rotel-agent"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_collector(deadline: float = 30.0) -> Iterator[str]:
    """Yield the OTLP/gRPC endpoint (``127.0.0.1:PORT``) of a running rotel-agent."""
    grpc_port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as folder:
        log = open(Path(folder) / "rotel.log", "wb")
        process = subprocess.Popen(
            [str(rotel_agent_binary()), "start", "--exporter", "blackhole",
             "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
             "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
             "--pid-file", str(Path(folder) / "rotel.pid")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _wait_for_port(grpc_port, process, deadline)
            yield f"127.0.0.1:{grpc_port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise RuntimeError(f"rotel-agent exited with {process.returncode} before listening")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"rotel-agent did not listen on {port} within {deadline} s")
