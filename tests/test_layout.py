"""The house: imports run down the data flow only (executor -> recording -> ledger and
telemetry), never back up, and no subpackage reaches into another's private names."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "otel_execaudit"
# What each part may never import, directly or from inside a function.
# The facade ("") re-exports everything, so importing from it is importing everything.
FORBIDDEN = {
    "recording": {"executor", "inspection", "cli", "demo", ""},
    "telemetry": {"recording", "executor", "inspection", "cli", "demo", ""},
    "ledger": {"recording", "telemetry", "executor", "inspection", "cli", "demo", "runtime",
               "testing", ""},
    "executor": {"inspection", "cli", "demo", ""},
    "inspection": {"executor", "cli", "demo", ""},
}


PARTS = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()} | {
    path.stem for path in PACKAGE.glob("*.py")}


def part_of(module: str) -> str:
    """``otel_execaudit.recording.observer`` -> ``recording``; top-level modules by name; a
    name taken from the facade itself (``from otel_execaudit import Executor``) -> the facade,
    ``""``, which sees everything."""
    words = module.split(".")
    return words[1] if len(words) > 1 and words[1] in PARTS else ""


def imports() -> list[tuple[str, str, list[str]]]:
    """(importing module, imported module, names) for every import inside the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(part for part in relative.parts if part != "__init__")
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [alias.name for alias in node.names]
                target = node.module or ""
                if node.level:  # relative: from ..executor import plans
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([target] if target else []))
                if target == "otel_execaudit":  # from otel_execaudit import telemetry, Executor
                    found += [(module, f"otel_execaudit.{name}", []) for name in names]
                else:
                    found.append((module, target, names))
            elif isinstance(node, ast.Import):
                found += [(module, alias.name, []) for alias in node.names]
    return [(source, target, names) for source, target, names in found
            if target == "otel_execaudit" or target.startswith("otel_execaudit.")]


def test_imports_run_down_the_data_flow_only():
    wrong = [f"{source} imports {target}" for source, target, _ in imports()
             if part_of(target) in FORBIDDEN.get(part_of(source), set())]
    assert wrong == []


def test_the_parts_form_no_cycle():
    edges: dict[str, set[str]] = {}
    for source, target, _ in imports():
        if part_of(source) != part_of(target) and part_of(source) and part_of(target):
            edges.setdefault(part_of(source), set()).add(part_of(target))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(following == goal or (following not in seen and
                                         reaches(following, goal, seen | {following}))
                   for following in edges.get(start, ()))

    assert [part for part in edges if reaches(part, part, {part})] == []


def test_no_part_imports_another_parts_private_names():
    wrong = [f"{source} imports {name} from {target}" for source, target, names in imports()
             for name in names if name.startswith("_") and not name.startswith("__")
             and part_of(source) != part_of(target)]
    assert wrong == []


@pytest.mark.parametrize("name", ["otel_execaudit.executor", "otel_execaudit.cli"])
def test_recording_alone_never_loads_the_executor_or_the_command_line(name, tmp_path):
    """A program that only records pays for nothing it never uses."""
    script = ("import sys, otel_execaudit\n"
              "@otel_execaudit.step(capture=['n'])\n"
              "def count(n):\n"
              "    return n\n"
              "with otel_execaudit.execution('p') as ex:\n"
              "    with ex.step('s') as st:\n"
              "        st.side_effect('network', 'GET /', reversible=True)\n"
              "        st.event('note', n=1)\n"
              "    count(3)\n"
              f"print({name!r} in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120, cwd=PACKAGE.parent,
                           env={"OTEL_SDK_DISABLED": "true",
                                "EXECAUDIT_LEDGER": str(tmp_path / "ledger.db")})
    assert shown.stdout.strip() == "False", shown.stderr


PUBLIC = [
    'AcknowledgementGuard', 'ActionContext', 'ActionOutcome', 'ActionRecord', 'AdapterError',
    'AdapterRegistry', 'ConfigurationError', 'DeclaredEffect', 'Durability', 'ExecAuditError',
    'Execution', 'ExecutionEndedError', 'ExecutionGuard', 'ExecutionLimitsGuard',
    'ExecutionMode', 'ExecutionObserver', 'ExecutionRecord', 'ExecutionResult',
    'ExecutionStatus', 'Executor', 'Guard', 'GuardContext', 'GuardDeniedError', 'Ledger',
    'LedgerEntry', 'LedgerError', 'LedgerNotFoundError', 'LedgerWriteError', 'Limits',
    'NotALedgerError', 'Plan', 'PlanError', 'PlanPinGuard', 'PlanStep', 'RecordingError',
    'Redactor', 'ResultStatus', 'RollbackHint', 'Runtime', 'SecurityEscalationError',
    'SecuritySnapshot', 'SecurityState', 'Severity', 'SideEffect', 'SideEffectCategory',
    'SideEffectReport', 'Step', 'StepEvent', 'StepEventType', 'StepHandle',
    'TenantContextGuard', 'TerminalEvent', 'ValidationRequiredGuard', 'VerifyReport', 'adapter',
    'bind', 'configure', 'current_execution', 'current_step', 'default_ledger_path',
    'execute_plan', 'execution', 'get_runtime', 'load_plan', 'plan', 'shutdown', 'step',
    'verify',
] + [  # reading what happened (inspection), added since
    'AmbiguousExecutionError', 'ExecutionDisplay', 'ExecutionLog', 'HestiaAgent', 'LastError',
    'RollbackPlanner', 'RollbackScaffold', 'UnknownExecutionError', 'UnreadableExecutionError',
    'get_last_error',
]


def test_the_facade_exports_what_it_always_did():
    import otel_execaudit

    assert sorted(otel_execaudit.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(otel_execaudit, name) is not None, name
    assert callable(otel_execaudit.execution) and callable(otel_execaudit.verify)
    import otel_execaudit.executor  # noqa: F401 - the subpackage does not shadow execution()
    assert callable(otel_execaudit.execution)
