"""Adapters: the functions that act on the world, one per ``action_type``.

An adapter receives an :class:`ActionContext` (the step's params, the mode, and a way to report
what it changed) and returns an :class:`ActionOutcome`, a mapping of result details, or None::

    >>> from otel_execaudit.executor.adapters import AdapterRegistry, ActionOutcome
    >>> registry = AdapterRegistry()
    >>> @registry.adapter("place_order", side_effects=["network"])
    ... def place_order(context):
    ...     context.side_effect("network", f"order for {context.params['symbol']}")
    ...     return ActionOutcome.success("order placed", order_id="o-1")
    >>> @registry.adapter("fetch_quote", read_only=True)  # the only kind that runs in DRY_RUN
    ... def fetch_quote(context):
    ...     return {"price": 50_000}
    >>> registry.get("place_order").name, registry.get("fetch_quote").read_only
    ('otel_execaudit.executor.adapters.place_order', True)

The module-level :func:`adapter` registers into the default registry, which also loads adapters
published by installed packages under the ``otel_execaudit.adapters`` entry-point group.
"""

from __future__ import annotations

import importlib
import re
import sys
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable, Mapping

from otel_execaudit.errors import AdapterError, PlanError
from otel_execaudit.recording import DeclaredEffect, amounts, declared_effects
from otel_execaudit.recording.records import ExecutionMode, SideEffectCategory, frozen

__all__ = ["ActionContext", "ActionOutcome", "Adapter", "AdapterRegistry", "adapter",
           "default_registry", "load_adapters"]

ENTRY_POINT_GROUP = "otel_execaudit.adapters"  # the published group: never renamed
# snake_case words, a number only as a word of its own (http_429): a code, never free text,
# and never a token, whose letters and digits mix.
_ERROR_CODE = re.compile(r"(?=.{1,64}\Z)[a-z]+(?:_(?:[a-z]+|[0-9]{1,4}))*")


@dataclass(frozen=True)
class ActionOutcome:
    """What an adapter reports: success, or an explicit failure with an ``error_code``.

    Build one with :meth:`success` or :meth:`failure`; an adapter may also return a mapping of
    result details (a success) or None (a success with nothing to add).

    >>> ActionOutcome.failure("insufficient_funds", "balance below order notional").ok
    False
    """

    ok: bool
    result: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    error_code: str | None = None

    def __post_init__(self) -> None:
        if type(self.ok) is not bool:
            raise AdapterError(f"ActionOutcome(ok, result='', details={{}}, error_code=None): "
                               f"ok must be True or False, not {type(self.ok).__name__}; use "
                               "ActionOutcome.success(...) or ActionOutcome.failure(...).")
        if not isinstance(self.result, str):
            raise AdapterError(f"ActionOutcome: result is a sentence for the report (a str), "
                               f"not {type(self.result).__name__}; put data in the details, "
                               'for example ActionOutcome.success("placed", order_id="o-1").')
        if not isinstance(self.details, Mapping):
            raise AdapterError("ActionOutcome: details must be a mapping of names to values, "
                               f"not {type(self.details).__name__}.")
        if not self.ok and not (isinstance(self.error_code, str)
                                and _ERROR_CODE.fullmatch(self.error_code)):
            raise AdapterError(
                "ActionOutcome.failure(error_code, result='', **details): error_code must be a "
                "short snake_case code such as 'insufficient_funds' or 'http_429' (it goes "
                "into terminal events, which carry no free text); put the explanation in "
                f"result. Got {_quoted(self.error_code)}.")
        object.__setattr__(self, "details", frozen(self.details))

    @classmethod
    def success(cls, result: str = "", **details: Any) -> ActionOutcome:
        """The action was performed: ``result`` says what happened, in words, for the report;
        ``details`` are recorded with the step (redacted and bounded).

        >>> outcome = ActionOutcome.success("order placed", order_id="o-1", filled=0.5)
        >>> outcome.ok, outcome.result, dict(outcome.details)
        (True, 'order placed', {'order_id': 'o-1', 'filled': 0.5})
        """
        return cls(True, result, details)

    @classmethod
    def failure(cls, error_code: str, result: str = "", **details: Any) -> ActionOutcome:
        """The action did not succeed: ``error_code`` is a short snake_case code (it is what
        terminal events and dashboards count), ``result`` the explanation for people.

        >>> outcome = ActionOutcome.failure("http_429", "venue rate limit", retry_after_s=2)
        >>> outcome.ok, outcome.error_code, outcome.result
        (False, 'http_429', 'venue rate limit')
        >>> ActionOutcome.failure("Rate limited!")
        Traceback (most recent call last):
        ...
        otel_execaudit.errors.AdapterError: ActionOutcome.failure(error_code, result='', **details): error_code must be a short snake_case code such as 'insufficient_funds' or 'http_429' (it goes into terminal events, which carry no free text); put the explanation in result. Got a str of 13 characters.
        """
        return cls(False, result or error_code if isinstance(error_code, str) else result,
                   details, error_code)


