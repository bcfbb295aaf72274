"""Run every benchmark: ``python -m benchmarks`` (``make bench``). Exits non-zero when any
benchmark reports a floor it did not meet."""

import runpy
import sys

status = 0
for name in ("bench_overhead", "bench_exit", "bench_ledger", "bench_executor"):
    print(f"\n== benchmarks.{name}", flush=True)
    sys.argv = [name]
    try:
        runpy.run_module(f"benchmarks.{name}", run_name="__main__")
    except SystemExit as finished:  # a benchmark's own verdict; the others still run
        status = max(status, finished.code if isinstance(finished.code, int) else 1)
sys.exit(status)
