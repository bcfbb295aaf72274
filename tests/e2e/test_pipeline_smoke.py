"""The trace pipeline works end to end, with the plain OpenTelemetry SDK (not otel_execaudit).

SDK ──OTLP gRPC or HTTP──> rotel-agent ──OTLP HTTP or gRPC──> Arize Phoenix ──REST──> assertions.

A span tree shaped like an execution (a workflow root, two tool steps, one failing) must come back
from Phoenix with the same names, ids, parent links, attributes, events and statuses.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Status, StatusCode

from .phoenix import PhoenixServer
from .processes import REPO_ROOT, ManagedProcess, free_port
from .rotel import RotelAgent
from .span_trees import children_of, root_span, spans_by_name

pytestmark = pytest.mark.e2e

PLAN = "smoke-plan"


def _exporter(protocol: str, rotel: RotelAgent, timeout: float = 10) -> SpanExporter:
    if protocol == "grpc":
        return GrpcExporter(
            endpoint=rotel.grpc_endpoint, insecure=True, timeout=timeout
        )
    return HttpExporter(endpoint=rotel.http_traces_endpoint, timeout=timeout)


def _provider(exporter: SpanExporter, project: str) -> TracerProvider:
    # A provider of the test's own: never the global one.
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "execaudit-e2e-smoke",
                "openinference.project.name": project,
            }
        )
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
    return provider


@dataclass(frozen=True)
class SentTree:
    trace_id: str
    span_ids: dict[str, str]  # span name -> hex span id
    execution_id: str


def _emit_execution_tree(provider: TracerProvider) -> SentTree:
    """A root ``invoke_workflow`` span with two ``execute_tool`` children; the second fails."""
    tracer = provider.get_tracer("execaudit.e2e.smoke")
    execution_id = str(uuid.uuid4())
    span_ids: dict[str, str] = {}
    with tracer.start_as_current_span(
        f"invoke_workflow {PLAN}",
        attributes={
            "openinference.span.kind": "CHAIN",
            "execaudit.execution_id": execution_id,
            "execaudit.plan_id": PLAN,
            "execaudit.mode": "DRY_RUN",
            "execaudit.status": "failed",
            "execaudit.step_count": 2,
            "execaudit.dry_run": True,
            "execaudit.guards": ("readonly", "budget"),
        },
    ) as root:
        root.add_event("execution.started", {"execaudit.ledger.seq": 0})
        with tracer.start_as_current_span(
            "execute_tool fetch",
            attributes={
                "openinference.span.kind": "TOOL",
                "execaudit.step.index": 0,
                "execaudit.step.name": "fetch",
                "execaudit.ledger.seq": 1,
                "execaudit.ratio": 0.25,
            },
        ) as fetch:
            fetch.add_event(
                "execaudit.side_effect",
                {"execaudit.side_effect.kind": "http.get", "n": 3},
            )
            fetch.set_status(Status(StatusCode.OK))
        with tracer.start_as_current_span(
            "execute_tool write",
            attributes={
                "openinference.span.kind": "TOOL",
                "execaudit.step.index": 1,
                "execaudit.step.name": "write",
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as write:
            try:
                raise PermissionError("write refused by guard")
            except PermissionError as error:
                write.record_exception(error)
                write.set_attribute("error.type", type(error).__qualname__)
                write.set_status(Status(StatusCode.ERROR, "write refused by guard"))
        root.add_event("execution.finished", {"execaudit.status": "failed"})
        root.set_status(Status(StatusCode.ERROR, "step write failed"))
        for span in (root, fetch, write):
            span_ids[span.name] = format(span.get_span_context().span_id, "016x")
        trace_id = format(root.get_span_context().trace_id, "032x")
    return SentTree(trace_id=trace_id, span_ids=span_ids, execution_id=execution_id)


def _flush(provider: TracerProvider) -> None:
    assert provider.force_flush(timeout_millis=15_000), (
        "the SDK could not flush to rotel-agent"
    )
    provider.shutdown()


@pytest.mark.parametrize(
    "forward_protocol",
    ["http", "grpc"],
    ids=["rotel-http-phoenix", "rotel-grpc-phoenix"],
)
@pytest.mark.parametrize(
    "client_protocol", ["grpc", "http"], ids=["sdk-grpc", "sdk-http"]
)
def test_span_tree_survives_the_pipeline(
    phoenix: PhoenixServer,
    rotel_factory,
    phoenix_project: str,
    client_protocol: str,
    forward_protocol: str,
) -> None:
    rotel = rotel_factory(exporter_protocol=forward_protocol)
    provider = _provider(_exporter(client_protocol, rotel), phoenix_project)
    sent = _emit_execution_tree(provider)
    _flush(provider)

    spans = phoenix.wait_for_spans(
        sent.trace_id, count=3, timeout=30, project=phoenix_project
    )
    assert len(spans) == 3, [span["name"] for span in spans]
    by_name = spans_by_name(spans)
    root = root_span(spans)
    fetch = by_name["execute_tool fetch"]
    write = by_name["execute_tool write"]

    # identity and tree shape
    assert root["name"] == f"invoke_workflow {PLAN}"
    assert {span["context"]["trace_id"] for span in spans} == {sent.trace_id}
    assert {
        name: span["context"]["span_id"] for name, span in by_name.items()
    } == sent.span_ids
    assert root["parent_id"] is None
    assert [child["name"] for child in children_of(spans, root)] == [
        "execute_tool fetch",
        "execute_tool write",
    ]
    assert fetch["parent_id"] == write["parent_id"] == root["context"]["span_id"]

    # Phoenix lifts openinference.span.kind out of the attributes into span_kind
    assert (root["span_kind"], fetch["span_kind"], write["span_kind"]) == (
        "CHAIN",
        "TOOL",
        "TOOL",
    )
    assert all("openinference.span.kind" not in span["attributes"] for span in spans)

    # attributes, with their types
    assert root["attributes"] == {
        "execaudit.execution_id": sent.execution_id,
        "execaudit.plan_id": PLAN,
        "execaudit.mode": "DRY_RUN",
        "execaudit.status": "failed",
        "execaudit.step_count": 2,
        "execaudit.dry_run": True,
        "execaudit.guards": ["readonly", "budget"],
    }
    assert fetch["attributes"] == {
        "execaudit.step.index": 0,
        "execaudit.step.name": "fetch",
        "execaudit.ledger.seq": 1,
        "execaudit.ratio": 0.25,
    }
    assert write["attributes"] == {
        "execaudit.step.index": 1,
        "execaudit.step.name": "write",
        "error.type": "PermissionError",
    }

    # events, in order, with their attributes
    assert [(e["name"], e["attributes"]) for e in root["events"]] == [
        ("execution.started", {"execaudit.ledger.seq": 0}),
        ("execution.finished", {"execaudit.status": "failed"}),
    ]
    assert [(e["name"], e["attributes"]) for e in fetch["events"]] == [
        ("execaudit.side_effect", {"execaudit.side_effect.kind": "http.get", "n": 3}),
    ]
    [exception] = write["events"]
    assert exception["name"] == "exception"
    assert exception["attributes"]["exception.type"] == "PermissionError"
    assert exception["attributes"]["exception.message"] == "write refused by guard"
    assert (
        "Traceback (most recent call last)"
        in exception["attributes"]["exception.stacktrace"]
    )

    # statuses
    assert (root["status_code"], root["status_message"]) == (
        "ERROR",
        "step write failed",
    )
    assert (fetch["status_code"], fetch["status_message"]) == ("OK", "")
    assert (write["status_code"], write["status_message"]) == (
        "ERROR",
        "write refused by guard",
    )

    # the resource attribute chose the project; nothing leaked into the default one
    assert phoenix_project in phoenix.projects()
    assert phoenix.spans(sent.trace_id) == []
    # server-side filters work for the queries a ledger comparison needs
    errors = phoenix.spans(
        sent.trace_id, project=phoenix_project, filters=[("status_code", "ERROR")]
    )
    assert sorted(span["name"] for span in errors) == [
        "execute_tool write",
        f"invoke_workflow {PLAN}",
    ]


def test_killed_collector_refuses_and_comes_back(
    phoenix: PhoenixServer, rotel: RotelAgent, phoenix_project: str
) -> None:
    """``kill()`` takes the collector away mid-run; ``start()`` brings it back on the same ports."""
    rotel.kill()
    assert not rotel.is_running()
    assert not rotel.accepts_connections()

    # an exporter aimed at a dead collector fails within its timeout instead of hanging
    provider = _provider(_exporter("http", rotel, timeout=2), phoenix_project)
    lost = _emit_execution_tree(provider)
    started = time.monotonic()
    provider.shutdown()
    assert time.monotonic() - started < 15

    rotel.start()
    assert rotel.accepts_connections()
    provider = _provider(_exporter("grpc", rotel), phoenix_project)
    sent = _emit_execution_tree(provider)
    _flush(provider)
    spans = phoenix.wait_for_spans(
        sent.trace_id, count=3, timeout=30, project=phoenix_project
    )
    assert {span["name"] for span in spans} == set(sent.span_ids)
    assert phoenix.spans(lost.trace_id, project=phoenix_project) == []


def test_wait_for_spans_gives_up_at_its_deadline(phoenix: PhoenixServer) -> None:
    with pytest.raises(AssertionError, match="0 of 1 expected spans"):
        phoenix.wait_for_spans("0" * 31 + "1", count=1, timeout=1)


def _read_env_file(path: Path) -> dict[str, str]:
    settings: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def test_shipped_rotel_env_file_forwards_to_phoenix(
    phoenix: PhoenixServer,
    rotel_agent_binary: Path,
    tmp_path: Path,
    phoenix_project: str,
) -> None:
    """collector/rotel.env names only real rotel settings, and an agent run from it alone works."""
    settings = _read_env_file(REPO_ROOT / "collector" / "rotel.env")
    help_text = subprocess.run(
        [str(rotel_agent_binary), "start", "--help"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=True,
    ).stdout  # fmt: skip
    known = set(re.findall(r"\[env: (ROTEL_[A-Z0-9_]+)=", help_text))
    assert set(settings) <= known, (
        f"not rotel settings: {sorted(set(settings) - known)}"
    )
    assert settings["ROTEL_OTLP_GRPC_ENDPOINT"].endswith(":4317")
    assert settings["ROTEL_OTLP_HTTP_ENDPOINT"].endswith(":4318")

    # the same settings on this run's ports, and no command-line flags at all
    grpc_port, http_port = free_port(), free_port()
    settings.update(
        ROTEL_OTLP_GRPC_ENDPOINT=f"127.0.0.1:{grpc_port}",
        ROTEL_OTLP_HTTP_ENDPOINT=f"127.0.0.1:{http_port}",
        ROTEL_OTLP_EXPORTER_ENDPOINT=phoenix.base_url,
        ROTEL_PID_FILE=str(tmp_path / "rotel.pid"),
        ROTEL_LOG_FILE=str(tmp_path / "rotel.log"),
        NO_COLOR="1",
    )
    process = ManagedProcess(
        name="rotel-agent (rotel.env)",
        argv=[rotel_agent_binary, "start"],
        log_path=tmp_path / "rotel-agent.out",
        env={**os.environ, **settings},
    )
    agent = RotelAgent(process, grpc_port, http_port, phoenix.base_url, "http")
    try:
        agent.start()
        provider = _provider(_exporter("http", agent), phoenix_project)
        sent = _emit_execution_tree(provider)
        _flush(provider)
        spans = phoenix.wait_for_spans(
            sent.trace_id, count=3, timeout=30, project=phoenix_project
        )
        assert {span["context"]["span_id"] for span in spans} == set(
            sent.span_ids.values()
        )
    except BaseException:
        print(process.log_report())
        raise
    finally:
        agent.stop()
