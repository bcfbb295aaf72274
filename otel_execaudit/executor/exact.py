"""Exact forms, for the plan hash (``pinning``) and the limit keys (``usage``): a value as a
JSON document that differs whenever the value does (``PlanError`` where it has none), a callable
by its code and every value bound to it.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import functools
import hashlib
import inspect
import marshal
import math
import os
import pathlib
import sys
import sysconfig
import types
import uuid
from typing import Any, Mapping

from otel_execaudit.errors import PlanError
from otel_execaudit.ledger.canonical import CanonicalizationError, canonical_bytes

__all__ = ["Walk", "code_identity", "exact", "exact_bytes", "exact_or_opaque", "qualified_name"]

_VALUES = 100_000  # values one hash may cover: past that, a plan is data, not a plan
_DEPTH = 64


def exact(value: Any, where: str) -> Any:
    """``value`` as a JSON document that differs whenever ``value`` does; PlanError when it has
    no such form.

    >>> exact({"amount": decimal.Decimal("0.10"), "at": datetime.date(2026, 11, 22)}, "x")
    {'amount': {'$decimal': '0.10'}, 'at': {'$date': '2026-11-22'}}
    """
    return Walk().value(value, where)


def code_identity(function: Any) -> Any:
    """What identifies a callable's code, not its state: its name, and the source of the
    module it is defined in (the compiled code where there is none). Library code (this
    package, the standard library, installed packages) is the environment: by name only.

    >>> code_identity(len)
    {'$name': 'builtins.len'}
    """
    if function is None:
        return None
    if isinstance(function, functools.partial):
        return {"$partial": code_identity(function.func)}
    if inspect.ismethod(function):
        function = function.__func__
    if not isinstance(function, types.FunctionType):
        call = getattr(type(function), "__call__", None)
        if isinstance(function, type) or not isinstance(call, types.FunctionType):
            return {"$name": qualified_name(function)}
        function = call
    name = qualified_name(function)
    if _installed(function.__code__.co_filename):
        return {"$function": name}
    source = _source(sys.modules.get(function.__module__))
    return {"$function": name, "source": source or
            hashlib.sha256(marshal.dumps(function.__code__)).hexdigest()}


def exact_or_opaque(value: Any, where: str) -> Any:
    """``exact(value)``, or only its type where it has no exact form (a client, a lock)."""
    try:
        return exact(value, where)
    except PlanError:
        return {"$opaque": qualified_name(type(value))}


def qualified_name(value: Any) -> str:
    """``module.qualname`` of a function or class."""
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"


def exact_bytes(document: dict[str, Any]) -> bytes:
    """Canonical JSON bytes of a JSON ``document`` that differ whenever it does, even where it
    holds text JSON cannot (a lone surrogate, as a file name from ``os.fsdecode`` may): then
    every string, keys included, is written as the hex of its UTF-8 (surrogates passed), under
    a marker that keeps such documents apart from all others.

    >>> exact_bytes({"file": "a"}) == exact_bytes({"file": "a"})
    True
    >>> first, second = (name.decode("utf-8", "surrogateescape") for name in (b"\\xff", b"\\xfe"))
    >>> exact_bytes({"file": first}) != exact_bytes({"file": second})
    True
    """
    try:
        return canonical_bytes(document)
    except CanonicalizationError:
        return canonical_bytes({"$strings": "utf-8-surrogatepass-hex",
                                "document": _hex_strings(document)})


def _hex_strings(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").hex()
    if isinstance(value, Mapping):
        return {_hex_strings(key): _hex_strings(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_hex_strings(item) for item in value]
    return value


class Walk:
    """One traversal: values exactly, functions by code, modules collected for their source."""

    def __init__(self) -> None:
        self.budget = _VALUES
        self.modules: dict[str, types.ModuleType | None] = {}
        self.seen: dict[int, str] = {}  # functions already described (recursion, sharing)
        self.stack: set[int] = set()  # containers being walked: a cycle has no exact form

    def refuse(self, where: str, why: str) -> PlanError:
        return PlanError(
            f"the plan hash cannot cover {where}: {why}. Pass plain values (numbers, strings, "
            "lists, mappings, dataclasses, enums, decimals, dates), or keep such objects "
            "out of the plan's arguments and closures; an unpinned run still works.")

    def value(self, value: Any, where: str, depth: int = 0) -> Any:
        self.budget -= 1
        if self.budget < 0 or depth > _DEPTH:
            raise self.refuse(where, f"more than {_VALUES} values or {_DEPTH} levels")
        if value is None or type(value) in (bool, int):
            return value
        if type(value) is str:
            try:
                value.encode("utf-8")
                return value
            except UnicodeEncodeError:  # lone surrogates: still exact, as code points
                return {"$str": [ord(character) for character in value]}
        if type(value) is float:
            return value if math.isfinite(value) else {"$float": repr(value)}
        if isinstance(value, enum.Enum):
            return {"$enum": qualified_name(type(value)),
                    "value": self.value(value.value, where, depth + 1)}
        if isinstance(value, decimal.Decimal):
            return {"$decimal": str(value)}
        if isinstance(value, datetime.datetime):
            return {"$datetime": value.isoformat()}
        for kind in (datetime.date, datetime.time):
            if isinstance(value, kind):
                return {f"${kind.__name__}": value.isoformat()}
        if isinstance(value, datetime.timedelta):
            return {"$timedelta": [value.days, value.seconds, value.microseconds]}
        if isinstance(value, (uuid.UUID, pathlib.PurePath)):
            return {f"${type(value).__name__}": str(value)}
        if isinstance(value, (bytes, bytearray, memoryview)):
            return {"$bytes": bytes(value).hex()}
        if isinstance(value, (type, types.ModuleType)):
            return {"$name": getattr(value, "__name__", "?") if isinstance(value, types.ModuleType)
                    else qualified_name(value)}
        if callable(value) and not dataclasses.is_dataclass(value):
            return self.callable(value, where, depth + 1)
        if id(value) in self.stack:
            raise self.refuse(where, "it contains itself")
        self.stack.add(id(value))
        try:
            return self.container(value, where, depth)
        finally:
            self.stack.discard(id(value))

    def container(self, value: Any, where: str, depth: int) -> Any:
        tag = "" if type(value) in (dict, list, tuple, set, frozenset) else qualified_name(
            type(value))
        if isinstance(value, Mapping):
            items = [(self.value(key, f"{where} key", depth + 1),
                      self.value(item, f"{where}[{key!r}]", depth + 1))
                     for key, item in value.items()]
            if not tag and all(type(key) is str for key, _ in items):
                return dict(items)
            return {"$mapping": tag, "items": [list(pair) for pair in items]}
        if isinstance(value, (list, tuple)):
            items = [self.value(item, f"{where}[{position}]", depth + 1)
                     for position, item in enumerate(value)]
            return {"$sequence": tag, "items": items} if tag else items
        if isinstance(value, (set, frozenset)):  # in a stable order, whatever the hash seed
            items = [self.value(item, f"{where} item", depth + 1) for item in value]
            return {"$set": sorted(items, key=canonical_bytes)}
        if dataclasses.is_dataclass(value):
            return {"$dataclass": qualified_name(type(value)), "fields": {
                field.name: self.value(getattr(value, field.name), f"{where}.{field.name}",
                                       depth + 1) for field in dataclasses.fields(value)}}
        state = getattr(value, "__dict__", None)
        if isinstance(state, dict) and not isinstance(value, types.ModuleType) \
                and _plain_object(value):
            return {"$object": qualified_name(type(value)), "state": {
                key: self.value(item, f"{where}.{key}", depth + 1)
                for key, item in state.items()}}
        raise self.refuse(where, f"a {qualified_name(type(value))} has no exact form")

    def callable(self, function: Any, where: str, depth: int = 0) -> Any:
        """What decides a callable's behaviour: its code and every value bound to it."""
        if isinstance(function, functools.partial):
            return {"$partial": self.callable(function.func, where, depth + 1),
                    "arguments": self.value(list(function.args), f"{where} (partial)", depth + 1),
                    "keywords": self.value(dict(function.keywords), f"{where} (partial)",
                                           depth + 1)}
        if inspect.ismethod(function):
            return {"$method": self.callable(function.__func__, where, depth + 1),
                    "self": self.value(function.__self__, f"{where}.__self__", depth + 1)}
        if isinstance(function, types.FunctionType):
            return self.function(function, where, depth)
        if isinstance(function, (types.BuiltinFunctionType, types.MethodWrapperType,
                                 types.WrapperDescriptorType, type)):
            return {"$name": qualified_name(function)}
        call = getattr(type(function), "__call__", None)  # a callable object: its state and code
        return {"$callable": self.callable(call, f"{where}.__call__", depth + 1),
                "self": self.container(function, where, depth + 1)}

    def function(self, function: types.FunctionType, where: str, depth: int) -> Any:
        name = qualified_name(function)
        if id(function) in self.seen:
            return {"$function": name, "again": self.seen[id(function)]}
        self.seen[id(function)] = name
        if _installed(function.__code__.co_filename):
            # Library code (this package's @step wrapper, the standard library, installed
            # packages) is the environment, not the plan: by name, and what it wraps.
            wrapped = getattr(function, "__wrapped__", None)
            return {"$function": name, "wrapped": None if wrapped is None else
                    self.callable(wrapped, where, depth + 1)}
        module = sys.modules.get(function.__module__)
        self.modules.setdefault(str(function.__module__), module)
        closure = [cell.cell_contents if _filled(cell) else {"$empty_cell": True}
                   for cell in function.__closure__ or ()]
        described: dict[str, Any] = {
            "$function": name,
            "defaults": self.value(list(function.__defaults__ or ()), f"{name} defaults",
                                   depth + 1),
            "kwdefaults": self.value(dict(function.__kwdefaults__ or {}), f"{name} defaults",
                                     depth + 1),
            "closure": self.value(closure, f"what {name} closes over", depth + 1),
            "globals": {key: self.value(target, f"what {name} calls", depth + 1)
                        if isinstance(target, types.FunctionType)
                        else exact_or_opaque(target, f"{name}'s global {key}")
                        for key, target in _referenced(function).items()},
        }
        if _source(module) is None:  # no source to hash: the compiled code itself
            described["code"] = hashlib.sha256(marshal.dumps(function.__code__)).hexdigest()
        return described

    def sources(self) -> dict[str, str | None]:
        """sha256 of the source of each module holding a function the plan reaches."""
        return {name: _source(module) for name, module in sorted(self.modules.items())}


