"""Rollback guidance (seed 000): hints verbatim, in reverse order of execution, for the steps that
ran; anything irreversible, or changed without a hint, makes rollback impossible; nothing is ever
executed; a confirmation is recorded, never acted on."""

from __future__ import annotations

import ast
import dataclasses
import pathlib

import pytest

import otel_execaudit
from otel_execaudit import (
    ActionOutcome,
    AdapterRegistry,
    ExecutionGuard,
    Executor,
    RollbackHint,
    Severity,
    execution,
)
from otel_execaudit.inspection import (
    ExecutionDisplay,
    ExecutionLog,
    HestiaAgent,
    RollbackPlanner,
)

INSPECTION = pathlib.Path(otel_execaudit.__file__).parent / "inspection"


def three_steps(first_reversible=True, second_reversible=True):
    with execution("migrate", execution_id="m-1") as ex:
        with ex.step("create_db") as st:
            st.side_effect("data_mutation", "created db", reversible=first_reversible)
        with ex.step("read_config"):
            pass
        with ex.step("load_rows") as st:
            st.side_effect("data_mutation", "loaded rows", reversible=second_reversible)
    return ex.record


HINTS = [{"step_index": 0, "description": "Drop database", "actions": ["DROP DATABASE db;"],
          "risks": ["Irreversible - all data lost"]},
         {"step_index": 2, "description": "Delete rows", "actions": ["DELETE FROM t;", "VACUUM;"],
          "risks": []}]


def test_hints_come_verbatim_in_reverse_order_of_execution(ledger_path):
    scaffold = RollbackPlanner.plan_rollback(three_steps(), HINTS)
    assert scaffold.is_rollback_possible, scaffold.reason
    assert [hint.step_index for hint in scaffold.rollback_hints] == [2, 0]
    assert scaffold.rollback_hints[1] == RollbackHint(
        "Drop database", ("DROP DATABASE db;",), ("Irreversible - all data lost",), step_index=0)
    assert scaffold.manual_steps == ("step 2 (load_rows): DELETE FROM t;",
                                     "step 2 (load_rows): VACUUM;",
                                     "step 0 (create_db): DROP DATABASE db;")
    assert scaffold.irreversible_steps == ()
    assert scaffold.to_dict()["executed"] is False


def test_an_irreversible_side_effect_makes_rollback_impossible_and_is_named(ledger_path):
    scaffold = RollbackPlanner.plan_rollback(three_steps(second_reversible=False), HINTS)
    assert not scaffold.is_rollback_possible
    assert scaffold.irreversible_steps == (2,)
    assert "step 2 (load_rows) has an irreversible side effect" in scaffold.reason


def test_side_effects_without_a_hint_are_irreversible(ledger_path):
    scaffold = RollbackPlanner.plan_rollback(three_steps(), HINTS[:1])
    assert not scaffold.is_rollback_possible
    assert scaffold.irreversible_steps == (2,)
    assert "step 2 (load_rows) has side effects and no rollback hint" in scaffold.reason


def test_hints_of_steps_that_did_not_run_are_left_out(ledger_path):
    with pytest.raises(RuntimeError):
        with execution("p") as ex:
            with ex.step("first") as st:
                st.side_effect("system", "started a service", reversible=True)
            raise RuntimeError("stopped before the second step")
    scaffold = RollbackPlanner.plan_rollback(ex.record, [
        {"step_index": 0, "description": "stop it", "actions": ["systemctl stop svc"]},
        {"step_index": 1, "description": "never ran", "actions": ["rm -rf /"]}])
    assert [hint.description for hint in scaffold.rollback_hints] == ["stop it"]


def test_nothing_changed_means_nothing_to_undo(ledger_path):
    with execution("p") as ex:
        with ex.step("read"):
            pass
    scaffold = RollbackPlanner.plan_rollback(ex.record, [])
    assert scaffold.is_rollback_possible and "nothing to undo" in scaffold.reason


