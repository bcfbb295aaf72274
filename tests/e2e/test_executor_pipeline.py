"""The guarded executor end to end: a LIVE run exported over OTLP to rotel-agent and on to Arize
Phoenix. Every guard evaluation arrives as an ``apply_guardrail`` span under the span it guarded,
carrying the seq and hash of its ledger entry; the terminal events (OTLP log records) are
accepted by the collector."""

from __future__ import annotations

import otel_execaudit
from otel_execaudit import ActionOutcome, AdapterRegistry, Executor

from .span_trees import children_of, root_span
from .test_execaudit_pipeline import configure_for

GUARDS = ["TenantContext", "ValidationRequired", "Acknowledgement", "ExecutionLimits"]


def test_guard_spans_in_phoenix_match_the_ledger(phoenix, rotel, phoenix_project, tmp_path,
                                                 monkeypatch):
    adapters = AdapterRegistry()

    @adapters.adapter("set_replicas")
    def set_replicas(context):
        context.side_effect("configuration", "checkout scaled to 6", reversible=True)
        return ActionOutcome.success("scaled")

    plan = {"plan_id": "scale", "limits": {"actions": 5}, "steps": [
        {"name": "scale_up", "action_type": "set_replicas", "params": {"replicas": 6},
         "side_effects": [{"category": "configuration"}]}]}
    runtime = configure_for(rotel, "grpc", phoenix_project, tmp_path / "ledger.db", monkeypatch)
    try:
        result = Executor(adapters=adapters).run(
            plan, client_id=1, mode="LIVE", acknowledge_risk=True, validated=True,
            validation_passed=True)
        assert runtime.telemetry.force_flush()
        log_stats = runtime.telemetry.log_stats
        entries = {entry.seq: entry for entry in
                   runtime.ledger.entries(execution_id=result.metadata["execution_id"])}
    finally:
        otel_execaudit.shutdown()
    assert result.is_success()
    # The terminal event went out as an OTLP log record, and a real collector took it.
    assert log_stats.records_exported >= 1 and log_stats.records_failed == 0

    # root + 4 preflight guards + the step + 4 rechecks under it
    spans = phoenix.wait_for_spans(result.metadata["trace_id"], 10, timeout=60,
                                   project=phoenix_project)
    root = root_span(spans)
    assert root["name"] == "invoke_workflow scale"
    under_root = children_of(spans, root)
    assert [span["name"] for span in under_root] == [
        *(f"apply_guardrail {name}" for name in GUARDS), "execute_tool scale_up"]
    step = under_root[-1]
    rechecks = children_of(spans, step)
    assert [span["name"] for span in rechecks] == [f"apply_guardrail {name}" for name in GUARDS]
    for span in [*under_root[:-1], *rechecks]:
        assert span["span_kind"] == "GUARDRAIL"
        attributes = span["attributes"]
        entry = entries[attributes["execaudit.ledger.seq"]]
        assert attributes["execaudit.ledger.entry_hash"] == entry.hash
        fields = entry.fields()
        assert fields["kind"] == "guard.evaluated"
        assert fields["span_id"] == span["context"]["span_id"]
        assert fields["data"]["guard"] == attributes["gen_ai.guardrail.name"]
        assert fields["data"]["decision"] == attributes["execaudit.guard.decision"] == "allow"
    assert {span["attributes"]["execaudit.guard.stage"] for span in rechecks} == {"recheck"}
