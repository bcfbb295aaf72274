"""Events as OpenTelemetry log records: same export choice, same fail-safety, same deadline as spans.

Exporters here are the SDK's in-memory one and small scripted ones that raise or hang; the OTLP
path goes to a real in-test HTTP receiver on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import structlog
from opentelemetry._logs import NoOpLogger, SeverityNumber
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_execaudit
from otel_execaudit.errors import ConfigurationError
from otel_execaudit.telemetry.pipeline import LogExportStats, emit_event
from otel_execaudit.telemetry.build import build_telemetry

from .peers import http_peer

from .peers import hanging_peer

EVENT = "execaudit.action.terminal"


@pytest.fixture(autouse=True)
def clean_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test states the OTEL_* variables it relies on; none leak in from the machine."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


class RaisingLogExporter(LogRecordExporter):
    def export(self, batch):
        raise ConnectionError("collector exploded")

    def shutdown(self):
        raise RuntimeError("shutdown exploded too")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        raise RuntimeError("flush exploded")


class HangingLogExporter(LogRecordExporter):
    """Blocks in export until released; shutting it down does not wake it (a stuck socket)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, batch):
        self.release.wait(30)
        return LogRecordExportResult.SUCCESS

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class HangingSpanExporter(SpanExporter):
    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans):
        self.release.wait(30)
        return SpanExportResult.SUCCESS


# --- what an event carries -----------------------------------------------------------------------


def test_an_event_arrives_with_its_name_attributes_severity_and_the_active_span() -> None:
    memory = InMemoryLogRecordExporter()
    telemetry = build_telemetry(service_name="refund-agent", exporter="none", log_exporter=memory)
    with telemetry.tracer.start_as_current_span("execute_tool refund") as span:
        telemetry.emit_event(EVENT, {"execaudit.outcome": "succeeded", "execaudit.attempt": 2}, body="done")
    assert telemetry.force_flush(timeout=2.0) is True

    (exported,) = memory.get_finished_logs()
    record = exported.log_record
    assert record.event_name == EVENT
    assert dict(record.attributes) == {"execaudit.outcome": "succeeded", "execaudit.attempt": 2, "event.name": EVENT}
    assert record.body == "done"
    assert record.severity_number is SeverityNumber.INFO and record.severity_text == "INFO"
    assert record.trace_id == span.get_span_context().trace_id
    assert record.span_id == span.get_span_context().span_id
    assert abs(record.timestamp - time.time_ns()) < 60 * 10**9
    assert exported.instrumentation_scope.name == "otel_execaudit"
    # The same Resource as the spans.
    assert exported.resource is telemetry.tracer_provider.resource
    assert exported.resource.attributes["service.name"] == "refund-agent"
    assert telemetry.log_stats == LogExportStats(records_exported=1, records_failed=0, export_errors=0, last_error=None)
    telemetry.shutdown()


def test_an_event_outside_any_span_has_no_trace_id() -> None:
    memory = InMemoryLogRecordExporter()
    telemetry = build_telemetry(exporter="none", log_exporter=memory)
    telemetry.emit_event(EVENT, {})
    telemetry.shutdown()
    (exported,) = memory.get_finished_logs()
    assert not exported.log_record.trace_id


def test_events_reach_an_otlp_http_receiver_on_the_logs_path_of_a_base_endpoint() -> None:
    with http_peer(200) as (endpoint, received):
        telemetry = build_telemetry(service_name="refund-agent", protocol="http/protobuf", endpoint=endpoint)
        with telemetry.tracer.start_as_current_span("execute_tool refund") as span:
            telemetry.emit_event(EVENT, {"execaudit.outcome": "failed"})
        assert telemetry.force_flush(timeout=5.0) is True
        telemetry.shutdown()

    bodies = [body for path, body in received.posts if path == "/v1/logs"]
    assert len(bodies) == 1
    request = logs_service_pb2.ExportLogsServiceRequest()
    request.ParseFromString(bodies[0])
    (record,) = request.resource_logs[0].scope_logs[0].log_records
    assert record.event_name == EVENT
    assert record.trace_id == span.get_span_context().trace_id.to_bytes(16, "big")
    assert {attribute.key: attribute.value.string_value for attribute in record.attributes}["execaudit.outcome"] == "failed"
    assert telemetry.log_stats.records_exported == 1


