"""Running a decorated function inside its scope (an execution or a step): plain, async,
generator and async-generator functions alike, with the arguments named for capture recorded.

A generator's step (or plan) is current only while the generator runs, not while it is
suspended at a yield: each resume runs in a context of the generator's own, so the consumer
never finds itself "inside" a step it is merely iterating over.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from typing import Any, Callable, Iterable, TypeVar

from otel_execaudit.errors import ConfigurationError, ExecAuditError
from otel_execaudit.runtime import get_runtime
from otel_execaudit.telemetry.logs import get_logger

__all__ = ["capture_names", "captured", "check_capture", "wrap"]

F = TypeVar("F", bound=Callable[..., Any])


def capture_names(capture: Iterable[str] | str) -> tuple[str, ...]:
    return (capture,) if isinstance(capture, str) else tuple(capture)


def check_capture(function: Callable[..., Any], names: tuple[str, ...]) -> None:
    """A misspelt name would silently capture nothing: refuse it when the function is
    decorated."""
    if not names:
        return
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return  # builtins and the like: nothing to check against
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return
    unknown = [name for name in names if name not in parameters]
    if unknown:
        raise ConfigurationError(
            f"capture names {unknown} are not parameters of {function.__qualname__} "
            f"(it takes {list(parameters)}); fix the names or drop them")


def captured(function: Callable[..., Any], names: tuple[str, ...],
              arguments: tuple[Any, ...], keywords: dict[str, Any]) -> dict[str, Any] | None:
    if not names:
        return None
    try:
        bound = inspect.signature(function).bind_partial(*arguments, **keywords)
    except TypeError:
        return None  # the call itself will raise the TypeError the user expects
    wanted = {key: value for key, value in bound.arguments.items() if key in names}
    return {"arguments": get_runtime().redactor.capture(names, wanted)}


def _record_result(scope: Any, result: Any) -> None:
    set_output = getattr(scope, "set_output", None)  # a step's scope, not an execution's
    if set_output is not None:
        set_output(result=get_runtime().redactor.clean(result))


def wrap(function: F, scope_for: Callable[[tuple[Any, ...], dict[str, Any]], Any],
          capture_result: bool) -> F:
    if inspect.isasyncgenfunction(function):
        async def scoped_async_generator(arguments: tuple[Any, ...],
                                         keywords: dict[str, Any]) -> Any:
            with scope_for(arguments, keywords):
                async for item in function(*arguments, **keywords):
                    yield item

        @functools.wraps(function)
        async def async_generator(*arguments: Any, **keywords: Any) -> Any:
            context = contextvars.copy_context()
            body = scoped_async_generator(arguments, keywords)
            async for item in _drive_async_in_context(context, body):
                yield item
        return async_generator  # type: ignore[return-value]

    if inspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def coroutine(*arguments: Any, **keywords: Any) -> Any:
            with scope_for(arguments, keywords) as scope:
                result = await function(*arguments, **keywords)
                if capture_result:
                    _record_result(scope, result)
                return result
        return coroutine  # type: ignore[return-value]

    if inspect.isgeneratorfunction(function):
        def scoped_generator(arguments: tuple[Any, ...], keywords: dict[str, Any]) -> Any:
            with scope_for(arguments, keywords) as scope:
                result = yield from function(*arguments, **keywords)
                if capture_result:
                    _record_result(scope, result)
                return result

        @functools.wraps(function)
        def generator(*arguments: Any, **keywords: Any) -> Any:
            context = contextvars.copy_context()
            return (yield from _drive_in_context(context, scoped_generator(arguments, keywords)))
        return generator  # type: ignore[return-value]

    @functools.wraps(function)
    def plain(*arguments: Any, **keywords: Any) -> Any:
        with scope_for(arguments, keywords) as scope:
            result = function(*arguments, **keywords)
            if capture_result:
                _record_result(scope, result)
            return result
    return plain  # type: ignore[return-value]


# A generator's step (or plan) is current only while the generator runs, not while it is
# suspended at a yield: each resume runs in a context of the generator's own, so the consumer
# never finds itself "inside" a step it is merely iterating over.

def _drive_in_context(context: contextvars.Context, body: Any) -> Any:
    """``yield from body``, with every resume of ``body`` run inside ``context``."""
    message: Any = None
    thrown: BaseException | None = None
    while True:
        try:
            if thrown is None:
                item = context.run(body.send, message)
            else:
                error, thrown = thrown, None
                item = context.run(body.throw, error)
        except StopIteration as stop:
            return stop.value
        try:
            message = yield item
        except GeneratorExit:
            _close_quietly(context.run, body.close)
            raise
        except BaseException as error:
            thrown = error


async def _drive_async_in_context(context: contextvars.Context, body: Any) -> Any:
    """``async for item in body: yield item``, with every resume of ``body`` run as a task
    in ``context`` (an awaited coroutine would otherwise run in the consumer's context)."""
    import asyncio

    message: Any = None
    thrown: BaseException | None = None
    while True:
        resume = body.asend(message) if thrown is None else body.athrow(thrown)
        thrown = None
        task = asyncio.get_running_loop().create_task(_awaited(resume), context=context)
        try:
            item = await task
        except StopAsyncIteration:
            return
        except asyncio.CancelledError:
            task.cancel()
            raise
        try:
            message = yield item
        except GeneratorExit:
            closing = asyncio.get_running_loop().create_task(_awaited(body.aclose()),
                                                             context=context)
            try:
                await closing
            except ExecAuditError as error:
                _log_lost_end(error)
            raise
        except BaseException as error:
            thrown = error


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _close_quietly(run: Callable[..., Any], *arguments: Any) -> None:
    """Close a step whose consumer went away. At interpreter exit the ledger may already be
    closed: the lost cancellation record is logged, not raised into the garbage collector."""
    try:
        run(*arguments)
    except ExecAuditError as error:
        _log_lost_end(error)


def _log_lost_end(error: ExecAuditError) -> None:
    get_logger().warning("a suspended step could not record its end", error=str(error))
