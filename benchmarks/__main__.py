"""Run every benchmark: ``python -m benchmarks`` (``make bench``)."""

import runpy
import sys

for name in ("bench_overhead", "bench_exit", "bench_ledger"):
    print(f"\n== benchmarks.{name}", flush=True)
    sys.argv = [name]
    runpy.run_module(f"benchmarks.{name}", run_name="__main__")
