"""What a step declares: the changes to the world it may make, and what it counts against
daily limits. Data plans (``execution.plans``) and code-first ``@step(side_effects=...)``
declare them alike, checked the same way::

    >>> declared_effects(["network", {"category": "file_system", "reversible": True}], "step 'x'")
    (DeclaredEffect(category=<SideEffectCategory.NETWORK: 'network'>, reversible=False, description=''), DeclaredEffect(category=<SideEffectCategory.FILE_SYSTEM: 'file_system'>, reversible=True, description=''))

Bad declarations raise ``PlanError`` naming where, what, and what to write instead.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from otel_execaudit.errors import PlanError
from otel_execaudit.recording.records import SideEffectCategory

__all__ = ["DeclaredEffect", "RollbackHint", "amounts", "checked_text", "declared_effects",
           "refuse_unknown", "shown"]

# Amounts are summed as floats against limits. A float holds every integer below 2**53 (about
# 9e15) exactly, as does a JCS number in the ledger; 1e15 leaves room for sums of several amounts.
_MAX_AMOUNT = 1e15

@dataclass(frozen=True)
class DeclaredEffect:
    """A change to the world a step is allowed to make; irreversible unless said otherwise."""

    category: SideEffectCategory
    reversible: bool = False
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category.value, "reversible": self.reversible,
                "description": self.description}


@dataclass(frozen=True)
class RollbackHint:
    """How to undo a step: surfaced verbatim in reports and rollback guidance, never executed.
    ``step_index`` names the step it undoes where the hint stands apart from its step (the
    seed's hints passed to ``RollbackPlanner.plan_rollback``); a plan step's own has None."""

    description: str = ""
    actions: tuple[str, ...] = ()
    risks: tuple[str, ...] = ()
    step_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"description": self.description,
                                    "actions": list(self.actions), "risks": list(self.risks)}
        if self.step_index is not None:
            document["step_index"] = self.step_index
        return document


def declared_effects(items: Any, where: str) -> tuple[DeclaredEffect, ...]:
    """Side-effect declarations from category names, mappings or ``DeclaredEffect``s.

    >>> declared_effects(["network"], "step 'x'")[0].category.value
    'network'
    """
    if isinstance(items, (str, Mapping)) or not isinstance(items, Iterable):
        raise PlanError(f"{where}: side_effects must be a list of effects.")
    return tuple(item if isinstance(item, DeclaredEffect) else _effect(item, where)
                 for item in items)


def _effect(data: Any, where: str) -> DeclaredEffect:
    if isinstance(data, str):
        data = {"category": data}
    if not isinstance(data, Mapping):
        raise PlanError(f"{where}: each side effect is a category name or a mapping with "
                        "category, reversible and description.")
    refuse_unknown(data, {"category", "reversible", "description"}, f"{where}: side effect")
    name = checked_text(data.get("category", ""), f"{where}: side effect category")
    try:
        category = SideEffectCategory(name.lower())
    except ValueError:
        choices = ", ".join(member.value for member in SideEffectCategory)
        raise PlanError(f"{where}: side effect category {shown(data.get('category'))} is "
                        f"unknown; use one of {choices}.") from None
    reversible = data.get("reversible", False)  # not given: assume the worst
    if not isinstance(reversible, bool):
        raise PlanError(f"{where}: reversible must be true or false.")
    return DeclaredEffect(category, reversible,
                          checked_text(data.get("description") or "", f"{where}: side effect"))


def amounts(data: Any, where: str) -> dict[str, float]:
    """Counter amounts (limits, what a step consumes) checked: names to finite numbers >= 0.
    Raises ``PlanError`` naming ``where``.

    >>> amounts({"orders": 1, "notional": 50.5}, "step 'buy': consumes")
    {'orders': 1, 'notional': 50.5}
    """
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise PlanError(f"{where} must map counter names to numbers, "
                        'for example {"orders": 10, "notional": 100000}.')
    counted = {}
    for name, value in data.items():
        counter = checked_text(name, f"{where} counter name")
        # Compared rather than passed to math.isfinite, which overflows on a huge int; NaN and
        # the infinities fail the comparison too.
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value <= _MAX_AMOUNT:
            raise PlanError(f"{where}.{counter} must be a finite number >= 0 and at most "
                            f"{_MAX_AMOUNT:.0e}, not {shown(value)}.")
        counted[counter] = value
    return counted


def checked_text(value: Any, where: str) -> str:
    """``value`` as text, if UTF-8 can hold it (a lone surrogate cannot be recorded or hashed).

    Non-strings are written as text, as YAML reads ``42`` or ``yes`` as other types.
    """
    if not isinstance(value, str):
        try:
            value = str(value)
        except (ValueError, RecursionError):  # an int of over 4300 digits, a list nested deep
            where = where if len(where) < 160 else where[:160] + "…"
            raise PlanError(f"{where} cannot be written as text; give it as a string.") from None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        where = where if len(where) < 160 else where[:160] + "…"
        raise PlanError(f"{where} holds a lone surrogate (invalid Unicode); fix the text or "
                        "the encoding that produced it.") from None
    return value


def shown(value: Any) -> str:
    """``value`` as an error message quotes it: short, and never itself an error."""
    if isinstance(value, int) and not -10**30 < value < 10**30:
        return "an integer of more than 30 digits"  # repr refuses one of over 4300
    try:
        return reprlib.repr(value)
    except Exception:  # a huge int inside a list, or an object whose repr is broken
        return f"a {type(value).__name__}"


def refuse_unknown(data: Mapping[Any, Any], known: set[str], where: str) -> None:
    kinds = sorted({type(key).__name__ for key in data if not isinstance(key, str)})
    if kinds:  # checked first: sorting names of mixed types would fail
        raise PlanError(f"{where}: field names must be strings, not {', '.join(kinds)}; quote "
                        "the name (YAML reads 1, yes, on and null unquoted as other types). "
                        f"Known fields are {sorted(known)}.")
    unknown = sorted(set(data) - known)
    if unknown:  # a typo in a safety-relevant field must not be silently ignored
        raise PlanError(f"{where}: unknown field(s) {unknown}; known fields are "
                        f"{sorted(known)}.")