# --- fail-safety and the deadline ----------------------------------------------------------------


def test_an_exporter_that_raises_is_counted_and_nothing_raises() -> None:
    telemetry = build_telemetry(exporter="none", log_exporter=RaisingLogExporter())
    with structlog.testing.capture_logs() as events:
        telemetry.emit_event(EVENT, {"execaudit.outcome": "succeeded"})
        telemetry.force_flush(timeout=2.0)
        telemetry.emit_event(EVENT, {"execaudit.outcome": "failed"})
        telemetry.force_flush(timeout=2.0)
        telemetry.shutdown()
        telemetry.emit_event(EVENT, {})  # after shutdown: dropped, silently

    stats = telemetry.log_stats
    assert (stats.records_failed, stats.records_exported, stats.export_errors) == (2, 0, 2)
    assert stats.last_error == "ConnectionError: collector exploded"
    failing = [event for event in events if event["event"].startswith("telemetry export failing")]
    assert [event["event"] for event in failing] == [
        "telemetry export failing; log records are dropped, executions are unaffected"
    ]


def test_a_hanging_exporter_cannot_hold_shutdown_past_its_timeout() -> None:
    inner = HangingLogExporter()
    telemetry = build_telemetry(exporter="none", log_exporter=inner, deadline=5.0)
    try:
        telemetry.emit_event(EVENT, {"execaudit.outcome": "succeeded"})
        started = time.monotonic()
        telemetry.shutdown(timeout=0.5)
        elapsed = time.monotonic() - started
    finally:
        inner.release.set()
    # The alternative to this bound is a hang: the SDK would wait 30 s on its worker.
    assert elapsed < 1.5, f"shutdown took {elapsed:.2f} s"
    assert telemetry.log_stats.records_failed == 1


def test_spans_and_events_share_one_deadline_rather_than_one_each() -> None:
    spans, events = HangingSpanExporter(), HangingLogExporter()
    telemetry = build_telemetry(exporter=spans, log_exporter=events, deadline=5.0)
    try:
        with telemetry.tracer.start_as_current_span("execute_tool stuck"):
            telemetry.emit_event(EVENT, {})
        started = time.monotonic()
        telemetry.shutdown(timeout=0.5)
        elapsed = time.monotonic() - started
    finally:
        spans.release.set()
        events.release.set()
    assert elapsed < 1.5, f"shutdown took {elapsed:.2f} s"
    assert telemetry.stats.spans_failed == 1 and telemetry.log_stats.records_failed == 1


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_script_with_events_for_a_hanging_collector_exits_within_the_deadline(protocol: str) -> None:
    deadline = 1.0
    script = (
        "import sys\n"
        "from otel_execaudit.telemetry.build import build_telemetry\n"
        "telemetry = build_telemetry(protocol=sys.argv[1], endpoint=sys.argv[2], deadline=float(sys.argv[3]))\n"
        "with telemetry.tracer.start_as_current_span('invoke_workflow exit-test'):\n"
        "    for index in range(20):\n"
        "        telemetry.emit_event('execaudit.action.terminal', {'execaudit.step': index})\n"
        "print('work done', flush=True)\n"
    )
    with hanging_peer() as endpoint:
        started = time.monotonic()
        finished = subprocess.run(
            [sys.executable, "-c", script, protocol, endpoint, str(deadline)],
            capture_output=True, text=True, timeout=60,  # a hang fails the test instead of the suite
        )
        elapsed = time.monotonic() - started
    output = finished.stdout + finished.stderr
    assert "work done" in finished.stdout and finished.returncode == 0, output
    assert "Traceback" not in output
    # Interpreter start-up and imports take a few tenths of a second on top of the deadline.
    assert elapsed < deadline + 2.0, f"exit took {elapsed:.1f} s\n{output}"


def test_emit_event_never_raises_and_reports_a_failure_streak_once() -> None:
    memory = InMemoryLogRecordExporter()
    telemetry = build_telemetry(exporter="none", log_exporter=memory)
    with structlog.testing.capture_logs() as events:
        telemetry.emit_event(EVENT, object())  # type: ignore[arg-type] - not a mapping
        telemetry.emit_event(EVENT, 42)  # type: ignore[arg-type]
        telemetry.emit_event(EVENT, {"execaudit.outcome": "succeeded"})
    telemetry.shutdown()
    assert [event["event"] for event in events] == ["telemetry event dropped"]
    assert len(memory.get_finished_logs()) == 1


