"""Plan pinning, as with a saved Terraform plan: the hash a dry run reports and a LIVE run may be
required to present (``plan_hash=``, ``--plan-hash``).

The hash covers everything that decides what a LIVE run would do: the plan (steps, params,
declared effects, limits), whose run it is (client and strategy), the guards and their
configuration, the executor's own settings, and the adapter serving each action type::

    >>> from otel_execaudit.executor.plans import load_plan
    >>> from otel_execaudit.executor.adapters import AdapterRegistry
    >>> plan = load_plan({"plan_id": "p", "steps": [{"name": "s", "action_type": "noop"}]})
    >>> first = plan_hash(plan, guards=[], adapters=AdapterRegistry(), subject={"client_id": 1})
    >>> other = plan_hash(plan, guards=[], adapters=AdapterRegistry(), subject={"client_id": 2})
    >>> first.startswith("sha256:"), first == other
    (True, False)

For a code-first plan the "plan" is code and values: the function (unwrapping partials, bound
methods and callable objects), the source of its module and of every module holding a function
it refers to, its defaults and closure, and its arguments. Values are hashed exactly, never
truncated or redacted; a value with no exact form (a socket, a client holding a lock) makes the
plan unpinnable, and says so, rather than letting it change unseen.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterable, Mapping

from otel_execaudit.errors import PlanError
from otel_execaudit.executor.adapters import AdapterRegistry
from otel_execaudit.executor.exact import (
    Walk,
    code_identity,
    exact,
    exact_bytes,
    exact_or_opaque,
    qualified_name,
)
from otel_execaudit.executor.plans import Plan

__all__ = ["PLAN_HASH_FORMAT", "function_plan_hash", "guard_configuration", "plan_hash"]

PLAN_HASH_FORMAT = 2


def plan_hash(plan: Plan, *, guards: Iterable[Any], adapters: AdapterRegistry,
              subject: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of a data plan, for the run described by ``subject``."""
    return _digest({
        "plan": plan.to_dict(), "subject": exact(dict(subject), "the run's settings"),
        "guards": guard_configuration(guards),
        "adapters": {step.action_type: _adapter_identity(adapters, step.action_type)
                     for step in plan.steps},
    })


def function_plan_hash(function: Callable[..., Any], *, arguments: tuple[Any, ...],
                       keywords: Mapping[str, Any], guards: Iterable[Any],
                       subject: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of a code-first plan called with ``arguments`` and ``keywords``.

    Raises ``PlanError`` when something the plan depends on has no exact form.

    >>> def rebalance(threshold): return threshold
    >>> pinned = lambda value: function_plan_hash(rebalance, arguments=(value,), keywords={},
    ...                                           guards=[], subject={})
    >>> pinned(0.1) == pinned(0.1), pinned(0.1) == pinned(0.2)
    (True, False)
    """
    walk = Walk()
    return _digest({
        "function": walk.callable(function, "the plan function"),
        "arguments": walk.value(list(arguments), "the plan's arguments"),
        "keywords": walk.value(dict(keywords), "the plan's keyword arguments"),
        "sources": walk.sources(),
        "subject": exact(dict(subject), "the run's settings"),
        "guards": guard_configuration(guards),
    })


def guard_configuration(guards: Iterable[Any]) -> list[dict[str, Any]]:
    """Each guard's name, type, severity, code and settings: its ``config()`` exactly, else
    all its attributes (those with no exact form, a client or a connection, by their type)."""
    from otel_execaudit.executor.evaluation import guard_name
    from otel_execaudit.executor.guards import Severity

    configuration = []
    for guard in guards:
        name = guard_name(guard)
        config = getattr(guard, "config", None)
        if callable(config):
            try:
                settings = exact(config(), f"{name}.config()")
            except PlanError:
                raise
            except Exception as error:  # noqa: BLE001 - the guard will fail closed when it runs
                settings = {"unreadable": type(error).__name__}
        else:
            settings = {key: exact_or_opaque(item, f"{name}.{key}")
                        for key, item in sorted(_attributes(guard).items())}
        try:  # as the guard is run: no readable severity is the strictest
            severity = Severity(getattr(guard, "severity", Severity.DENY)).value
        except Exception:  # noqa: BLE001
            severity = Severity.DENY.value
        configuration.append({"name": name, "type": qualified_name(type(guard)),
                              "severity": severity, "config": settings,
                              "code": code_identity(getattr(type(guard), "check", None))})
    return configuration


def _attributes(value: Any) -> dict[str, Any]:
    """An object's attributes, from ``__dict__`` and ``__slots__`` alike."""
    found = dict(getattr(value, "__dict__", None) or {})
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__dict__", "__weakref__") and hasattr(value, slot):
                found.setdefault(slot, getattr(value, slot))
    return found


def _adapter_identity(adapters: AdapterRegistry, action_type: str) -> Any:
    """An adapter by its code (its state, clients and caches, is the environment), with its
    simulator, its own reckoning of what it consumes and whether it only reads."""
    adapter = adapters.get(action_type)
    if adapter is None:
        return None
    return {"name": adapter.name, "function": code_identity(adapter.function),
            "simulator": code_identity(adapter.simulator),
            "consumes": code_identity(adapter.consumes) if callable(adapter.consumes)
            else adapter.consumes, "read_only": adapter.read_only}


def _digest(document: dict[str, Any]) -> str:
    document["format"] = PLAN_HASH_FORMAT
    return "sha256:" + hashlib.sha256(exact_bytes(document)).hexdigest()
