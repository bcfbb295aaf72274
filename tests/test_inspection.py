"""Inspection's queries: executions listed and rebuilt from the ledger, field for field as the
recorder returned them; ids by prefix; reads checked before they are shown."""

from __future__ import annotations

import sqlite3

import pytest

import otel_execaudit
from otel_execaudit import (
    ActionOutcome,
    AdapterRegistry,
    ExecutionObserver,
    Executor,
    SecuritySnapshot,
    SecurityState,
    SideEffectCategory,
    execution,
    step,
)
from otel_execaudit.errors import AmbiguousExecutionError, UnknownExecutionError
from otel_execaudit.inspection import ExecutionLog, integrity


def read(path, reference):
    otel_execaudit.get_runtime().ledger.sync()
    with ExecutionLog(path) as log:
        return log.get_execution(reference)


def test_a_recorded_execution_is_rebuilt_field_for_field(ledger_path):
    @step(capture=["n"])
    def square(n):
        return n * n

    with execution("maths", execution_id="exec-a", details={"tenant": "acme"}) as ex:
        square(3)
        with ex.step("write", details={"path": "/tmp/x"}) as st:
            st.side_effect("file_system", "wrote /tmp/x", reversible=True)
            st.declare("file_system", "writes /tmp/x", reversible=True)
        ex.side_effect("network", "called the API")
        with pytest.raises(ValueError):
            with ex.step("broken"):
                raise ValueError("no")
    view = read(ledger_path, "exec-a")
    assert view.record == ex.record
    assert view.record.execution_hash == ex.record.execution_hash
    assert view.tenant == "acme"


def test_the_observer_api_with_security_snapshots_is_rebuilt(ledger_path):
    states = iter([SecuritySnapshot(), SecuritySnapshot(),
                   SecuritySnapshot(SecurityState.DEGRADED, details={"why": "alert"})])
    observer = ExecutionObserver("exec-b", "plan-b", security=lambda: next(states))
    observer.record_step_started(0, "Initialize", {"input": "data"})
    observer.record_step_completed(0, "Initialize", {"output": "ready"})
    observer.record_side_effect(SideEffectCategory.DATA_MUTATION, "dropped a table")
    observer.mark_incomplete_security_escalation()
    view = read(ledger_path, "exec-b")
    assert view.record == observer.get_execution_record()
    assert view.record.security_snapshot_post.state is SecurityState.DEGRADED


def test_an_execution_still_running_is_rebuilt_as_started(ledger_path):
    observer = ExecutionObserver("exec-c", "plan-c", live_mode_state="DRY_RUN")
    observer.record_step_started(0, "one")
    view = read(ledger_path, "exec-c")
    assert view.record == observer.get_execution_record()
    assert view.record.status.value == "started" and view.record.timestamp_end is None
    observer.mark_completed()


def test_an_executor_run_carries_guards_actions_and_rollback_hints(ledger_path):
    adapters = AdapterRegistry()

    @adapters.adapter("scale", side_effects=[{"category": "configuration", "reversible": True}])
    def scale(context):
        context.side_effect("configuration", "scaled", reversible=True)
        return ActionOutcome.success("ok")

    plan = {"plan_id": "p", "steps": [{"name": "up", "action_type": "scale", "rollback": {
        "description": "scale back", "actions": ["scale 3"], "risks": ["slow"]}}]}
    result = Executor(adapters=adapters).run(plan, client_id=7)
    view = read(ledger_path, result.metadata["execution_id"])
    assert view.record.live_mode_state == "DRY_RUN"
    assert view.tenant == "7"
    assert {guard["guard"] for guard in view.guards} >= {"TenantContext", "ExecutionLimits"}
    assert [action["action_type"] for action in view.actions] == ["scale"]
    assert view.rollback_hints == ({"step_index": 0, "description": "scale back",
                                    "actions": ["scale 3"], "risks": ["slow"]},)


def test_a_replayed_id_holds_runs_told_apart(ledger_path):
    for attempt in (1, 2):
        with execution("job", execution_id="same") as ex:
            with ex.step(f"attempt-{attempt}"):
                pass
    view = read(ledger_path, "same")
    assert (view.run, view.runs) == (2, 2)
    assert view.record == ex.record
    with ExecutionLog(ledger_path) as log:
        first = log.get_execution("same", run=1)
        assert first.record.step_events[0].step_name == "attempt-1"
        with pytest.raises(UnknownExecutionError, match="has 2 run"):
            log.get_execution("same", run=3)
        assert log.list_executions()[0].runs == 2


