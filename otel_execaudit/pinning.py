"""Plan pinning, as with a saved Terraform plan: the hash a dry run reports and a LIVE run may be
required to present (``plan_hash=``, ``--plan-hash``).

The hash covers everything that decides what a LIVE run would do: the plan (steps, params,
declared effects, limits), whose run it is (client and strategy), the guards and their
configuration, the executor's own settings, and the adapter serving each action type. For a
code-first plan: the plan function, its module's source and its arguments::

    >>> from otel_execaudit.plans import load_plan
    >>> from otel_execaudit.adapters import AdapterRegistry
    >>> plan = load_plan({"plan_id": "p", "steps": [{"name": "s", "action_type": "noop"}]})
    >>> first = plan_hash(plan, guards=[], adapters=AdapterRegistry(), subject={"client_id": 1})
    >>> other = plan_hash(plan, guards=[], adapters=AdapterRegistry(), subject={"client_id": 2})
    >>> first.startswith("sha256:"), first == other
    (True, False)
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any, Callable, Iterable, Mapping

from otel_execaudit.adapters import AdapterRegistry
from otel_execaudit.canonical import canonical_bytes
from otel_execaudit.plans import Plan
from otel_execaudit.redaction import Redactor

__all__ = ["PLAN_HASH_FORMAT", "function_plan_hash", "guard_configuration", "plan_hash",
           "qualified_name"]

PLAN_HASH_FORMAT = 1
_clean = Redactor().clean  # JSON-safe, bounded values; never raises


def plan_hash(plan: Plan, *, guards: Iterable[Any], adapters: AdapterRegistry,
              subject: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of a data plan, for the run described by ``subject``."""
    return _digest({
        "plan": plan.to_dict(), "subject": _clean(dict(subject)),
        "guards": guard_configuration(guards),
        "adapters": {step.action_type: _adapter_identity(adapters, step.action_type)
                     for step in plan.steps},
    })


def function_plan_hash(function: Callable[..., Any], *, arguments: tuple[Any, ...],
                       keywords: Mapping[str, Any], guards: Iterable[Any],
                       subject: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of a code-first plan: the function, its module's source (where its
    steps usually live), its arguments, and the run described by ``subject``."""
    module = inspect.getmodule(function)
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):  # no source (interactive, frozen): the function's code
        code = getattr(function, "__code__", None)
        source = code.co_code.hex() if code is not None else ""
    return _digest({
        "function": qualified_name(function),
        "source_sha256": hashlib.sha256(source.encode()).hexdigest(),
        "arguments": _clean({"arguments": list(arguments), "keywords": dict(keywords)}),
        "subject": _clean(dict(subject)), "guards": guard_configuration(guards),
    })


def guard_configuration(guards: Iterable[Any]) -> list[dict[str, Any]]:
    """Each guard's name, type and settings: its ``config()``, else its public attributes."""
    from otel_execaudit.guards import guard_name

    configuration = []
    for guard in guards:
        try:
            config = getattr(guard, "config", None)
            settings = config() if callable(config) else {
                key: value for key, value in vars(guard).items() if not key.startswith("_")}
        except Exception as error:  # noqa: BLE001 - the guard will fail closed when it runs
            settings = {"unreadable": type(error).__name__}
        configuration.append({"name": guard_name(guard), "type": qualified_name(type(guard)),
                              "config": _clean(settings)})
    return configuration


def qualified_name(value: Any) -> str:
    """``module.qualname`` of a function or class."""
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"


def _adapter_identity(adapters: AdapterRegistry, action_type: str) -> str | None:
    adapter = adapters.get(action_type)
    return None if adapter is None else adapter.name


def _digest(document: dict[str, Any]) -> str:
    document["format"] = PLAN_HASH_FORMAT
    return "sha256:" + hashlib.sha256(canonical_bytes(document)).hexdigest()