def _quoted(value: Any) -> str:
    """A bad argument, described without echoing it: it may be free text holding a secret."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return f"a str of {len(value)} characters"
    return f"a {type(value).__name__}"


class ActionContext:
    """What an adapter sees: the step, its ``params``, the ``mode``, and the recorder.

    ``side_effect()`` reports a change the adapter made; one the step did not declare is a
    violation. ``event()`` adds a note to the step's audit trail. ``add_usage()`` counts what
    the action turned out to use against the tenant's daily limits (a realised loss, say).
    ``idempotency_key`` is the same for every replay of this step: pass it on (as a client
    order id, a request id) so that the system acted on does not do the same thing twice.
    """

    def __init__(self, *, step: Any, mode: ExecutionMode, execution_id: str,
                 trace_id: str | None, client_id: Any, strategy_id: Any,
                 idempotency_key: str, record_effect: Callable[..., Any],
                 record_event: Callable[..., Any],
                 record_usage: Callable[[Mapping[str, float]], Any]) -> None:
        self.step = step
        self.params: Mapping[str, Any] = step.params
        self.mode = mode
        self.execution_id = execution_id
        self.trace_id = trace_id
        self.client_id = client_id
        self.strategy_id = strategy_id
        self.idempotency_key = idempotency_key
        self._record_effect = record_effect
        self._record_event = record_event
        self._record_usage = record_usage

    @property
    def live(self) -> bool:
        return self.mode is ExecutionMode.LIVE

    def side_effect(self, category: SideEffectCategory | str, description: str,
                    reversible: bool = False, **details: Any) -> None:
        """Report a change this action made to the world (recorded in ledger and span);
        irreversible unless ``reversible=True``."""
        self._record_effect(category, description, reversible, details)

    def event(self, name: str, **details: Any) -> None:
        """Add a named note to the step's audit trail."""
        self._record_event(name, details)

    def add_usage(self, **counters: float) -> None:
        """Count what this action used, known only once it ran, against today's limits:
        ``context.add_usage(loss=120.5)``. A counter at its maximum blocks every later LIVE
        action of the tenant that day (a daily loss limit is such a breaker). Recorded in the
        ledger with the counters, atomically; a replay of the step replaces its earlier report
        instead of adding to it; in DRY_RUN it is recorded as what would be counted, and not
        counted. Raises ``PlanError`` for amounts that are not finite numbers >= 0."""
        self._record_usage(amounts(counters, f"{self.step.name}: add_usage"))


Consumes = Callable[[Mapping[str, Any]], Mapping[str, float]] | Mapping[str, float] | None