def test_ids_resolve_by_unique_prefix_and_an_ambiguous_one_lists_candidates(ledger_path):
    for name in ("deploy-1a", "deploy-1b", "other"):
        with execution("p", execution_id=name):
            pass
    otel_execaudit.get_runtime().ledger.sync()
    with ExecutionLog(ledger_path) as log:
        assert log.resolve("oth") == "other"
        assert log.resolve("deploy-1a") == "deploy-1a"
        assert log.resolve("last") == "other"
        with pytest.raises(AmbiguousExecutionError) as caught:
            log.resolve("deploy")
        assert caught.value.candidates == ("deploy-1a", "deploy-1b")
        assert "deploy-1a, deploy-1b" in str(caught.value)
        with pytest.raises(UnknownExecutionError, match="execaudit executions"):
            log.resolve("nope")


def test_an_empty_ledger_has_no_last_execution(tmp_path):
    path = tmp_path / "empty.db"
    otel_execaudit.Ledger(path).close()
    with ExecutionLog(path) as log:
        assert log.list_executions() == []
        with pytest.raises(UnknownExecutionError, match="holds no execution yet"):
            log.resolve("last")


def test_listing_filters_and_orders_newest_first(ledger_path):
    with execution("alpha", execution_id="e1", details={"tenant": "t1"}):
        pass
    with pytest.raises(RuntimeError):
        with execution("beta", execution_id="e2", mode="DRY_RUN"):
            raise RuntimeError("x")
    with execution("alpha", execution_id="e3", details={"tenant": "t2"}):
        pass
    otel_execaudit.get_runtime().ledger.sync()
    with ExecutionLog(ledger_path) as log:
        ids = lambda **filters: [item.execution_id for item in log.list_executions(**filters)]
        assert ids() == ["e3", "e2", "e1"]
        assert ids(limit=2) == ["e3", "e2"]
        assert ids(status="failed") == ["e2"]
        assert ids(plan_id="alpha") == ["e3", "e1"]
        assert ids(mode="dry-run") == ["e2"]
        assert ids(tenant="t1") == ["e1"]
        started = log.list_executions()[1].started_at
        assert ids(since=started) == ["e3", "e2"]
        assert ids(until=started) == ["e1"]
        whole_second = started[:19] + "Z"  # sorts after that second's entries as plain text
        assert "e2" in ids(since=whole_second)
        assert "e2" in ids(since=started[:19] + "+00:00") and ids(until="2000-01-01") == []
        with pytest.raises(ValueError, match="is not a time"):
            log.list_executions(since="yesterday")


def test_a_tampered_ledger_is_reported_whole_when_small(ledger_path):
    with execution("p", execution_id="e1"):
        pass
    otel_execaudit.shutdown()
    with sqlite3.connect(ledger_path) as connection:
        connection.execute("UPDATE entries SET body = replace(body, 'e1', 'e1') || ' ' WHERE seq = 0")
    with ExecutionLog(ledger_path) as log:
        assert log.get_execution("e1")
        assert not log.integrity.ok and log.integrity.scope == "ledger"
        assert log.integrity.warning.startswith("WARNING: this ledger failed verification at seq 0")


def test_a_big_ledger_has_the_entries_read_and_their_links_checked(ledger_path, monkeypatch):
    monkeypatch.setattr(integrity, "FULL_CHECK_UP_TO", 0)
    for name in ("e1", "e2", "e3"):
        with execution("p", execution_id=name):
            pass
    otel_execaudit.shutdown()
    with ExecutionLog(ledger_path) as log:
        log.get_execution("e3")
        assert log.integrity.ok and log.integrity.scope == "entries read"
        assert log.integrity.entries == 2
    seq = rehashed(ledger_path, "execution_id = 'e1' AND kind = 'execution.ended'",
                   b'"completed"', b'"failed"')
    with ExecutionLog(ledger_path) as log:
        log.get_execution("e3")
        assert log.integrity.ok  # what was read, and the entries next to it, are intact
        assert log.get_execution("e1").record.status.value == "failed"
        assert not log.integrity.ok and log.integrity.first_bad_seq == seq
        assert "does not link to it" in log.integrity.reason
    with ExecutionLog(ledger_path) as log:  # e2 reads it as its neighbour: found too
        log.get_execution("e2")
        assert not log.integrity.ok and log.integrity.first_bad_seq == seq


def rehashed(path, where, old, new):
    """One entry's body edited with its hash recomputed, as a careful forger would."""
    import hashlib

    with sqlite3.connect(path) as connection:
        seq, body = connection.execute(f"SELECT seq, body FROM entries WHERE {where} "
                                       "ORDER BY seq DESC LIMIT 1").fetchone()
        changed = bytes(body).replace(old, new)
        assert changed != bytes(body)
        connection.execute("UPDATE entries SET body = ?, hash = ? WHERE seq = ?",
                           (changed, hashlib.sha256(b"\x00" + changed).hexdigest(), seq))
    connection.close()
    return seq


