"""Span names and attribute keys, in one place.

Names follow the OpenTelemetry GenAI semantic conventions where they fit, and set
``openinference.span.kind`` so agent-tracing backends (Arize Phoenix and others) render the tree
natively. Everything of our own lives under ``execaudit.*``::

    >>> workflow_span_name("nightly-rebalance")
    'invoke_workflow nightly-rebalance'
"""

from __future__ import annotations

# GenAI and OpenInference conventions
OPERATION_NAME = "gen_ai.operation.name"
TOOL_NAME = "gen_ai.tool.name"
OPENINFERENCE_KIND = "openinference.span.kind"
INPUT_VALUE = "input.value"
OUTPUT_VALUE = "output.value"
ERROR_TYPE = "error.type"

# Ours
EXECUTION_ID = "execaudit.execution_id"
PLAN_ID = "execaudit.plan_id"
PARENT_EXECUTION_ID = "execaudit.parent_execution_id"
MODE = "execaudit.mode"
STATUS = "execaudit.status"
STEP_INDEX = "execaudit.step.index"
LEDGER_SEQ = "execaudit.ledger.seq"
LEDGER_ENTRY_HASH = "execaudit.ledger.entry_hash"
CONTINUATION = "execaudit.continuation"
SIDE_EFFECT_CATEGORY = "execaudit.side_effect.category"
SIDE_EFFECT_DESCRIPTION = "execaudit.side_effect.description"
SIDE_EFFECT_REVERSIBLE = "execaudit.side_effect.reversible"
DETAILS = "execaudit.details"
GUARD_NAME = "gen_ai.guardrail.name"
GUARD_DECISION = "execaudit.guard.decision"  # allow, warn or deny
GUARD_MESSAGE = "execaudit.guard.message"
GUARD_STAGE = "execaudit.guard.stage"  # preflight; recheck before a LIVE action; total

# Span event names
EVENT_STEP = "execaudit.step.{}"  # started, completed, failed, cancelled
EVENT_SIDE_EFFECT = "execaudit.side_effect"
EVENT_EXCEPTION = "exception"


def workflow_span_name(plan_id: str) -> str:
    return f"invoke_workflow {plan_id}"


def tool_span_name(step_name: str) -> str:
    return f"execute_tool {step_name}"


def guard_span_name(guard: str) -> str:
    return f"apply_guardrail {guard}"
