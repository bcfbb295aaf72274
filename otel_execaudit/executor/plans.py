"""Plans as data: what an execution will do, step by step, and what each step may change.

A plan is a ``plan_id`` and its ``steps``; each step names the adapter ``action_type`` that runs
it, its ``params``, the side effects it declares, and how to undo it. A step's effects are
unknown, and so the step acts (simulated in DRY_RUN, guarded and counted in LIVE), unless its
adapter declares that it only reads (``@adapter("fetch_quote", read_only=True)``): a plan, which
is data an agent may have written, can add declared effects but never make a step read-only.
A declared effect whose reversibility is not given is irreversible. Plans load from Python
objects, JSON files and YAML files alike::

    >>> plan = load_plan({"plan_id": "rebalance", "steps": [
    ...     {"name": "quote", "action_type": "fetch_quote", "params": {"symbol": "BTCUSDT"}},
    ...     {"name": "buy", "action_type": "place_order",
    ...      "params": {"symbol": "BTCUSDT", "quantity": 0.001, "price": 50000},
    ...      "side_effects": [{"category": "network", "reversible": False,
    ...                        "description": "place a limit buy order"}],
    ...      "consumes": {"orders": 1, "notional": 50},
    ...      "rollback": {"description": "cancel the order", "actions": ["cancel_order"]}}]})
    >>> [(step.name, step.acts) for step in plan.steps]  # until an adapter says "quote" reads
    [('quote', True), ('buy', True)]
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from otel_execaudit.errors import PlanError
from otel_execaudit.recording.declarations import (
    DeclaredEffect,
    RollbackHint,
    amounts,
    checked_text,
    declared_effects,
    refuse_unknown,
    shown,
)
from otel_execaudit.recording.records import escaped_text, frozen, thawed

__all__ = ["Plan", "PlanStep", "load_plan"]

DEFAULT_CONSUMPTION = {"actions": 1}  # what a step that acts counts against limits unless told
ACTION_TYPE = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")  # an identifier, as terminal events carry it
MAX_STEPS = 10_000
_PARAMS_BUDGET = 100_000  # values per plan: a plan is reviewed by people, not a data dump
_PARAMS_DEPTH = 32
# Integers in params span 64 bits, signed or unsigned: enough for any id, count or nanosecond
# timestamp a system sends. The ledger would record wider ones exactly (as decimal strings), but
# Python cannot write an integer of more than 4300 digits as text at all, and an adapter handed a
# 200-bit integer almost surely got a mistake; a number that big belongs in a string.
_PARAMS_INT_LOW, _PARAMS_INT_HIGH = -2**63, 2**64 - 1


@dataclass(frozen=True)
class PlanStep:
    """One step: the adapter ``action_type`` that runs it, its ``params``, and what it may change.

    ``read_only`` is the adapter's word, not the plan's: the executor sets it from the adapter
    that serves ``action_type`` (``@adapter(..., read_only=True)``), whatever the step says.
    """

    name: str
    action_type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    side_effects: tuple[DeclaredEffect, ...] = ()
    rollback: RollbackHint | None = None
    consumes: Mapping[str, float] = field(default_factory=dict)
    idempotency_key: str | None = None
    description: str = ""
    read_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", frozen(self.params))
        object.__setattr__(self, "consumes", frozen(self.consumes))

    @property
    def acts(self) -> bool:
        """True unless the step only reads: simulated in DRY_RUN, guarded and counted in LIVE.
        A step reads only when its adapter declares ``read_only`` and it declares no effect."""
        return bool(self.side_effects) or not self.read_only

    @property
    def why(self) -> str:
        """Why the step acts or only reads, in words, for reports."""
        if self.side_effects:
            kinds = dict.fromkeys(  # the plan's and its adapter's may say the same: once each
                f"{effect.category.value} ({'reversible' if effect.reversible else 'irreversible'})"
                for effect in self.side_effects)
            return "declares " + ", ".join(kinds)
        if self.read_only:
            return "adapter declares read-only"
        return "effects unknown: its adapter does not declare read_only=True"

    def describe(self) -> str:
        """What the step does, in words: its description, else its declared effects."""
        if self.description:
            return self.description
        declared = "; ".join(effect.description for effect in self.side_effects
                             if effect.description)
        return declared or self.action_type

    def violations(self, observed: Iterable[Any]) -> list[str]:
        """Observed side effects beyond the declaration: another category, or irreversible
        where every declared effect of that category is reversible.

        >>> from otel_execaudit.recording.records import SideEffect, SideEffectCategory
        >>> step = PlanStep("s", "a", side_effects=(DeclaredEffect(SideEffectCategory.NETWORK),))
        >>> step.violations([SideEffect(SideEffectCategory.FILE_SYSTEM, "wrote /etc/hosts", True)])
        ['undeclared file_system side effect: wrote /etc/hosts']
        """
        problems = []
        for effect in observed:
            declared = [item for item in self.side_effects if item.category is effect.category]
            if not declared:
                problems.append(f"undeclared {effect.category.value} side effect: "
                                f"{effect.description}")
            elif not effect.reversible and all(item.reversible for item in declared):
                problems.append(f"irreversible {effect.category.value} side effect declared "
                                f"reversible: {effect.description}")
        return problems

    @property
    def consumption(self) -> dict[str, float]:
        """What this step counts against limits: its ``consumes``, and one action if it acts."""
        if not self.acts:
            return dict(self.consumes)
        return {**DEFAULT_CONSUMPTION, **self.consumes}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "action_type": self.action_type, "params": thawed(self.params),
            "side_effects": [effect.to_dict() for effect in self.side_effects],
            "rollback": self.rollback.to_dict() if self.rollback else None,
            "consumes": thawed(self.consumes), "idempotency_key": self.idempotency_key,
            "description": self.description,
        }


@dataclass(frozen=True)
class Plan:
    """A plan: its id, its steps in order, and the daily limits it runs under.

    ``limits`` maps counter names (``orders``, ``notional``, ``loss``, ``actions`` or your own)
    to daily maxima; ``strategies`` maps a strategy id to limits of its own.
    """

    plan_id: str
    steps: tuple[PlanStep, ...]
    limits: Mapping[str, float] = field(default_factory=dict)
    strategies: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "limits", frozen(self.limits))
        object.__setattr__(self, "strategies", frozen(self.strategies))

    def limits_for(self, strategy_id: str | None) -> dict[str, float]:
        """The plan's limits, overridden by those of ``strategy_id`` if it has any."""
        chosen = dict(self.limits)
        if strategy_id is not None:
            chosen.update(self.strategies.get(str(strategy_id), {}))
        return chosen

    def to_dict(self) -> dict[str, Any]:
        return {"plan_id": self.plan_id, "description": self.description,
                "steps": [step.to_dict() for step in self.steps],
                "limits": thawed(self.limits), "strategies": thawed(self.strategies)}