@dataclass(frozen=True)
class Adapter:
    """A registered adapter: its ``action_type``, the function, an optional simulator that
    says what the action would do in DRY_RUN (used instead of calling the function), the side
    effects it may have whatever a plan declares, what each call ``consumes`` of the daily
    limits (a mapping, or a function of the step's params), and whether it only reads
    (``read_only``: the one thing that lets a step run for real in DRY_RUN)."""

    action_type: str
    function: Callable[[ActionContext], Any]
    simulator: Callable[[ActionContext], str] | None = None
    side_effects: tuple[DeclaredEffect, ...] = ()
    consumes: Consumes = None
    read_only: bool = False

    def consumption(self, params: Mapping[str, Any]) -> dict[str, float]:
        """What one call with ``params`` counts against limits, by the adapter's own reckoning.
        Raises ``AdapterError`` when its ``consumes`` function fails or returns bad amounts."""
        if self.consumes is None:
            return {}
        where = f"adapter {self.name} (action_type {self.action_type!r}): consumes"
        try:
            counted = self.consumes(params) if callable(self.consumes) else self.consumes
            return amounts(counted, where)
        except PlanError as error:
            raise AdapterError(f"{error} Fix the adapter's consumes.") from None
        except Exception as error:
            raise AdapterError(f"{where} raised {type(error).__name__}: {error}. Fix the "
                               "adapter, or the step's params it reads.") from error

    @property
    def name(self) -> str:
        function = self.function
        return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"

    def __call__(self, context: ActionContext) -> Any:
        return self.function(context)


class AdapterRegistry:
    """Adapters by action type. Registering a second adapter for a type is an error."""

    def __init__(self, *, entry_points: bool = False) -> None:
        self._adapters: dict[str, Adapter] = {}
        self._lock = threading.Lock()
        self._entry_points_pending = entry_points

    def adapter(self, action_type: str, *,
                simulate: Callable[[ActionContext], str] | None = None,
                side_effects: Iterable[Any] = (), consumes: Consumes = None,
                read_only: bool = False,
                ) -> Callable[[Callable[[ActionContext], Any]], Callable[[ActionContext], Any]]:
        """Register the decorated function for ``action_type``; returns the function unchanged.

        An adapter's effects are unknown, so every step it runs acts (simulated in DRY_RUN,
        guarded and counted in LIVE), unless it declares ``read_only=True``: then the steps
        that declare no effect of their own run for real in both modes (a quote, a lookup).
        ``simulate(context) -> str`` describes what the action would do, for DRY_RUN reports.
        ``side_effects`` are what the adapter may change, as in a plan step, added to what
        its plan or request declares. ``consumes`` is what one call counts against limits, a mapping or a function
        of the params (``lambda params: {"notional": params["quantity"] * params["price"]}``):
        a step counts the larger of that and what the plan declares, so that a plan cannot
        under-declare what its adapter spends.
        """
        if not isinstance(action_type, str) or not action_type.strip():
            raise AdapterError("an adapter needs a non-empty action_type, "
                               'for example @adapter("place_order").')
        where = f"@adapter({action_type!r})"
        if type(read_only) is not bool:
            raise AdapterError(f"{where}: read_only must be True or False.")
        if read_only and side_effects:
            raise AdapterError(f"{where}: an adapter that declares read_only=True cannot "
                               "declare side_effects too; drop one of the two.")
        try:
            declared = declared_effects(side_effects, where)
            if consumes is not None and not callable(consumes):
                consumes = amounts(consumes, f"{where}: consumes")
        except PlanError as error:
            raise AdapterError(str(error)) from None

        def register(function: Callable[[ActionContext], Any]) -> Callable[[ActionContext], Any]:
            if not callable(function):
                raise AdapterError(f"{where} must decorate a function.")
            self.register(Adapter(action_type, function, simulate, declared, consumes,
                                  read_only))
            return function

        return register

    def register(self, adapter: Adapter) -> None:
        with self._lock:
            existing = self._adapters.get(adapter.action_type)
            if existing is not None and existing.function is not adapter.function:
                if _origin(existing.function) != _origin(adapter.function):  # not a re-import
                    raise AdapterError(
                        f"action_type {adapter.action_type!r} already has adapter "
                        f"{existing.name}; {adapter.name} cannot also register it. "
                        "Use a distinct action_type, or load only one of the two (one "
                        "--adapters module, or unregister the first).")
            self._adapters[adapter.action_type] = adapter

    def unregister(self, action_type: str) -> None:
        with self._lock:
            self._adapters.pop(action_type, None)

    def get(self, action_type: str) -> Adapter | None:
        """The adapter for ``action_type``, or None if there is none."""
        self._load_entry_points()
        return self._adapters.get(action_type)

    def action_types(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._adapters)

    def _load_entry_points(self) -> None:
        if not self._entry_points_pending:
            return
        with self._lock:
            if not self._entry_points_pending:
                return
            self._entry_points_pending = False
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = entry_point.load()  # a module of @adapter functions, or one function
            except Exception as error:
                raise AdapterError(
                    f"cannot load adapters from entry point {entry_point.name!r} "
                    f"({entry_point.value}): {type(error).__name__}: {error}. Fix or uninstall "
                    "the package that publishes it.") from error
            if callable(loaded) and not isinstance(loaded, type(sys)):
                self.register(Adapter(entry_point.name, loaded))


