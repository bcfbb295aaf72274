"""Context managers and decorators: the way most code records executions.

::

    >>> import otel_execaudit, tempfile, os
    >>> from otel_execaudit import execution, SideEffectCategory
    >>> _ = otel_execaudit.configure(ledger=os.path.join(tempfile.mkdtemp(), "l.db"),
    ...                              exporter="none")
    >>> with execution("rotate-keys") as ex:
    ...     with ex.step("fetch", details={"region": "eu-west-1"}) as st:
    ...         _ = st.side_effect(SideEffectCategory.NETWORK, "GET /keys", reversible=True)
    >>> ex.record.live_mode_state, ex.status.value  # it ran for real
    ('LIVE', 'completed')
    >>> otel_execaudit.shutdown()

Modes, failures and the statuses they lead to: docs/recording.md.
"""

from __future__ import annotations

import contextvars
import functools
from typing import Any, Callable, Iterable, Mapping, TypeVar

from opentelemetry import context as otel_context

from otel_execaudit.errors import ConfigurationError, SecurityEscalationError
from otel_execaudit.recording.acting import acting
from otel_execaudit.recording.wrapping import capture_names, captured, check_capture, wrap
from otel_execaudit.ledger.store import LedgerEntry
from otel_execaudit.recording.failure import is_cancellation
from otel_execaudit.recording.observer import ExecutionObserver, SecurityProvider
from otel_execaudit.recording.step_handle import StepHandle
from otel_execaudit.recording.records import (
    ExecutionMode,
    ExecutionRecord,
    ExecutionStatus,
    SideEffect,
    SideEffectCategory,
)

F = TypeVar("F", bound=Callable[..., Any])

_current_execution: contextvars.ContextVar[Execution | None] = contextvars.ContextVar(
    "otel_execaudit_execution", default=None)
_current_step: contextvars.ContextVar[Step | None] = contextvars.ContextVar(
    "otel_execaudit_step", default=None)
# What each StepSpec entered, per context: one spec may be entered by several tasks at once.
_entered_specs: contextvars.ContextVar[tuple[tuple[StepSpec, _Scope], ...]] = \
    contextvars.ContextVar("otel_execaudit_entered_specs", default=())


def current_execution() -> Execution | None:
    """The execution this code runs in, if any (follows into asyncio tasks and ``bind``)."""
    return _current_execution.get()


def current_step() -> Step | None:
    return _current_step.get()


class _Scope:
    """Sync and async ``with`` over one enter/exit pair, making OTel context current inside."""

    _token: object = None
    _otel_token: object = None

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> bool:
        return self.__exit__(*exc_info)

    def _attach(self, variable: contextvars.ContextVar[Any], value: Any,
                otel: otel_context.Context) -> None:
        self._token = variable.set(value)
        self._otel_token = otel_context.attach(otel)

    def _detach(self, variable: contextvars.ContextVar[Any]) -> None:
        try:
            otel_context.detach(self._otel_token)  # type: ignore[arg-type]
        except Exception:
            pass
        _reset(variable, self._token)


def _reset(variable: contextvars.ContextVar[Any], token: Any) -> None:
    """Undo a ``set``. A scope exited in another context than it entered (a generator closed
    by the garbage collector) leaves that context alone: it never held our value."""
    try:
        variable.reset(token)
    except (ValueError, RuntimeError):
        pass


class Step(_Scope):
    """One step of an execution, used as ``with ex.step("name") as st:``."""

    def __init__(self, execution: Execution, name: str, details: Mapping[str, Any] | None,
                 index: int | None) -> None:
        self.execution, self.name = execution, name
        self._details, self._index = details, index
        self._handle: StepHandle | None = None
        self._output: dict[str, Any] | None = None

    @property
    def index(self) -> int:
        return self._handle.index if self._handle else -1

    def __enter__(self) -> Step:
        parent = _current_step.get()
        parent_handle = parent._handle if parent and parent.execution is self.execution else None
        self._handle = self.execution.observer.start_step(
            self.name, self._details, index=self._index, parent=parent_handle)
        self._attach(_current_step, self, self._handle.context)
        return self

    def __exit__(self, error_type: Any, error: BaseException | None, tb: Any) -> bool:
        self._detach(_current_step)
        handle = self._handle
        if handle is None or not handle.open:
            return False
        if error is None:
            handle.complete(self._output)
        elif is_cancellation(error):
            handle.cancel(error)
        else:
            handle.fail(error, self._output)
        return False

    def side_effect(self, category: SideEffectCategory | str, description: str,
                    reversible: bool = False,
                    details: Mapping[str, Any] | None = None) -> SideEffect:
        """Record a change this step made to the world."""
        return self._open_handle().side_effect(category, description, reversible, details)

    def declare(self, category: SideEffectCategory | str, description: str,
                reversible: bool = False) -> SideEffect:
        """Declare a change this step is expected to make."""
        return self.execution.observer.declare_side_effect(
            category, description, reversible, step_index=self._open_handle().index)

    def event(self, name: str, **details: Any) -> LedgerEntry:
        """Record a named event on this step (a span event and a ledger entry)."""
        return self._open_handle().event(name, details)

    def set_output(self, **details: Any) -> None:
        """Details recorded with the step's COMPLETED (or FAILED) event."""
        self._output = {**(self._output or {}), **details}

    def _open_handle(self) -> StepHandle:
        if self._handle is None:
            raise RuntimeError("use the step inside its `with` block")
        return self._handle