def load_plan(source: Plan | Mapping[str, Any] | str | os.PathLike[str]) -> Plan:
    """Read a plan from a ``Plan``, a mapping, or a ``.json`` / ``.yaml`` / ``.yml`` file.

    Raises ``PlanError`` naming the file, the step and the field that is wrong.

    >>> load_plan({"plan_id": "p", "steps": [{"name": "s"}]})
    Traceback (most recent call last):
    ...
    otel_execaudit.errors.PlanError: plan 'p', step 1 ('s'): action_type is missing. Name the adapter action that runs this step, for example "action_type": "place_order".
    """
    if isinstance(source, Plan):
        return source
    if isinstance(source, Mapping):
        return _plan_from_mapping(source, where="")
    path = Path(source)
    return _plan_from_mapping(_read_file(path), where=f"{path}: ")


def _read_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise PlanError(f"{path}: a plan file must end in .json, .yaml or .yml.")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{path}: no such plan file. Check the path.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PlanError(f"{path}: cannot read the plan ({error}).") from None
    try:
        return json.loads(text) if suffix == ".json" else _yaml(text, path)
    except RecursionError:
        # Both parsers recurse once per level; a plan this deep is a mistake or an attack.
        raise PlanError(f"{path}: nested too deeply to read; params nest at most {_PARAMS_DEPTH} "
                        "levels. Flatten the plan, or pass deep data by reference.") from None
    except (ValueError, yaml.YAMLError) as error:
        raise PlanError(f"{path}: not valid {suffix[1:].upper()}: {error}") from None


