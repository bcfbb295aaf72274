"""The execaudit command, as a user runs it."""

import json
import sqlite3
import subprocess
import sys

import pytest

from otel_execaudit import Ledger


def execaudit(*arguments, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "otel_execaudit.cli", *arguments], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def ledger_path(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger(path) as ledger:
        for seq in range(5):
            ledger.append({"kind": "step.started", "ts": "2026-11-22T00:00:00.000000Z",
                           "execution_id": "e", "plan_id": "p", "trace_id": None,
                           "span_id": None, "data": {"n": seq}})
    return path


def test_verify_intact_ledger_exits_0(ledger_path):
    result = execaudit("verify", str(ledger_path))
    assert result.returncode == 0, result.stderr
    # a bare Ledger sends its checkpoints to no witness: consistent, but said to be unanchored
    assert "internally consistent but UNANCHORED, 5 entries" in result.stdout
    as_json = json.loads(execaudit("verify", str(ledger_path), "--json", "--strict").stdout)
    assert as_json["ok"] is True and as_json["entries"] == 5


def test_verify_tampered_ledger_exits_1_naming_the_first_bad_seq(ledger_path):
    with sqlite3.connect(ledger_path) as connection:
        body = connection.execute("SELECT body FROM entries WHERE seq = 2").fetchone()[0]
        connection.execute("UPDATE entries SET body = ? WHERE seq = 2",
                           (bytes(body).replace(b'"n":2', b'"n":9'),))
    result = execaudit("verify", str(ledger_path))
    assert result.returncode == 1
    assert "TAMPERED at seq 2" in result.stdout
    report = json.loads(execaudit("verify", str(ledger_path), "--json").stdout)
    assert report["first_bad_seq"] == 2 and report["reason"]


def test_verify_missing_or_foreign_file_exits_2(tmp_path):
    missing = execaudit("verify", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "no ledger at" in missing.stderr
    foreign = tmp_path / "notes.txt"
    foreign.write_text("just some text\n")
    result = execaudit("verify", str(foreign))
    assert result.returncode == 2 and "not an otel-execaudit ledger" in result.stderr


def test_verify_defaults_to_the_environment_ledger(ledger_path, tmp_path):
    import os

    env = {**os.environ, "EXECAUDIT_LEDGER": str(ledger_path)}
    assert execaudit("verify", cwd=tmp_path, env=env).returncode == 0


def test_demo_records_two_runs_and_verifies(tmp_path):
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    result = execaudit("demo", "--ledger", str(tmp_path / "demo.db"), "--exporter", "console",
                       cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "COMPLETED" in out and "  FAILED" in out and out.count("mode LIVE") == 2
    assert "MigrationError" in out and "IRREVERSIBLE" in out
    assert "password=[REDACTED]" in out and "hunter2" not in out
    assert "[SIMULATED] scale_up: would set checkout to 6 replicas" in out
    assert "LIVE, not acknowledged: BLOCKED (blocked by ValidationRequired, Acknowledgement)" in out
    assert "LIVE, acknowledged and pinned: SUCCESS" in out
    assert "intact" in out
    assert "span 'invoke_workflow release-shop-v2.4.0'" in result.stderr  # console exporter
    raw = (tmp_path / "demo.db").read_bytes().decode("latin-1")
    assert "hunter2" not in raw and "tok_live_not_recorded" not in raw
    assert execaudit("verify", str(tmp_path / "demo.db")).returncode == 0


def test_demo_uses_the_default_ledger_in_the_working_directory(tmp_path):
    import os

    env = {key: value for key, value in os.environ.items()
           if not key.startswith("OTEL_") and key != "EXECAUDIT_LEDGER"}
    result = execaudit("demo", "--exporter", "none", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".execaudit" / "ledger.db").is_file()


def test_the_report_shows_user_text_as_written(tmp_path):
    from rich.console import Console

    import otel_execaudit
    from otel_execaudit import execution
    from otel_execaudit.cli.demo import render_record

    otel_execaudit.configure(ledger=tmp_path / "l.db", exporter="none")
    try:
        with pytest.raises(ValueError):
            with execution("plan [bold]x") as ex:
                with ex.step("step [/]") as st:
                    st.side_effect("network", "PUT /items[red]?x=1 [/]", reversible=False)
                    raise ValueError("bad [/] input")
    finally:
        otel_execaudit.shutdown()
    console = Console(record=True, width=200)
    render_record(console, ex.record)
    text = console.export_text()
    for written in ("plan [bold]x", "step [/]", "PUT /items[red]?x=1 [/]", "bad [/] input"):
        assert written in text
