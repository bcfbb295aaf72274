"""A separate process that appends to a ledger, for the multi-process and crash tests.

Usage: python tests/ledger_worker.py MODE PATH [ARGUMENTS]
  append PATH COUNT TAG         append COUNT entries, then exit normally
  forever PATH                  append forever; after each sync print "committed N" on stdout
  read-only PATH                drop root to nobody, then try to append; print a JSON outcome
  size-limit PATH BYTES         cap the file size (RLIMIT_FSIZE), append until refused; print JSON
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys

from otel_execaudit.errors import LedgerWriteError
from otel_execaudit.ledger.store import Ledger


def fields(tag: str, number: int) -> dict:
    return {
        "kind": "step.completed",
        "ts": "2026-11-22T03:07:19.123456Z",
        "execution_id": f"exec-{tag}",
        "plan_id": "plan-worker",
        "trace_id": None,
        "span_id": None,
        "data": {"number": number, "pid": os.getpid()},
    }


def append(path: str, count: str, tag: str) -> None:
    with Ledger(path, lock_timeout=30) as ledger:
        for number in range(int(count)):
            ledger.append(fields(tag, number))


def forever(path: str) -> None:
    ledger = Ledger(path, batch_delay=0.01)
    appended = 0
    while True:
        ledger.append(fields("forever", appended))
        appended += 1
        if appended % 50 == 0:
            ledger.sync()
            print(f"committed {appended}", flush=True)


def read_only(path: str) -> None:
    if os.geteuid() == 0:
        # Root ignores file modes, so become an ordinary user (modules are already imported).
        os.setgid(65534)
        os.setuid(65534)
    try:
        ledger = Ledger(path)
    except LedgerWriteError as error:
        print(json.dumps({"stage": "open", "error": str(error)}))
        return
    try:
        ledger.append(fields("read-only", 0))
        ledger.sync()
    except LedgerWriteError as error:
        print(json.dumps({"stage": "append", "error": str(error)}))
        return
    print(json.dumps({"stage": "none", "error": None}))


def size_limit(path: str, limit: str) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of dying
    ledger = Ledger(path, durability="full")
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
    committed = 0
    try:
        while True:
            ledger.append(fields("size", committed))
            committed += 1
    except LedgerWriteError as error:
        print(json.dumps({"committed": committed, "error": str(error)}))


if __name__ == "__main__":
    mode, *arguments = sys.argv[1:]
    {"append": append, "forever": forever, "read-only": read_only, "size-limit": size_limit}[mode](*arguments)