def _yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load(text)``, with errors naming ``path`` rather than "<unicode string>".

    Parsing the text already read (not the open file) keeps read errors apart from syntax errors
    and keeps PyYAML's excerpt of the offending line, which it shows only for a string.
    """
    loader = yaml.SafeLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _plan_from_mapping(data: Any, *, where: str) -> Plan:
    if not isinstance(data, Mapping):
        raise PlanError(f"{where}a plan must be a mapping with plan_id and steps, "
                        f"not {type(data).__name__}.")
    plan_id = data.get("plan_id")
    if not isinstance(plan_id, str) or not plan_id.strip():
        raise PlanError(f"{where}plan_id is missing or empty; give the plan a name, "
                        'for example "plan_id": "nightly-rebalance".')
    checked_text(plan_id, f"{where}plan_id")
    where = f"{where}plan {plan_id!r}"
    refuse_unknown(data, {"plan_id", "steps", "limits", "strategies", "description"}, where)
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise PlanError(f"{where}: steps must be a non-empty list of steps.")
    if len(steps) > MAX_STEPS:
        raise PlanError(f"{where}: {len(steps)} steps; a plan has at most {MAX_STEPS}. Split "
                        "it into plans a person can review.")
    budget = [_PARAMS_BUDGET]  # one budget for the whole plan: aliases cannot multiply it
    parsed = tuple(_step(item, number, where, budget) for number, item in enumerate(steps, 1))
    _refuse_repeated("step names", [step.name for step in parsed], where)
    # One key, one action: two steps sharing a key would count as one.
    _refuse_repeated("idempotency keys", [step.idempotency_key for step in parsed
                                          if step.idempotency_key is not None], where)
    strategies = data.get("strategies") or {}
    if not isinstance(strategies, Mapping):
        raise PlanError(f"{where}: strategies must map a strategy id to its limits.")
    return Plan(
        plan_id=plan_id, steps=parsed,
        limits=amounts(data.get("limits"), f"{where}: limits"),
        strategies=_strategies(strategies, where),
        description=checked_text(data.get("description") or "", f"{where}: description"))


def _strategies(data: Mapping[Any, Any], where: str) -> dict[str, dict[str, float]]:
    chosen = {}
    for key, value in data.items():
        strategy_id = checked_text(key, f"{where}: strategy id")  # YAML reads `42:` as a number
        chosen[strategy_id] = amounts(value, f"{where}: strategies.{strategy_id}")
    return chosen


_STEP_FIELDS = {"name", "action_type", "params", "side_effects", "rollback", "consumes",
                "idempotency_key", "description"}


def _step(data: Any, number: int, where: str, budget: list[int]) -> PlanStep:
    if not isinstance(data, Mapping):
        raise PlanError(f"{where}, step {number}: a step must be a mapping, "
                        f"not {type(data).__name__}.")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PlanError(f"{where}, step {number}: name is missing or empty. Give every step "
                        'a unique name, for example "name": "place-order".')
    checked_text(name, f"{where}, step {number}: name")
    where = f"{where}, step {number} ({name!r})"
    if "read_only" in data:
        action_type = data.get("action_type")
        shown = action_type if isinstance(action_type, str) and ACTION_TYPE.fullmatch(
            action_type) else "ACTION_TYPE"
        raise PlanError(f"{where}: a plan cannot make a step read-only; only its adapter can "
                        f'say so, with @adapter("{shown}", read_only=True). Remove read_only '
                        "from the plan.")
    refuse_unknown(data, _STEP_FIELDS, where)
    action_type = data.get("action_type")
    if not isinstance(action_type, str) or not action_type.strip():
        raise PlanError(f"{where}: action_type is missing. Name the adapter action that runs "
                        'this step, for example "action_type": "place_order".')
    if not ACTION_TYPE.fullmatch(action_type):
        # Not echoed: a mistyped field may hold anything, a credential included.
        raise PlanError(f"{where}: action_type is not an identifier ({len(action_type)} "
                        "characters); use letters, digits and _ . : / - only (at most 128), "
                        "e.g. place_order.")
    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        raise PlanError(f"{where}: params must be a mapping of names to values.")
    _check_json(params, f"{where}: params", budget)
    key = data.get("idempotency_key")
    return PlanStep(
        name=name, action_type=action_type, params=params,
        side_effects=declared_effects(data.get("side_effects") or (), where),
        rollback=_rollback(data.get("rollback"), where),
        consumes=amounts(data.get("consumes"), f"{where}: consumes"),
        idempotency_key=None if key is None else checked_text(key, f"{where}: idempotency_key"),
        description=checked_text(data.get("description") or "", f"{where}: description"))


def _rollback(data: Any, where: str) -> RollbackHint | None:
    if data is None:
        return None
    if isinstance(data, str):
        return RollbackHint(description=checked_text(data, f"{where}: rollback"))
    if not isinstance(data, Mapping):
        raise PlanError(f"{where}: rollback is a description or a mapping with description, "
                        "actions and risks.")
    refuse_unknown(data, {"description", "actions", "risks"}, f"{where}: rollback")
    return RollbackHint(checked_text(data.get("description") or "", f"{where}: rollback"),
                        _texts(data.get("actions"), f"{where}: rollback.actions"),
                        _texts(data.get("risks"), f"{where}: rollback.risks"))


def _texts(data: Any, where: str) -> tuple[str, ...]:
    if data is None:
        return ()
    if isinstance(data, str):  # one item, not one per character
        return (data,)
    if not isinstance(data, list):
        raise PlanError(f"{where} must be a list of strings.")
    return tuple(checked_text(item, where) for item in data)


def _check_json(value: Any, where: str, budget: list[int], depth: int = 0) -> None:
    """Params are JSON values (what the ledger and the plan hash can hold), bounded in depth
    and size; cycles and YAML alias bombs end at those bounds instead of hanging."""
    budget[0] -= 1
    if budget[0] < 0 or depth > _PARAMS_DEPTH:
        where = where if len(where) < 160 else where[:160] + "…"
        raise PlanError(f"{where} is too large or too deeply nested (at most "
                        f"{_PARAMS_BUDGET} values in a plan, {_PARAMS_DEPTH} levels; a cycle or a YAML "
                        "alias chain?). Keep params small; pass big inputs by reference.")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise PlanError(f"{where} holds {value!r}; use a finite number.")
        if isinstance(value, int) and not _PARAMS_INT_LOW <= value <= _PARAMS_INT_HIGH:
            raise PlanError(f"{where} holds an integer wider than 64 bits (params take integers "
                            "from -2**63 to 2**64 - 1); pass a number that big as a string, for "
                            'example "123456789012345678901234567890".')
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PlanError(f"{where} has a key that is not a string ({shown(key)}); "
                                "quote it.")
            # Any text, lone surrogates included (a file name from os.fsdecode): the adapter
            # gets it exactly, the ledger a valid copy marked where it was replaced.
            _check_json(item, f"{where}.{escaped_text(key)}", budget, depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            _check_json(item, f"{where}[{position}]", budget, depth + 1)
        return
    raise PlanError(f"{where} is a {type(value).__name__}, not a JSON value; write it as a "
                    "string (for example a date as \"2026-11-22\").")


def _refuse_repeated(what: str, values: list[str], where: str) -> None:
    repeated = sorted(value for value, count in Counter(values).items() if count > 1)
    if repeated:
        raise PlanError(f"{where}: {what} must be unique; repeated: {repeated}.")
