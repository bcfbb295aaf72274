"""Inspection benchmark: reading a big ledger as a person or an agent does.

Builds a ledger of ``--entries`` entries (default 1,000,000) by recording real executions (ten
entries each: started, four steps started and completed, ended; every 50th fails), then times,
in the same run:

* ``execaudit executions --limit 20``, ``execaudit show ID`` and ``last-error`` as whole
  processes, the way a user feels them, and the reads that must look far: ``show`` of a
  5,000-step execution, and filters that match nothing (``--status cancelled``, ``--tenant``,
  ``--plan``, ``last-error --tool``); against a process that only imports the OpenTelemetry
  SDK (the baseline any OpenTelemetry tool pays before it does anything);
* the same reads in process (``ExecutionLog``), and ``get_last_error``;
* a whole ``verify`` of a ledger of ``FULL_CHECK_UP_TO`` entries, the size up to which every read
  verifies the whole ledger first.

The floor (issue: "well under a second"): each read process under 1 s on the 1,000,000-entry
ledger, for every read named here. Run from the repository root::

    python -m benchmarks.bench_inspection                  # 1,000,000 entries (about 1 min)
    python -m benchmarks.bench_inspection --entries 100000

Prints a table and writes benchmarks/results/inspection.json; exits 1 if the floor is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("EXECAUDIT_LOG_LEVEL", "off")  # the failing executions would log each

from opentelemetry import trace  # noqa: E402

from otel_execaudit.inspection import ExecutionLog, get_last_error  # noqa: E402
from otel_execaudit.inspection.integrity import FULL_CHECK_UP_TO  # noqa: E402
from otel_execaudit.ledger import Durability, Ledger, verify  # noqa: E402
from otel_execaudit.recording import ExecutionObserver  # noqa: E402
from otel_execaudit.redaction import Redactor  # noqa: E402

RESULTS = pathlib.Path(__file__).with_name("results") / "inspection.json"
FLOOR_SECONDS = 1.0
ENTRIES_PER_EXECUTION = 10


BIG_STEPS = 5_000  # one execution this long, a third of the way in: ``show`` of a long run
BIG_ID = "big-execution"


def build(path: pathlib.Path, entries: int) -> str:
    """Record ``entries // 10`` executions (and one of ``BIG_STEPS`` steps a third of the way
    in); return the id of one in the middle."""
    ledger = Ledger(path, durability=Durability.OFF)
    tracer, redactor = trace.NoOpTracer(), Redactor()
    middle = ""
    count = entries // ENTRIES_PER_EXECUTION
    for number in range(count):
        if number == count // 3:
            big = ExecutionObserver(BIG_ID, "plan-big", ledger=ledger, tracer=tracer,
                                    redactor=redactor)
            for index in range(BIG_STEPS):
                big.record_step_started(index, f"step-{index}", {"n": index})
                big.record_step_completed(index, f"step-{index}", {"ok": True})
            big.mark_completed()
        observer = ExecutionObserver(f"exec-{number:07d}", f"plan-{number % 7}",
                                     details={"tenant": f"t{number % 5}"},
                                     ledger=ledger, tracer=tracer, redactor=redactor)
        for index in range(4):
            observer.record_step_started(index, f"step-{index}", {"n": number})
            if index == 3 and number % 50 == 0:
                observer.record_step_failed(index, f"step-{index}", ValueError("boom"))
            else:
                observer.record_step_completed(index, f"step-{index}", {"ok": True})
        observer.mark_completed()
        if number == count // 2 + 1:  # one that completed (every 50th fails)
            middle = observer.execution_id
    ledger.close()
    return middle


def process_seconds(arguments: list[str], rounds: int) -> float:
    """The median wall time of a whole process."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(arguments, check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process_seconds(work, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    directory = pathlib.Path(tempfile.mkdtemp(prefix="execaudit-bench-"))
    path = directory / "big.db"
    started = time.perf_counter()
    middle = build(path, options.entries)
    built = time.perf_counter() - started
    small = directory / "small.db"
    build(small, FULL_CHECK_UP_TO)

    command = [sys.executable, "-m", "otel_execaudit.cli"]
    env_path = str(path)
    baseline = process_seconds([sys.executable, "-c", "import opentelemetry.sdk.trace"],
                               options.rounds)
    results = {
        "entries": options.entries,
        "build_seconds": round(built, 1),
        "baseline_process_seconds": baseline,
        "executions_process_seconds": process_seconds(
            command + ["executions", "--ledger", env_path, "--limit", "20"], options.rounds),
        "show_process_seconds": process_seconds(
            command + ["show", middle, "--ledger", env_path], options.rounds),
        "last_error_process_seconds": process_seconds(
            command + ["last-error", "--ledger", env_path], options.rounds),
    }
    # Reads that must look far, or through everything: a long execution, and filters that
    # match nothing (the worst case: no early stop).
    far = {"show_big": ["show", BIG_ID], "status_cancelled": ["executions", "--status",
                                                              "cancelled"],
           "last_error_no_such_tool": ["last-error", "--tool", "nosuch"],
           "tenant_no_match": ["executions", "--tenant", "nosuch"],
           "plan_no_match": ["executions", "--plan", "nosuch"]}
    for name, arguments in far.items():
        results[f"{name}_process_seconds"] = process_seconds(
            command + arguments + ["--ledger", env_path], options.rounds)

    def listing():
        with ExecutionLog(path) as log:
            assert len(log.list_executions(limit=20)) == 20 and log.integrity.ok

    def showing():
        with ExecutionLog(path) as log:
            assert log.get_execution(middle).record.status.value == "completed"
            assert log.integrity.ok

    results["executions_in_process_seconds"] = in_process_seconds(listing, options.rounds)
    results["show_in_process_seconds"] = in_process_seconds(showing, options.rounds)
    results["last_error_in_process_seconds"] = in_process_seconds(
        lambda: get_last_error(ledger=path), options.rounds)
    results["verify_whole_small_ledger_seconds"] = in_process_seconds(
        lambda: verify(small), options.rounds)
    results["small_ledger_entries"] = FULL_CHECK_UP_TO
    reads = ("executions", "show", "last_error", *far)
    for name in reads:
        results[f"{name}_process_ratio_to_baseline"] = round(
            results[f"{name}_process_seconds"] / baseline, 2)

    print(f"ledger: {options.entries:,} entries, built in {built:.0f} s")
    print(f"{'read':<34}{'seconds':>10}{'x baseline':>12}")
    print(f"{'baseline: import the OTel SDK':<34}{baseline:>10.3f}{1:>12.2f}")
    for name in reads:
        print(f"{'execaudit ' + name.replace('_', '-') + ' (process)':<34}"
              f"{results[name + '_process_seconds']:>10.3f}"
              f"{results[name + '_process_ratio_to_baseline']:>12.2f}")
    for name in ("executions", "show", "last_error"):
        print(f"{name.replace('_', '-') + ' (in process)':<34}"
              f"{results[name + '_in_process_seconds']:>10.3f}")
    print(f"{'verify whole, ' + format(FULL_CHECK_UP_TO, ',') + ' entries':<34}"
          f"{results['verify_whole_small_ledger_seconds']:>10.3f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for file in directory.iterdir():
        file.unlink()
    directory.rmdir()
    slow = [name for name in reads if results[f"{name}_process_seconds"] >= FLOOR_SECONDS]
    if slow and options.entries >= 1_000_000:
        print(f"FLOOR MISSED: {', '.join(slow)} took {FLOOR_SECONDS} s or more")
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OTEL_SDK_DISABLED", "true")
    sys.exit(main())
