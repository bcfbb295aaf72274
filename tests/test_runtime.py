"""configure(): one call for ledger, export and redaction, polite to the application."""

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_execaudit
from otel_execaudit import execution, verify
from otel_execaudit.redaction import REDACTED


def test_the_applications_own_provider_receives_the_spans(tmp_path):
    app_exporter = InMemorySpanExporter()
    app_provider = TracerProvider()
    app_provider.add_span_processor(SimpleSpanProcessor(app_exporter))
    global_before = trace.get_tracer_provider()
    otel_execaudit.configure(ledger=tmp_path / "l.db", tracer_provider=app_provider)
    try:
        with app_provider.get_tracer("app").start_as_current_span("http request"):
            with execution("inside-app") as ex:
                with ex.step("work"):
                    pass
    finally:
        otel_execaudit.shutdown()
    names = [span.name for span in app_exporter.get_finished_spans()]
    assert names == ["execute_tool work", "invoke_workflow inside-app", "http request"]
    request = app_exporter.get_finished_spans()[-1]
    workflow = app_exporter.get_finished_spans()[1]
    assert workflow.parent.span_id == request.context.span_id  # the app's trace continues
    assert trace.get_tracer_provider() is global_before  # never replaced unless asked
    assert ex.record.trace_id == format(request.context.trace_id, "032x")


def test_sdk_disabled_keeps_the_ledger_recording(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    runtime = otel_execaudit.configure(ledger=tmp_path / "l.db")
    try:
        with execution("dark") as ex:
            with ex.step("still audited"):
                pass
        runtime.ledger.sync()
        entries = [entry.fields() for entry in runtime.ledger.entries()]
    finally:
        otel_execaudit.shutdown()
    assert [entry["kind"] for entry in entries] == [
        "execution.started", "step.started", "step.completed", "execution.ended"]
    # No span is exported, but the execution still has ids of its own to correlate by.
    assert len({entry["trace_id"] for entry in entries}) == 1
    assert entries[0]["trace_id"] == ex.record.trace_id is not None
    assert ex.status.value == "completed"
    assert verify(tmp_path / "l.db").ok


def test_without_configure_the_default_ledger_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EXECAUDIT_LEDGER", str(tmp_path / "env.db"))
    otel_execaudit.shutdown()  # no runtime configured
    with execution("defaults"):
        pass
    assert otel_execaudit.get_runtime().ledger.path == tmp_path / "env.db"
    otel_execaudit.shutdown()
    assert verify(tmp_path / "env.db").entries == 2


def test_configure_again_switches_ledgers_and_closes_the_old_one(tmp_path):
    first = otel_execaudit.configure(ledger=tmp_path / "one.db", exporter="none")
    with execution("a"):
        pass
    second = otel_execaudit.configure(ledger=tmp_path / "two.db", exporter="none",
                                      redact=[r"iban"])
    with execution("b", details={"iban": "DE89 3704", "city": "Berlin"}):
        pass
    otel_execaudit.shutdown()
    assert first is not second
    assert verify(tmp_path / "one.db").entries == 2
    assert verify(tmp_path / "two.db").entries == 2
    from otel_execaudit import Ledger

    with Ledger(tmp_path / "two.db") as ledger:
        started = next(iter(ledger.entries())).fields()
    assert started["data"]["details"] == {"iban": REDACTED, "city": "Berlin"}


def test_configure_never_closes_a_ledger_it_did_not_open_or_one_still_in_use(tmp_path):
    from otel_execaudit import Ledger

    mine = Ledger(tmp_path / "mine.db")
    otel_execaudit.configure(ledger=mine, exporter="none")
    otel_execaudit.configure(ledger=mine, exporter="none", redact=["iban"])  # add a rule
    with execution("still works"):
        pass
    running = execution("long-running")
    ex = running.__enter__()
    otel_execaudit.configure(ledger=tmp_path / "next.db", exporter="none")  # mid-flight
    with ex.step("after reconfigure"):
        pass
    running.__exit__(None, None, None)
    otel_execaudit.shutdown()
    assert ex.status.value == "completed"
    mine.sync()
    kinds = [entry.fields()["kind"] for entry in mine.entries()]
    assert kinds.count("execution.ended") == 2 and "step.completed" in kinds
    mine.close()
    assert verify(tmp_path / "mine.db").ok
