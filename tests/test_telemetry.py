"""Telemetry is never on the critical path (no exception escapes it, no wait is unbounded), and
the application's global provider is never replaced unasked.

Every broken collector here is a real peer on 127.0.0.1 built by the test: a refused port, a TCP
server that accepts and never answers, an HTTP server answering 503, and a gRPC server answering
UNAVAILABLE. Working paths go to real in-test OTLP receivers (HTTP and gRPC).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_execaudit.errors import ConfigurationError

from .peers import BROKEN_PEERS, grpc_peer, hanging_peer, http_peer, refused_port
from otel_execaudit.telemetry.pipeline import ExportStats, FailSafeSpanExporter, Telemetry
from otel_execaudit.telemetry.build import build_telemetry

SCRIPTS = Path(__file__).parent / "telemetry_scripts"
PROTOCOLS = ["grpc", "http/protobuf"]


@pytest.fixture(autouse=True)
def clean_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test states the OTEL_* variables it relies on; none leak in from the machine."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def record_spans(telemetry: Telemetry, count: int = 5) -> None:
    with telemetry.tracer.start_as_current_span("invoke_workflow test-plan"):
        for index in range(count - 1):
            with telemetry.tracer.start_as_current_span(f"execute_tool step-{index}"):
                pass


# --- broken collectors ---------------------------------------------------------------------------


def run_exit_script(peer: str, protocol: str, deadline: float, provider_kind: str) -> tuple[float, str, int]:
    with BROKEN_PEERS[peer]() as endpoint:
        started = time.monotonic()
        finished = subprocess.run(
            [
                sys.executable,
                str(SCRIPTS / "exit_with_broken_collector.py"),
                *(protocol, endpoint, str(deadline), provider_kind),
            ],
            capture_output=True,
            text=True,
            timeout=60,  # a hang fails the test instead of the suite
        )
        elapsed = time.monotonic() - started
    assert "work done" in finished.stdout, finished.stdout + finished.stderr
    return elapsed, finished.stdout + finished.stderr, finished.returncode


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("peer", BROKEN_PEERS)
def test_a_script_exits_quickly_and_quietly_whatever_the_collector_does(peer: str, protocol: str) -> None:
    deadline = 2.0
    elapsed, output, return_code = run_exit_script(peer, protocol, deadline, "private")
    assert return_code == 0, output
    assert "Traceback" not in output
    # Interpreter start-up and imports take a few tenths of a second on top of the deadline.
    assert elapsed < deadline + 2.0, f"exit took {elapsed:.1f} s\n{output}"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_applications_provider_and_its_own_exit_hook_cannot_prolong_exit(protocol: str) -> None:
    # The SDK's hook on the application's provider calls our processor's shutdown, which is bounded.
    deadline = 2.0
    elapsed, output, return_code = run_exit_script("hanging", protocol, deadline, "application")
    assert return_code == 0, output
    assert "Traceback" not in output
    assert elapsed < deadline + 2.0, f"exit took {elapsed:.1f} s\n{output}"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("peer", BROKEN_PEERS)
def test_export_failures_are_counted_and_never_raised(peer: str, protocol: str) -> None:
    deadline = 1.0
    with BROKEN_PEERS[peer]() as endpoint:
        telemetry = build_telemetry(protocol=protocol, endpoint=endpoint, deadline=deadline)
        record_spans(telemetry, count=5)
        # Long enough for the exporter's own bounded attempt to end and be counted.
        telemetry.force_flush(timeout=deadline * 3)
        started = time.monotonic()
        telemetry.shutdown()
        shutdown_seconds = time.monotonic() - started

    stats = telemetry.stats
    assert stats.export_errors > 0
    assert stats.spans_failed == 5
    assert stats.spans_exported == 0
    assert stats.last_error
    assert shutdown_seconds < deadline + 0.5


def test_a_failure_streak_is_reported_once_and_the_sdk_loggers_stay_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with refused_port() as endpoint, structlog.testing.capture_logs() as events:
        caplog.set_level(logging.DEBUG)
        telemetry = build_telemetry(protocol="http/protobuf", endpoint=endpoint, deadline=0.5)
        for _ in range(3):
            record_spans(telemetry, count=2)
            telemetry.force_flush(timeout=2.0)
        # The application's own records on the same loggers still get through.
        logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter").warning("from the app")
        telemetry.shutdown()

    assert telemetry.stats.export_errors == 3
    failing = [event for event in events if event["event"].startswith("telemetry export failing")]
    assert len(failing) == 1
    # The reason is what the exporter logged (now silenced), not a bare FAILURE.
    assert failing[0]["error"].startswith("exporter returned FAILURE: Failed to export")
    sdk_records = [record.getMessage() for record in caplog.records if record.name.startswith("opentelemetry")]
    assert sdk_records == ["from the app"]


# --- the fail-safe wrapper itself ----------------------------------------------------------------


class ScriptedExporter(SpanExporter):
    """Does, per call, what the test tells it: succeed, fail, raise, or block until released."""

    def __init__(self, *behaviours: str):
        self.behaviours = list(behaviours)
        self.release = threading.Event()

    def export(self, spans):
        behaviour = self.behaviours.pop(0)
        if behaviour == "raise":
            raise ConnectionError("collector exploded")
        if behaviour == "block":
            self.release.wait(30)
        return SpanExportResult.SUCCESS if behaviour == "succeed" else SpanExportResult.FAILURE

    def shutdown(self):
        self.release.set()
        raise RuntimeError("shutdown exploded too")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        raise RuntimeError("flush exploded")


def spans(count: int) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for index in range(count):
        provider.get_tracer("test").start_span(f"span-{index}").end()
    return list(exporter.get_finished_spans())


def test_failsafe_exporter_counts_raises_failures_and_overruns_without_raising() -> None:
    inner = ScriptedExporter("succeed", "raise", "fail", "block", "succeed")
    exporter = FailSafeSpanExporter(inner, timeout=0.3)
    with structlog.testing.capture_logs() as events:
        assert exporter.export(spans(2)) is SpanExportResult.SUCCESS
        assert exporter.export(spans(3)) is SpanExportResult.FAILURE
        assert exporter.export(spans(1)) is SpanExportResult.FAILURE
        assert exporter.export(spans(4)) is SpanExportResult.FAILURE  # blocks: abandoned at 0.3 s
        # The blocked call still runs: the next batch fails at once rather than stacking threads.
        assert exporter.export(spans(1)) is SpanExportResult.FAILURE
        assert inner.behaviours == ["succeed"]
        inner.release.set()
        exporter._running.join(5)  # noqa: SLF001 - wait for the abandoned call, not for time
        assert exporter.export(spans(5)) is SpanExportResult.SUCCESS
        assert exporter.force_flush() is False
        exporter.shutdown()
        exporter.shutdown()

    assert exporter.stats == ExportStats(
        spans_exported=7,
        spans_failed=9,
        export_errors=4,
        last_error="previous export still running past its timeout",
    )
    assert [event["event"] for event in events] == [
        "telemetry export failing; spans are dropped, executions are unaffected",
        "telemetry export recovered",
    ]
    assert exporter.export(spans(1)) is SpanExportResult.FAILURE  # after shutdown


# --- working paths and configuration -------------------------------------------------------------


def test_spans_reach_an_otlp_http_receiver_with_service_name_and_resource_attributes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=payments")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "loses-to-the-argument")
    with http_peer(200) as (endpoint, received):
        telemetry = build_telemetry(service_name="refund-agent", protocol="http/protobuf", endpoint=endpoint)
        record_spans(telemetry, count=3)
        assert telemetry.force_flush() is True
        telemetry.shutdown()

    assert sorted(span.name for span in received.spans()) == [
        "execute_tool step-0",
        "execute_tool step-1",
        "invoke_workflow test-plan",
    ]
    attributes = received.resource_attributes()
    assert attributes["service.name"] == "refund-agent"
    assert attributes["deployment.environment"] == "test"
    assert attributes["team"] == "payments"
    assert telemetry.stats == ExportStats(spans_exported=3, spans_failed=0, export_errors=0, last_error=None)


def test_otel_service_name_is_used_without_an_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-the-environment")
    with http_peer(200) as (endpoint, received):
        telemetry = build_telemetry(protocol="http/protobuf", endpoint=endpoint)
        record_spans(telemetry, count=1)
        telemetry.shutdown()
    assert received.resource_attributes()["service.name"] == "from-the-environment"


def test_endpoint_protocol_and_headers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with http_peer(200) as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme,x-token=secret")
        telemetry = build_telemetry()
        record_spans(telemetry, count=2)
        telemetry.shutdown()
    assert len(received.spans()) == 2
    assert received.headers[0]["x-tenant"] == "acme"


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with http_peer(200) as (endpoint, received), refused_port() as elsewhere:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", elsewhere)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=from-env")
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
        telemetry = build_telemetry(
            exporter="otlp", protocol="http/protobuf", endpoint=endpoint, headers={"x-tenant": "from-argument"}
        )
        record_spans(telemetry, count=2)
        telemetry.shutdown()
    assert len(received.spans()) == 2
    assert received.headers[0]["x-tenant"] == "from-argument"


def test_the_traces_protocol_variable_wins_over_the_general_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with http_peer(200) as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
        telemetry = build_telemetry(endpoint=endpoint)
        record_spans(telemetry, count=1)
        telemetry.shutdown()
    assert len(received.spans()) == 1


@pytest.mark.parametrize("insecure", [True, False])
def test_otel_exporter_otlp_insecure_decides_tls_for_grpc(monkeypatch: pytest.MonkeyPatch, insecure: bool) -> None:
    with grpc_peer(None) as (endpoint, received):
        if insecure:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
        # No scheme: only the variable says whether to use TLS; the test peer speaks plaintext.
        telemetry = build_telemetry(protocol="grpc", endpoint=endpoint.removeprefix("http://"), deadline=1.0)
        record_spans(telemetry, count=2)
        telemetry.force_flush(timeout=3.0)
        telemetry.shutdown()
    assert len(received.spans()) == (2 if insecure else 0)
    assert telemetry.stats.spans_exported == (2 if insecure else 0)


def test_spans_and_headers_reach_an_otlp_grpc_receiver() -> None:
    with grpc_peer(None) as (endpoint, received):
        telemetry = build_telemetry(service_name="grpc-agent", protocol="grpc", endpoint=endpoint, headers={"x-tenant": "acme"})
        record_spans(telemetry, count=3)
        telemetry.shutdown()
    assert len(received.spans()) == 3
    assert received.resource_attributes()["service.name"] == "grpc-agent"
    assert received.headers[0]["x-tenant"] == "acme"


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"])
def test_the_timeout_variable_shortens_an_export_but_never_stretches_the_deadline(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    with hanging_peer() as endpoint:
        monkeypatch.setenv(variable, "0.2")
        short = build_telemetry(protocol="http/protobuf", endpoint=endpoint, deadline=20.0)
        monkeypatch.setenv(variable, "600")
        capped = build_telemetry(protocol="http/protobuf", endpoint=endpoint, deadline=0.5)
        for telemetry in (short, capped):
            record_spans(telemetry, count=1)
            started = time.monotonic()
            telemetry.force_flush(timeout=30.0)
            # Both are far from the other bound (20 s deadline, 600 s variable).
            assert time.monotonic() - started < 5.0
            assert telemetry.stats.spans_failed == 1
            telemetry.shutdown()


def test_otel_sdk_disabled_gives_a_no_op_tracer_that_exports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with http_peer(200) as (endpoint, received):
        telemetry = build_telemetry(protocol="http/protobuf", endpoint=endpoint)
        with telemetry.tracer.start_as_current_span("invoke_workflow disabled") as span:
            assert not span.is_recording()
        assert telemetry.enabled is False
        assert telemetry.force_flush() is True
        telemetry.shutdown()
        telemetry.shutdown()
    assert received.requests == []
    assert telemetry.stats == ExportStats(0, 0, 0, None)


def test_exporter_none_exports_nothing_but_spans_still_have_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    telemetry = build_telemetry()
    with telemetry.tracer.start_as_current_span("invoke_workflow local") as span:
        # Ledger entries carry trace and span ids, so they stay real without an exporter.
        assert span.get_span_context().is_valid
    assert telemetry.enabled is False
    telemetry.shutdown()


def test_console_exporter_prints_spans(capsys: pytest.CaptureFixture[str]) -> None:
    telemetry = build_telemetry(service_name="demo", exporter="console")
    record_spans(telemetry, count=1)
    telemetry.shutdown()
    assert '"name": "invoke_workflow test-plan"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "variable"),
    [({"exporter": "zipkin"}, None), ({"exporter": "otlp", "protocol": "http/json"}, None), ({}, "jaeger")],
)
def test_unusable_settings_raise_configuration_error(
    monkeypatch: pytest.MonkeyPatch, arguments: dict, variable: str | None
) -> None:
    if variable:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", variable)
    with pytest.raises(ConfigurationError, match="use one of"):
        build_telemetry(**arguments)


# --- providers -----------------------------------------------------------------------------------


def test_the_global_provider_is_untouched_by_default() -> None:
    before = trace.get_tracer_provider()
    telemetry = build_telemetry(exporter="none")
    assert trace.get_tracer_provider() is before
    assert telemetry.tracer_provider is not before
    telemetry.shutdown()


def test_set_global_replaces_the_global_provider() -> None:
    # A fresh interpreter: the API allows setting the global provider once per process.
    script = (
        "from opentelemetry import trace\n"
        "from otel_execaudit.telemetry.build import build_telemetry\n"
        "telemetry = build_telemetry(exporter='none', set_global=True)\n"
        "assert trace.get_tracer_provider() is telemetry.tracer_provider\n"
        "print('replaced')\n"
    )
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "replaced"


def test_the_applications_provider_gets_our_processor_and_survives_our_shutdown() -> None:
    application_exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(application_exporter))
    ours = InMemorySpanExporter()

    telemetry = build_telemetry(tracer_provider=provider, exporter=ours)
    assert telemetry.tracer_provider is provider
    record_spans(telemetry, count=2)
    telemetry.shutdown()
    provider.get_tracer("app").start_span("after our shutdown").end()

    assert len(ours.get_finished_spans()) == 2
    assert telemetry.stats.spans_exported == 2
    assert len(application_exporter.get_finished_spans()) == 3


def test_the_applications_provider_gets_no_processor_without_an_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = TracerProvider(shutdown_on_exit=False)
    processors_before = provider._active_span_processor._span_processors  # noqa: SLF001
    telemetry = build_telemetry(tracer_provider=provider)
    assert provider._active_span_processor._span_processors == processors_before  # noqa: SLF001
    assert telemetry.tracer_provider is provider
    assert telemetry.enabled is True  # spans are recorded; the application's set-up exports them
    telemetry.shutdown()


@pytest.mark.parametrize(("max_span_events", "kept"), [(None, 128), (500, 300)])
def test_max_span_events_raises_the_event_limit(max_span_events: int | None, kept: int) -> None:
    exporter = InMemorySpanExporter()
    telemetry = build_telemetry(exporter=exporter, max_span_events=max_span_events)
    with telemetry.tracer.start_as_current_span("invoke_workflow many-steps") as span:
        for index in range(300):
            span.add_event(f"side_effect {index}")
    telemetry.shutdown()
    (exported,) = exporter.get_finished_spans()
    assert len(exported.events) == kept


def test_a_batch_abandoned_at_shutdown_counts_as_failed_once() -> None:
    class NeverReturns(ScriptedExporter):
        def shutdown(self):  # unlike a real OTLP exporter, shutting down does not wake it
            pass

    inner = NeverReturns("block")
    exporter = FailSafeSpanExporter(inner, timeout=30)
    worker = threading.Thread(target=exporter.export, args=(spans(3),), daemon=True)
    worker.start()
    while exporter._running is None:  # the export call has started its thread
        time.sleep(0.01)
    exporter.cut_off_at(time.monotonic() + 0.2)
    exporter.shutdown()
    assert exporter.stats.spans_failed == 3 and exporter.stats.last_error == "export abandoned at shutdown"
    inner.release.set()  # the stuck call ends later: it must not count the batch again
    worker.join(5)
    assert not worker.is_alive() and exporter.stats.spans_failed == 3 and exporter.stats.export_errors == 1