# --- choosing the exporter -----------------------------------------------------------------------


def test_exporter_none_makes_emit_event_a_silent_no_op(capsys: pytest.CaptureFixture[str]) -> None:
    telemetry = build_telemetry(exporter="none")
    with structlog.testing.capture_logs() as events:
        telemetry.emit_event(EVENT, {"execaudit.outcome": "succeeded"})
        assert telemetry.force_flush(timeout=1.0) is True
        telemetry.shutdown()
    assert events == []
    assert capsys.readouterr() == ("", "")
    assert telemetry.log_stats == LogExportStats(0, 0, 0, None)


def test_otel_sdk_disabled_gives_a_no_op_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    memory = InMemoryLogRecordExporter()
    telemetry = build_telemetry(log_exporter=memory)
    assert isinstance(telemetry.logger, NoOpLogger)
    telemetry.emit_event(EVENT, {"execaudit.outcome": "succeeded"})
    assert telemetry.force_flush() is True
    telemetry.shutdown()
    assert memory.get_finished_logs() == ()


def test_console_prints_events_to_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    telemetry = build_telemetry(exporter="console")
    telemetry.emit_event(EVENT, {"execaudit.outcome": "succeeded"})
    telemetry.shutdown()
    assert f'"event_name": "{EVENT}"' in capsys.readouterr().out


def test_otel_logs_exporter_wins_over_the_environments_choice_for_spans(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "console")
    telemetry = build_telemetry()
    telemetry.emit_event(EVENT, {})
    telemetry.shutdown()
    assert f'"event_name": "{EVENT}"' in capsys.readouterr().out


def test_an_explicit_exporter_wins_over_otel_logs_exporter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "console")
    telemetry = build_telemetry(exporter="none")
    telemetry.emit_event(EVENT, {})
    telemetry.shutdown()
    assert EVENT not in capsys.readouterr().out


def test_a_span_exporter_instance_exports_no_events_unless_given_a_log_exporter() -> None:
    telemetry = build_telemetry(exporter=InMemorySpanExporter())
    telemetry.emit_event(EVENT, {})
    assert telemetry.force_flush(timeout=1.0) is True
    assert telemetry.log_stats == LogExportStats(0, 0, 0, None)
    telemetry.shutdown()


def test_the_applications_provider_gets_events_only_when_asked() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    assert isinstance(build_telemetry(tracer_provider=provider).logger, NoOpLogger)

    memory = InMemoryLogRecordExporter()
    telemetry = build_telemetry(tracer_provider=provider, log_exporter=memory)
    with telemetry.tracer.start_as_current_span("execute_tool app") as span:
        telemetry.emit_event(EVENT, {})
    telemetry.shutdown()
    (exported,) = memory.get_finished_logs()
    assert exported.log_record.trace_id == span.get_span_context().trace_id
    assert exported.resource is provider.resource


def test_an_unknown_logs_exporter_raises_before_touching_the_applications_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "zipkin")
    provider = TracerProvider(shutdown_on_exit=False)
    processors_before = provider._active_span_processor._span_processors  # noqa: SLF001
    with pytest.raises(ConfigurationError, match="Unknown log exporter"):
        build_telemetry(tracer_provider=provider, exporter=InMemorySpanExporter())
    assert provider._active_span_processor._span_processors == processors_before  # noqa: SLF001


# --- without a Telemetry, and through configure() ------------------------------------------------


def test_emit_event_without_telemetry_is_a_no_op_without_a_global_provider() -> None:
    emit_event(None, EVENT, {"execaudit.outcome": "succeeded"})


def test_configure_passes_the_log_exporter_through(tmp_path) -> None:
    memory = InMemoryLogRecordExporter()
    runtime = otel_execaudit.configure(ledger=tmp_path / "ledger.db", exporter="none", log_exporter=memory)
    try:
        emit_event(runtime.telemetry, EVENT, {"execaudit.outcome": "succeeded"})
        assert runtime.telemetry is not None and runtime.telemetry.force_flush(timeout=2.0) is True
    finally:
        otel_execaudit.shutdown()
    assert [record.log_record.event_name for record in memory.get_finished_logs()] == [EVENT]
