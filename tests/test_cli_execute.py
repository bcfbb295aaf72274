"""`execaudit plan` and `execaudit execute`, as a user runs them on a plan file and a module of
adapters: safe by default, LIVE only when every guard allows it, everything in the ledger."""

import json
import re
import shlex
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import otel_execaudit
from otel_execaudit.executor.adapters import default_registry
from otel_execaudit.cli import main

QUOTE, BUY, FLAKY = "cliexec_fetch_quote", "cliexec_place_order", "cliexec_flaky"
LIVE_FLAGS = ("--live", "--acknowledge-risk", "--validated", "--validation-passed")
HASH = re.compile(r"Plan hash: (sha256:[0-9a-f]{64})")

PLAN = f"""\
plan_id: cli-buy
limits: {{orders: 5}}
steps:
  - name: quote
    action_type: {QUOTE}
    params: {{symbol: BTCUSDT}}
  - name: buy
    action_type: {BUY}
    params: {{symbol: BTCUSDT, quantity: 1}}
    side_effects:
      - {{category: network, reversible: false, description: place a buy order}}
    consumes: {{orders: 1}}
    rollback: cancel the order
"""

ADAPTERS = """\
from otel_execaudit.executor.adapters import adapter

CALLS = {calls!r}


def _log(text):
    with open(CALLS, "a", encoding="utf-8") as calls:
        calls.write(text + "\\n")


@adapter({quote!r}, read_only=True)
def fetch_quote(context):
    _log("quote")
    return {{"price": 50000}}


@adapter({buy!r})
def place_order(context):
    _log("buy:" + str(context.params["quantity"]))
    context.side_effect("network", "placed a buy order", reversible=False)
    return {{"order_id": "o-1"}}


@adapter({flaky!r})
def flaky(context):
    _log("flaky")
    raise ConnectionError("exchange unreachable")
"""


class Workspace:
    def __init__(self, root):
        self.root = root
        self.plan = root / "plan.yaml"
        self.plan.write_text(PLAN, encoding="utf-8")
        self.calls_file = root / "calls.txt"
        self.adapters = root / "cliexec_adapters.py"
        self.adapters.write_text(ADAPTERS.format(calls=str(self.calls_file), quote=QUOTE,
                                                 buy=BUY, flaky=FLAKY), encoding="utf-8")
        self.ledger = root / "l.db"

    def run(self, command, *arguments, plan=None, client_id="1", adapters=None,
            exporter="none"):
        words = [command, str(plan or self.plan), "--adapters", adapters or str(self.adapters),
                 "--ledger", str(self.ledger), *arguments]
        if exporter is not None:
            words += ["--exporter", exporter]
        if client_id is not None:
            words += ["--client-id", client_id]
        result = CliRunner().invoke(main, words)
        # Every outcome is an exit code, never an exception escaping the command.
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            result.exc_info
        if self.ledger.exists():  # whatever happened, the ledger still verifies
            self.assert_ledger_verifies()
        return result

    def calls(self):
        if not self.calls_file.exists():
            return []
        return self.calls_file.read_text(encoding="utf-8").splitlines()

    def assert_ledger_verifies(self):
        assert otel_execaudit.verify(self.ledger).ok
        result = CliRunner().invoke(main, ["verify", str(self.ledger)])
        assert result.exit_code == 0, result.output
        assert "intact" in result.stdout


@pytest.fixture
def workspace(tmp_path):
    yield Workspace(tmp_path)
    for action_type in (QUOTE, BUY, FLAKY):
        default_registry.unregister(action_type)
    sys.modules.pop("cliexec_adapters", None)


def plan_hash(output):
    found = HASH.findall(output)
    assert len(found) == 1, output
    return found[0]


# -- plan -----------------------------------------------------------------------------------------

