"""Ledger benchmark: canonicalisation, append cost per durability mode, verification speed.

Run from the repository root::

    python -m benchmarks.bench_ledger            # 1,000,000 entries verified
    python -m benchmarks.bench_ledger --verify-entries 100000

Prints a table and writes benchmarks/results/ledger.json.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import tempfile
import time
import timeit

import rfc8785

from otel_execaudit.ledger.canonical import canonical_bytes
from otel_execaudit.ledger.store import Ledger
from otel_execaudit.ledger.verify import verify

RESULTS = pathlib.Path(__file__).with_name("results") / "ledger.json"


def fields(number: int, *, with_float: bool = False) -> dict:
    """A typical ~450-byte step entry."""
    data = {
        "step": "apply_terraform",
        "index": number,
        "status": "ok",
        "attempt": 1,
        "result": {"changed": True, "resources": 12},
        "note": "applied cleanly",
    }
    if with_float:
        data["duration_ms"] = 12.375
    return {
        "kind": "step.completed",
        "ts": "2026-11-22T03:07:19.123456Z",
        "execution_id": "exec-0f8fad5b-d9cb-469f-a165-70867728950e",
        "plan_id": "deploy-infra",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331",
        "data": data,
    }


def microseconds(function, number: int) -> float:
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6


def bench_canonical() -> dict:
    entry = {**fields(3), "format": 1, "seq": 123456, "prev": "ab" * 32}
    with_float = {**fields(3, with_float=True), "format": 1, "seq": 123456, "prev": "ab" * 32}
    return {
        "entry_bytes": len(canonical_bytes(entry)),
        "canonical_us": microseconds(lambda: canonical_bytes(entry), 100_000),
        "canonical_with_float_us": microseconds(lambda: canonical_bytes(with_float), 20_000),
        "rfc8785_reference_us": microseconds(lambda: rfc8785.dumps(entry), 5_000),
    }


def bench_append(directory: pathlib.Path, durability: str, count: int) -> dict:
    prepared = [fields(number) for number in range(count)]
    clock = time.perf_counter
    timings = []
    with Ledger(directory / f"append-{durability}.db", durability=durability) as ledger:
        started = clock()
        for item in prepared:
            before = clock()
            ledger.append(item)
            timings.append(clock() - before)
        ledger.sync()
        elapsed = clock() - started
    return {
        "durability": durability,
        "appends": count,
        "median_us": statistics.median(timings) * 1e6,
        "mean_us": elapsed / count * 1e6,
        "p99_us": sorted(timings)[int(count * 0.99)] * 1e6,
        "appends_per_second": count / elapsed,
    }


def bench_verify(directory: pathlib.Path, count: int) -> dict:
    path = directory / "verify.db"
    with Ledger(path, durability="off") as ledger:
        for number in range(count):
            ledger.append(fields(number))
    started = time.perf_counter()
    report = verify(path)
    elapsed = time.perf_counter() - started
    assert report.ok and report.entries == count, report
    started = time.perf_counter()
    strict_report = verify(path, strict=True)
    strict_elapsed = time.perf_counter() - started
    assert strict_report.ok
    return {
        "entries": count,
        "file_mb": path.stat().st_size / 1e6,
        "verify_seconds": elapsed,
        "verify_entries_per_second": count / elapsed,
        "strict_entries_per_second": count / strict_elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=100_000)
    parser.add_argument("--full-appends", type=int, default=1_000)
    parser.add_argument("--verify-entries", type=int, default=1_000_000)
    options = parser.parse_args()
    results: dict = {"canonical": bench_canonical(), "append": [], "verify": None}
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as temporary:
        directory = pathlib.Path(temporary)
        for durability, count in (("batch", options.appends), ("off", options.appends), ("full", options.full_appends)):
            results["append"].append(bench_append(directory, durability, count))
        results["verify"] = bench_verify(directory, options.verify_entries)

    canonical = results["canonical"]
    print(f"canonical_bytes ({canonical['entry_bytes']}-byte entry)")
    print(f"  fast path            {canonical['canonical_us']:8.2f} µs")
    print(f"  with a float         {canonical['canonical_with_float_us']:8.2f} µs")
    print(f"  rfc8785.dumps        {canonical['rfc8785_reference_us']:8.2f} µs")
    print()
    print(f"{'durability':<10} {'appends':>8} {'median µs':>10} {'mean µs':>9} {'p99 µs':>9} {'appends/s':>11}")
    for row in results["append"]:
        print(
            f"{row['durability']:<10} {row['appends']:>8} {row['median_us']:>10.2f} {row['mean_us']:>9.2f}"
            f" {row['p99_us']:>9.1f} {row['appends_per_second']:>11,.0f}"
        )
    verified = results["verify"]
    print()
    print(
        f"verify {verified['entries']:,} entries ({verified['file_mb']:.0f} MB): {verified['verify_seconds']:.2f} s, "
        f"{verified['verify_entries_per_second']:,.0f} entries/s (strict: {verified['strict_entries_per_second']:,.0f}/s)"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {RESULTS.relative_to(pathlib.Path.cwd()) if RESULTS.is_relative_to(pathlib.Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()
