"""The worst case is the default: a dry run acts only where the adapter says it only reads, an
effect of unknown reversibility is irreversible, a recorded execution is what really happened,
and every step of a run is accounted for, the ones that never ran included."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest
from click.testing import CliRunner

import otel_execaudit
from otel_execaudit import (
    ActionOutcome,
    AdapterRegistry,
    ExecutionMode,
    ExecutionObserver,
    ExecutionStatus,
    Executor,
    SideEffectCategory,
    execution,
    plan,
    step,
)
from otel_execaudit.executor.adapters import default_registry
from otel_execaudit.cli import main
from otel_execaudit.errors import AdapterError, PlanError, RecordingError
from otel_execaudit.executor.plans import load_plan
from tests.executor_options import LIVE

# -- a dry run never acts unless the adapter says it only reads -------------------------------

WRITER = "safe_defaults_write_file"
READER = "safe_defaults_read_file"


def test_a_dry_run_from_the_command_line_does_not_run_an_adapter_that_declares_nothing(
        tmp_path):
    """The report that found it: a step whose adapter writes a file and declares nothing,
    run as `execaudit execute plan.json --adapters my_adapters.py --client-id 1`."""
    target = tmp_path / "written.txt"
    (tmp_path / "safe_defaults_adapters.py").write_text(textwrap.dedent(f"""\
        from otel_execaudit import adapter

        @adapter({WRITER!r})
        def write_file(context):
            with open({str(target)!r}, "w") as handle:
                handle.write("acted")
        """), encoding="utf-8")
    (tmp_path / "plan.json").write_text(json.dumps({"plan_id": "writes", "steps": [
        {"name": "write", "action_type": WRITER, "params": {}}]}), encoding="utf-8")
    try:
        result = CliRunner().invoke(main, [
            "execute", str(tmp_path / "plan.json"), "--adapters",
            str(tmp_path / "safe_defaults_adapters.py"), "--client-id", "1", "--ledger",
            str(tmp_path / "l.db"), "--exporter", "none", "--json"])
    finally:
        default_registry.unregister(WRITER)
        sys.modules.pop("safe_defaults_adapters", None)
    assert result.exit_code == 0, result.output
    assert not target.exists()
    action, = json.loads(result.stdout)["actions"]
    assert action["type"] == "SIMULATED"
    assert action["reason"] == "effects unknown: its adapter does not declare read_only=True"


@pytest.fixture
def registry(tmp_path):
    adapters = AdapterRegistry()
    calls: list[tuple[str, str]] = []

    @adapters.adapter(WRITER)
    def write_file(context):
        calls.append((WRITER, context.mode.value))

    @adapters.adapter(READER, read_only=True)
    def read_file(context):
        calls.append((READER, context.mode.value))
        return {"size": 3}

    adapters.calls = calls  # type: ignore[attr-defined]
    return adapters


def two_steps(**reader_step):
    return {"plan_id": "files", "limits": {"actions": 10}, "steps": [
        {"name": "read", "action_type": READER, "params": {}, **reader_step},
        {"name": "write", "action_type": WRITER, "params": {}}]}


def test_only_a_read_only_adapter_runs_in_a_dry_run_and_the_report_says_why(
        registry, execaudit_capture):
    result = Executor(adapters=registry).run(two_steps(), client_id=1)
    assert registry.calls == [(READER, "DRY_RUN")]
    assert [(action.type, action.reason) for action in result.actions] == [
        ("READ", "adapter declares read-only"),
        ("SIMULATED", "effects unknown: its adapter does not declare read_only=True")]
    report = result.to_human_readable()
    assert "Why: adapter declares read-only" in report
    assert result.changes_pending


def test_a_step_that_declares_an_effect_acts_even_on_a_read_only_adapter(
        registry, execaudit_capture):
    result = Executor(adapters=registry).run(
        two_steps(side_effects=[{"category": "file_system"}]), client_id=1)
    assert registry.calls == []
    assert result.actions[0].type == "SIMULATED"
    assert result.actions[0].reason == "declares file_system (irreversible)"


def test_a_plan_can_never_make_a_step_read_only():
    with pytest.raises(PlanError, match=r'only its adapter can say so, with '
                                        r'@adapter\("place_order", read_only=True\)'):
        load_plan({"plan_id": "p", "steps": [
            {"name": "s", "action_type": "place_order", "read_only": True}]})


def test_a_plan_step_built_in_code_as_read_only_is_judged_by_its_adapter(
        registry, execaudit_capture):
    from otel_execaudit.executor.plans import Plan, PlanStep

    sneaky = Plan("files", (PlanStep("write", WRITER, read_only=True),))
    result = Executor(adapters=registry).run(sneaky, client_id=1)
    assert registry.calls == []
    assert result.actions[0].type == "SIMULATED"


def test_an_adapter_cannot_be_read_only_and_declare_side_effects():
    with pytest.raises(AdapterError, match="cannot declare side_effects too"):
        AdapterRegistry().adapter("x", read_only=True, side_effects=["network"])
    with pytest.raises(AdapterError, match="read_only must be True or False"):
        AdapterRegistry().adapter("x", read_only="yes")


def test_a_step_of_unknown_effects_is_guarded_and_counted_in_live(registry, execaudit_capture):
    result = Executor(adapters=registry).run(two_steps(), client_id=1, **LIVE)
    assert result.is_success(), result.error
    assert registry.calls == [(READER, "LIVE"), (WRITER, "LIVE")]
    stages = [(entry["data"]["guard"], entry["data"]["stage"], entry["data"]["step_index"])
              for entry in execaudit_capture.fields(result.metadata["execution_id"])
              if entry["kind"] == "guard.evaluated" and entry["data"]["stage"] == "recheck"]
    assert {index for _, _, index in stages} == {1}  # the write, not the read
    consumed = [entry["data"] for entry in execaudit_capture.fields()
                if entry["kind"] == "limits.consumed"]
    assert [(entry["step_index"], entry["amounts"]) for entry in consumed] == [(1, {"actions": 1})]


def test_the_read_only_declaration_is_part_of_the_plan_hash(execaudit_capture):
    hashes = []
    for read_only in (False, True):
        adapters = AdapterRegistry()
        adapters.adapter(READER, read_only=read_only)(lambda context: None)
        hashes.append(Executor(adapters=adapters).plan_hash(
            {"plan_id": "p", "steps": [{"name": "s", "action_type": READER}]}, client_id=1))
    assert hashes[0] != hashes[1]


# -- defaults that assume the worst ----------------------------------------------------------

def test_a_side_effect_of_unknown_reversibility_is_irreversible(execaudit_capture):
    with execution("effects") as ex:
        ex.side_effect("network", "posted a webhook")
        with ex.step("write") as st:
            st.declare("file_system", "write the report")
            st.side_effect("file_system", "wrote the report")
    observer = ExecutionObserver(plan_id="seed")
    observer.record_side_effect(SideEffectCategory.OTHER, "rang a bell")
    observer.mark_completed()
    effects = [*ex.record.side_effects_report.observed,
               *ex.record.side_effects_report.declared,
               *observer.get_execution_record().side_effects_report.observed]
    assert [effect.reversible for effect in effects] == [False, False, False, False]
    stored = [entry["data"]["reversible"] for entry in execaudit_capture.fields()
              if entry["kind"].startswith("side_effect")]
    assert stored == [False, False, False, False]


def test_declared_effects_in_plans_and_adapters_are_irreversible_unless_said(
        execaudit_capture):
    adapters = AdapterRegistry()
    reported = []

    @adapters.adapter("notify", side_effects=["network"])
    def notify(context):
        context.side_effect("network", "sent a message")

    step_effect, = load_plan({"plan_id": "p", "steps": [
        {"name": "s", "action_type": "notify", "side_effects": ["network"]}]}).steps[0].side_effects
    assert step_effect.reversible is False
    assert adapters.get("notify").side_effects[0].reversible is False
    result = Executor(adapters=adapters).run({"plan_id": "p", "steps": [
        {"name": "s", "action_type": "notify"}]}, client_id=1, **LIVE)
    assert result.is_success(), result.error
    reported = [entry["data"]["reversible"] for entry in execaudit_capture.fields()
                if entry["kind"] == "side_effect"]
    assert reported == [False]


# -- records that tell the truth -------------------------------------------------------------

def test_an_execution_recorded_outside_the_executor_is_live(execaudit_capture):
    with execution("release") as ex:
        pass

    @plan("nightly")
    def nightly():
        return current_mode()

    def current_mode():
        return otel_execaudit.current_execution().mode

    observer = ExecutionObserver(plan_id="seed")
    observer.mark_completed()
    assert ex.record.live_mode_state == "LIVE"
    assert nightly() is ExecutionMode.LIVE
    assert observer.get_execution_record("LIVE").live_mode_state == "LIVE"  # the seed's call
    started = [entry["data"]["mode"] for entry in execaudit_capture.fields()
               if entry["kind"] == "execution.started"]
    assert started == ["LIVE", "LIVE", "LIVE"]


def test_an_execution_nested_in_a_dry_run_is_a_dry_run(execaudit_capture):
    with execution("rehearsal", mode="DRY_RUN"):
        with execution("inner", mode="LIVE") as inner:
            pass
    assert inner.record.live_mode_state == "DRY_RUN"


def test_a_record_never_relabels_its_execution(execaudit_capture):
    observer = ExecutionObserver(plan_id="rehearsal", live_mode_state="DRY_RUN")
    observer.mark_completed()
    with pytest.raises(RecordingError, match="was recorded as DRY_RUN"):
        observer.get_execution_record("LIVE")
    with pytest.raises(RecordingError, match="unknown mode"):
        observer.get_execution_record("maybe")
    assert observer.get_execution_record("dry-run").live_mode_state == "DRY_RUN"
    assert observer.get_execution_record().live_mode_state == "DRY_RUN"


def test_an_execution_that_carries_on_after_a_failed_step_is_completed_partial(
        execaudit_capture):
    with execution("carry-on") as handled:
        with handled.step("fetch"):
            pass
        try:
            with handled.step("optional"):
                raise ConnectionError("mirror down")
        except ConnectionError:
            pass
    with pytest.raises(ValueError), execution("stops") as escaped:
        with escaped.step("fetch"):
            pass
        with escaped.step("apply"):
            raise ValueError("bad manifest")
    assert handled.status is ExecutionStatus.COMPLETED_PARTIAL
    assert escaped.status is ExecutionStatus.FAILED


def test_steps_that_never_ran_are_in_the_actions_with_the_reason(execaudit_capture):
    adapters = AdapterRegistry()
    adapters.adapter("ok", side_effects=["other"])(lambda context: None)

    @adapters.adapter("boom", side_effects=["other"])
    def boom(context):
        raise ConnectionError("venue unreachable")

    steps = [{"name": name, "action_type": kind} for name, kind in
             (("first", "ok"), ("second", "boom"), ("third", "ok"))]
    result = Executor(adapters=adapters).run({"plan_id": "p", "steps": steps}, client_id=1,
                                             **LIVE)
    assert [(action.step, action.type, action.status) for action in result.actions] == [
        ("first", "LIVE", "success"), ("second", "LIVE", "failed"),
        ("third", "NOT_RUN", "skipped")]
    assert result.actions[2].reason.startswith("an earlier step stopped the run (step "
                                               "'second' failed")
    assert result.summary["not_run"] == 1
    report = result.to_human_readable()
    assert "3. [NOT_RUN] third" in report and "Why: an earlier step stopped the run" in report


def test_a_blocked_run_lists_every_step_as_not_run(execaudit_capture):
    adapters = AdapterRegistry()
    adapters.adapter("ok", side_effects=["other"])(lambda context: None)
    result = Executor(adapters=adapters).run({"plan_id": "p", "steps": [
        {"name": "a", "action_type": "ok"}, {"name": "b", "action_type": "ok"}]},
        client_id=1, mode="LIVE")
    assert result.is_blocked()
    assert [(action.type, action.status) for action in result.actions] == [
        ("NOT_RUN", "blocked"), ("NOT_RUN", "blocked")]
    assert result.actions[0].reason.startswith("blocked by ValidationRequired")


def test_a_code_first_action_skipped_after_a_failure_is_listed(execaudit_capture):
    @step("charge", side_effects=["network"])
    def charge(amount):
        raise ConnectionError("card network down")

    @step("ship", side_effects=["network"])
    def ship():
        pass

    def checkout():
        try:
            charge(5)
        except ConnectionError:
            pass
        try:
            ship()
        except otel_execaudit.GuardDeniedError:
            pass

    result = Executor().run(checkout, client_id=1, **LIVE)
    assert [(action.step, action.type, action.status) for action in result.actions] == [
        ("charge", "LIVE", "failed"), ("ship", "NOT_RUN", "skipped")]


def test_without_the_sdk_a_step_carries_its_own_span_id(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    runtime = otel_execaudit.configure(ledger=tmp_path / "l.db")
    try:
        with execution("no-sdk") as ex:
            with ex.step("one") as st:
                st.side_effect("network", "GET /", reversible=True)
            with ex.step("two"):
                pass
        entries = [entry.fields() for entry in runtime.ledger.entries()]
    finally:
        otel_execaudit.shutdown()
    root = {entry["span_id"] for entry in entries if entry["kind"].startswith("execution.")}
    one = {entry["span_id"] for entry in entries if entry["data"].get("step_index") == 0}
    two = {entry["span_id"] for entry in entries if entry["data"].get("step_index") == 1}
    assert len(root) == len(one) == len(two) == 1
    assert root.isdisjoint(one | two) and one.isdisjoint(two)
    assert len({entry["trace_id"] for entry in entries}) == 1


# -- adapters' outcomes ----------------------------------------------------------------------

def test_a_wrong_action_outcome_says_which_parameter_and_what_to_pass():
    with pytest.raises(AdapterError, match=r"ActionOutcome.failure\(error_code, result='', "
                                           r"\*\*details\): error_code must be a short "
                                           r"snake_case code"):
        ActionOutcome.failure("Insufficient funds on account 42")
    with pytest.raises(AdapterError, match="error_code must be"):
        ActionOutcome(False, "declined")
    with pytest.raises(AdapterError, match="ok must be True or False"):
        ActionOutcome("yes")
    with pytest.raises(AdapterError, match="result is a sentence for the report"):
        ActionOutcome.success({"order_id": "o-1"})
    with pytest.raises(TypeError, match="error_code"):
        ActionOutcome.failure()


def test_an_adapter_returning_a_wrong_outcome_fails_its_step_with_that_error(
        execaudit_capture):
    adapters = AdapterRegistry()
    adapters.adapter("declines", side_effects=["network"])(
        lambda context: ActionOutcome.failure("Card declined!"))
    result = Executor(adapters=adapters).run(
        {"plan_id": "p", "steps": [{"name": "pay", "action_type": "declines"}]},
        client_id=1, **LIVE)
    action, = result.actions
    assert action.status == "failed" and action.error_code == "adapter_exception"
    assert "error_code must be a short snake_case code" in action.result


# -- the command line, as a user reads it ----------------------------------------------------

@pytest.fixture
def failing_plan(tmp_path):
    (tmp_path / "safe_defaults_failing.py").write_text(textwrap.dedent("""\
        from otel_execaudit import adapter

        @adapter("safe_defaults_boom", read_only=True)
        def boom(context):
            raise ConnectionError("exchange unreachable")
        """), encoding="utf-8")
    (tmp_path / "plan.json").write_text(json.dumps({"plan_id": "fails", "steps": [
        {"name": "quote", "action_type": "safe_defaults_boom"}]}), encoding="utf-8")
    yield tmp_path
    default_registry.unregister("safe_defaults_boom")
    sys.modules.pop("safe_defaults_failing", None)


def execaudit_process(*words, cwd, env=None, text=True):
    import subprocess

    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("OTEL_", "EXECAUDIT_"))}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "otel_execaudit.cli", *words], cwd=cwd,
                          env=environment, capture_output=True, text=text, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_no_log_lines_around_a_report_unless_asked(failing_plan):
    words = ("execute", "plan.json", "--adapters", "safe_defaults_failing.py", "--client-id",
             "1", "--ledger", "l.db", "--exporter", "none")
    quiet = execaudit_process(*words, cwd=failing_plan)
    verbose = execaudit_process(*words, "-v", cwd=failing_plan)
    by_setting = execaudit_process(*words, cwd=failing_plan, env={"EXECAUDIT_LOG_LEVEL": "info"})
    assert quiet.returncode == verbose.returncode == by_setting.returncode == 1
    assert "STATUS: ✗ FAILED" in quiet.stdout
    assert quiet.stderr == ""
    for loud in (verbose, by_setting):
        assert "step failed" in loud.stderr and "execution ended" in loud.stderr


@pytest.mark.parametrize("problem", ["corrupt plan", "missing adapters", "usage"])
def test_json_is_every_outcome_on_stdout_bad_input_included(tmp_path, problem):
    (tmp_path / "plan.json").write_text('{"plan_id": "p", "steps": [' if problem ==
                                        "corrupt plan" else '{"plan_id": "p", "steps": '
                                        '[{"name": "s", "action_type": "x"}]}',
                                        encoding="utf-8")
    words = ["execute", str(tmp_path / "plan.json"), "--client-id", "1", "--json",
             "--ledger", str(tmp_path / "l.db"), "--exporter", "none"]
    if problem == "missing adapters":
        words += ["--adapters", "no_such_adapters_module_anywhere"]
    if problem == "usage":
        words += ["--no-such-option"]
    result = CliRunner().invoke(main, words)
    document = json.loads(result.stdout)
    assert document["format"] == "otel-execaudit.error/1" and document["ok"] is False
    expected = {"corrupt plan": (1, "PlanError", "not valid JSON"),
                "missing adapters": (1, "AdapterError", "cannot import adapters module"),
                "usage": (64, "UsageError", "No such option")}[problem]
    assert (result.exit_code, document["error"]["type"]) == expected[:2]
    assert expected[2] in document["error"]["message"]


@pytest.mark.parametrize("command", [["verify", "--no-such-option"], ["demo", "--nope"],
                                     ["plan"], ["execute", "p.yaml", "--live", "--bogus"],
                                     ["no-such-command"]])
def test_a_usage_error_exits_64_from_every_command(command):
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 64, result.output


def test_a_negative_client_id_is_refused_as_not_positive(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps({"plan_id": "p", "steps": [
        {"name": "s", "action_type": "x"}]}), encoding="utf-8")
    result = CliRunner().invoke(main, ["plan", str(tmp_path / "plan.json"), "--client-id", "-1",
                                       "--ledger", str(tmp_path / "l.db"), "--exporter", "none"])
    assert result.exit_code == 1
    assert "client_id must be positive, not -1" in result.stdout


def test_the_demo_prints_the_failing_steps_whole_traceback_redacted(tmp_path):
    shown = execaudit_process("demo", "--ledger", "demo.db", "--exporter", "none",
                              cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = [line.strip() for line in shown.stdout.splitlines()]
    start = lines.index("Traceback (most recent call last):")
    body = "\n".join(lines[start:])
    assert 'in run_release' in body and "in _migrate" in body  # every frame, not the last 4
    assert "password=[REDACTED]" in body and "hunter2" not in shown.stdout
    assert shown.stderr == ""


def committed_kinds(path, execution_id):
    """What another process would find in the ledger: only committed entries."""
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return [kind for (kind,) in connection.execute(
            "SELECT kind FROM entries WHERE execution_id = ? ORDER BY seq", (execution_id,))]


def test_a_live_step_runs_only_after_its_started_entry_is_committed(execaudit_capture):
    seen = []
    adapters = AdapterRegistry()

    @adapters.adapter("act", side_effects=["other"])
    def act(context):
        seen.append(committed_kinds(execaudit_capture.ledger_path, context.execution_id))

    @adapters.adapter("look", read_only=True)  # a read consumes nothing: nothing else commits
    def look(context):
        seen.append(committed_kinds(execaudit_capture.ledger_path, context.execution_id))

    @step("code_first_act", side_effects=["other"])
    def code_first_act():
        seen.append(committed_kinds(execaudit_capture.ledger_path,
                                    otel_execaudit.current_execution().execution_id))

    Executor(adapters=adapters).run({"plan_id": "p", "steps": [
        {"name": "l", "action_type": "look"}, {"name": "a", "action_type": "act"}]},
        client_id=1, **LIVE)
    Executor().run(lambda: code_first_act(), client_id=1, **LIVE)
    assert len(seen) == 3
    for kinds in seen:
        assert kinds[-1] != "step.completed" and "step.started" in kinds


def test_the_step_a_security_escalation_refused_is_listed_as_not_run(execaudit_capture):
    from otel_execaudit import SecuritySnapshot, SecurityState

    state = {"now": SecurityState.NORMAL}
    adapters = AdapterRegistry()
    adapters.adapter("ok", side_effects=["other"])(lambda context: None)

    @adapters.adapter("breach", side_effects=["other"])
    def breach(context):
        state["now"] = SecurityState.COMPROMISED

    steps = [{"name": name, "action_type": kind} for name, kind in
             (("a", "ok"), ("b", "breach"), ("c", "ok"), ("d", "ok"))]
    result = Executor(adapters=adapters, security=lambda: SecuritySnapshot(state["now"])).run(
        {"plan_id": "p", "steps": steps}, client_id=1, **LIVE)
    assert [(action.step, action.type, action.status) for action in result.actions] == [
        ("a", "LIVE", "success"), ("b", "LIVE", "success"), ("c", "NOT_RUN", "skipped"),
        ("d", "NOT_RUN", "skipped")]
    assert result.actions[2].reason.startswith("the security state stopped the run")


@pytest.mark.parametrize("said", ["no", "false", 1, None])
def test_only_true_makes_a_side_effect_reversible(execaudit_capture, said):
    with execution("effects") as ex:
        with ex.step("write") as st:
            st.side_effect("file_system", "wrote a file", reversible=said)
    assert ex.record.side_effects_report.observed[0].reversible is False


def test_a_client_id_or_ledger_path_that_is_not_utf8_gives_a_report_not_a_traceback(tmp_path):
    plan = os.path.join(os.path.dirname(__file__), "..", "docs", "examples", "buy-btc.yaml")
    adapters = os.path.join(os.path.dirname(__file__), "..", "docs", "examples",
                            "exchange_adapters.py")
    ledger = os.fsdecode(b"l\xff.db")
    common = ("--adapters", adapters, "--ledger", ledger, "--exporter", "none")
    live = execaudit_process("execute", plan, "--client-id", "1", "--live", "--acknowledge-risk",
                             "--validated", "--validation-passed", *common, cwd=tmp_path)
    assert live.returncode == 0, live.stderr  # usage in the ledger: the preflight reads it
    odd = execaudit_process("plan", plan, "--client-id", os.fsdecode(b"\xff"), "--json", *common,
                            cwd=tmp_path, text=False)
    assert odd.returncode == 1 and b"Traceback" not in odd.stderr
    result = json.loads(odd.stdout.decode("utf-8"))  # strict UTF-8: valid JSON text
    assert result["status"] == "BLOCKED"
    assert (result["metadata"]["client_id"], result["metadata"]["ledger"][-8:]) == (
        "\\xff", "l\\xff.db")
    checked = execaudit_process("verify", ledger, "--json", cwd=tmp_path, text=False)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout.decode("utf-8"))["path"] == "l\\xff.db"
    shown = execaudit_process("demo", "--ledger", ledger, "--exporter", "none", cwd=tmp_path)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr


def test_a_log_level_setting_that_is_not_one_is_a_usage_error(tmp_path):
    refused = execaudit_process("verify", "l.db", cwd=tmp_path,
                                env={"EXECAUDIT_LOG_LEVEL": "chatty"})
    assert refused.returncode == 64
    assert "EXECAUDIT_LOG_LEVEL='chatty' is not a log level" in refused.stderr