def _referenced(function: types.FunctionType) -> dict[str, Any]:
    """The module-level objects a function names: its steps, usually, and the settings it
    reads (a mapping changed at run time changes what the plan does, though not its source);
    objects with no exact form (a client, a lock) by their type only."""
    names: set[str] = set()
    codes = [function.__code__]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
    module_globals = function.__globals__
    return {name: module_globals[name] for name in sorted(names) if name in module_globals
            and not isinstance(module_globals[name], types.ModuleType)}


@functools.lru_cache(maxsize=1)
def _library_paths() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {os.path.dirname(os.path.abspath(__file__))}
    found.update(os.path.abspath(paths[key]) for key in ("stdlib", "platstdlib", "purelib",
                                                          "platlib") if key in paths)
    return tuple(sorted(path.rstrip(os.sep) + os.sep for path in found))


def _installed(filename: str) -> bool:
    """Whether code comes from this package, the standard library or an installed package."""
    return os.path.abspath(filename).startswith(_library_paths())


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _plain_object(value: Any) -> bool:
    """An instance of a class of the user's, not an extension type holding hidden state."""
    return type(value).__module__ not in ("builtins", "_io", "_thread", "socket", "ssl")


@functools.lru_cache(maxsize=256)
def _source_of(name: str, path: str | None, stamp: float | None) -> str | None:
    module = sys.modules.get(name)
    try:
        source = inspect.getsource(module) if module is not None else None
    except (OSError, TypeError):
        return None
    return None if source is None else hashlib.sha256(source.encode("utf-8", "surrogatepass")
                                                      ).hexdigest()


def _source(module: types.ModuleType | None) -> str | None:
    if module is None:
        return None
    path = getattr(module, "__file__", None)
    try:
        stamp = pathlib.Path(path).stat().st_mtime_ns if path else None
    except OSError:
        stamp = None
    return _source_of(module.__name__, path, stamp)
