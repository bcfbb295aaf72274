"""Inspection, for people and agents: what happened, read from the ledger. Nothing here acts:
it reads, and writes only a person's confirmation of a manual rollback; no rollback is ever
executed.

``queries`` (``ExecutionLog``: executions listed, found, rebuilt into their records),
``integrity`` (the check made before anything read is shown), ``rollback`` (``RollbackPlanner``),
``last_error`` (``get_last_error``, for an agent to debug itself), ``displays`` (the seed's
Hestia displays).
"""

from otel_execaudit.inspection.displays import ExecutionDisplay, HestiaAgent
from otel_execaudit.inspection.integrity import Integrity
from otel_execaudit.inspection.last_error import Frame, LastError, get_last_error
from otel_execaudit.inspection.queries import ExecutionLog, ExecutionSummary, ExecutionView
from otel_execaudit.inspection.rollback import RollbackPlanner, RollbackScaffold

__all__ = ["ExecutionDisplay", "ExecutionLog", "ExecutionSummary", "ExecutionView", "Frame",
           "HestiaAgent", "Integrity", "LastError", "RollbackPlanner", "RollbackScaffold",
           "get_last_error"]