def test_plan_prints_the_dry_run_report_and_its_hash(workspace):
    result = workspace.run("plan")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "MODE: DRY-RUN (simulation)" in out and "No real action was performed" in out
    assert "STATUS: ✓ SUCCESS" in out
    assert "SAFETY CHECKS:" in out
    assert "✓ TenantContext: Tenant context valid (client_id=1)" in out
    assert "✓ ValidationRequired: Validation not required for DRY-RUN" in out
    assert "✓ Acknowledgement: Acknowledgement not required for DRY-RUN" in out
    assert "✓ ExecutionLimits: Limits not enforced for DRY-RUN; would consume 1 of 5 orders" in out
    assert "[READ] quote" in out and "[SIMULATED] buy: would place a buy order" in out
    digest = plan_hash(out)
    # ... and how to run exactly this plan LIVE
    assert "--live --acknowledge-risk --validated --validation-passed" in out
    assert f"--plan-hash {digest}" in out
    assert workspace.calls() == ["quote"]  # the read ran; the order was only simulated
    workspace.assert_ledger_verifies()


def test_plan_with_detailed_exitcode_says_changes_are_pending(workspace):
    result = workspace.run("plan", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert "buy:1" not in workspace.calls()


def test_plan_of_a_read_only_plan_has_no_changes_pending(workspace):
    reads = workspace.root / "reads.yaml"
    reads.write_text(f"plan_id: reads\nsteps:\n  - {{name: quote, action_type: {QUOTE}}}\n",
                     encoding="utf-8")
    result = workspace.run("plan", "--detailed-exitcode", plan=reads)
    assert result.exit_code == 0, result.output


def test_the_same_plan_has_the_same_hash_each_time(workspace):
    first = plan_hash(workspace.run("plan").stdout)
    assert plan_hash(workspace.run("plan").stdout) == first


# -- execute: safe by default ---------------------------------------------------------------------

def test_execute_without_live_is_a_dry_run(workspace):
    result = workspace.run("execute")
    assert result.exit_code == 0, result.output
    assert "MODE: DRY-RUN" in result.stdout and "[SIMULATED] buy" in result.stdout
    assert "MODE: LIVE" not in result.stdout
    assert workspace.calls() == ["quote"]
    assert workspace.run("execute", "--detailed-exitcode").exit_code == 2
    assert workspace.run("execute", "--acknowledge-risk", "--validated",
                         "--validation-passed").exit_code == 0
    assert "buy:1" not in workspace.calls()  # flags without --live do not act
    workspace.assert_ledger_verifies()


def test_live_without_acknowledgement_is_blocked_before_anything_runs(workspace):
    result = workspace.run("execute", "--live")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "MODE: LIVE" in out and "STATUS: ✗ BLOCKED" in out
    assert "Execution prevented by safety checks" in out
    assert ("✗ ValidationRequired: LIVE execution requires a prior validation that passed "
            "(--validated --validation-passed)") in out
    assert "✗ Acknowledgement: LIVE execution requires explicit risk acknowledgement" in out
    assert "✓ TenantContext" in out
    assert workspace.calls() == []  # not even the read
    workspace.assert_ledger_verifies()


def test_live_with_only_some_flags_names_what_is_missing(workspace):
    result = workspace.run("execute", "--live", "--acknowledge-risk", "--validated")
    assert result.exit_code == 1, result.output
    assert "✗ ValidationRequired: Validation did not pass (--validation-passed)" in result.stdout
    assert "✓ Acknowledgement: Risk acknowledged for LIVE execution" in result.stdout
    assert workspace.calls() == []


def test_blocked_with_detailed_exitcode_exits_3(workspace):
    result = workspace.run("execute", "--live", "--detailed-exitcode")
    assert result.exit_code == 3, result.output
    assert workspace.calls() == []


def test_live_with_every_flag_acts_once(workspace):
    result = workspace.run("execute", *LIVE_FLAGS)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "MODE: LIVE (real actions)" in out and "STATUS: ✓ SUCCESS" in out
    assert "[LIVE] buy: place a buy order" in out
    assert "Rollback (not executed): cancel the order" in out
    assert workspace.calls() == ["quote", "buy:1"]
    workspace.assert_ledger_verifies()
    assert workspace.run("execute", *LIVE_FLAGS, "--detailed-exitcode").exit_code == 0


def test_live_stops_at_the_daily_limit(workspace):
    limited = workspace.root / "limited.yaml"
    limited.write_text(PLAN.replace("limits: {orders: 5}", "limits: {orders: 1}"),
                       encoding="utf-8")
    assert workspace.run("execute", *LIVE_FLAGS, plan=limited).exit_code == 0
    result = workspace.run("execute", *LIVE_FLAGS, plan=limited)
    assert result.exit_code == 1, result.output
    assert "✗ ExecutionLimits: Max orders limit reached: 1 used + 1 planned > 1" in result.stdout
    assert workspace.calls().count("buy:1") == 1
    other_tenant = workspace.run("execute", *LIVE_FLAGS, plan=limited, client_id="2")
    assert other_tenant.exit_code == 0, other_tenant.output
    assert workspace.calls().count("buy:1") == 2
    workspace.assert_ledger_verifies()


def test_replaying_an_execution_id_does_not_count_its_limits_twice(workspace):
    limited = workspace.root / "limited.yaml"
    limited.write_text(PLAN.replace("limits: {orders: 5}", "limits: {orders: 1}"),
                       encoding="utf-8")
    first = workspace.run("execute", *LIVE_FLAGS, "--execution-id", "run-7", plan=limited)
    assert first.exit_code == 0, first.output
    replay = workspace.run("execute", *LIVE_FLAGS, "--execution-id", "run-7", plan=limited)
    assert replay.exit_code == 0, replay.output


def test_replaying_an_execution_id_with_room_left_counts_it_once(workspace):
    limited = workspace.root / "limited.yaml"
    limited.write_text(PLAN.replace("limits: {orders: 5}", "limits: {orders: 2}"),
                       encoding="utf-8")
    for _ in range(2):
        result = workspace.run("execute", *LIVE_FLAGS, "--execution-id", "run-8", plan=limited)
        assert result.exit_code == 0, result.output
    other = workspace.run("execute", *LIVE_FLAGS, plan=limited)
    assert other.exit_code == 0, other.output  # the replay did not use up the second unit
    assert workspace.run("execute", *LIVE_FLAGS, plan=limited).exit_code == 1
    assert workspace.calls().count("buy:1") == 3


def test_a_failing_adapter_fails_the_run_with_its_error(workspace):
    flaky = workspace.root / "flaky.yaml"
    flaky.write_text(f"plan_id: flaky\nsteps:\n  - name: call\n    action_type: {FLAKY}\n"
                     "    side_effects: [network]\n", encoding="utf-8")
    result = workspace.run("execute", *LIVE_FLAGS, "--detailed-exitcode", plan=flaky)
    assert result.exit_code == 1, result.output
    assert "STATUS: ✗ FAILED" in result.stdout
    assert "ConnectionError: exchange unreachable" in result.stdout
    assert workspace.calls() == ["flaky"]
    workspace.assert_ledger_verifies()


def test_a_step_without_an_adapter_fails_and_says_to_pass_adapters(workspace):
    orphan = workspace.root / "orphan.yaml"
    orphan.write_text("plan_id: orphan\nsteps:\n  - {name: s, action_type: cliexec_nobody}\n",
                      encoding="utf-8")
    result = workspace.run("execute", plan=orphan)
    assert result.exit_code == 1, result.output
    assert "no adapter for action_type 'cliexec_nobody'" in result.stdout
    assert "--adapters" in result.stdout
    workspace.assert_ledger_verifies()


# -- pinned to the dry run ------------------------------------------------------------------------

def test_a_live_run_pinned_to_its_dry_run_hash_runs(workspace):
    digest = plan_hash(workspace.run("plan").stdout)
    result = workspace.run("execute", *LIVE_FLAGS, "--plan-hash", digest)
    assert result.exit_code == 0, result.output
    assert "✓ PlanPinned: Plan matches its dry run" in result.stdout
    assert workspace.calls() == ["quote", "quote", "buy:1"]
    workspace.assert_ledger_verifies()


def test_a_plan_edited_after_its_dry_run_is_refused_as_stale(workspace):
    digest = plan_hash(workspace.run("plan").stdout)
    workspace.plan.write_text(PLAN.replace("quantity: 1", "quantity: 100"), encoding="utf-8")
    result = workspace.run("execute", *LIVE_FLAGS, "--plan-hash", digest)
    assert result.exit_code == 1, result.output
    assert "STATUS: ✗ BLOCKED" in result.stdout
    assert "✗ PlanPinned: Plan is stale" in result.stdout and digest in result.stdout
    assert workspace.calls() == ["quote"]  # the dry run's read, and nothing since
    detailed = workspace.run("execute", *LIVE_FLAGS, "--plan-hash", digest,
                             "--detailed-exitcode")
    assert detailed.exit_code == 3
    assert workspace.calls() == ["quote"]
    workspace.assert_ledger_verifies()
    fresh = plan_hash(workspace.run("plan").stdout)
    assert fresh != digest
    assert workspace.run("execute", *LIVE_FLAGS, "--plan-hash", fresh).exit_code == 0
    assert workspace.calls()[-1] == "buy:100"


def test_a_hash_from_another_tenants_dry_run_is_refused(workspace):
    # What was reviewed was a run for client 7; the pin does not carry over to client 1.
    digest = plan_hash(workspace.run("plan", client_id="7").stdout)
    result = workspace.run("execute", *LIVE_FLAGS, "--plan-hash", digest)
    assert result.exit_code == 1 and "stale" in result.stdout
    assert workspace.calls() == ["quote"]  # the dry run's read only


def test_a_made_up_hash_is_refused(workspace):
    result = workspace.run("execute", *LIVE_FLAGS, "--plan-hash", "sha256:" + "0" * 64)
    assert result.exit_code == 1 and "stale" in result.stdout
    assert workspace.calls() == []


# -- output ---------------------------------------------------------------------------------------

def test_json_output_is_the_versioned_result(workspace):
    result = workspace.run("execute", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["format"] == "otel-execaudit.result/1"
    assert document["status"] == "SUCCESS" and document["mode"] == "DRY_RUN"
    assert [action["type"] for action in document["actions"]] == ["READ", "SIMULATED"]
    assert [guard["name"] for guard in document["guards"]] == [
        "TenantContext", "ValidationRequired", "Acknowledgement", "ExecutionLimits"]
    assert document["metadata"]["plan_hash"].startswith("sha256:")
    assert document["metadata"]["client_id"] == 1
    assert document["metadata"]["ledger"] == str(workspace.ledger)
    blocked = json.loads(workspace.run("execute", "--live", "--json").stdout)
    assert blocked["status"] == "BLOCKED" and blocked["summary"]["failed_guards"] == 2


def test_plan_json_output_parses_and_carries_the_hash(workspace):
    result = workspace.run("plan", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["format"] == "otel-execaudit.result/1"
    digest = document["metadata"]["plan_hash"]
    assert workspace.run("execute", *LIVE_FLAGS, "--plan-hash", digest).exit_code == 0


# -- mistakes the user makes ----------------------------------------------------------------------

def test_a_missing_client_id_is_blocked_by_the_tenant_guard_not_a_usage_error(workspace):
    result = workspace.run("execute", client_id=None)
    assert result.exit_code == 1, result.output
    assert "STATUS: ✗ BLOCKED" in result.stdout
    assert "✗ TenantContext: client_id is required (pass --client-id N, a positive integer)" in result.stdout
    assert workspace.calls() == []
    workspace.assert_ledger_verifies()


@pytest.mark.parametrize("client_id, says", [("abc", "must be an integer"),
                                             ("0", "must be positive"),
                                             # int() takes these; a tenant id must not
                                             ("-3", "must be positive, not -3"),
                                             (" 1", "must be an integer"),
                                             ("1 ", "must be an integer"),
                                             ("1_000", "must be an integer"),
                                             ("\uff11", "must be an integer"),  # fullwidth 1
                                             ("\u0661", "must be an integer")])  # Arabic-Indic 1
def test_an_invalid_client_id_is_blocked_by_the_tenant_guard(workspace, client_id, says):
    result = workspace.run("execute", *LIVE_FLAGS, client_id=client_id)
    assert result.exit_code == 1, result.output
    assert "✗ TenantContext" in result.stdout and says in result.stdout
    assert workspace.calls() == []


def test_a_malformed_plan_exits_1_with_the_plan_error_and_no_traceback(workspace):
    broken = workspace.root / "broken.yaml"
    broken.write_text(PLAN.replace("side_effects:", "side_efects:"), encoding="utf-8")
    for command in ("plan", "execute"):
        result = workspace.run(command, plan=broken)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("execaudit: ")
        assert "step 2 ('buy')" in result.stderr and "['side_efects']" in result.stderr
        assert "Traceback" not in result.output
        assert result.stdout == ""
    assert workspace.calls() == []
    assert not workspace.ledger.exists()  # nothing was recorded


def test_a_missing_plan_file_exits_1_with_a_clear_message(workspace):
    result = workspace.run("execute", plan=workspace.root / "nope.yaml")
    assert result.exit_code == 1, result.output
    assert "no such plan file" in result.stderr and "Traceback" not in result.output


def test_invalid_yaml_exits_1_with_a_clear_message(workspace):
    broken = workspace.root / "broken.yaml"
    broken.write_text("plan_id: p\nsteps: [\n", encoding="utf-8")
    result = workspace.run("plan", plan=broken)
    assert result.exit_code == 1, result.output
    assert "not valid YAML" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("module", ["cliexec_no_such_module", "missing/adapters.py"])
def test_an_adapters_module_that_does_not_exist_exits_1_with_a_clear_message(workspace, module):
    words = ["execute", str(workspace.plan), "--adapters", module, "--ledger",
             str(workspace.ledger), "--exporter", "none", "--client-id", "1"]
    result = CliRunner().invoke(main, words)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"cannot import adapters module {module!r}" in result.stderr
    assert "Traceback" not in result.output
    assert workspace.calls() == []


def test_an_adapters_module_that_raises_on_import_exits_1_naming_the_error(workspace):
    bad = workspace.root / "cliexec_bad_adapters.py"
    bad.write_text("raise ImportError('needs the exchange SDK')\n", encoding="utf-8")
    try:
        result = CliRunner().invoke(main, ["plan", str(workspace.plan), "--adapters", str(bad),
                                           "--ledger", str(workspace.ledger), "--exporter",
                                           "none", "--client-id", "1"])
    finally:
        sys.modules.pop("cliexec_bad_adapters", None)
    assert result.exit_code == 1, result.output
    assert "needs the exchange SDK" in result.stderr and "Traceback" not in result.output
    assert "raised while it was imported" in result.stderr and "Fix the module" in result.stderr


def test_the_dry_run_hint_repeats_the_options_that_matter(workspace):
    with_strategy = workspace.root / "strategies.yaml"
    with_strategy.write_text(PLAN.replace("limits: {orders: 5}\n", "limits: {orders: 5}\n"
                                          "strategies: {scalper: {orders: 2}}\n"),
                             encoding="utf-8")
    out = workspace.run("plan", "--strategy-id", "scalper", plan=with_strategy,
                        client_id="42").stdout
    hint = out.split("To run it LIVE, pinned to what you just reviewed:")[1]
    assert "execaudit execute" in hint and "--client-id 42" in hint
    assert "--strategy-id scalper" in hint and f"--adapters {workspace.adapters}" in hint
    assert textwrap.dedent(hint).strip().count("\n") == 0  # one line to copy


def live_hint(output):
    """The words of the LIVE command `execaudit plan` printed, without "execaudit"."""
    hint = output.split("To run it LIVE, pinned to what you just reviewed:\n")[1]
    words = shlex.split(hint.strip())
    assert words[:2] == ["execaudit", "execute"], hint
    return words[1:]


def test_the_dry_run_hint_runs_live_on_the_same_ledger(workspace, monkeypatch):
    # The ledger holds the limit counters: a LIVE command on another ledger would be checked
    # against other counters than the dry run reported.
    monkeypatch.chdir(workspace.root)
    monkeypatch.delenv("EXECAUDIT_LEDGER", raising=False)
    words = live_hint(workspace.run("plan", exporter="console").stdout)
    assert words[words.index("--ledger") + 1] == str(workspace.ledger)
    assert words[words.index("--exporter") + 1] == "console"
    live = CliRunner().invoke(main, words)
    assert live.exit_code == 0, live.output
    assert "[LIVE] buy" in live.stdout and workspace.calls() == ["quote", "quote", "buy:1"]
    assert not (workspace.root / ".execaudit").exists()  # not the default ledger


def test_the_dry_run_hint_names_no_exporter_when_none_was_given(workspace, monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    words = live_hint(workspace.run("plan", exporter=None).stdout)
    assert "--exporter" not in words and "--ledger" in words


def test_no_live_hint_for_a_plan_with_nothing_to_do_live(workspace):
    reads = workspace.root / "reads.yaml"
    reads.write_text(f"plan_id: reads\nsteps:\n  - {{name: quote, action_type: {QUOTE}}}\n",
                     encoding="utf-8")
    result = workspace.run("plan", plan=reads)
    assert result.exit_code == 0, result.output
    assert "To run it LIVE" not in result.stdout and "--live" not in result.stdout
    assert result.stdout.rstrip().splitlines()[-1] == (
        "No LIVE command: nothing would be performed LIVE (no step acts).")


def test_no_live_hint_when_the_dry_run_predicts_live_is_over_a_limit(workspace):
    limited = workspace.root / "limited.yaml"
    limited.write_text(PLAN.replace("limits: {orders: 5}", "limits: {orders: 1}"),
                       encoding="utf-8")
    assert workspace.run("execute", *LIVE_FLAGS, plan=limited).exit_code == 0
    result = workspace.run("plan", plan=limited)
    assert result.exit_code == 0, result.output
    assert "LIVE would be blocked: orders over the daily limit" in result.stdout
    assert "To run it LIVE" not in result.stdout and "--live" not in result.stdout
    assert result.stdout.rstrip().splitlines()[-1] == (
        "No LIVE command: the dry run predicts LIVE would be blocked "
        "(ExecutionLimits: orders over the daily limit).")


def test_no_live_hint_after_a_blocked_dry_run(workspace):
    result = workspace.run("plan", client_id=None)
    assert result.exit_code == 1, result.output
    assert "To run it LIVE" not in result.stdout
    assert result.stdout.rstrip().splitlines()[-1] == (
        "No LIVE command: the dry run did not succeed.")


# -- usage errors ---------------------------------------------------------------------------------

USAGE_ERRORS = {
    "unknown option": (["--no-such-option"], "No such option '--no-such-option'"),
    "missing PLAN": ([None], "Missing argument 'PLAN'"),
    "bad exporter": (["--exporter", "jaeger"], "Invalid value for '--exporter'"),
    "PLAN is a directory": (["{root}"], "is a directory"),
}


@pytest.mark.parametrize("command", ["plan", "execute"])
@pytest.mark.parametrize("mistake", sorted(USAGE_ERRORS))
def test_a_usage_error_exits_64_never_the_changes_pending_2(workspace, command, mistake):
    arguments, says = USAGE_ERRORS[mistake]
    words = [command, "--detailed-exitcode", "--ledger", str(workspace.ledger)]
    if arguments != [None]:
        words += [str(workspace.plan)] if "{root}" not in arguments else []
        words += [word.replace("{root}", str(workspace.root)) for word in arguments]
    result = CliRunner().invoke(main, words, prog_name="execaudit")
    assert result.exit_code == 64, result.output  # a usage error, as documented
    assert says in result.stderr and result.stderr.startswith("Usage: execaudit ")
    assert result.stdout == ""
    assert workspace.calls() == [] and not workspace.ledger.exists()


@pytest.mark.parametrize("command", ["plan", "execute"])
def test_help_still_exits_0(command):
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(main, [command, flag], prog_name="execaudit")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"Usage: execaudit {command} [OPTIONS] PLAN")


def test_verify_keeps_2_for_not_a_ledger_and_exits_64_for_usage_errors(tmp_path):
    result = CliRunner().invoke(main, ["verify", "--no-such-option"])
    assert result.exit_code == 64 and "No such option" in result.stderr
    assert CliRunner().invoke(main, ["verify", str(tmp_path)]).exit_code == 2  # a directory


def help_text(*words):
    # Wide enough that click wraps no line (it would break "--detailed-exitcode" in two).
    result = CliRunner().invoke(main, [*words, "--help"], terminal_width=1000,
                                max_content_width=1000)
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())


def test_the_help_says_what_the_options_really_do():
    text = help_text("execute")
    assert "--client-id N" in text and "a positive integer" in text
    assert "--validated Your own assertion that the plan was validated (nothing here " \
           "validates it)" in text
    assert "--validation-passed Your own assertion that the plan's validation passed " \
           "(nothing here checks it)" in text
    assert "with --detailed-exitcode: 0 success with nothing left to do, 1 failed or bad " \
           "input, 2 dry run with changes pending, 3 blocked by a guard" in text.lower()
    for words in (("plan",), ("execute",)):
        assert ("Default: otlp when OTEL_EXPORTER_OTLP_ENDPOINT or "
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, else none") in help_text(*words)


# -- telemetry and adapters -----------------------------------------------------------------------

@pytest.mark.parametrize("command", ["plan", "execute"])
def test_json_with_the_console_exporter_keeps_telemetry_off_stdout(workspace, command):
    result = workspace.run(command, "--json", exporter="console")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # stdout is the JSON result and nothing else
    assert document["format"] == "otel-execaudit.result/1"
    assert '"name": "invoke_workflow cli-buy"' in result.stderr  # the spans ...
    assert '"event_name": "execaudit.action.terminal"' in result.stderr  # ... and the events


def test_the_console_exporter_leaves_the_report_alone(workspace):
    result = workspace.run("plan", exporter="console")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("=" * 60 + "\nEXECUTION REPORT\n")
    assert "invoke_workflow" not in result.stdout and "invoke_workflow" in result.stderr


def test_a_dotted_adapters_module_imports_from_the_working_directory(workspace, monkeypatch):
    # As the console script runs: its own directory on sys.path, not the working directory.
    monkeypatch.chdir(workspace.root)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path
                                      if entry and Path(entry).resolve() != workspace.root])
    for command in ("plan", "execute"):
        result = workspace.run(command, adapters="cliexec_adapters")
        assert result.exit_code == 0, result.stderr
        assert "[SIMULATED] buy" in result.stdout
    assert workspace.calls() == ["quote", "quote"]
    assert sys.path[0] == str(workspace.root)  # first, as under python -m


# -- the report -----------------------------------------------------------------------------------

def test_the_report_shows_the_whole_rollback_hint(workspace):
    hinted = workspace.root / "hinted.yaml"
    hinted.write_text(PLAN.replace(
        "rollback: cancel the order",
        "rollback:\n      description: cancel the order\n"
        "      actions: [cancel_order, check_fills]\n"
        "      risks: [a partial fill cannot be cancelled]"), encoding="utf-8")
    for arguments in ((), LIVE_FLAGS):
        lines = workspace.run("execute", *arguments, plan=hinted).stdout.splitlines()
        start = lines.index("     Rollback (not executed): cancel the order")
        assert lines[start + 1:start + 4] == [
            "       - action: cancel_order",
            "       - action: check_fills",
            "       - risk: a partial fill cannot be cancelled"]
        assert lines[start + 4] == ""  # then the Summary, as before


# -- the example plan -----------------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


@pytest.fixture
def example_adapters():
    yield str(EXAMPLES / "exchange_adapters.py")
    for action_type in ("fetch_quote", "place_order"):
        default_registry.unregister(action_type)
    sys.modules.pop("exchange_adapters", None)


def test_the_example_strategy_shares_the_tenants_daily_counters(tmp_path, example_adapters):
    # What the example's comments tell a reader about its limits, and that it is so.
    plan = EXAMPLES / "buy-btc.yaml"
    limits_line = next(line for line in plan.read_text(encoding="utf-8").splitlines()
                       if line.startswith("limits:"))
    assert "per tenant and UTC day" in limits_line and "strategy" not in limits_line

    def execute(client_id, *words):
        return CliRunner().invoke(main, [
            "execute", str(plan), "--adapters", example_adapters, "--client-id", client_id,
            "--ledger", str(tmp_path / "l.db"), "--exporter", "none", *LIVE_FLAGS, *words])

    assert execute("1").exit_code == 0  # 1 of the plan's 10 orders today
    cautious = execute("1", "--strategy-id", "cautious")  # at most 1, on the same counter
    assert cautious.exit_code == 1, cautious.output
    assert ("✗ ExecutionLimits: Max orders limit reached: 1 used + 1 planned > 1"
            in cautious.stdout)
    other_tenant = execute("2", "--strategy-id", "cautious")  # its own counter
    assert other_tenant.exit_code == 0, other_tenant.output
