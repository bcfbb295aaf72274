"""Running guards fail closed: each guard gets its own copy of the context and at most its
timeout; a guard that raises, hangs or returns anything but a verdict denies, whatever its
severity. The package's own checks, which cannot hang, run inline; any other on a reused
worker thread, so that a hung check holds only its own thread.
"""

from __future__ import annotations

import collections
import contextvars
import os
import queue
import threading
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping

from otel_execaudit.executor.guards import (
    DEFAULT_GUARD_TIMEOUT,
    AcknowledgementGuard,
    ExecutionGuard,
    ExecutionLimitsGuard,
    Guard,
    GuardContext,
    PlanPinGuard,
    Severity,
    TenantContextGuard,
    ValidationRequiredGuard,
)
from otel_execaudit.recording import printable

__all__ = ["evaluate", "guard_name"]


def evaluate(guards: Iterable[Guard], context: GuardContext, *,
             timeout: float = DEFAULT_GUARD_TIMEOUT, stage: str = "preflight",
             on_verdict: Callable[[Guard, ExecutionGuard, BaseException | None], None]
             | None = None) -> list[ExecutionGuard]:
    """Run every guard (each at most ``timeout`` seconds) and return all verdicts in order.

    ``on_verdict(guard, verdict, error)`` is called for each, as it is decided.

    >>> from otel_execaudit.executor.plans import load_plan
    >>> plan = load_plan({"plan_id": "p", "steps": [{"name": "s", "action_type": "noop"}]})
    >>> [v.message for v in evaluate([TenantContextGuard()], GuardContext(plan=plan))]
    ['client_id is required (pass --client-id N, a positive integer)']
    """
    verdicts = []
    for guard in guards:
        # Each guard its own copy of the context: one guard cannot change what the next sees.
        verdict, error = _run_one(guard, replace(context), timeout)
        verdict = replace(verdict, stage=stage)
        if on_verdict is not None:
            on_verdict(guard, verdict, error)
        verdicts.append(verdict)
    return verdicts


def guard_name(guard: Any) -> str:
    """A guard's ``name``, else its class name; never raises.
    Example: ``guard_name(TenantContextGuard())``."""
    try:
        name = getattr(guard, "name", None)
    except Exception:  # noqa: BLE001 - a broken property: the class name will do
        name = None
    return name if isinstance(name, str) and name else type(guard).__name__


def _run_one(guard: Guard, context: GuardContext,
             timeout: float) -> tuple[ExecutionGuard, BaseException | None]:
    name = guard_name(guard)
    try:
        severity = Severity(getattr(guard, "severity", Severity.DENY))
    except Exception:  # noqa: BLE001 - no readable severity: the strictest
        severity = Severity.DENY
    check = getattr(type(guard), "check", None)
    if check in _OWN_CHECKS:  # the package's own: bounded already, so no thread to hand off to
        outcome = _call_inline(check, guard, context)
    else:
        outcome = _call_bounded(guard.check, context, timeout)
    if not outcome:
        return ExecutionGuard(name, False, f"Guard did not answer within {timeout:g} s; "
                              "denied (guards fail closed)", {"timeout": timeout}), None
    result = outcome[0]
    if isinstance(result, BaseException):
        return ExecutionGuard(name, False, f"Guard raised {type(result).__name__}: "
                              f"{printable(result)}; denied (guards fail closed)",
                              {"error_type": type(result).__name__}), result
    if not isinstance(result, ExecutionGuard):
        return ExecutionGuard(name, False, f"Guard returned {type(result).__name__}, not an "
                              "ExecutionGuard; denied (guards fail closed)"), None
    # A plain verdict, rebuilt from one reading of each field: a subclass cannot override its
    # decision, and the severity is the guard's own, so a deny cannot be softened.
    try:
        passed = result.passed
        if type(passed) is not bool:
            return ExecutionGuard(name, False, "Guard returned a verdict whose passed is not "
                                  "True or False; denied (guards fail closed)"), None
        details = dict(result.details) if isinstance(result.details, Mapping) else {}
        return ExecutionGuard(printable(result.name) or name, passed,
                              printable(result.message), details, severity), None
    except Exception as error:  # noqa: BLE001 - e.g. cyclic details
        return ExecutionGuard(name, False, f"Guard returned an unreadable verdict "
                              f"({type(error).__name__}); denied (guards fail closed)"), None


class _Worker:
    """A daemon thread that runs guard checks one after another. A check that overruns its
    timeout is abandoned with its worker; the worker serves others again only once the check
    returns, so a hung guard costs one thread, never the other guards' answers."""

    idle: collections.deque[_Worker] = collections.deque()
    MAX_IDLE = 8

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        threading.Thread(target=self.serve, name="execaudit-guard", daemon=True).start()

    def serve(self) -> None:
        while True:
            self.jobs.get()()  # a job never raises
            if len(_Worker.idle) >= _Worker.MAX_IDLE:
                return
            _Worker.idle.append(self)


# A forked child has none of its parent's threads: it starts its own workers.
os.register_at_fork(after_in_child=_Worker.idle.clear)


def _call_inline(check: Callable[[Any, GuardContext], Any], guard: Guard,
                 context: GuardContext) -> list[Any]:
    try:
        return [check(guard, context)]
    except Exception as error:  # noqa: BLE001 - fail closed; an interrupt goes on up
        return [error]


def _call_bounded(check: Callable[[GuardContext], Any], context: GuardContext,
                  timeout: float) -> list[Any]:
    """``[result]`` or ``[exception]`` of ``check(context)``, or ``[]`` past ``timeout``."""
    outcome: list[Any] = []
    done = threading.Event()
    run_in = contextvars.copy_context()  # the guard sees the caller's span and context

    def job() -> None:
        try:
            outcome.append(run_in.run(check, context))
        except BaseException as error:  # noqa: BLE001 - fail closed on anything
            outcome.append(error)
        done.set()

    try:
        worker = _Worker.idle.pop()
    except IndexError:
        worker = _Worker()
    worker.jobs.put(job)
    return outcome if done.wait(timeout) else []


# Checks that cannot hang: pure, or reading the ledger, whose reads wait at most its lock
# timeout (Ledger.read). A subclass that overrides check() is a guard of its own, run on a
# worker thread.
_OWN_CHECKS = frozenset({TenantContextGuard.check, ValidationRequiredGuard.check,
                         AcknowledgementGuard.check, ExecutionLimitsGuard.check,
                         PlanPinGuard.check})
