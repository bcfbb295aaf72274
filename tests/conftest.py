import pytest
import structlog

import otel_execaudit

# Scripts that tests run as subprocesses are not test modules (nor doctest sources).
collect_ignore_glob = ["telemetry_scripts/*", "ledger_worker.py"]


@pytest.fixture(autouse=True)
def unconfigured_structlog():
    """structlog.testing.capture_logs() leaves structlog configured; every test starts (and the
    package's doctests run) as an application that never configured it."""
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def witness_state(tmp_path_factory, monkeypatch):
    """Each test's checkpoints go to a witness state file of its own (and so do those of the
    processes it starts), never to the user's."""
    path = tmp_path_factory.mktemp("state") / "checkpoints.json"
    monkeypatch.setenv("EXECAUDIT_STATE", str(path))
    return path


@pytest.fixture()
def ledger_path(tmp_path):
    """A fresh ledger the process records into (``configure``), shut down afterwards. Test
    modules with a ledger fixture of their own (test_cli, test_verify) keep theirs."""
    path = tmp_path / "ledger.db"
    otel_execaudit.configure(ledger=path, exporter="none")
    yield path
    otel_execaudit.shutdown()
