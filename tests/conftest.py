# Scripts that tests run as subprocesses are not test modules (nor doctest sources).
collect_ignore_glob = ["telemetry_scripts/*", "ledger_worker.py"]
