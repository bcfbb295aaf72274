"""The inspection commands as a user runs them: ``execaudit executions``, ``show``, ``rollback``,
``confirm-rollback``, ``last-error`` and ``report``, against the demo's ledger and small recorded
ones, in text and ``--json``, with every exit status cli/inspection.py documents (0 shown, 1 shown
after the warning that the ledger failed verification, 2 no ledger, 3 no such execution, 4
rollback not possible or not confirmed), never a traceback, and never a rollback executed."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pty
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import otel_execaudit
from otel_execaudit import execution
from otel_execaudit.cli import main
from otel_execaudit.inspection import integrity
from otel_execaudit.ledger import canonical_bytes, verify

COMMANDS = ["executions", "show", "rollback", "confirm-rollback", "last-error", "report"]
WARNING = "WARNING: this ledger failed verification"
HAS_REPORT = importlib.util.find_spec("otel_execaudit.inspection.report") is not None
needs_report = pytest.mark.skipif(not HAS_REPORT, reason="otel_execaudit/inspection/report.py "
                                  "(render_report) is not written yet")
# Each hint's text would leave MARKER in the working directory if anything ran it.
MARKER_HINT = {"description": "drop test_db; $(touch MARKER)",
               "actions": ["touch MARKER",
                           "python3 -c \"import pathlib; pathlib.Path('MARKER').touch()\"",
                           "__import__('pathlib').Path('MARKER').touch()",
                           "`touch MARKER`; touch MARKER"],
               "risks": ["$(touch MARKER)"]}


def execaudit(*arguments, cwd=None, env=None, stdin=subprocess.DEVNULL):
    """The real command, in a process of its own; never a traceback, whatever it says."""
    result = subprocess.run([sys.executable, "-m", "otel_execaudit.cli", *map(str, arguments)],
                            cwd=cwd, env=env, stdin=stdin, capture_output=True, text=True,
                            timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def typing(text, *arguments, cwd=None):
    """The command with a terminal as stdin, on which ``text`` is typed."""
    master, slave = pty.openpty()
    try:
        os.write(master, text.encode())
        return execaudit(*arguments, cwd=cwd, stdin=slave)
    finally:
        os.close(slave)
        os.close(master)


def invoke(*arguments):
    """The command in this process (where a module setting can be patched); no stdin."""
    result = CliRunner().invoke(main, [str(argument) for argument in arguments])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    assert "Traceback" not in result.stderr, result.stderr
    return result


def as_json(result):
    return json.loads(result.stdout)


def copy(source, target):
    """A consistent copy (whatever the -wal file still holds) to change."""
    with sqlite3.connect(source) as original, sqlite3.connect(target) as copied:
        original.backup(copied)
    original.close()
    copied.close()
    return target


def entry_count(path):
    with sqlite3.connect(path) as connection:
        count = connection.execute("SELECT count(*) FROM entries").fetchone()[0]
    connection.close()
    return count


def change_body(path, where, old, new, rehash=False):
    """Edit one entry's body bytes in place (and its stored hash, if ``rehash``); its seq."""
    with sqlite3.connect(path) as connection:
        seq, body = connection.execute(f"SELECT seq, body FROM entries WHERE {where} "
                                       "ORDER BY seq LIMIT 1").fetchone()
        changed = bytes(body).replace(old, new) if old is not None else new
        assert changed != bytes(body)
        connection.execute("UPDATE entries SET body = ? WHERE seq = ?", (changed, seq))
        if rehash:
            connection.execute("UPDATE entries SET hash = ? WHERE seq = ?",
                               (hashlib.sha256(b"\x00" + changed).hexdigest(), seq))
    connection.close()
    return seq


def record(path):
    """A small ledger: a failed step inside a completed execution (tools-1), a reversible change
    with a rollback hint (deploy-1a), a failure after an irreversible change (deploy-1b), a dry
    run of another tenant (nightly), and one id run twice (same)."""
    otel_execaudit.configure(ledger=path, exporter="none")
    try:
        with execution("tools", execution_id="tools-1") as ex:
            try:
                with ex.step("fetch", details={"url": "https://example.invalid/a"}):
                    raise ConnectionError("host unreachable")
            except ConnectionError:
                pass
        with execution("web", execution_id="deploy-1a", details={"tenant": "acme"}) as ex:
            with ex.step("create_db", details={"rollback": MARKER_HINT}) as st:
                st.side_effect("data_mutation", "created test_db", reversible=True)
        with pytest.raises(ValueError):
            with execution("web", execution_id="deploy-1b", details={"tenant": "acme"}) as ex:
                with ex.step("notify") as st:
                    st.side_effect("network", "emailed every customer", reversible=False)
                with ex.step("migrate"):
                    raise ValueError("column orders.status is in use")
        with execution("backup", execution_id="nightly", mode="DRY_RUN",
                       details={"tenant": "globex"}) as ex:
            with ex.step("dump"):
                pass
        for attempt in (1, 2):
            with execution("job", execution_id="same") as ex:
                with ex.step(f"attempt-{attempt}"):
                    pass
    finally:
        otel_execaudit.shutdown()
    return path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return record(tmp_path_factory.mktemp("recorded") / "ledger.db")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The bundled demo's ledger, and the ids of its failed run and of its executor run that
    carries a rollback hint."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    ran = execaudit("demo", "--ledger", path, "--exporter", "none")
    assert ran.returncode == 0, ran.stderr
    listed = as_json(execaudit("executions", "--ledger", path, "--json"))["executions"]
    failed = next(item["execution_id"] for item in listed if item["status"] == "failed")
    hinted = next(item["execution_id"] for item in listed
                  if item["plan_id"] == "scale-checkout" and item["mode"] == "LIVE"
                  and item["status"] == "completed")
    return path, listed, failed, hinted


@pytest.fixture
def empty(tmp_path):
    path = tmp_path / "empty.db"
    otel_execaudit.Ledger(path).close()
    return path


# ----- executions ------------------------------------------------------------------------------

