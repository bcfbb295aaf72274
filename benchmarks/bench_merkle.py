"""Merkle tree benchmark: a root from scratch, CompactRange appends with a root after each, and
plain hashlib SHA-256 over the same number of 65-byte inputs as the reference in the same run.

Run from the repository root::

    python -m benchmarks.bench_merkle                  # 1,000,000 leaves
    python -m benchmarks.bench_merkle --leaves 100000

Prints a table; each timing is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import hashlib
import time

from otel_execaudit.ledger.merkle import CompactRange, root


def best(function, repeat: int) -> float:
    """The shortest wall time of ``repeat`` calls, in seconds."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return min(timings)


def append_with_roots(leaves: list[bytes]) -> None:
    frontier = CompactRange()
    append, current_root = frontier.append, frontier.root
    for leaf in leaves:
        append(leaf)
        current_root()


def append_only(leaves: list[bytes]) -> None:
    CompactRange().extend(leaves)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    count, repeat = options.leaves, options.repeat

    leaves = [hashlib.sha256(b"\x00" + number.to_bytes(8, "big")).digest() for number in range(count)]
    inputs = [b"\x01" + leaf + leaf for leaf in leaves]  # 65 bytes, the size of an inner node's input
    sha256 = hashlib.sha256

    reference = best(lambda: [sha256(data).digest() for data in inputs], repeat)
    from_scratch = best(lambda: root(leaves), repeat)
    with_roots = best(lambda: append_with_roots(leaves), repeat)
    appends = best(lambda: append_only(leaves), repeat)

    frontier = CompactRange()
    frontier.extend(leaves)
    assert frontier.root() == root(leaves)

    hash_us, leaf_us, append_us = (seconds / count * 1e6 for seconds in (reference, with_roots, appends))
    print(f"{count:,} leaves, best of {repeat}")
    print(f"  {'hashlib SHA-256 of 65-byte inputs':<40} {reference:6.3f} s      {hash_us:.3f} µs a hash (reference)")
    print(f"  {'root() from scratch':<40} {from_scratch:6.3f} s      {count / from_scratch:,.0f} leaves/s, "
          f"{from_scratch / reference:.2f}x the reference ({count - 1:,} node hashes)")
    print(f"  {'CompactRange.append, root() after each':<40} {leaf_us:6.3f} µs a leaf, {leaf_us / hash_us:.1f}x one hash")
    print(f"  {'CompactRange.append alone':<40} {append_us:6.3f} µs a leaf, {append_us / hash_us:.1f}x one hash")


if __name__ == "__main__":
    main()
