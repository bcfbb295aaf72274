"""otel_execaudit end to end: the package ──OTLP──> rotel-agent ──OTLP──> Arize Phoenix ──REST──>
the span tree, checked against the ledger entry for entry. Then the collector dies mid-run."""

from __future__ import annotations

import pytest

import otel_execaudit
from otel_execaudit import (
    ExecutionStatus,
    Ledger,
    SideEffectCategory,
    execution,
    verify,
)

from .span_trees import children_of, root_span


class PaymentDeclined(RuntimeError):
    pass


def run_checkout(steps_before_failure: int = 2, *, between_steps=lambda index: None):
    """An execution with side effects, a named event, and a failing step (handled by the caller,
    as real code would)."""
    ex = execution("checkout", details={"cart": "c-17", "api_key": "sk-not-recorded"})
    try:
        with ex:
            for index in range(steps_before_failure):
                between_steps(index)
                with ex.step(f"reserve_item_{index}", details={"sku": f"sku-{index}"}) as st:
                    st.side_effect(SideEffectCategory.DATA_MUTATION, f"reserved sku-{index}",
                                   reversible=True)
                    st.event("inventory_checked", remaining=10 - index)
            with ex.step("charge_card") as st:
                st.side_effect(SideEffectCategory.NETWORK, "POST /charges", reversible=False)
                raise PaymentDeclined("card declined (token=tok_abcdef123456)")
    except PaymentDeclined:
        pass
    return ex


def ledger_kinds(path):
    with Ledger(path) as ledger:
        return [entry.fields()["kind"] for entry in ledger.entries()]


def configure_for(rotel, protocol, project, ledger_path, monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"openinference.project.name={project}")
    endpoint = rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint
    return otel_execaudit.configure(ledger=ledger_path, exporter="otlp", protocol=protocol,
                                    endpoint=endpoint, service_name="execaudit-e2e")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_span_tree_in_phoenix_matches_the_ledger_entry_for_entry(
        phoenix, rotel, phoenix_project, tmp_path, monkeypatch, protocol):
    runtime = configure_for(rotel, protocol, phoenix_project, tmp_path / "ledger.db", monkeypatch)
    try:
        ex = run_checkout()
        assert runtime.telemetry.force_flush()
        entries = [entry for entry in runtime.ledger.entries(execution_id=ex.execution_id)]
    finally:
        otel_execaudit.shutdown()
    record = ex.record
    assert record.status is ExecutionStatus.FAILED
    spans = phoenix.wait_for_spans(record.trace_id, 4, timeout=60, project=phoenix_project)
    assert len(spans) == 4

    # The tree: one workflow root, one tool span per step, in order.
    root = root_span(spans)
    assert root["name"] == "invoke_workflow checkout" and root["span_kind"] == "CHAIN"
    steps = children_of(spans, root)
    assert [span["name"] for span in steps] == [
        "execute_tool reserve_item_0", "execute_tool reserve_item_1", "execute_tool charge_card"]
    assert all(span["span_kind"] == "TOOL" for span in steps)
    assert [span["attributes"]["execaudit.step.index"] for span in steps] == [0, 1, 2]
    assert root["attributes"]["execaudit.execution_id"] == ex.execution_id
    assert root["attributes"]["execaudit.status"] == "failed"
    assert root["status_code"] == "ERROR"
    assert [span["status_code"] for span in steps] == ["UNSET", "UNSET", "ERROR"]
    exceptions = [event for event in steps[2]["events"] if event["name"] == "exception"]
    assert len(exceptions) == 1
    assert exceptions[0]["attributes"]["exception.type"].endswith("PaymentDeclined")
    assert "tok_abcdef123456" not in str(spans) and "sk-not-recorded" not in str(spans)

    # Entry for entry: every ledger entry names a span of this trace; the span an entry opened
    # carries its seq and hash; every other entry is exactly one span event with its seq and hash.
    by_span_id = {span["context"]["span_id"]: span for span in spans}
    opened = {"execution.started": root}
    opened.update({f"step.started:{index}": span for index, span in enumerate(steps)})
    mirrored_events = 0
    for entry in entries:
        fields = entry.fields()
        assert fields["trace_id"] == record.trace_id
        span = by_span_id[fields["span_id"]]
        key = fields["kind"] if fields["kind"] == "execution.started" else (
            f"step.started:{fields['data'].get('step_index')}")
        if fields["kind"] in ("execution.started", "step.started"):
            assert span["context"]["span_id"] == opened[key]["context"]["span_id"]
            assert span["attributes"]["execaudit.ledger.seq"] == entry.seq
            assert span["attributes"]["execaudit.ledger.entry_hash"] == entry.hash
        if fields["kind"] != "execution.started" and fields["kind"] != "execution.ended":
            matching = [event for event in span["events"]
                        if event["attributes"].get("execaudit.ledger.seq") == entry.seq]
            assert len(matching) == 1, fields["kind"]
            assert matching[0]["attributes"]["execaudit.ledger.entry_hash"] == entry.hash
            mirrored_events += 1
    events_with_seq = sum(1 for span in spans for event in span["events"]
                          if "execaudit.ledger.seq" in event["attributes"])
    assert events_with_seq == mirrored_events == len(entries) - 2
    assert verify(tmp_path / "ledger.db").ok


def test_killing_the_collector_mid_run_changes_nothing_for_the_execution(
        phoenix, rotel, phoenix_project, tmp_path, monkeypatch):
    # Reference: the same execution with the collector up.
    configure_for(rotel, "grpc", phoenix_project, tmp_path / "ref.db", monkeypatch)
    reference = run_checkout(steps_before_failure=6).record
    otel_execaudit.shutdown()

    runtime = configure_for(rotel, "grpc", phoenix_project, tmp_path / "ledger.db", monkeypatch)

    def kill_collector_halfway(index):
        if index == 3:
            runtime.telemetry.force_flush()  # the first half has reached the collector …
            trace_id = otel_execaudit.current_execution().observer.trace_id
            phoenix.wait_for_spans(trace_id, 3, timeout=60, project=phoenix_project)
            rotel.kill()                     # … and the backend; then the collector dies
            assert not rotel.accepts_connections()

    try:
        ex = run_checkout(steps_before_failure=6, between_steps=kill_collector_halfway)
    finally:
        otel_execaudit.shutdown()  # bounded by the deadline even with the collector gone
    record = ex.record
    assert record.status is reference.status is ExecutionStatus.FAILED
    assert [(event.step_name, event.event_type) for event in record.step_events] == [
        (event.step_name, event.event_type) for event in reference.step_events]
    assert [effect.description for effect in record.side_effects_report.observed] == [
        effect.description for effect in reference.side_effects_report.observed]
    report = verify(tmp_path / "ledger.db")
    assert report.ok
    assert ledger_kinds(tmp_path / "ledger.db") == ledger_kinds(tmp_path / "ref.db")  # a whole ledger: nothing missing, nothing extra
    # What was exported before the kill is in the backend; nothing after it could be.
    arrived = {span["name"] for span in phoenix.spans(record.trace_id, project=phoenix_project)}
    assert arrived == {f"execute_tool reserve_item_{index}" for index in range(3)}
