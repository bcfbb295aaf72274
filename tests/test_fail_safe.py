"""An execution's result (status, record, ledger entries) is the same whether the collector is
up, refused, hanging or answering with errors (telemetry is never on the critical path)."""

from __future__ import annotations

import contextlib

import grpc
import pytest

import otel_execaudit
from otel_execaudit import Ledger, SideEffectCategory, execution

from .peers import grpc_peer, hanging_peer, http_peer, refused_port


@contextlib.contextmanager
def collector(state: str, protocol: str):
    grpc_protocol = protocol == "grpc"
    if state == "up":
        peer = grpc_peer(None) if grpc_protocol else http_peer(200)
    elif state == "erroring":
        peer = grpc_peer(grpc.StatusCode.UNAVAILABLE) if grpc_protocol else http_peer(503)
    else:
        with (refused_port() if state == "refused" else hanging_peer()) as endpoint:
            yield endpoint, None
        return
    with peer as (endpoint, received):
        yield endpoint, received


def run_plan() -> otel_execaudit.ExecutionRecord:
    ex = execution("payout", execution_id="exec-fixed", details={"batch": 42})
    with pytest.raises(ZeroDivisionError):
        with ex:
            with ex.step("load") as st:
                st.side_effect(SideEffectCategory.DATA_MUTATION, "locked batch 42", True)
                for index in range(200):  # past the SDK's 128 events per span
                    st.event("row", index=index)
            with ex.step("pay") as st:
                st.side_effect(SideEffectCategory.NETWORK, "POST /payouts", reversible=False)
                1 / 0
    return ex.record


def comparable(record, ledger_path) -> dict:
    """The result with what differs between any two runs (clock, random ids) taken out."""
    data = record.to_dict()
    for key in ("timestamp_start", "timestamp_end", "trace_id", "execution_hash"):
        data.pop(key)
    for snapshot in ("security_snapshot_pre", "security_snapshot_post"):
        data[snapshot].pop("taken_at")
    for event in data["step_events"]:
        for key in ("timestamp", "previous_event_hash", "event_hash"):
            event.pop(key)
    for effect in data["side_effects_report"]["observed"]:
        effect.pop("timestamp")
    with Ledger(ledger_path) as ledger:
        entries = [entry.fields() for entry in ledger.entries()]
    for entry in entries:
        for key in ("ts", "prev", "trace_id", "span_id"):
            entry.pop(key)
        entry["data"].pop("previous_event_hash", None)
        entry["data"].get("security", {}).pop("taken_at", None)
    return {"record": data, "entries": entries}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_result_is_identical_whatever_the_collector_does(tmp_path, monkeypatch, protocol):
    for name in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    results, delivered = {}, {}
    for state in ("up", "refused", "hanging", "erroring"):
        with collector(state, protocol) as (endpoint, received):
            runtime = otel_execaudit.configure(
                ledger=tmp_path / f"{state}.db", exporter="otlp", protocol=protocol,
                endpoint=endpoint, deadline=1.0)
            record = run_plan()
            otel_execaudit.shutdown()  # flush and shutdown, bounded by the 1 s deadline
            stats = runtime.telemetry.stats
            results[state] = comparable(record, tmp_path / f"{state}.db")
            delivered[state] = (stats, received)
    assert results["refused"] == results["up"]
    assert results["hanging"] == results["up"]
    assert results["erroring"] == results["up"]
    assert results["up"]["record"]["status"] == "failed"
    assert len(results["up"]["entries"]) == 1 + (1 + 1 + 200 + 1) + (1 + 1 + 1) + 1
    # The runs really did differ on the telemetry side.
    up_stats, up_received = delivered["up"]
    assert up_stats.spans_exported >= 4 and up_stats.spans_failed == 0
    assert up_received.requests
    for state in ("refused", "hanging", "erroring"):
        assert delivered[state][0].spans_failed > 0, state


EXIT_SCRIPT = """
import sys, otel_execaudit
from otel_execaudit import execution
otel_execaudit.configure(ledger=sys.argv[1], exporter="otlp", protocol=sys.argv[2],
                         endpoint=sys.argv[3])
with execution("nightly") as ex:
    for index in range(20):
        with ex.step(f"step-{index}"):
            pass
print(ex.status.value)
# no shutdown(): the interpreter's exit must be bounded by the 2 s deadline by itself
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("state", ["refused", "hanging"])
def test_a_script_exits_promptly_with_a_dead_collector_and_a_whole_ledger(
        tmp_path, protocol, state):
    import subprocess
    import sys
    import time

    from otel_execaudit.ledger import verify

    with collector(state, protocol) as (endpoint, _):
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, str(tmp_path / "l.db"),
                                 protocol, endpoint], capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "completed"
    assert "Traceback" not in result.stderr
    # The bound is only here because the alternative is a hang: 2 s deadline plus start-up.
    assert elapsed < 6, f"exit took {elapsed:.1f} s"
    report = verify(tmp_path / "l.db")
    assert report.ok and report.entries == 1 + 2 * 20 + 1


def run_guarded_plan() -> dict:
    """A LIVE run through the executor: guards, limits, an adapter, terminal events."""
    from otel_execaudit import ActionOutcome, AdapterRegistry, Executor

    adapters = AdapterRegistry()

    @adapters.adapter("transfer")
    def transfer(context):
        context.side_effect("network", "POST /transfers", reversible=False)
        return ActionOutcome.success("sent", transfer_id="t-1")

    plan = {"plan_id": "payout", "limits": {"orders": 1}, "steps": [
        {"name": "send", "action_type": "transfer", "params": {"amount": 10},
         "side_effects": [{"category": "network", "reversible": False}],
         "consumes": {"orders": 1}}]}
    executor = Executor(adapters=adapters)
    live = {"mode": "LIVE", "validated": True, "validation_passed": True,
            "acknowledge_risk": True, "client_id": 1}
    results = [executor.run(plan, **live).to_dict() for _ in range(2)]  # the second: limit hit
    for result in results:
        result.pop("executed_at")
        for key in ("execution_id", "trace_id", "ledger"):
            result["metadata"].pop(key)
    return results


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_executor_results_are_identical_whatever_the_collector_does(tmp_path, monkeypatch,
                                                                     protocol):
    for name in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_LOGS_EXPORTER",
                 "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    results = {}
    for state in ("up", "refused", "hanging", "erroring"):
        with collector(state, protocol) as (endpoint, _):
            otel_execaudit.configure(ledger=tmp_path / f"{state}.db", exporter="otlp",
                                     protocol=protocol, endpoint=endpoint, deadline=1.0)
            outcome = run_guarded_plan()
            otel_execaudit.shutdown()
        with Ledger(tmp_path / f"{state}.db") as ledger:
            kinds = [entry.fields()["kind"] for entry in ledger.entries()]
        results[state] = (outcome, kinds)
    assert [result["status"] for result in results["up"][0]] == ["SUCCESS", "BLOCKED"]
    assert "action.terminal" in results["up"][1]
    for state in ("refused", "hanging", "erroring"):
        assert results[state] == results["up"], state