def test_a_bad_hint_is_a_clear_error(ledger_path):
    record = three_steps()
    with pytest.raises(ValueError, match="integer step_index"):
        RollbackPlanner.plan_rollback(record, [{"description": "x"}])
    with pytest.raises(ValueError, match="names no step_index"):
        RollbackPlanner.plan_rollback(record, [RollbackHint("x")])


def test_a_data_plan_takes_its_hints_from_its_steps_through_the_ledger(ledger_path):
    adapters = AdapterRegistry()

    @adapters.adapter("scale", side_effects=[{"category": "configuration", "reversible": True}])
    def scale(context):
        context.side_effect("configuration", "scaled to 6", reversible=True)
        return ActionOutcome.success("ok")

    plan = {"plan_id": "p", "steps": [{"name": "up", "action_type": "scale",
                                       "rollback": {"description": "scale back",
                                                    "actions": ["scale 3"]}}]}
    executor = Executor(adapters=adapters)
    dry = executor.run(plan, client_id=1)
    result = executor.run(plan, client_id=1, mode="LIVE", acknowledge_risk=True, validated=True,
                          validation_passed=True, plan_hash=dry.plan_hash)
    assert result.is_success(), result.error
    otel_execaudit.get_runtime().ledger.sync()
    with ExecutionLog(ledger_path) as log:
        view = log.get_execution(result.metadata["execution_id"])
    scaffold = RollbackPlanner.plan_rollback(view.record)  # hints from the recorded steps
    assert scaffold.is_rollback_possible
    assert scaffold.manual_steps == ("step 0 (up): scale 3",)


def test_a_dry_run_changed_nothing(ledger_path):
    adapters = AdapterRegistry()

    @adapters.adapter("drop", side_effects=["data_mutation"])
    def drop(context):
        raise AssertionError("a dry run never calls the adapter")

    result = Executor(adapters=adapters).run(
        {"plan_id": "p", "steps": [{"name": "drop", "action_type": "drop"}]}, client_id=1)
    otel_execaudit.get_runtime().ledger.sync()
    with ExecutionLog(ledger_path) as log:
        record = log.get_execution(result.metadata["execution_id"]).record
    scaffold = RollbackPlanner.plan_rollback(record)
    assert scaffold.is_rollback_possible and scaffold.irreversible_steps == ()


def test_confirmation_is_recorded_and_executes_nothing(ledger_path, tmp_path):
    marker = tmp_path / "MARKER"
    with execution("p", execution_id="c-1") as ex:
        with ex.step("touch", details={"rollback": {
                "description": "remove it", "actions": [f"touch {marker}",
                                                        f"open('{marker}', 'w')"]}}) as st:
            st.side_effect("file_system", "made a file", reversible=True)
    otel_execaudit.get_runtime().ledger.sync()
    with ExecutionLog(ledger_path) as log:
        scaffold = RollbackPlanner.plan_rollback(log.get_execution("c-1").record)
    assert scaffold.is_rollback_possible, scaffold.reason
    asked = []
    display = HestiaAgent(ledger=ledger_path, color=False,
                          ask=lambda prompt: asked.append(prompt) or "c-1")
    assert display is not None and HestiaAgent is ExecutionDisplay
    guidance = display.show_rollback_guidance(scaffold)
    assert f"[ ] touch {marker}" in guidance and "Nothing here is executed" in guidance
    confirmed, reason = display.confirm_manual_rollback(scaffold)
    assert confirmed and "nothing was executed" in reason and "c-1" in asked[0]
    assert not marker.exists()
    with ExecutionLog(ledger_path) as log:
        entry = log.rows("c-1")[-1]
        assert log.integrity.ok
    assert entry.kind == "rollback.confirmed"
    assert entry.data["executed"] is False and entry.data["confirmed_by"]
    assert entry.data["scaffold"]["rollback_hints"][0]["actions"][0] == f"touch {marker}"

    wrong = ExecutionDisplay(ledger=ledger_path, ask=lambda prompt: "c-2")
    assert wrong.confirm_manual_rollback(scaffold) == (
        False, "not confirmed: the id typed does not match the execution id")
    with ExecutionLog(ledger_path) as log:
        assert log.rows("c-1")[-1].seq == entry.seq  # nothing more recorded