default_registry = AdapterRegistry(entry_points=True)


def adapter(action_type: str, *, simulate: Callable[[ActionContext], str] | None = None,
            side_effects: Iterable[Any] = (), consumes: Consumes = None,
            read_only: bool = False,
            ) -> Callable[[Callable[[ActionContext], Any]], Callable[[ActionContext], Any]]:
    """Register the decorated function as the adapter for ``action_type`` (default registry);
    the options as for ``AdapterRegistry.adapter``.

    >>> @adapter("doc_example_send_email", simulate=lambda context: "would send 1 email")
    ... def send_email(context):
    ...     return {"sent": True}
    >>> default_registry.get("doc_example_send_email").simulator is not None
    True
    >>> default_registry.unregister("doc_example_send_email")
    """
    return default_registry.adapter(action_type, simulate=simulate, side_effects=side_effects,
                                    consumes=consumes, read_only=read_only)


def load_adapters(module: str) -> None:
    """Import ``module`` (a dotted name, or a path to a ``.py`` file) so its ``@adapter``
    functions register. Raises ``AdapterError`` saying what to fix.

    Example: ``load_adapters("my_company.trading_adapters")`` or
    ``load_adapters("ops/adapters.py")``.
    """
    try:
        if module.endswith(".py"):
            from importlib.util import module_from_spec, spec_from_file_location
            from pathlib import Path

            path = Path(module).resolve()
            spec = spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None or not path.is_file():
                raise FileNotFoundError(f"no such file {module}")
            existing = sys.modules.get(path.stem)
            if existing is not None and getattr(existing, "__file__", None) != str(path):
                raise AdapterError(
                    f"cannot import adapters file {module}: a module named {path.stem!r} is "
                    "already imported. Rename the file so that it does not shadow it.")
            loaded = module_from_spec(spec)
            sys.modules[path.stem] = loaded
            spec.loader.exec_module(loaded)
        else:
            importlib.import_module(module)
    except AdapterError:
        raise
    except (ModuleNotFoundError, FileNotFoundError) as error:
        raise AdapterError(
            f"cannot import adapters module {module!r}: {type(error).__name__}: {error}. "
            "Pass a dotted module name importable from here, or a path to a .py file.") from error
    except Exception as error:  # found, and its own code failed
        raise AdapterError(
            f"adapters module {module!r} raised while it was imported: "
            f"{type(error).__name__}: {error}. Fix the module.") from error


def _origin(function: Any) -> tuple[Any, ...]:
    """Where a function was defined: the same after re-importing its module, different for two
    lambdas or two functions that merely share a name."""
    code = getattr(function, "__code__", None)
    return (getattr(function, "__module__", None), getattr(function, "__qualname__", None),
            getattr(code, "co_filename", None), getattr(code, "co_firstlineno", None))


def error_code(value: Any, default: str) -> str:
    """An adapter's error code as it may appear in a terminal event: short snake_case, no
    free text; anything else becomes ``default``.

    >>> [error_code(code, "adapter_failure") for code in ("insufficient_funds", "http_429",
    ...                                                    "Bad: x", "sk_live_4ec39hqlyjwdarjtt1")]
    ['insufficient_funds', 'http_429', 'adapter_failure', 'adapter_failure']
    """
    return value if isinstance(value, str) and _ERROR_CODE.fullmatch(value) else default
