"""The idiomatic layer: span tree, ledger mirror, errors, cancellation, decorators, context."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.trace import StatusCode

from otel_execaudit import (
    ExecutionStatus,
    SideEffectCategory,
    StepEventType,
    bind,
    current_execution,
    current_step,
    execution,
    plan,
    step,
)
from otel_execaudit.redaction import REDACTED


def _by_name(spans):
    return {span.name: span for span in spans}


def test_span_tree_mirrors_the_ledger_entry_for_entry(execaudit_capture):
    with execution("deploy", details={"ticket": "OPS-1"}) as ex:
        with ex.step("fetch", details={"url": "https://x"}) as st:
            st.side_effect(SideEffectCategory.NETWORK, "GET /x", reversible=True)
        with ex.step("apply") as st:
            st.side_effect("data_mutation", "UPDATE t", reversible=False)
            st.event("rows_changed", count=3)
    spans = _by_name(execaudit_capture.spans())
    root, fetch, apply = (spans["invoke_workflow deploy"], spans["execute_tool fetch"],
                          spans["execute_tool apply"])
    assert root.parent is None
    assert fetch.parent.span_id == root.context.span_id == apply.parent.span_id
    assert root.attributes["openinference.span.kind"] == "CHAIN"
    assert fetch.attributes["openinference.span.kind"] == "TOOL"
    assert fetch.attributes["gen_ai.operation.name"] == "execute_tool"
    assert root.attributes["execaudit.status"] == "completed"
    assert root.attributes["execaudit.mode"] == "LIVE"  # it really ran

    entries = execaudit_capture.entries(ex.execution_id)
    kinds = [entry.fields()["kind"] for entry in entries]
    assert kinds == ["execution.started", "step.started", "side_effect", "step.completed",
                     "step.started", "side_effect", "step.note", "step.completed",
                     "execution.ended"]
    span_ids = {format(span.context.span_id, "016x"): span for span in spans.values()}
    for entry in entries:
        fields = entry.fields()
        span = span_ids[fields["span_id"]]  # every entry finds its span …
        assert fields["trace_id"] == format(span.context.trace_id, "032x")
        # … and every span event that mirrors an entry carries its seq and hash
        if fields["kind"] not in ("execution.started", "execution.ended"):
            mirrored = [event for event in span.events
                        if event.attributes.get("execaudit.ledger.seq") == entry.seq]
            assert len(mirrored) == 1
            assert mirrored[0].attributes["execaudit.ledger.entry_hash"] == entry.hash
    # the span opened by an entry carries that entry's seq and hash
    assert root.attributes["execaudit.ledger.seq"] == entries[0].seq
    assert fetch.attributes["execaudit.ledger.entry_hash"] == entries[1].hash
    assert execaudit_capture.verify().ok


def test_record_step_events_are_the_ledger_entries(execaudit_capture):
    with execution("p") as ex:
        for name in ("a", "b", "c"):
            with ex.step(name):
                pass
    record = ex.record
    assert record.status is ExecutionStatus.COMPLETED and record.hash_chain_intact()
    by_seq = {entry.seq: entry for entry in execaudit_capture.entries()}
    for event in record.step_events:
        assert by_seq[event.ledger_seq].hash == event.event_hash
        assert by_seq[event.ledger_seq].fields()["data"]["previous_event_hash"] == \
            event.previous_event_hash


class Boom(ValueError):
    pass


def test_exception_in_step_is_recorded_and_reraised_unchanged(execaudit_capture):
    original = Boom("disk full on /dev/sda1 (token=abc123456)")
    with pytest.raises(Boom) as caught:
        with execution("p") as ex:
            with ex.step("ok"):
                pass
            with ex.step("breaks"):
                raise original
    assert caught.value is original
    record = ex.record
    assert record.status is ExecutionStatus.FAILED  # it escaped: the execution stopped there
    failed = record.step_events[-1]
    assert failed.event_type is StepEventType.FAILED
    assert failed.error_type == f"{Boom.__module__}.Boom"
    assert "raise original" in failed.traceback and "Traceback" in failed.traceback
    assert "abc123456" not in failed.error_message + failed.traceback  # redacted
    spans = _by_name(execaudit_capture.spans())
    breaks = spans["execute_tool breaks"]
    assert breaks.status.status_code is StatusCode.ERROR
    exceptions = [event for event in breaks.events if event.name == "exception"]
    assert len(exceptions) == 1
    assert exceptions[0].attributes["exception.type"] == f"{Boom.__module__}.Boom"
    assert "abc123456" not in str(exceptions[0].attributes)
    assert spans["invoke_workflow p"].status.status_code is StatusCode.ERROR


def test_first_step_failing_makes_the_execution_failed(execaudit_capture):
    with pytest.raises(Boom):
        with execution("p") as ex:
            with ex.step("breaks"):
                raise Boom("x")
    assert ex.status is ExecutionStatus.FAILED


@pytest.mark.parametrize("error", [KeyboardInterrupt(), GeneratorExit(),
                                   asyncio.CancelledError()])
def test_cancellation_is_its_own_outcome_and_spans_end(execaudit_capture, error):
    with pytest.raises(type(error)):
        with execution("p") as ex:
            with ex.step("long"):
                raise error
    assert ex.status is ExecutionStatus.CANCELLED
    assert ex.record.step_events[-1].event_type is StepEventType.CANCELLED
    spans = _by_name(execaudit_capture.spans())  # only ended spans are exported
    assert {"invoke_workflow p", "execute_tool long"} <= set(spans)
    assert not [event for event in spans["execute_tool long"].events if event.name == "exception"]


def test_decorators_cover_plain_async_generator_and_async_generator(execaudit_capture):
    @step
    def double(x):
        return 2 * x

    @step("agen-step")
    async def arange(n):
        for i in range(n):
            yield i

    @step(capture_result=True)
    async def fetch(x):
        await asyncio.sleep(0)
        return x + 1

    @step()
    def numbers():
        yield from (1, 2)
        return "done"

    @plan("mixed", capture=["n"])
    async def run(n, api_key):
        first = double(n)
        second = await fetch(first)
        items = [item async for item in arange(2)]
        return first, second, items, list(numbers())

    assert asyncio.run(run(3, api_key="secret-value")) == (6, 7, [0, 1], [1, 2])
    fields = execaudit_capture.fields()
    started = fields[0]
    assert started["kind"] == "execution.started" and started["plan_id"] == "mixed"
    assert started["data"]["details"] == {"arguments": {"n": 3}}  # api_key never captured
    steps = [entry["data"]["step_name"] for entry in fields if entry["kind"] == "step.completed"]
    assert steps == ["test_decorators_cover_plain_async_generator_and_async_generator.<locals>"
                     ".double", "test_decorators_cover_plain_async_generator_and_async_generator"
                     ".<locals>.fetch", "agen-step", "test_decorators_cover_plain_async_generator"
                     "_and_async_generator.<locals>.numbers"]
    fetched = [entry for entry in fields if entry["kind"] == "step.completed"][1]
    assert fetched["data"]["details"] == {"result": 7}
    assert "secret-value" not in execaudit_capture.ledger_path.read_bytes().decode("latin-1")


def test_captured_secrets_are_redacted_in_ledger_and_spans(execaudit_capture):
    @step(capture=["order", "password"])
    def place(order, password, note):
        return "ok"

    with execution("orders"):
        place({"id": 7, "token": "tok-123456"}, "hunter2", note="not captured")
    data = [entry for entry in execaudit_capture.fields() if entry["kind"] == "step.started"][0]
    assert data["data"]["details"]["arguments"] == {
        "order": {"id": 7, "token": REDACTED}, "password": REDACTED}
    span = _by_name(execaudit_capture.spans())["execute_tool " + place.__qualname__]
    assert "hunter2" not in str(span.attributes) and "tok-123456" not in str(span.attributes)
    assert "not captured" not in str(span.attributes)


def test_hostile_arguments_never_crash_an_execution(execaudit_capture):
    cyclic = []
    cyclic.append(cyclic)

    class NoRepr:
        def __repr__(self):
            raise RuntimeError

    @step(capture=["value"], capture_result=True)
    def take(value):
        return value

    with execution("hostile") as ex:
        for value in (cyclic, NoRepr(), "x" * 1_000_000, {i: i for i in range(10_000)},
                      object(), 2**80, float("inf")):
            take(value)
    assert ex.status is ExecutionStatus.COMPLETED
    assert execaudit_capture.verify().ok
    biggest = max(len(entry.body) for entry in execaudit_capture.entries())
    assert biggest < 64_000  # every value is bounded


def test_nested_plans_link_spans_and_executions(execaudit_capture):
    with execution("outer") as outer:
        with outer.step("delegate"):
            with execution("inner") as inner:
                with inner.step("work"):
                    pass
    spans = _by_name(execaudit_capture.spans())
    assert spans["invoke_workflow inner"].parent.span_id == \
        spans["execute_tool delegate"].context.span_id
    assert inner.record.parent_execution_id == outer.execution_id
    started = execaudit_capture.fields(inner.execution_id)[0]
    assert started["data"]["parent_execution_id"] == outer.execution_id


def test_context_follows_into_threads_executors_and_tasks(execaudit_capture):
    seen = []

    def work(label):
        with step(f"work-{label}"):
            seen.append((label, current_execution().execution_id))

    async def in_tasks():
        await asyncio.gather(asyncio.to_thread(work, "to_thread"),
                             asyncio.create_task(asyncio.to_thread(work, "task")))

    with execution("fan-out") as ex:
        thread = threading.Thread(target=bind(work), args=("thread",))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(bind(work), ["pool-1", "pool-2"]))
        asyncio.run(in_tasks())
    assert sorted(seen) == sorted((label, ex.execution_id) for label in
                                  ("thread", "pool-1", "pool-2", "to_thread", "task"))
    spans = execaudit_capture.spans()
    root = _by_name(spans)["invoke_workflow fan-out"]
    workers = [span for span in spans if span.name.startswith("execute_tool work-")]
    assert len(workers) == 5 and all(span.parent.span_id == root.context.span_id
                                     for span in workers)
    assert ex.record.hash_chain_intact() and len(ex.record.step_events) == 10


def test_more_than_128_events_on_one_step_are_not_lost(execaudit_capture):
    with execution("chatty") as ex:
        with ex.step("loop") as st:
            for i in range(300):
                st.event("tick", i=i)
    spans = execaudit_capture.spans()
    ticks = [event.attributes["execaudit.ledger.seq"] for span in spans for event in span.events
             if event.name == "tick"]
    assert len(ticks) == 300 and len(set(ticks)) == 300
    assert sum(span.dropped_events for span in spans) == 0
    continued = [span for span in spans if span.name == "execute_tool loop (continued)"]
    loop = _by_name(spans)["execute_tool loop"]
    assert all(span.parent.span_id == loop.context.span_id for span in continued)
    assert len([e for e in execaudit_capture.fields(ex.execution_id) if e["kind"] == "step.note"]) == 300


def test_step_outside_an_execution_is_still_audited(execaudit_capture):
    @step("lonely")
    def lonely():
        return 1

    assert lonely() == 1
    kinds = [entry["kind"] for entry in execaudit_capture.fields()]
    assert kinds == ["execution.started", "step.started", "step.completed", "execution.ended"]


def test_one_step_spec_entered_by_concurrent_tasks_keeps_outcomes_apart(execaudit_capture):
    fetch = step("fetch")

    async def worker(name, fail):
        async with fetch as st:
            st.set_output(worker=name)
            await asyncio.sleep(0.01 if name == "A" else 0.02)
            if fail:
                raise ValueError(name)

    async def main():
        with execution("shared-spec") as ex:
            results = await asyncio.gather(worker("A", True), worker("B", False),
                                           return_exceptions=True)
        return ex, results

    ex, results = asyncio.run(main())
    assert isinstance(results[0], ValueError) and results[1] is None
    finished = {(event.details.get("worker"), event.event_type)
                for event in ex.record.step_events if event.event_type is not StepEventType.STARTED}
    assert finished == {("A", StepEventType.FAILED), ("B", StepEventType.COMPLETED)}


def test_a_suspended_generator_step_is_not_current_for_its_consumer(execaudit_capture):
    seen = {}

    @step
    def produce():
        seen["inside"] = current_step().name
        yield 1
        yield 2

    with execution("consumer") as ex:
        items = produce()
        next(items)
        seen["between"] = current_step()  # the consumer is not inside produce's step
        with ex.step("unrelated"):
            pass
        assert list(items) == [2]
    assert seen["inside"].endswith("produce") and seen["between"] is None
    spans = _by_name(execaudit_capture.spans())
    root = spans["invoke_workflow consumer"]
    assert spans["execute_tool unrelated"].parent.span_id == root.context.span_id
    assert ex.record.hash_chain_intact() and ex.status is ExecutionStatus.COMPLETED


def test_an_abandoned_generator_step_ends_cancelled(execaudit_capture):
    @step
    def produce():
        yield 1
        yield 2

    with execution("abandon") as ex:
        items = produce()
        next(items)
        items.close()
    outcomes = [event.event_type for event in ex.record.step_events]
    assert outcomes == [StepEventType.STARTED, StepEventType.CANCELLED]


def test_a_suspended_async_generator_step_is_not_current_for_its_consumer(execaudit_capture):
    @step("stream")
    async def stream():
        for index in range(3):
            yield index

    async def main():
        with execution("async-consumer") as ex:
            async for item in stream():
                assert current_step() is None  # not inside "stream" between items
                if item == 1:
                    break
            await asyncio.sleep(0)
        return ex

    ex = asyncio.run(main())
    outcomes = [event.event_type for event in ex.record.step_events]
    assert outcomes[0] is StepEventType.STARTED and len(outcomes) == 2
    assert ex.status in (ExecutionStatus.COMPLETED, ExecutionStatus.CANCELLED)


def test_decorator_details_and_captured_arguments_are_both_recorded(execaudit_capture):
    @step("charge", details={"provider": "acme"}, capture=["amount"])
    def charge(amount, card):
        return True

    with execution("pay"):
        charge(5, card="4111")
    started = [entry for entry in execaudit_capture.fields() if entry["kind"] == "step.started"]
    assert started[0]["data"]["details"] == {"provider": "acme", "arguments": {"amount": 5}}


def test_capture_names_must_be_parameters(execaudit_capture):
    from otel_execaudit import ConfigurationError

    with pytest.raises(ConfigurationError, match="not parameters of"):
        @step(capture=["ammount"])
        def charge(amount):
            return amount

    @step(capture="amount")  # one name as a plain string is one name, not five letters
    def refund(amount):
        return amount

    with execution("pay"):
        refund(3)
    started = [entry for entry in execaudit_capture.fields() if entry["kind"] == "step.started"]
    assert started[0]["data"]["details"] == {"arguments": {"amount": 3}}


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("str() is broken")


def test_an_exception_whose_str_raises_is_reraised_unchanged_and_spans_end(execaudit_capture):
    original = Unprintable()
    with pytest.raises(Unprintable) as caught:
        with execution("weird") as ex:
            with ex.step("boom"):
                raise original
    assert caught.value is original
    assert ex.status is ExecutionStatus.FAILED
    failed = ex.record.step_events[-1]
    assert failed.event_type is StepEventType.FAILED
    assert failed.error_message == "<unprintable Unprintable>"
    names = {span.name for span in execaudit_capture.spans()}
    assert {"invoke_workflow weird", "execute_tool boom"} <= names
    assert execaudit_capture.verify().ok


def test_the_exception_event_stays_on_the_step_span_past_128_events(execaudit_capture):
    with pytest.raises(RuntimeError):
        with execution("busy") as ex:
            with ex.step("busy") as st:
                for index in range(200):
                    st.event("tick", i=index)
                raise RuntimeError("after many events")
    busy = _by_name(execaudit_capture.spans())["execute_tool busy"]
    assert busy.status.status_code is StatusCode.ERROR
    assert [event.name for event in busy.events].count("exception") == 1
    assert busy.events[-1].name in ("exception", "execaudit.step.failed")
    assert "execaudit.step.failed" in [event.name for event in busy.events]


def test_huge_names_are_bounded_with_a_marker(execaudit_capture):
    with execution("p" * 1_000_000) as ex:
        with ex.step("s" * 1_000_000) as st:
            st.event("e" * 1_000_000)
    assert max(len(entry.body) for entry in execaudit_capture.entries()) < 4_000
    assert "[truncated" in ex.record.plan_id and "[truncated" in ex.record.step_events[0].step_name
    assert all(len(span.name) < 400 for span in execaudit_capture.spans())
    assert execaudit_capture.verify().ok