def test_a_confirmation_of_an_impossible_rollback_is_refused(ledger_path):
    scaffold = RollbackPlanner.plan_rollback(three_steps(second_reversible=False), HINTS)
    display = ExecutionDisplay(ledger=ledger_path, ask=lambda prompt: "m-1")
    confirmed, reason = display.confirm_manual_rollback(scaffold)
    assert not confirmed and reason.startswith("refused: rollback of m-1 is not possible")


def test_without_a_terminal_nothing_is_confirmed(ledger_path, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    scaffold = RollbackPlanner.plan_rollback(three_steps(), HINTS)
    confirmed, reason = ExecutionDisplay(ledger=ledger_path).confirm_manual_rollback(scaffold)
    assert not confirmed and "no terminal" in reason


def test_no_inspection_code_can_run_anything():
    """Nothing in inspection/, nor the commands and the server that front it, calls a process,
    evaluates text, imports by name or reaches the executor (directly, or its names through the
    package's facade): a hint's actions can only ever be shown."""
    import otel_execaudit.executor as executor_package

    executor_names = set(executor_package.__all__)
    forbidden_calls = {"system", "popen", "exec", "eval", "import_module", "__import__",
                       "check_call", "check_output", "Popen", "spawnv", "execv", "execvp",
                       "startfile", "run_module", "run_path"}
    cli = INSPECTION.parent / "cli"
    paths = [*INSPECTION.glob("*.py"), cli / "inspection.py", cli / "mcp.py"]
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = getattr(node, "module", "") or ""
                names = [alias.name for alias in node.names] + [module]
                found += [f"{path.name} imports {name}" for name in names
                          if name.split(".")[0] in {"subprocess", "importlib", "ctypes", "runpy"}
                          or name.startswith("otel_execaudit.executor")]
                if module == "otel_execaudit":  # the facade re-exports the executor's names
                    found += [f"{path.name} imports {alias.name} (the executor's)"
                              for alias in node.names if alias.name in executor_names]
            elif isinstance(node, ast.Attribute) and node.attr in executor_names and \
                    isinstance(node.value, ast.Name) and node.value.id == "otel_execaudit":
                found.append(f"{path.name}:{node.lineno} uses otel_execaudit.{node.attr}")
            elif isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in forbidden_calls:
                    found.append(f"{path.name}:{node.lineno} calls {name}")
    assert len(paths) > 5 and found == []


def test_irreversible_actions_are_marked_by_text(ledger_path):
    record = three_steps(second_reversible=False)
    shown = ExecutionDisplay(color=False).show_irreversible_actions(record)
    assert shown.splitlines() == ["Irreversible actions of m-1 (1)",
                                  "  ✗ IRREVERSIBLE  step 2 (load_rows): data_mutation: loaded rows"]
    summary = ExecutionDisplay(color=False).display_execution_summary(record)
    assert summary.index("✗ IRREVERSIBLE") < summary.index("↺ reversible")
    assert "\x1b[" not in summary
    assert "\x1b[" in ExecutionDisplay(color=True).display_execution_summary(record)


def test_the_seeds_hestia_agent_takes_its_kernel(ledger_path):
    """Seed 000: ``HestiaAgent(kernel=kernel)``; the kernel is kept, nothing is read from it."""
    kernel = object()
    agent = HestiaAgent(kernel=kernel)
    assert agent.kernel is kernel
    record = three_steps()
    assert "migrate" in agent.display_execution_summary(record)
    assert agent.show_irreversible_actions(record).startswith("Irreversible actions of m-1")


def test_a_confirmation_in_a_tampered_ledger_is_refused_and_nothing_is_asked(ledger_path):
    import sqlite3

    with execution("p", execution_id="c-1") as ex:
        with ex.step("touch", details={"rollback": {"description": "remove it",
                                                    "actions": ["rm /tmp/f"]}}) as st:
            st.side_effect("file_system", "made a file", reversible=True)
    otel_execaudit.shutdown()
    with ExecutionLog(ledger_path) as log:
        scaffold = RollbackPlanner.plan_rollback(log.get_execution("c-1").record)
    assert scaffold.is_rollback_possible
    with sqlite3.connect(ledger_path) as connection:
        connection.execute("UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), "
                           "'made a file', 'made a fire') AS BLOB) WHERE kind = 'side_effect'")
    connection.close()
    asked = []
    display = ExecutionDisplay(ledger=ledger_path, ask=lambda prompt: asked.append(prompt) or "c-1")
    confirmed, reason = display.confirm_manual_rollback(scaffold)
    assert not confirmed and asked == []
    assert reason.startswith("refused: the ledger failed verification at seq ")
    with ExecutionLog(ledger_path) as log:
        assert [row.kind for row in log.rows("c-1")][-1] == "execution.ended"  # nothing recorded


def live_run(adapters, plan, **options):
    executor = Executor(adapters=adapters, **options)
    dry = executor.run(plan, client_id=1)
    return executor.run(plan, client_id=1, mode="LIVE", acknowledge_risk=True, validated=True,
                        validation_passed=True, plan_hash=dry.plan_hash)


def test_a_step_cancelled_mid_action_may_have_done_what_it_declared(ledger_path):
    """KeyboardInterrupt inside the adapter: the step is cancelled, but its irreversible
    declared effect may have happened, so rollback is not possible."""
    adapters = AdapterRegistry()

    @adapters.adapter("wire", side_effects=[{"category": "network", "description": "sent money",
                                             "reversible": False}])
    def wire(context):
        raise KeyboardInterrupt  # half-way: the money may have left

    plan = {"plan_id": "pay", "steps": [{"name": "wire", "action_type": "wire"}]}
    with pytest.raises(KeyboardInterrupt):
        live_run(adapters, plan)
    otel_execaudit.get_runtime().ledger.sync()
    with ExecutionLog(ledger_path) as log:
        record = log.get_execution("last").record
    assert [event.event_type.value for event in record.step_events] == ["started", "cancelled"]
    scaffold = RollbackPlanner.plan_rollback(record)
    assert not scaffold.is_rollback_possible
    assert scaffold.irreversible_steps == (0,)
    assert "step 0 (wire) has an irreversible side effect" in scaffold.reason

    unfinished = dataclasses.replace(record, step_events=record.step_events[:1])  # it died
    assert not RollbackPlanner.plan_rollback(unfinished).is_rollback_possible


def test_a_step_a_guard_blocked_did_nothing(ledger_path):
    """Cancelled before its action (a guard denied it just before acting): nothing to undo."""
    adapters = AdapterRegistry()

    @adapters.adapter("wire", side_effects=[{"category": "network", "reversible": False}])
    def wire(context):
        raise AssertionError("a blocked step never calls its adapter")

    class NotNow:
        name, severity = "NotNow", Severity.DENY

        def check(self, context):  # allows the plan, denies the step about to act
            return ExecutionGuard(self.name, context.step is None, "not now")

    plan = {"plan_id": "pay", "steps": [{"name": "wire", "action_type": "wire"}]}
    result = live_run(adapters, plan, guards=[NotNow()])
    assert result.is_blocked(), result.error
    otel_execaudit.get_runtime().ledger.sync()
    with ExecutionLog(ledger_path) as log:
        record = log.get_execution(result.metadata["execution_id"]).record
    assert [event.event_type.value for event in record.step_events] == ["started", "cancelled"]
    scaffold = RollbackPlanner.plan_rollback(record)
    assert scaffold.is_rollback_possible and scaffold.irreversible_steps == (), scaffold.reason