class Execution(_Scope):
    """One plan execution, used as ``with execution("plan-id") as ex:``."""

    def __init__(self, plan_id: str, *, execution_id: str | None = None,
                 mode: ExecutionMode | str | None = None,
                 details: Mapping[str, Any] | None = None,
                 security: SecurityProvider | None = None) -> None:
        self.plan_id = plan_id
        self._mode = None if mode is None else ExecutionMode.parse(mode)
        self._execution_id, self._details, self._security = execution_id, details, security
        self.observer: ExecutionObserver | None = None

    @property
    def mode(self) -> ExecutionMode:
        """LIVE, or DRY_RUN if asked for or nested in a dry run (known once entered)."""
        if self.observer is not None:
            return self.observer.mode
        return self._mode or ExecutionMode.LIVE

    def __enter__(self) -> Execution:
        parent = _current_execution.get()
        mode = self._mode or ExecutionMode.LIVE
        if parent is not None and parent.mode is ExecutionMode.DRY_RUN:
            mode = ExecutionMode.DRY_RUN  # nothing nested is more LIVE than its parent
        self.observer = ExecutionObserver(
            self._execution_id, self.plan_id, live_mode_state=mode,
            security=self._security, details=self._details,
            parent_execution_id=parent.execution_id if parent and parent.observer else None,
            parent_context=otel_context.get_current())
        self._attach(_current_execution, self, self.observer.context)
        self._step_token = _current_step.set(None)
        return self

    def __exit__(self, error_type: Any, error: BaseException | None, tb: Any) -> bool:
        _reset(_current_step, self._step_token)
        self._detach(_current_execution)
        observer = self.observer
        if observer is None or observer.ended:  # e.g. already INCOMPLETE after an escalation
            return False
        if error is None:
            observer.mark_completed()
        elif isinstance(error, SecurityEscalationError):
            observer.mark_incomplete_security_escalation(str(error))
        elif is_cancellation(error):
            observer.mark_cancelled(error)
        else:
            observer.mark_failed(error)
        return False

    @property
    def execution_id(self) -> str:
        return self._require().execution_id

    @property
    def status(self) -> ExecutionStatus:
        return self._require().status

    @property
    def record(self) -> ExecutionRecord:
        """The immutable record (final once the ``with`` block has exited)."""
        return self._require().get_execution_record()

    def step(self, name: str, *, details: Mapping[str, Any] | None = None,
             index: int | None = None) -> Step:
        """A step of this execution: ``with ex.step("name", details={...}) as st:``."""
        self._require()
        return Step(self, name, details, index)

    def side_effect(self, category: SideEffectCategory | str, description: str,
                    reversible: bool = False,
                    details: Mapping[str, Any] | None = None) -> SideEffect:
        """Record a change to the world that belongs to no single step."""
        return self._require().record_side_effect(category, description, reversible, details)

    def _require(self) -> ExecutionObserver:
        if self.observer is None:
            raise RuntimeError("use the execution inside its `with` block")
        return self.observer


def execution(plan_id: str, *, execution_id: str | None = None,
              mode: ExecutionMode | str | None = None,
              details: Mapping[str, Any] | None = None,
              security: SecurityProvider | None = None) -> Execution:
    """Record one execution of ``plan_id``: a root span and ledger entries for its life.

    ``mode`` is LIVE unless given (the code in the block really runs), and DRY_RUN inside a
    dry run whatever is given.
    """
    return Execution(plan_id, execution_id=execution_id, mode=mode, details=details,
                     security=security)


class StepSpec(_Scope):
    """What ``step(...)`` returns: a context manager and a decorator at once.

    As a context manager it becomes a step of the current execution; outside any execution it
    runs in an execution of its own (named after the step), so nothing runs un-audited.
    """

    def __init__(self, name: str | None, details: Mapping[str, Any] | None,
                 capture: Iterable[str], capture_result: bool,
                 acts: tuple[Iterable[Any], Mapping[str, float] | None, Any] | None = None
                 ) -> None:
        self.name, self.details = name, details
        self.capture, self.capture_result = capture_names(capture), capture_result
        self.acts = acts  # (side_effects, consumes, simulate) of a step that acts

    def __enter__(self) -> Step:
        if self.acts is not None:
            raise ConfigurationError(
                "side_effects= is for decorated step functions (they can be simulated); "
                "inside a `with` block declare them with st.declare(...) instead.")
        current = _current_execution.get()
        name = self.name or "step"
        scope: _Scope = (current.step(name, details=self.details) if current is not None
                         else _StandaloneStep(name, self.details))
        entered = scope.__enter__()
        _entered_specs.set(_entered_specs.get() + ((self, scope),))
        return entered

    def __exit__(self, error_type: Any, error: BaseException | None, tb: Any) -> bool:
        entered = _entered_specs.get()
        for position in range(len(entered) - 1, -1, -1):
            if entered[position][0] is self:
                _entered_specs.set(entered[:position] + entered[position + 1:])
                return entered[position][1].__exit__(error_type, error, tb)
        return False

    def __call__(self, function: F) -> F:
        label, names, fixed = self.name or function.__qualname__, self.capture, self.details
        check_capture(function, names)

        def scope(arguments: tuple[Any, ...], keywords: dict[str, Any]) -> _Scope:
            values = captured(function, names, arguments, keywords)
            details = {**fixed, **values} if fixed and values else (fixed or values)
            return StepSpec(label, details, (), False)

        if self.acts is not None:
            function = acting(function, label, *self.acts)  # type: ignore[assignment]
        return wrap(function, scope, self.capture_result)


