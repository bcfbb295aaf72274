"""Inspection, for people and agents: what happened, read from the ledger. Nothing here acts:
it reads, and writes only a person's confirmation of a manual rollback; no rollback is ever
executed.

``queries`` (``ExecutionLog``: executions listed and found), ``rebuild`` (an execution's entries
rebuilt into its record and ``ExecutionView``), ``integrity`` (the check made before anything
read is shown), ``rollback`` (``RollbackPlanner``), ``last_error`` (``get_last_error``, for an
agent to debug itself), ``displays`` (the seed's Hestia displays), ``visible`` (recorded text
made safe to print), ``report`` (the HTML page), ``mcp_server`` (the MCP tools).
"""

from otel_execaudit.inspection.displays import ExecutionDisplay, HestiaAgent
from otel_execaudit.inspection.integrity import Integrity
from otel_execaudit.inspection.last_error import Frame, LastError, get_last_error
from otel_execaudit.inspection.queries import ExecutionLog, ExecutionSummary
from otel_execaudit.inspection.rebuild import ExecutionView
from otel_execaudit.inspection.rollback import RollbackPlanner, RollbackScaffold

__all__ = ["ExecutionDisplay", "ExecutionLog", "ExecutionSummary", "ExecutionView", "Frame",
           "HestiaAgent", "Integrity", "LastError", "RollbackPlanner", "RollbackScaffold",
           "get_last_error"]