def failing(names):
    for name in names:
        with pytest.raises(ValueError):
            with execution("p", execution_id=name) as ex:
                with ex.step(f"step-{name}"):
                    raise ValueError(name)
        with execution("p", execution_id=f"ok-{name}") as ex:
            with ex.step("fine"):
                pass
    otel_execaudit.shutdown()


def test_a_kind_column_changed_cannot_hide_the_latest_failure(ledger_path, monkeypatch):
    """UPDATE entries SET kind = 'step.note' on the newest failure: the scan reads it by its
    body all the same, shows it, and the check says the column was changed."""
    from otel_execaudit.inspection import get_last_error

    monkeypatch.setattr(integrity, "FULL_CHECK_UP_TO", 0)
    failing(["f1", "f2"])
    with sqlite3.connect(ledger_path) as connection:
        seq = connection.execute("SELECT seq FROM entries WHERE kind = 'step.failed' AND "
                                 "execution_id = 'f2'").fetchone()[0]
        connection.execute("UPDATE entries SET kind = 'step.note' WHERE seq = ?", (seq,))
        connection.execute("UPDATE entries SET kind = 'step.note' WHERE kind = "
                           "'execution.ended' AND execution_id = 'f2'")
    connection.close()
    with ExecutionLog(ledger_path) as log:
        error = get_last_error(log=log)
        assert error.execution_id == "f2" and error.ledger_seq == seq
        assert not log.integrity.ok and log.integrity.first_bad_seq == seq
        assert "kind column ('step.note') is not its body's ('step.failed')" in \
            log.integrity.reason
    with ExecutionLog(ledger_path) as log:  # the listing sees f2 failed, and says why not ok
        assert [item.execution_id for item in log.list_executions(status="failed")][0] == "f2"
        assert not log.integrity.ok


def test_an_execution_id_column_changed_cannot_hide_an_entry(ledger_path, monkeypatch):
    monkeypatch.setattr(integrity, "FULL_CHECK_UP_TO", 0)
    failing(["f1", "f2"])
    with sqlite3.connect(ledger_path) as connection:
        seq = connection.execute("SELECT seq FROM entries WHERE kind = 'step.failed' AND "
                                 "execution_id = 'f1'").fetchone()[0]
        connection.execute("UPDATE entries SET execution_id = 'ok-f2' WHERE seq = ?", (seq,))
    connection.close()
    with ExecutionLog(ledger_path) as log:
        view = log.get_execution("f1")
        assert [event.event_type.value for event in view.record.step_events] == \
            ["started", "failed"]
        assert not log.integrity.ok and log.integrity.first_bad_seq == seq
        assert "execution_id column ('ok-f2')" in log.integrity.reason
    with sqlite3.connect(ledger_path) as connection:  # every column of f2 moved to another id
        connection.execute("UPDATE entries SET execution_id = 'elsewhere' WHERE execution_id "
                           "= 'f2'")
    connection.close()
    with ExecutionLog(ledger_path) as log:
        assert log.get_execution("f2").record.status.value == "failed"
        assert not log.integrity.ok


def test_the_entry_after_one_read_must_hash_check_too(ledger_path, monkeypatch):
    """An entry read, edited with its hash recomputed, and the next entry's prev edited to
    match, without recomputing that one's hash: found at the next entry."""
    monkeypatch.setattr(integrity, "FULL_CHECK_UP_TO", 0)
    for name in ("e1", "e2"):
        with execution("p", execution_id=name):
            pass
    otel_execaudit.shutdown()
    seq = rehashed(ledger_path, "execution_id = 'e1' AND kind = 'execution.ended'",
                   b'"completed"', b'"failed"')
    with sqlite3.connect(ledger_path) as connection:
        digest, = connection.execute("SELECT hash FROM entries WHERE seq = ?", (seq,)).fetchone()
        body, = connection.execute("SELECT body FROM entries WHERE seq = ?",
                                   (seq + 1,)).fetchone()
        entry = bytes(body)
        start = entry.index(b'"prev":"') + 8
        connection.execute("UPDATE entries SET body = ? WHERE seq = ?",
                           (entry[:start] + digest.encode() + entry[start + 64:], seq + 1))
    connection.close()
    with ExecutionLog(ledger_path) as log:
        assert log.get_execution("e1").record.status.value == "failed"
        assert not log.integrity.ok and log.integrity.first_bad_seq == seq + 1
        assert "does not match its hash (an entry next to one read)" in log.integrity.reason