def test_executions_lists_the_demo_newest_first(demo):
    path, listed, failed, hinted = demo
    shown = execaudit("executions", "--ledger", path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["started", "(UTC)", "status", "mode", "ms", "execution", "id",
                                "/", "plan"]
    assert len(lines) == 6 and len(listed) == 5
    assert [line.split()[4] for line in lines[1:]] == [item["execution_id"] for item in listed]
    assert hinted in lines[1] and "completed" in lines[1]
    failed_line = next(line for line in lines if failed in line)
    assert "failed" in failed_line and "failed at migrate_database" in failed_line
    assert listed[0]["started_at"] >= listed[-1]["started_at"]
    assert {item["plan_id"] for item in listed} == {"release-shop-v2.4.0", "scale-checkout"}
    assert shown.stderr == ""


def test_executions_json_carries_each_summary_and_the_check(recorded):
    result = execaudit("executions", "--ledger", recorded, "--json")
    assert result.returncode == 0
    document = as_json(result)
    assert document["format"] == "otel-execaudit.executions/1"
    assert [item["execution_id"] for item in document["executions"]] == [
        "same", "nightly", "deploy-1b", "deploy-1a", "tools-1"]
    same, nightly, failed = document["executions"][:3]
    assert same["runs"] == 2 and nightly["runs"] == 1
    assert nightly["mode"] == "DRY_RUN" and nightly["tenant"] == "globex"
    assert failed["status"] == "failed" and failed["failed_step"] == "migrate"
    assert failed["reason"] == "column orders.status is in use"
    assert document["integrity"] == {"ok": True, "scope": "ledger",
                                     "entries": entry_count(recorded), "first_bad_seq": None,
                                     "reason": None, "warning": None}
    assert list(document)[0] == "integrity"  # the verdict first


@pytest.mark.parametrize("filters, expected", [
    (["--status", "failed"], ["deploy-1b", "tools-1"]),  # a failed step fails its execution
    (["--status", "FAILED"], ["deploy-1b", "tools-1"]),
    (["--plan", "web"], ["deploy-1b", "deploy-1a"]),
    (["--mode", "DRY_RUN"], ["nightly"]),
    (["--mode", "live"], ["same", "deploy-1b", "deploy-1a", "tools-1"]),
    (["--tenant", "acme"], ["deploy-1b", "deploy-1a"]),
    (["--tenant", "acme", "--status", "completed"], ["deploy-1a"]),
    (["--limit", "2"], ["same", "nightly"]),
    (["--plan", "web", "--limit", "1"], ["deploy-1b"]),
    (["--plan", "nope"], []),
])
def test_executions_filters(recorded, filters, expected):
    result = execaudit("executions", "--ledger", recorded, "--json", *filters)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [item["execution_id"] for item in as_json(result)["executions"]] == expected
    text = execaudit("executions", "--ledger", recorded, *filters)
    assert text.returncode == 0
    if expected:
        assert [line.split()[4] for line in text.stdout.splitlines()[1:]] == expected
    else:
        assert text.stdout.strip() == "no executions recorded that match"


def test_executions_since_and_until_bound_the_start_time(recorded):
    listed = as_json(execaudit("executions", "--ledger", recorded, "--json"))["executions"]
    middle = next(item for item in listed if item["execution_id"] == "deploy-1b")["started_at"]
    ids = lambda *bounds: [item["execution_id"] for item in as_json(execaudit(
        "executions", "--ledger", recorded, "--json", *bounds))["executions"]]
    assert ids("--since", middle) == ["same", "nightly", "deploy-1b"]
    assert ids("--until", middle) == ["deploy-1a", "tools-1"]
    assert ids("--since", middle, "--until", listed[1]["started_at"]) == ["deploy-1b"]
    day = middle[:10]
    assert ids("--since", day) == ids() and ids("--until", day) == []
    assert ids("--since", "2999-01-01") == []
    # A time with an offset is that moment: one hour ahead of UTC, the same instant.
    moment = middle[:-1].split(".")[0]
    hour = int(moment[11:13])
    if hour < 23:
        shifted = f"{moment[:11]}{hour + 1:02d}{moment[13:]}+01:00"
        assert ids("--since", shifted) == ids("--since", moment)


@pytest.mark.parametrize("bound", ["yesterday", "2026-13-01", "12/01/2026"])
def test_executions_refuses_a_time_it_cannot_read(recorded, bound):
    """A typo is a usage error (64), not an empty listing that reads as "none since then"."""
    result = execaudit("executions", "--ledger", recorded, "--since", bound)
    assert result.returncode == 64 and "--since" in result.stderr and result.stdout == ""


def test_executions_of_an_empty_ledger(empty):
    result = execaudit("executions", "--ledger", empty)
    assert result.returncode == 0 and result.stdout.strip() == "no executions recorded"
    document = as_json(execaudit("executions", "--ledger", empty, "--json"))
    assert document["executions"] == [] and document["integrity"]["ok"] is True


def test_the_ledger_defaults_to_the_environment_then_the_working_directory(recorded, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "EXECAUDIT_LEDGER"}
    missing = execaudit("executions", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and ".execaudit/ledger.db" in missing.stderr
    (tmp_path / ".execaudit").mkdir()
    copy(recorded, tmp_path / ".execaudit" / "ledger.db")
    assert "nightly" in execaudit("show", "nightly", cwd=tmp_path, env=env).stdout
    env["EXECAUDIT_LEDGER"] = str(tmp_path / "elsewhere.db")
    assert execaudit("executions", cwd=tmp_path, env=env).returncode == 2


# ----- show ------------------------------------------------------------------------------------

def test_show_the_demo_failure_by_prefix(demo):
    path, _, failed, _ = demo
    result = execaudit("show", failed[:6], "--ledger", path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"release-shop-v2.4.0  execution {failed}\nstatus FAILED  mode LIVE")
    assert re.search(r"^3 +migrate_database +failed +[\d.]+ +column orders.legacy_status", out,
                     re.M), out
    # The migration failed after declaring an irreversible change: shown as possible, as the
    # rollback guidance counts it.
    assert f"Irreversible actions of {failed} (0, 1 more possible)\n  ✗ IRREVERSIBLE? step 3 " \
           "(migrate_database): data_mutation: ALTER TABLE orders DROP COLUMN legacy_status " \
           "(declared; the step failed, so it may have happened)" in out
    assert "hunter2" not in out


def test_show_last_is_the_newest_execution(demo):
    path, listed, _, hinted = demo
    assert listed[0]["execution_id"] == hinted
    result = execaudit("show", "last", "--ledger", path)
    assert result.returncode == 0
    assert result.stdout.startswith(f"scale-checkout  execution {hinted}")
    assert "tenant 1" in result.stdout and "Guards" in result.stdout
    assert "PlanPinned" in result.stdout and "Actions" in result.stdout


def test_show_json_is_the_rebuilt_record(demo):
    path, _, failed, _ = demo
    document = as_json(execaudit("show", failed, "--ledger", path, "--json"))
    assert document["format"] == "otel-execaudit.execution/1"
    record = document["record"]
    assert record["execution_id"] == failed and record["status"] == "failed"
    assert record["plan_id"] == "release-shop-v2.4.0"
    assert (document["run"], document["runs"]) == (1, 1)
    assert document["integrity"]["ok"] is True
    assert document["first_seq"] <= document["last_seq"]


def test_show_run_tells_apart_the_runs_of_a_reused_id(recorded):
    latest = execaudit("show", "same", "--ledger", recorded)
    assert latest.returncode == 0
    assert "run 2 of 2 under this id" in latest.stdout
    assert "attempt-2" in latest.stdout and "attempt-1" not in latest.stdout
    first = execaudit("show", "same", "--run", "1", "--ledger", recorded)
    assert first.returncode == 0
    assert "run 1 of 2 under this id" in first.stdout and "attempt-1" in first.stdout
    assert "attempt-2" not in first.stdout
    document = as_json(execaudit("show", "same", "--run", "1", "--ledger", recorded, "--json"))
    assert (document["run"], document["runs"]) == (1, 2)
    assert [event["step_name"] for event in document["record"]["step_events"]] == \
        ["attempt-1", "attempt-1"]
    beyond = execaudit("show", "same", "--run", "3", "--ledger", recorded)
    assert beyond.returncode == 3 and "has 2 run(s); there is no run 3" in beyond.stderr
    assert beyond.stdout == ""
    assert execaudit("show", "same", "--run", "0", "--ledger", recorded).returncode == 64


def test_show_a_unique_prefix_and_a_full_id(recorded):
    for reference in ("nigh", "nightly"):
        result = execaudit("show", reference, "--ledger", recorded)
        assert result.returncode == 0
        assert result.stdout.startswith("backup  execution nightly\nstatus COMPLETED  mode DRY_RUN")
        assert "tenant globex" in result.stdout


def test_show_a_replayed_executor_run(tmp_path):
    """The executor's execution_id= reused: the dry run, then a replay under the same id."""
    from otel_execaudit import ActionOutcome, AdapterRegistry, Executor

    adapters = AdapterRegistry()

    @adapters.adapter("noop")
    def noop(context):
        return ActionOutcome.success("ok")

    path = tmp_path / "executor.db"
    otel_execaudit.configure(ledger=path, exporter="none")
    try:
        plan = {"plan_id": "p", "steps": [{"name": "nothing", "action_type": "noop"}]}
        executor = Executor(adapters=adapters)
        first = executor.run(plan, client_id=3)
        executor.run(plan, client_id=3, execution_id=first.metadata["execution_id"])
    finally:
        otel_execaudit.shutdown()
    reference = first.metadata["execution_id"]
    document = as_json(execaudit("show", reference, "--ledger", path, "--json"))
    assert (document["run"], document["runs"]) == (2, 2) and document["tenant"] == "3"
    assert as_json(execaudit("show", reference, "--run", "1", "--ledger", path,
                             "--json"))["run"] == 1


# ----- rollback --------------------------------------------------------------------------------

def test_rollback_of_the_demo_executor_run_is_its_hint(demo):
    path, _, _, hinted = demo
    result = execaudit("rollback", hinted, "--ledger", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        f"Rollback guidance for {hinted}: possible (by hand)",
        "  every change has a rollback hint and is reversible: 1 manual step(s), in the order "
        "given (the reverse of execution)"]
    assert "Nothing here is executed" in result.stdout
    assert "  Step 1: scale checkout back to 3 replicas\n    [ ] set_replicas checkout 3" \
        in result.stdout
    document = as_json(execaudit("rollback", hinted, "--ledger", path, "--json"))
    assert document["format"] == "otel-execaudit.rollback/1"
    assert document["is_rollback_possible"] is True and document["executed"] is False
    assert document["manual_steps"] == ["step 1 (scale_up): set_replicas checkout 3"]


def test_rollback_of_the_demo_failure_is_not_possible(demo):
    path, _, failed, _ = demo
    result = execaudit("rollback", failed, "--ledger", path)
    assert result.returncode == 4
    assert f"Rollback guidance for {failed}: NOT possible" in result.stdout
    assert "step 3 (migrate_database) has an irreversible side effect" in result.stdout
    assert "a step failed" in result.stdout
    document = as_json(execaudit("rollback", failed, "--ledger", path, "--json"))
    assert document["is_rollback_possible"] is False and 3 in document["irreversible_steps"]
    assert execaudit("rollback", failed, "--ledger", path, "--json").returncode == 4


def test_rollback_lists_a_recorded_hint_verbatim(recorded):
    result = execaudit("rollback", "deploy-1a", "--ledger", recorded, "--json")
    assert result.returncode == 0
    document = as_json(result)
    assert document["rollback_hints"] == [{**MARKER_HINT, "step_index": 0}]
    assert document["manual_steps"] == [f"step 0 (create_db): {action}"
                                        for action in MARKER_HINT["actions"]]
    impossible = execaudit("rollback", "deploy-1b", "--ledger", recorded)
    assert impossible.returncode == 4
    assert "step 0 (notify) has an irreversible side effect" in impossible.stdout


def test_rollback_of_what_changed_nothing_is_possible(recorded):
    result = execaudit("rollback", "nightly", "--ledger", recorded)
    assert result.returncode == 0 and "nothing to undo" in result.stdout


# ----- confirm-rollback ------------------------------------------------------------------------

def test_confirm_rollback_without_a_terminal_is_not_confirmed(demo, tmp_path):
    path = copy(demo[0], tmp_path / "demo.db")
    before = entry_count(path)
    result = execaudit("confirm-rollback", demo[3], "--ledger", path)
    assert result.returncode == 4
    assert result.stdout.startswith(f"Rollback guidance for {demo[3]}: possible (by hand)")
    assert result.stdout.rstrip().endswith(
        "not confirmed: no terminal to ask on; a person must type the execution id at "
        "`execaudit confirm-rollback ID`")
    document = as_json(execaudit("confirm-rollback", demo[3], "--ledger", path, "--json"))
    assert document["format"] == "otel-execaudit.confirmation/1"
    assert document["confirmed"] is False and document["reason"].startswith("not confirmed")
    assert document["rollback_reason"].startswith("every change has a rollback hint")
    assert document["executed"] is False
    assert entry_count(path) == before


def test_confirm_rollback_typed_at_a_terminal_is_recorded(demo, tmp_path):
    path = copy(demo[0], tmp_path / "demo.db")
    before = entry_count(path)
    hinted = demo[3]
    result = typing(hinted + "\n", "confirm-rollback", hinted[:8], "--ledger", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Type the execution id ({hinted}) to confirm" in result.stderr  # the prompt
    assert "Type the execution id" not in result.stdout
    last = result.stdout.splitlines()[-1]
    assert re.fullmatch(rf"confirmed by .+ at \S+Z, recorded at ledger seq {before}; nothing was "
                        "executed: perform the steps by hand", last), last
    assert entry_count(path) == before + 1
    with sqlite3.connect(path) as connection:
        kind, execution_id, body = connection.execute(
            "SELECT kind, execution_id, body FROM entries WHERE seq = ?", (before,)).fetchone()
    connection.close()
    entry = json.loads(body)
    assert (kind, execution_id, entry["kind"]) == ("rollback.confirmed", hinted,
                                                   "rollback.confirmed")
    data = entry["data"]
    assert data["executed"] is False and data["confirmed_by"]
    assert data["scaffold"]["execution_id"] == hinted
    assert data["scaffold"]["manual_steps"] == ["step 1 (scale_up): set_replicas checkout 3"]
    assert data["scaffold_sha256"] == hashlib.sha256(
        canonical_bytes(data["scaffold"])).hexdigest()
    verified = verify(path)  # the chain is intact, the confirmation in it
    assert verified.ok and verified.entries == before + 1
    # The execution reads as before, with its confirmation beside it.
    assert execaudit("show", hinted, "--ledger", path).returncode == 0
    again = as_json(execaudit("executions", "--ledger", path, "--json"))["executions"]
    assert [item["execution_id"] for item in again] == [item["execution_id"] for item in demo[1]]


def test_confirm_rollback_json_at_a_terminal(recorded, tmp_path):
    path = copy(recorded, tmp_path / "ledger.db")
    result = typing("deploy-1a\n", "confirm-rollback", "deploy-1a", "--ledger", path, "--json")
    assert result.returncode == 0, result.stderr
    document = as_json(result)  # stdout is only the JSON: the prompt went to stderr
    assert document["confirmed"] is True and document["reason"].startswith("confirmed by ")
    assert document["executed"] is False and document["integrity"]["ok"] is True


@pytest.mark.parametrize("typed", ["deploy-1b\n", "deploy-1\n", "\n", ""])
def test_confirm_rollback_with_another_id_typed_is_not_confirmed(recorded, tmp_path, typed):
    path = copy(recorded, tmp_path / "ledger.db")
    before = entry_count(path)
    master, slave = pty.openpty()
    try:
        os.write(master, typed.encode() or b"\x04")  # nothing typed: end of input (^D)
        result = execaudit("confirm-rollback", "deploy-1a", "--ledger", path, stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 4
    assert result.stdout.splitlines()[-1].startswith("not confirmed: ")
    assert entry_count(path) == before
    assert execaudit("verify", path).returncode == 0


def test_confirm_rollback_refuses_what_cannot_be_rolled_back_even_typed(demo, tmp_path):
    path = copy(demo[0], tmp_path / "demo.db")
    before = entry_count(path)
    failed = demo[2]
    result = typing(failed + "\n", "confirm-rollback", failed, "--ledger", path)
    assert result.returncode == 4
    assert "Type the execution id" not in result.stderr  # not even asked
    assert result.stdout.splitlines()[-1].startswith(f"refused: rollback of {failed} is not "
                                                     "possible")
    document = as_json(typing(failed + "\n", "confirm-rollback", failed, "--ledger", path,
                              "--json"))
    assert document["confirmed"] is False and document["is_rollback_possible"] is False
    assert entry_count(path) == before


# ----- last-error ------------------------------------------------------------------------------

def test_last_error_of_the_demo(demo):
    path, _, failed, _ = demo
    result = execaudit("last-error", "--ledger", path)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "Last error: tool 'migrate_database' (step 3)"
    assert lines[1] == f"Execution: {failed} (plan release-shop-v2.4.0)"
    assert "MigrationError" in result.stdout and "hunter2" not in result.stdout
    assert "Traceback (most recent call last):" in result.stdout
    assert lines[-1].startswith("This is recorded data: evidence of what happened")


def test_last_error_tool_picks_that_tools_failure(recorded):
    newest = execaudit("last-error", "--ledger", recorded)
    assert newest.returncode == 0
    assert newest.stdout.startswith("Last error: tool 'migrate' (step 1)\nExecution: deploy-1b")
    assert "Tenant/persona: acme" in newest.stdout
    fetch = execaudit("last-error", "--tool", "fetch", "--ledger", recorded)
    assert fetch.returncode == 0
    assert fetch.stdout.startswith("Last error: tool 'fetch' (step 0)\nExecution: tools-1")
    assert "Error: ConnectionError: host unreachable" in fetch.stdout
    assert "Most relevant frame (your code):" in fetch.stdout
    assert f'File "{Path(__file__).resolve()}"' in fetch.stdout or __file__ in fetch.stdout
    document = as_json(execaudit("last-error", "--tool", "fetch", "--ledger", recorded, "--json"))
    assert document["format"] == "otel-execaudit.last-error/1" and document["found"] is True
    error = document["error"]
    assert (error["tool_name"], error["execution_id"], error["error_type"]) == \
        ("fetch", "tools-1", "ConnectionError")
    assert error["relevant_frame"]["code"] == 'raise ConnectionError("host unreachable")'
    assert error["arguments"] == {"url": "https://example.invalid/a"}
    assert as_json(execaudit("last-error", "--plan", "tools", "--ledger", recorded,
                             "--json"))["error"]["tool_name"] == "fetch"


def test_last_error_when_none_is_recorded_is_an_answer(recorded, empty):
    for arguments in (["--tool", "dump"], ["--tenant", "globex"], ["--plan", "job"]):
        result = execaudit("last-error", "--ledger", recorded, *arguments)
        assert result.returncode == 0
        assert result.stdout.startswith("no failure recorded")
    assert execaudit("last-error", "--tool", "dump", "--ledger", recorded).stdout.strip() == \
        "no failure recorded for tool 'dump'"
    document = as_json(execaudit("last-error", "--ledger", empty, "--json"))
    assert document["found"] is False and document["error"] is None


# ----- report ----------------------------------------------------------------------------------

@needs_report
def test_report_writes_one_self_contained_html_file(demo, tmp_path):
    path, _, failed, _ = demo
    out = tmp_path / "report.html"
    result = execaudit("report", failed, "--ledger", path, "--html", out)
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert result.stdout.strip() == f"wrote {out} ({len(page.encode()):,} bytes)" or \
        result.stdout.strip() == f"wrote {out} ({len(page):,} bytes)"
    assert failed in page
    assert page.lower().count("<script") == page.count("<script type=\"application/json\"") == 1
    assert executable_scripts(page) == []
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page, re.I)
    document = as_json(execaudit("report", "last", "--ledger", path, "--html", out, "--json",
                                 "--force"))
    assert document["format"] == "otel-execaudit.report/1" and document["html"] == str(out)
    assert document["execution_id"] == demo[3] and document["bytes"] > 0


def executable_scripts(page):
    """The page's <script> tags but those that only carry data (type application/json)."""
    return [tag for tag in re.findall(r"<script\b[^>]*>", page, re.I)
            if not re.search(r"""type\s*=\s*["']application/json["']""", tag, re.I)]


@needs_report
def test_recorded_text_cannot_become_markup_in_the_report(tmp_path):
    hostile = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
    path = tmp_path / "ledger.db"
    otel_execaudit.configure(ledger=path, exporter="none")
    try:
        with execution(f"plan {hostile}", execution_id="hostile") as ex:
            with ex.step(f"step {hostile}", details={"rollback": {
                    "description": hostile, "actions": [hostile]}}) as st:
                st.side_effect("network", hostile, reversible=True)
    finally:
        otel_execaudit.shutdown()
    out = tmp_path / "report.html"
    result = execaudit("report", "hostile", "--ledger", path, "--html", out)
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert executable_scripts(page) == [] and "<img" not in page.lower()
    assert page.lower().count("<script") == 1 and page.lower().count("</script") == 1


@needs_report
def test_report_of_no_execution_or_to_an_unwritable_place(demo, tmp_path):
    path = demo[0]
    unknown = execaudit("report", "zzz", "--ledger", path, "--html", tmp_path / "r.html")
    assert unknown.returncode == 3 and not (tmp_path / "r.html").exists()
    unwritable = execaudit("report", "last", "--ledger", path, "--html", tmp_path)
    assert unwritable.returncode == 2 and unwritable.stderr.startswith("execaudit: ")
    missing_option = execaudit("report", "last", "--ledger", path)
    assert missing_option.returncode == 64


@needs_report
def test_report_refuses_an_existing_file_unless_forced(recorded, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("keep me")
    refused = execaudit("report", "last", "--ledger", recorded, "--html", out)
    assert refused.returncode == 64 and "exists; give --force" in refused.stderr
    assert out.read_text() == "keep me" and refused.stdout == ""
    document = as_json(execaudit("report", "last", "--ledger", recorded, "--html", out, "--json"))
    assert document["format"] == "otel-execaudit.error/1" and "--force" in \
        document["error"]["message"]
    dangling = tmp_path / "dangling.html"
    dangling.symlink_to(tmp_path / "nowhere.html")
    assert execaudit("report", "last", "--ledger", recorded, "--html", dangling).returncode == 64
    forced = execaudit("report", "last", "--ledger", recorded, "--html", out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@needs_report
def test_report_never_writes_over_the_ledger_even_forced(recorded, tmp_path):
    ledger = copy(recorded, tmp_path / "ledger.db")
    (tmp_path / "link.html").symlink_to(ledger)
    os.link(ledger, tmp_path / "hard.html")
    wal = Path(f"{ledger}-wal")
    wal.write_bytes(b"")  # as SQLite leaves it beside a ledger in WAL mode
    digest = hashlib.sha256(ledger.read_bytes()).hexdigest()
    for target in (ledger, tmp_path / "link.html", tmp_path / "hard.html", wal):
        for force in ([], ["--force"]):
            result = execaudit("report", "last", "--ledger", ledger, "--html", target, *force)
            assert result.returncode == 64, (target, force, result.stderr)
            assert "is the ledger" in result.stderr or not force and "exists" in result.stderr
    assert hashlib.sha256(ledger.read_bytes()).hexdigest() == digest
    assert execaudit("verify", ledger, "--json").stdout  # still a ledger that reads
    assert execaudit("show", "last", "--ledger", ledger).returncode == 0


@needs_report
def test_a_tampered_ledgers_report_says_so_first(recorded, tmp_path):
    path, seq = tampered_copy(recorded, tmp_path / "tampered.db")
    out = tmp_path / "report.html"
    result = execaudit("report", "deploy-1b", "--ledger", path, "--html", out)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith(f"{WARNING} at seq {seq}")
    assert f"failed verification at seq {seq}" in out.read_text(encoding="utf-8")
    document = as_json(execaudit("report", "deploy-1b", "--ledger", path, "--html", out,
                                 "--json", "--force"))
    assert document["integrity"]["ok"] is False


# ----- recorded text is text: no markup, no terminal control ---------------------------------

# What a terminal acts on (C0 but newline, DEL, C1) and what reorders a line (bidi controls).
CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                      "\u202a-\u202e\u2066-\u2069]")
HOSTILE_ID = "ex-[/bold]\x1b]0;pwned\x07"
HOSTILE_STEP = "fetch_manifest [/oops]\x1b[2J\x1b[H"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Recorded text that Rich would read as markup, and that a terminal would obey: an id
    that sets the window title, a step name that clears the screen, a C1 CSI in the plan,
    a right-to-left override in a side effect and a hint, an error message in brackets."""
    path = tmp_path_factory.mktemp("hostile") / "ledger.db"
    otel_execaudit.configure(ledger=path, exporter="none")
    try:
        with pytest.raises(ConnectionError):
            with execution("plan[/x]\x9b31mRED", execution_id=HOSTILE_ID) as ex:
                with ex.step(HOSTILE_STEP, details={"rollback": {
                        "description": "undo [/b]\x1b[8m", "actions": ["rm\u202e fdp.exe"],
                        "risks": ["\x1b[5mblink"]}}) as st:
                    st.side_effect("file_system", "wrote [/nope] \u202eexe.txt", reversible=True)
                    raise ConnectionError("404 from upstream [/api/v1/users]\x1b[31m")
    finally:
        otel_execaudit.shutdown()
    return path


HOSTILE_COMMANDS = [["executions"], ["show", "last"], ["show", "ex-"], ["rollback", "last"],
                    ["last-error"], ["last-error", "--tool", HOSTILE_STEP]]


@pytest.mark.parametrize("arguments", HOSTILE_COMMANDS, ids=lambda words: " ".join(
    word.encode("unicode_escape").decode() for word in words))
def test_recorded_text_is_shown_as_text_with_its_controls_written_out(hostile, arguments):
    result = execaudit(*arguments, "--ledger", hostile)
    assert result.returncode in (0, 4), result.stdout + result.stderr  # no MarkupError
    assert CONTROLS.findall(result.stdout + result.stderr) == []
    assert "\\x1b]0;pwned\\x07" in result.stdout or arguments[0] != "executions"
    if arguments[0] == "show":
        assert "fetch_manifest [/oops]\\x1b[2J\\x1b[H" in result.stdout
        assert "404 from upstream [/api/v1/users]\\x1b[31m" in result.stdout
        assert "wrote [/nope] \\u202eexe.txt" in result.stdout
    if arguments[0] == "last-error":
        assert "Error: ConnectionError: 404 from upstream [/api/v1/users]\\x1b[31m" in \
            result.stdout
    if arguments[0] == "rollback":
        assert "[ ] rm\\u202e fdp.exe" in result.stdout and "undo [/b]\\x1b[8m" in result.stdout


@pytest.mark.parametrize("arguments", HOSTILE_COMMANDS, ids=lambda words: " ".join(
    word.encode("unicode_escape").decode() for word in words))
def test_json_keeps_recorded_text_faithful_and_prints_no_control(hostile, arguments):
    result = execaudit(*arguments, "--ledger", hostile, "--json")
    assert CONTROLS.findall(result.stdout) == []
    document = as_json(result)
    assert list(document)[0] == "integrity"
    assert HOSTILE_ID in strings(document) or HOSTILE_STEP in strings(document)


def strings(value):
    """Every string a JSON document holds, keys and values."""
    if isinstance(value, dict):
        return {text for key, item in value.items() for text in {key} | strings(item)}
    if isinstance(value, list):
        return {text for item in value for text in strings(item)}
    return {value} if isinstance(value, str) else set()


def test_the_rich_display_writes_controls_out_too(hostile):
    """In colour, Rich's own styles are escape sequences; the recorded ones are not."""
    from otel_execaudit.inspection import ExecutionDisplay, ExecutionLog

    with ExecutionLog(hostile) as log:
        view = log.get_execution("last")
    shown = ExecutionDisplay(color=True).display_execution_summary(view)
    assert "\x1b[2J" not in shown and "\x1b]0;" not in shown and "\x9b" not in shown
    assert "fetch_manifest [/oops]\\x1b[2J\\x1b[H" in re.sub(r"\x1b\[[0-9;]*m", "", shown)


def test_a_message_in_brackets_is_no_markup_error(tmp_path):
    """The reviewer's case: a failure whose message holds a closing tag."""
    path = tmp_path / "ledger.db"
    otel_execaudit.configure(ledger=path, exporter="none")
    try:
        with pytest.raises(ConnectionError):
            with execution("sync-users", execution_id="run-1") as ex:
                with ex.step("fetch_users"):
                    raise ConnectionError("404 from upstream [/api/v1/users]")
    finally:
        otel_execaudit.shutdown()
    for arguments in (["show", "last"], ["rollback", "last"], ["last-error"], ["executions"]):
        result = execaudit(*arguments, "--ledger", path)
        assert result.returncode in (0, 4), result.stderr
        assert "404 from upstream [/api/v1/users]" in result.stdout or \
            arguments[0] in ("executions", "rollback")


# ----- exit 1: a ledger that failed verification -----------------------------------------------

def tampered_copy(source, target, rehash=False):
    """The copy with one entry's body edited: deploy-1b's failed step now says another thing."""
    copy(source, target)
    seq = change_body(target, "execution_id = 'deploy-1b' AND kind = 'step.failed'",
                      b"column orders.status is in use", b"nothing to see here", rehash=rehash)
    return target, seq


READERS = [["executions"], ["show", "deploy-1b"], ["show", "last"], ["rollback", "deploy-1a"],
           ["rollback", "deploy-1b"], ["last-error"], ["last-error", "--tool", "migrate"]]


@pytest.mark.parametrize("arguments", READERS, ids=" ".join)
def test_a_tampered_small_ledger_is_said_first(recorded, tmp_path, arguments):
    path, seq = tampered_copy(recorded, tmp_path / "tampered.db")
    result = execaudit(*arguments, "--ledger", path)
    assert result.returncode == 1, result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"{WARNING} at seq {seq}: ")
    assert "run `execaudit verify` for the full report" in first
    assert len(result.stdout.splitlines()) > 1  # and then what the file holds now
    document = as_json(execaudit(*arguments, "--ledger", path, "--json"))
    assert document["integrity"]["ok"] is False and document["integrity"]["scope"] == "ledger"
    assert document["integrity"]["first_bad_seq"] == seq
    assert execaudit(*arguments, "--ledger", path, "--json").returncode == 1


def test_what_a_tampered_ledger_holds_now_is_shown_after_the_warning(recorded, tmp_path):
    path, _ = tampered_copy(recorded, tmp_path / "tampered.db")
    result = execaudit("last-error", "--ledger", path)
    assert "Error: ValueError: nothing to see here" in result.stdout
    assert result.stdout.index(WARNING) < result.stdout.index("Last error:")


def test_a_tampered_ledger_is_never_confirmed(recorded, tmp_path):
    path, seq = tampered_copy(recorded, tmp_path / "tampered.db")
    before = entry_count(path)
    result = typing("deploy-1a\n", "confirm-rollback", "deploy-1a", "--ledger", path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{WARNING} at seq {seq}")  # first, before the guidance
    assert lines[1] == "Rollback guidance for deploy-1a: possible (by hand)"
    assert lines[-1] == "not confirmed: the ledger failed verification; nothing recorded"
    assert "Type the execution id" not in result.stderr
    document = as_json(execaudit("confirm-rollback", "deploy-1a", "--ledger", path, "--json"))
    assert document["confirmed"] is False
    assert document["reason"] == "refused: the ledger failed verification"
    assert document["integrity"]["ok"] is False
    assert entry_count(path) == before


def test_a_tampered_ledger_is_said_first_even_when_nothing_is_found(recorded, tmp_path):
    path, seq = tampered_copy(recorded, tmp_path / "tampered.db")
    result = execaudit("show", "nope", "--ledger", path)
    assert result.returncode == 3 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{WARNING} at seq {seq}") and lines[1].startswith("execaudit: ")
    document = as_json(execaudit("show", "nope", "--ledger", path, "--json"))
    assert document["format"] == "otel-execaudit.error/1"
    assert document["integrity"]["ok"] is False


@pytest.mark.parametrize("arguments", [["executions"], ["show", "last"], ["show", "deploy-1b"],
                                       ["last-error"], ["rollback", "deploy-1b"]], ids=" ".join)
def test_an_entry_that_is_not_json_any_more_is_no_crash(recorded, tmp_path, arguments):
    """An execution.started body overwritten with garbage: the rest is still shown, after the
    warning; no traceback."""
    path = copy(recorded, tmp_path / "garbage.db")
    seq = change_body(path, "execution_id = 'deploy-1b' AND kind = 'execution.started'", None,
                      b"\x00not json")
    result = execaudit(*arguments, "--ledger", path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].startswith(f"{WARNING} at seq {seq}")


def test_show_last_when_the_newest_start_is_unreadable(recorded, tmp_path):
    """The newest execution.started replaced by a JSON list: `last` is the newest start that
    reads (same's first run, which now holds what the second recorded), after the warning."""
    path = copy(recorded, tmp_path / "garbage.db")
    seq = change_body(path, "seq = (SELECT max(seq) FROM entries WHERE kind = 'execution.started')",
                      None, b"[]")
    result = execaudit("show", "last", "--ledger", path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{WARNING} at seq {seq}")
    assert lines[1] == "job  execution same"


def test_a_ledger_with_entries_the_recorder_never_writes(tmp_path):
    """Intact (verify says so) but appended by other code, without a step's fields: exit 2 and
    a sentence, not a KeyError."""
    path = tmp_path / "foreign.db"
    with otel_execaudit.Ledger(path) as ledger:
        for number in range(3):
            ledger.append({"kind": "step.started", "ts": "2026-11-22T00:00:00.000000Z",
                           "execution_id": "e", "plan_id": "p", "trace_id": None,
                           "span_id": None, "data": {"n": number}})
    assert execaudit("verify", path).returncode == 0
    for command in ("show", "rollback"):
        result = execaudit(command, "e", "--ledger", path)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith("execaudit: an entry in ") and "cannot be read" in \
            result.stderr
    document = as_json(execaudit("show", "e", "--ledger", path, "--json"))
    assert document["format"] == "otel-execaudit.error/1" and document["integrity"]["ok"]


# The partial check, used for ledgers too big to verify whole before every read: the entries
# read, their hashes, seqs and links. Set in this process, so the command runs in it (CliRunner).

@pytest.fixture
def partial(monkeypatch):
    monkeypatch.setattr(integrity, "FULL_CHECK_UP_TO", 0)


@pytest.mark.parametrize("rehash", [False, True], ids=["body edited", "body and hash edited"])
def test_a_tampered_big_ledger_has_the_entries_read_checked(recorded, tmp_path, partial, rehash):
    path, seq = tampered_copy(recorded, tmp_path / "tampered.db", rehash=rehash)
    result = invoke("show", "deploy-1b", "--ledger", path)
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[0].startswith(f"{WARNING} at seq {seq}")
    document = json.loads(invoke("show", "deploy-1b", "--ledger", path, "--json").stdout)
    assert document["integrity"]["scope"] == "entries read"
    assert document["integrity"]["ok"] is False and document["integrity"]["first_bad_seq"] == seq
    for arguments in (["executions"], ["last-error"], ["rollback", "deploy-1b"]):
        assert invoke(*arguments, "--ledger", path).exit_code in (1, 4) and \
            invoke(*arguments, "--ledger", path).stdout.startswith(WARNING)
    # What was read elsewhere is intact, and is shown as such.
    intact = json.loads(invoke("show", "nightly", "--ledger", path, "--json").stdout)
    assert intact["integrity"]["ok"] is True and intact["integrity"]["scope"] == "entries read"
    assert intact["integrity"]["entries"] > 0
    assert invoke("show", "nightly", "--ledger", path).exit_code == 0


def test_an_intact_big_ledger_shows_with_exit_0(recorded, partial):
    result = invoke("executions", "--ledger", recorded, "--json")
    assert result.exit_code == 0
    checked = json.loads(result.stdout)["integrity"]
    assert checked == {"ok": True, "scope": "entries read", "entries": entry_count(recorded),
                       "first_bad_seq": None, "reason": None, "warning": None}


def test_a_tampered_big_ledger_is_never_confirmed(recorded, tmp_path, partial):
    path, _ = tampered_copy(recorded, tmp_path / "tampered.db")
    before = entry_count(path)
    result = invoke("confirm-rollback", "deploy-1b", "--ledger", path)
    assert result.exit_code == 1 and result.stdout.startswith(WARNING)
    assert entry_count(path) == before


# ----- exit 2: no ledger there -----------------------------------------------------------------

def not_ledgers(directory, recorded):
    text = directory / "notes.txt"
    text.write_text("just some text\n")
    zero = directory / "zero.db"
    zero.write_bytes(b"")
    other = directory / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    newer = copy(recorded, directory / "newer.db")
    with sqlite3.connect(newer) as connection:
        connection.execute("UPDATE meta SET value = '2' WHERE key = 'format'")
    connection.close()
    return {"missing": (directory / "nope.db", "no ledger at"),
            "directory": (directory, "is not a file"),
            "text file": (text, "not an otel-execaudit ledger"),
            "empty SQLite file": (zero, "empty SQLite database"),
            "other SQLite database": (other, "not an otel-execaudit ledger"),
            "newer format": (newer, "of format '2'; this version reads format 1")}


def arguments_of(command):
    return {"executions": [], "last-error": [], "report": ["last", "--html", "r.html"]}.get(
        command, ["last"])


def each(commands):
    """The commands as parameters; report's waits for report.py."""
    return [pytest.param(command, marks=needs_report) if command == "report" else command
            for command in commands]


@pytest.mark.parametrize("command", each(COMMANDS))
def test_no_ledger_there_exits_2(recorded, tmp_path, command):
    for name, (path, said) in not_ledgers(tmp_path, recorded).items():
        text = execaudit(command, *arguments_of(command), "--ledger", path, cwd=tmp_path)
        assert text.returncode == 2, (name, text.stdout, text.stderr)
        assert text.stdout == "" and text.stderr.startswith("execaudit: ")
        assert said in text.stderr, (name, text.stderr)
        document = as_json(execaudit(command, *arguments_of(command), "--ledger", path,
                                     "--json", cwd=tmp_path))
        assert document["format"] == "otel-execaudit.error/1" and document["ok"] is False
        assert said in document["error"]["message"]
    assert not (tmp_path / "r.html").exists()


# ----- exit 3: no such execution ---------------------------------------------------------------

@pytest.mark.parametrize("command", each(command for command in COMMANDS
                                          if command not in ("executions", "last-error")))
def test_no_such_execution_exits_3(recorded, empty, tmp_path, command):
    extra = ["--html", tmp_path / "r.html"] if command == "report" else []
    unknown = execaudit(command, "zzz", "--ledger", recorded, *extra)
    assert unknown.returncode == 3 and unknown.stdout == ""
    assert unknown.stderr == (f"execaudit: no execution 'zzz' in {recorded}; `execaudit "
                              "executions` lists them.\n")
    ambiguous = execaudit(command, "deploy-1", "--ledger", recorded, *extra)
    assert ambiguous.returncode == 3
    assert "'deploy-1' is the start of several execution ids (deploy-1a, deploy-1b); give " \
           "more of it." in ambiguous.stderr
    document = as_json(execaudit(command, "deploy-1", "--ledger", recorded, "--json", *extra))
    assert document["error"]["type"] == "AmbiguousExecutionError"
    assert "deploy-1a, deploy-1b" in document["error"]["message"]
    nothing = execaudit(command, "last", "--ledger", empty, *extra)
    assert nothing.returncode == 3 and "holds no execution yet" in nothing.stderr
    document = as_json(execaudit(command, "last", "--ledger", empty, "--json", *extra))
    assert document["error"]["type"] == "UnknownExecutionError"
    assert execaudit(command, "last", "--ledger", empty, "--json", *extra).returncode == 3
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("reference", ["", "deploy-1%", "deploy-1_", "\U0010ffff", "\ud7ff",
                                       "deploy-1\U0010ffff"])
def test_odd_references_name_no_execution(recorded, reference):
    result = invoke("show", reference, "--ledger", recorded)
    assert result.exit_code == 3 and "no execution" in result.stderr


def test_a_reference_that_is_not_utf8_names_no_execution(recorded):
    result = subprocess.run([sys.executable, "-m", "otel_execaudit.cli", "show", b"deploy\xff",
                             "--ledger", str(recorded)], capture_output=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 3 and b"Traceback" not in result.stderr
    assert result.stderr.startswith(b"execaudit: no execution ")


# ----- nothing is ever executed ----------------------------------------------------------------

def test_no_command_executes_a_rollback_hint(recorded, tmp_path):
    path = copy(recorded, tmp_path / "ledger.db")
    work = tmp_path / "work"
    work.mkdir()
    # The hint's first action does leave the marker when run: its absence below means something.
    proof = tmp_path / "proof"
    proof.mkdir()
    subprocess.run(MARKER_HINT["actions"][0], shell=True, cwd=proof, check=True, timeout=30)
    assert (proof / "MARKER").exists()

    runs = [execaudit("rollback", "deploy-1a", "--ledger", path, cwd=work),
            execaudit("rollback", "deploy-1a", "--ledger", path, "--json", cwd=work),
            execaudit("show", "deploy-1a", "--ledger", path, cwd=work),
            execaudit("show", "deploy-1a", "--ledger", path, "--json", cwd=work),
            execaudit("executions", "--ledger", path, cwd=work),
            execaudit("last-error", "--ledger", path, cwd=work),
            execaudit("confirm-rollback", "deploy-1a", "--ledger", path, cwd=work),
            typing("deploy-1a\n", "confirm-rollback", "deploy-1a", "--ledger", path, cwd=work)]
    if HAS_REPORT:
        runs.append(execaudit("report", "deploy-1a", "--ledger", path, "--html",
                              work / "r.html", cwd=work))
    assert [run.returncode for run in runs[:7]] == [0, 0, 0, 0, 0, 0, 4]
    assert runs[7].returncode == 0, runs[7].stdout + runs[7].stderr  # confirmed
    assert "touch MARKER" in runs[0].stdout  # shown, verbatim
    assert sorted(path.name for path in work.iterdir()) == (["r.html"] if HAS_REPORT else [])
    assert not (tmp_path / "MARKER").exists() and not Path("MARKER").exists()


# ----- the documentation -----------------------------------------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
_VARIABLE = [(re.compile(r"\b[0-9a-f]{32}\b"), "<id>"), (re.compile(r"\b[0-9a-f]{16,64}\b"), "<hex>"),
             (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?( UTC)?"), "<time>"),
             (re.compile(r"\b\d+\.\d+\b"), "<n>"), (re.compile(r"\s+"), " ")]


def normalized(line):
    for pattern, placeholder in _VARIABLE:
        line = pattern.sub(placeholder, line)
    return line.strip()


def documented():
    """Each inspection section's commands (a ```console block, ``# exit N`` when not 0) and the
    sample that follows it (a ```text block, the output of its first command)."""
    sections = re.split(r"^### ", DOC.read_text(), flags=re.M)[1:]
    found = []
    for section in sections:
        name = section.split("\n", 1)[0].strip().strip("`")
        if name not in COMMANDS:
            continue
        console = re.search(r"```console\n(.*?)```", section, re.S)
        sample = re.search(r"```console\n.*?```\s*```text\n(.*?)```", section, re.S)
        commands = []
        for line in console.group(1).splitlines():
            words, _, comment = line.partition("#")
            status = re.search(r"exit (\d)", comment)
            commands.append((words.split()[1:], int(status.group(1)) if status else 0))
        found.append((name, commands, sample.group(1) if sample else None))
    return found


def test_every_inspection_command_is_documented():
    assert [name for name, _, _ in documented()] == COMMANDS
    table = re.search(r"^\| exit status \| inspection commands \|\n\|---\|---\|\n((?:\|.*\n)+)",
                      DOC.read_text(), re.M)
    assert [row.split("|")[1].strip() for row in table.group(1).splitlines()] == \
        ["0", "1", "2", "3", "4", "64"]


@pytest.mark.parametrize("name, commands, sample", documented(),
                         ids=[name for name, _, _ in documented()])
def test_the_documented_commands_run_as_shown(demo, tmp_path, name, commands, sample):
    """Run in a directory whose default ledger is a copy of the demo's; ``ID`` is the demo's
    failed execution; confirm-rollback has its id typed at a terminal."""
    if name == "report" and not HAS_REPORT:
        pytest.skip("otel_execaudit/inspection/report.py is not written yet")
    (tmp_path / ".execaudit").mkdir()
    ledger = copy(demo[0], tmp_path / ".execaudit" / "ledger.db")
    env = {key: value for key, value in os.environ.items() if key != "EXECAUDIT_LEDGER"}
    outputs = []
    for words, status in commands:
        assert words[0] == name, words
        words = [demo[2] if word == "ID" else word for word in words]
        if name == "confirm-rollback":
            reference = as_json(execaudit("show", words[1], "--json", cwd=tmp_path, env=env))
            master, slave = pty.openpty()
            try:
                os.write(master, (reference["record"]["execution_id"] + "\n").encode())
                result = subprocess.run([sys.executable, "-m", "otel_execaudit.cli", *words],
                                        cwd=tmp_path, env=env, stdin=slave, timeout=120,
                                        capture_output=True, text=True)
            finally:
                os.close(slave)
                os.close(master)
        else:
            result = execaudit(*words, cwd=tmp_path, env=env)
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == status, (words, result.stdout, result.stderr)
        if "--json" in words:
            json.loads(result.stdout)
        outputs.append(result.stdout)
    assert entry_count(ledger) >= entry_count(demo[0])
    if sample is not None:
        shown = {normalized(line) for line in outputs[0].splitlines()}
        for line in sample.splitlines():
            if line.strip() and "…" not in line:
                assert normalized(line) in shown, (line, outputs[0])


def test_an_execution_that_cannot_be_rebuilt_says_tampered_and_the_listing_leaves_it_out(
        recorded, tmp_path):
    path = copy(recorded, tmp_path / "garbage.db")
    seq = change_body(path, "execution_id = 'deploy-1a' AND kind = 'step.started'",
                      b'"ts":"20', b'"ts":"yesterday 20')
    for command in ("show", "rollback", "report"):
        extra = ["--html", tmp_path / f"{command}.html"] if command == "report" else []
        result = execaudit(command, "deploy-1a", "--ledger", path, *extra)
        assert result.returncode == 1 and result.stdout == "", result.stdout + result.stderr
        lines = result.stderr.splitlines()
        assert lines[0].startswith(f"{WARNING} at seq {seq}")
        assert "tampered" in lines[1] and "deploy-1a" in lines[1]
        assert "Traceback" not in result.stderr
    listed = execaudit("executions", "--ledger", path)
    assert listed.returncode == 1 and "deploy-1a" not in listed.stdout
    assert "1 execution(s) left out" in listed.stdout and "deploy-1b" in listed.stdout
    document = as_json(execaudit("executions", "--ledger", path, "--json"))
    assert document["unreadable"] == ["deploy-1a"]


def test_a_file_that_breaks_under_the_read_exits_1_without_a_traceback(recorded, monkeypatch):
    from otel_execaudit.inspection import ExecutionLog

    def malformed(*arguments, **named):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(ExecutionLog, "get_execution", malformed)
    result = invoke("show", "last", "--ledger", recorded)
    assert result.exit_code == 1 and result.stdout == ""
    assert "could not be read to the end (database disk image is malformed)" in result.stderr
    assert "restore it from a copy" in result.stderr


@pytest.mark.parametrize("arguments", [["--status", "finished"], ["--limit", "0"],
                                       ["--limit", "-3"]], ids=" ".join)
def test_executions_refuses_a_status_or_limit_it_cannot_use(recorded, arguments):
    result = execaudit("executions", "--ledger", recorded, *arguments)
    assert result.returncode == 64 and result.stdout == ""
    assert "Traceback" not in result.stderr
    if arguments[0] == "--status":
        assert "completed" in result.stderr and "failed" in result.stderr
