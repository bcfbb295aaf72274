"""Fixtures for the end-to-end tests: a real Arize Phoenix and real rotel-agent collectors.

- ``phoenix`` (session): one ``phoenix serve`` for the whole run, see ``phoenix.PhoenixServer``.
  Missing Phoenix is a failure, not a skip: run ``make e2e-deps``.
- ``rotel`` (function): a fresh ``rotel-agent`` per test, exporting OTLP/HTTP to ``phoenix``.
- ``rotel_factory`` (function): start more agents, e.g. exporting over gRPC or to a dead endpoint.
- ``phoenix_project`` (function): a project name of the test's own, to put in the resource
  attribute ``openinference.project.name`` so tests never read each other's spans.

When a test fails, the logs of the backends it used are attached to its report.

The topology the tests build::

    package or SDK ──OTLP gRPC / HTTP──> rotel-agent ──OTLP HTTP (or gRPC)──> Phoenix ──REST──> test
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from .phoenix import PhoenixServer, locate_phoenix_binary
from .processes import BackendError
from .rotel import RotelAgent, locate_rotel_agent

_T = TypeVar("_T")
_E2E_DIR = Path(__file__).resolve().parent
_started_phoenix: list[PhoenixServer] = []


def _or_fail(start: Callable[[], _T]) -> _T:
    """Run ``start``; a BackendError fails the test (never skips it) with just its message."""
    try:
        return start()
    except BackendError as error:
        message = str(error)
    pytest.fail(message, pytrace=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an e2e test, marked or not (``-m "not e2e"`` skips them)."""
    for item in items:
        if _E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    """A running Arize Phoenix on loopback ports, with its database in a temporary directory."""
    server = _or_fail(
        lambda: PhoenixServer.start(
            locate_phoenix_binary(), tmp_path_factory.mktemp("phoenix")
        )
    )
    _started_phoenix.append(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rotel_agent_binary() -> Path:
    return _or_fail(locate_rotel_agent)


RotelFactory = Callable[..., RotelAgent]


@pytest.fixture
def rotel_factory(
    phoenix: PhoenixServer, rotel_agent_binary: Path, tmp_path: Path
) -> Iterator[RotelFactory]:
    """Start rotel-agents on free ports; all of them are stopped when the test ends.

    ``rotel_factory(exporter_protocol="http"|"grpc", exporter_endpoint=None, extra_args=(),
    extra_env=None)``;
    the endpoint defaults to Phoenix's receiver for the protocol.
    """
    agents: list[RotelAgent] = []

    def start(
        exporter_protocol: str = "http",
        exporter_endpoint: str | None = None,
        extra_args: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> RotelAgent:
        if exporter_endpoint is None:
            exporter_endpoint = (
                phoenix.base_url
                if exporter_protocol == "http"
                else phoenix.otlp_grpc_endpoint
            )
        agent = _or_fail(
            lambda: RotelAgent.start_new(
                rotel_agent_binary,
                tmp_path / f"rotel-{len(agents)}",
                exporter_endpoint=exporter_endpoint,
                exporter_protocol=exporter_protocol,
                extra_args=extra_args,
                extra_env=extra_env,
            )
        )
        agents.append(agent)
        return agent

    start.agents = agents  # type: ignore[attr-defined]  # read by the failure-report hook
    try:
        yield start
    finally:
        for agent in agents:
            agent.stop()


@pytest.fixture
def rotel(rotel_factory: RotelFactory) -> RotelAgent:
    """A rotel-agent receiving OTLP gRPC + HTTP on loopback and forwarding OTLP/HTTP to Phoenix."""
    return rotel_factory()


@pytest.fixture
def phoenix_project(request: pytest.FixtureRequest) -> str:
    """A Phoenix project name unique to this test (no '/', '?' or '#', as the REST path needs)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")[:60]
    return f"e2e-{slug}-{uuid.uuid4().hex[:8]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    factory = funcargs.get("rotel_factory")
    for index, agent in enumerate(getattr(factory, "agents", [])):
        report.sections.append(
            (f"rotel-agent #{index} log", agent.process.log_report())
        )
    server = funcargs.get("phoenix")
    if isinstance(server, PhoenixServer):
        report.sections.append(
            ("phoenix log", server.process.log_report(max_chars=4000))
        )


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    for server in _started_phoenix:
        terminalreporter.write_line(
            f"e2e: Arize Phoenix {server.version} was ready in {server.startup_seconds:.1f} s "
            f"(HTTP {server.base_url}, gRPC {server.otlp_grpc_endpoint})"
        )
