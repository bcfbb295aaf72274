import pytest
import structlog

# Scripts that tests run as subprocesses are not test modules (nor doctest sources).
collect_ignore_glob = ["telemetry_scripts/*", "ledger_worker.py"]


@pytest.fixture(autouse=True)
def unconfigured_structlog():
    """structlog.testing.capture_logs() leaves structlog configured; every test starts (and the
    package's doctests run) as an application that never configured it."""
    yield
    structlog.reset_defaults()