def step(name: str | Callable[..., Any] | None = None, *,
         details: Mapping[str, Any] | None = None, capture: Iterable[str] = (),
         capture_result: bool = False, side_effects: Iterable[Any] | None = None,
         consumes: Mapping[str, float] | None = None,
         simulate: Callable[..., str] | None = None) -> Any:
    """A step: ``with step("fetch") as st:`` inside an execution, or ``@step`` / ``@step("fetch",
    capture=["url"])`` on a function (plain, async, generator or async generator).

    ``capture`` names the arguments whose (redacted, bounded) values are recorded;
    ``capture_result`` records the return value. Nothing is captured unless asked for.

    ``side_effects`` (category names or mappings, as in a plan) make a decorated function a step
    that acts: simulated in DRY_RUN (``simulate(*args, **kwargs)`` says what it would do),
    guarded in LIVE under the ``Executor``; ``consumes`` is what it counts against limits.
    See ``otel_execaudit.recording.acting``.
    """
    acts = None if side_effects is None else (side_effects, consumes, simulate)
    if callable(name):  # bare @step
        return StepSpec(None, None, (), False)(name)
    return StepSpec(name, details, capture, capture_result, acts)


class _StandaloneStep(_Scope):
    def __init__(self, name: str, details: Mapping[str, Any] | None) -> None:
        self._execution = Execution(name)
        self._name, self._details = name, details
        self._step: Step | None = None

    def __enter__(self) -> Step:
        self._execution.__enter__()
        try:
            self._step = self._execution.step(self._name, details=self._details)
            return self._step.__enter__()
        except BaseException as error:
            self._execution.__exit__(type(error), error, error.__traceback__)
            raise

    def __exit__(self, error_type: Any, error: BaseException | None, tb: Any) -> bool:
        try:
            self._step.__exit__(error_type, error, tb)  # type: ignore[union-attr]
        finally:
            self._execution.__exit__(error_type, error, tb)
        return False


def bind(function: F) -> F:
    """Carry the current execution and step into another thread or executor.

    ``asyncio`` tasks and ``asyncio.to_thread`` carry them by themselves; threads and
    ``concurrent.futures`` executors do not::

        >>> from concurrent.futures import ThreadPoolExecutor
        >>> import otel_execaudit, tempfile, os
        >>> _ = otel_execaudit.configure(ledger=os.path.join(tempfile.mkdtemp(), "l.db"),
        ...                              exporter="none")
        >>> def work():
        ...     return current_execution().plan_id
        >>> with execution("fan-out"), ThreadPoolExecutor() as pool:
        ...     pool.submit(bind(work)).result()
        'fan-out'
        >>> otel_execaudit.shutdown()
    """
    captured = contextvars.copy_context()

    @functools.wraps(function)
    def run_in_context(*arguments: Any, **keywords: Any) -> Any:
        # A copy per call: one Context cannot be entered by two threads at once.
        return captured.copy().run(function, *arguments, **keywords)

    return run_in_context  # type: ignore[return-value]


def plan(plan_id: str | Callable[..., Any] | None = None, *, capture: Iterable[str] = (),
         mode: ExecutionMode | str | None = None,
         security: SecurityProvider | None = None) -> Any:
    """Record each call of the function as an execution of ``plan_id`` (default: its name).

    ``capture`` names the arguments whose (redacted, bounded) values are recorded; nothing is
    captured unless named. ``mode`` as for ``execution``: LIVE unless given. Works on plain,
    async, generator and async-generator functions (examples: docs/recording.md).
    """
    if callable(plan_id):  # bare @plan
        return plan()(plan_id)
    names = capture_names(capture)

    def decorate(function: F) -> F:
        label = plan_id or function.__qualname__
        check_capture(function, names)

        def scope(arguments: tuple[Any, ...], keywords: dict[str, Any]) -> _Scope:
            return Execution(label, mode=mode, security=security,
                             details=captured(function, names, arguments, keywords))

        wrapped = wrap(function, scope, capture_result=False)
        # The Executor runs the undecorated body inside an execution of its own.
        wrapped.__execaudit_plan__ = (label, function)  # type: ignore[attr-defined]
        return wrapped

    return decorate
