"""Collector peers on 127.0.0.1 for tests: refused, hanging, erroring, and working receivers."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

@contextlib.contextmanager
def refused_port() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def hanging_peer() -> Iterator[str]:
    """Accepts every connection and never sends a byte, nor hangs up."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept_forever() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for connection in held:
            connection.close()


@dataclass
class Received:
    """What an in-test receiver got: parsed requests and the headers that came with them."""

    requests: list[trace_service_pb2.ExportTraceServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    posts: list[tuple[str, bytes]] = field(default_factory=list)  # every POST: (path, body)

    def spans(self) -> list:
        return [
            span
            for request in self.requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def resource_attributes(self) -> dict[str, str]:
        attributes: dict[str, str] = {}
        for request in self.requests:
            for resource_spans in request.resource_spans:
                for attribute in resource_spans.resource.attributes:
                    attributes[attribute.key] = attribute.value.string_value
        return attributes


@contextlib.contextmanager
def http_peer(status: int) -> Iterator[tuple[str, Received]]:
    """An OTLP/HTTP endpoint answering every POST with ``status``; 200 bodies are parsed."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.posts.append((self.path, body))
            if status == 200 and self.path == "/v1/traces":
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                received.requests.append(request)
                received.headers.append({key.lower(): value for key, value in self.headers.items()})
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            else:
                reply = b""
            self.send_response(status if self.path in ("/v1/traces", "/v1/logs") else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *arguments: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def grpc_peer(code: grpc.StatusCode | None) -> Iterator[tuple[str, Received]]:
    """An OTLP/gRPC receiver; with ``code`` it aborts every call with that status instead."""
    received = Received()

    class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802 - the generated naming
            if code is not None:
                context.abort(code, "test peer refuses on purpose")
            received.requests.append(request)
            received.headers.append(dict(context.invocation_metadata()))
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.stop(0)


@contextlib.contextmanager
def http_503() -> Iterator[str]:
    with http_peer(503) as (endpoint, _):
        yield endpoint


@contextlib.contextmanager
def grpc_unavailable() -> Iterator[str]:
    with grpc_peer(grpc.StatusCode.UNAVAILABLE) as (endpoint, _):
        yield endpoint


BROKEN_PEERS = {
    "refused": refused_port,
    "hanging": hanging_peer,
    "http-503": http_503,
    "grpc-unavailable": grpc_unavailable,
}
