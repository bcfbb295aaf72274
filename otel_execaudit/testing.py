"""A pytest fixture for code that uses otel_execaudit: every test gets its own ledger and an
in-memory span exporter, and can assert on both.

The fixture is registered as a pytest plugin, so it is available wherever the package is
installed::

    def test_release(execaudit_capture):
        with execution("release") as ex:
            with ex.step("deploy"):
                ...
        assert [span.name for span in execaudit_capture.spans()] == [
            "execute_tool deploy", "invoke_workflow release"]
        assert execaudit_capture.verify().ok

``events()`` returns the OpenTelemetry log records the package emitted (terminal events), as
``(event name, attributes)`` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_execaudit.ledger.store import Durability, LedgerEntry
from otel_execaudit.runtime import Runtime, configure, shutdown
from otel_execaudit.ledger.verify import VerifyReport, verify


@dataclass
class AuditCapture:
    """What a test recorded: spans (in end order) and ledger entries (in seq order)."""

    runtime: Runtime
    exporter: InMemorySpanExporter
    log_exporter: InMemoryLogRecordExporter

    @property
    def ledger_path(self) -> Path:
        return self.runtime.ledger.path

    def spans(self) -> list[ReadableSpan]:
        assert self.runtime.telemetry is not None
        self.runtime.telemetry.force_flush()
        return list(self.exporter.get_finished_spans())

    def events(self) -> list[tuple[str | None, dict[str, Any]]]:
        assert self.runtime.telemetry is not None
        self.runtime.telemetry.force_flush()
        return [(data.log_record.event_name, dict(data.log_record.attributes or {}))
                for data in self.log_exporter.get_finished_logs()]

    def entries(self, execution_id: str | None = None) -> list[LedgerEntry]:
        return list(self.runtime.ledger.entries(execution_id=execution_id))

    def fields(self, execution_id: str | None = None) -> list[dict[str, Any]]:
        return [entry.fields() for entry in self.entries(execution_id)]

    def verify(self) -> VerifyReport:
        self.runtime.ledger.sync()
        return verify(self.ledger_path)


@pytest.fixture
def execaudit_capture(tmp_path: Path) -> Iterator[AuditCapture]:
    """A private ledger in ``tmp_path`` (its checkpoints witnessed in ``tmp_path/witness``, not
    in the user's state file) and in-memory span and log exporters, for one test."""
    exporter, log_exporter = InMemorySpanExporter(), InMemoryLogRecordExporter()
    runtime = configure(ledger=tmp_path / "ledger.db", durability=Durability.BATCH,
                        exporter=exporter, log_exporter=log_exporter,
                        service_name="execaudit-test",
                        state=tmp_path / "witness" / "checkpoints.json")
    try:
        yield AuditCapture(runtime, exporter, log_exporter)
    finally:
        shutdown()
