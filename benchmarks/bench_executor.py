"""Cost of a guarded executor run against plain OpenTelemetry, measured in the same run.

A plan of ``--steps`` acting steps on a no-op adapter, run by ``Executor`` as a dry run and LIVE
(acknowledged, validated, limits consumed). The baseline is what hand instrumentation of the
same work costs: a root span, a span per step, the four seed guards' checks called inline each
as a span of its own (preflight, and again before each LIVE step), and the adapter call, through
the same exporter. What the baseline lacks is exactly the executor's work: the ledger entries,
the atomic limit consumption, guard timeouts (a thread per evaluation), terminal events, plan
hashing and the result. Also timed: the plan hash of a code-first plan, and a limit check
after 1 and after 10,000 consumptions of the day (it must not grow with them).

The issue names no number for the executor, so this reports and sets no floor.

    python -m benchmarks.bench_executor [--steps 10] [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_execaudit
from otel_execaudit import AdapterRegistry, Executor, plan, step
from otel_execaudit.executor.guards import GuardContext, default_guards
from otel_execaudit.ledger.store import Ledger
from otel_execaudit.executor.limits import LimitCounters
from otel_execaudit.executor.plans import load_plan
from otel_execaudit.recording.records import timestamp_now

LIVE = {"mode": "LIVE", "acknowledge_risk": True, "validated": True, "validation_passed": True}


class _Discard(InMemorySpanExporter):
    def export(self, spans):  # type: ignore[override]
        return super().export(())


def make_plan(steps: int) -> dict:
    return {"plan_id": "bench", "limits": {"orders": 10**9},
            "steps": [{"name": f"order-{index}", "action_type": "noop",
                       "params": {"symbol": "BTCUSDT", "quantity": 0.001},
                       "side_effects": [{"category": "network", "reversible": False}],
                       "consumes": {"orders": 1}} for index in range(steps)]}


def plain_run(tracer, plan_data: dict, live: bool, adapter: Callable[[dict], None]) -> None:
    guards, parsed = default_guards(), load_plan(plan_data)
    context = GuardContext(plan=parsed, client_id=1, validated=True, validation_passed=True,
                           acknowledge_risk=True, usage=lambda: {})

    def check_all() -> None:
        for guard in guards:
            with tracer.start_as_current_span(f"apply_guardrail {guard.name}"):
                guard.check(context)

    with tracer.start_as_current_span("invoke_workflow bench"):
        check_all()
        for item in plan_data["steps"]:
            with tracer.start_as_current_span(f"execute_tool {item['name']}") as span:
                span.add_event("execaudit.step.started")
                if live:
                    check_all()
                    adapter(item["params"])
                span.add_event("execaudit.step.completed")


def timed(function: Callable[[], object], runs: int) -> float:
    """Median seconds of ``runs`` calls, after one warm-up call."""
    function()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def interleaved(ours: Callable[[], object], plain: Callable[[], object], runs: int,
                rounds: int = 5) -> tuple[float, float, float]:
    """Median seconds of ours and of plain, and the median of their ratios, over ``rounds``
    rounds that alternate the two: the machine's drift hits both sides alike."""
    pairs = [(timed(ours, runs), timed(plain, runs)) for _ in range(rounds)]
    return (statistics.median(pair[0] for pair in pairs),
            statistics.median(pair[1] for pair in pairs),
            statistics.median(pair[0] / pair[1] for pair in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--runs", type=int, default=20)
    arguments = parser.parse_args()

    provider = TracerProvider(resource=Resource.create({"service.name": "bench-plain"}),
                              shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(_Discard()))
    tracer = provider.get_tracer("bench")
    registry = AdapterRegistry()
    registry.adapter("noop")(lambda context: None)
    plan_data = make_plan(arguments.steps)

    with tempfile.TemporaryDirectory() as directory:
        otel_execaudit.configure(ledger=Path(directory) / "ledger.db", exporter=_Discard())
        executor = Executor(adapters=registry)
        rows = []
        for label, live in (("dry run", False), ("LIVE", True)):
            rows.append((label, *interleaved(
                lambda: executor.run(plan_data, client_id=1, **(LIVE if live else {})),
                lambda: plain_run(tracer, plan_data, live, lambda params: None),
                arguments.runs)))

        @step("order", side_effects=["network"])
        def order(symbol: str, quantity: float) -> None:
            return None

        @plan("code-first")
        def code_first(symbol: str) -> None:
            for _ in range(arguments.steps):
                order(symbol, 0.001)

        hashing = timed(lambda: executor.plan_hash(code_first, client_id=1,
                                                   arguments=("BTCUSDT",)), arguments.runs)
        otel_execaudit.shutdown()
        checks = limit_checks(Path(directory) / "limits.db", arguments.runs)
    provider.shutdown()

    print(f"{arguments.steps} acting steps per run, medians of 5 interleaved rounds of "
          f"{arguments.runs} runs, in-memory exporter on both sides")
    print(f"{'run':<9}{'executor':>12}{'plain OTel':>13}{'ratio':>8}{'per step':>12}")
    for label, ours, plain, ratio in rows:
        print(f"{label:<9}{ours * 1e3:>10.2f}ms{plain * 1e3:>11.2f}ms{ratio:>8.1f}"
              f"{ours / arguments.steps * 1e6:>10.0f}µs")
    print(f"code-first plan hash: {hashing * 1e6:.0f} µs")
    print("limit check (a tenant's usage today): " + ", ".join(
        f"{seconds * 1e6:.0f} µs after {count:,} consumption{'s' * (count > 1)}"
        for count, seconds in checks))


def limit_checks(path: Path, runs: int) -> list[tuple[int, float]]:
    """What reading a tenant's usage costs after 1 and after 10,000 consumptions that day:
    the check every limits guard makes before each LIVE action."""
    ledger = Ledger(path)
    counters, results, consumed = LimitCounters(ledger), [], 0

    def entry_for(data: dict) -> dict:
        return {"kind": "limits.consumed", "ts": timestamp_now(), "execution_id": "bench",
                "plan_id": "bench", "trace_id": None, "span_id": None, "data": data}

    for count in (1, 10_000):
        while consumed < count:
            counters.consume(f"bench:{consumed}", "client:1", {"orders": 1, "notional": 50},
                             {}, entry_for)
            consumed += 1
        results.append((count, timed(lambda: counters.usage("client:1"), runs * 10)))
    ledger.close()
    return results


if __name__ == "__main__":
    main()
