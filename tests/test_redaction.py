import json

from otel_execaudit.redaction import REDACTED, Limits, Redactor


def test_secret_keys_are_redacted_at_any_depth():
    value = {"user": "ada", "config": {"API_KEY": "k-123", "nested": [{"password": "p"}]},
             "Authorization": "Bearer x", "session_id": "s", "cookie": "c"}
    cleaned = Redactor().clean(value)
    assert cleaned["user"] == "ada"
    assert cleaned["config"]["API_KEY"] == REDACTED
    assert cleaned["config"]["nested"][0]["password"] == REDACTED
    assert cleaned["Authorization"] == REDACTED
    assert cleaned["session_id"] == REDACTED and cleaned["cookie"] == REDACTED


def test_user_patterns_extend_the_defaults():
    redactor = Redactor().with_keys([r"ssn", r"card[-_]?number"])
    cleaned = redactor.clean({"ssn": "123", "card_number": "4111", "token": "t", "city": "Oslo"})
    assert cleaned == {"ssn": REDACTED, "card_number": REDACTED, "token": REDACTED, "city": "Oslo"}


def test_secrets_inside_text_are_redacted():
    redactor = Redactor()
    assert "hunter2" not in redactor.clean_text("login failed: password=hunter2 for ada")
    assert "abcdef123" not in redactor.clean("Authorization: Bearer abcdef123456")
    assert "AKIAABCDEFGHIJKLMNOP" not in redactor.clean_text("key AKIAABCDEFGHIJKLMNOP leaked")


def test_cycles_unserialisable_and_hostile_values_never_raise():
    cyclic: dict = {"name": "loop"}
    cyclic["self"] = cyclic

    class Hostile:
        def __repr__(self):
            raise RuntimeError("no repr for you")

    class Unlistable(list):
        def __iter__(self):
            raise RuntimeError("nope")

    cleaned = Redactor().clean({"cycle": cyclic, "hostile": Hostile(), "odd": Unlistable([1]),
                                "bytes": b"\x00\x01", "set": {3, 1, 2}, "nan": float("nan")})
    json.dumps(cleaned)  # JSON-safe
    assert cleaned["cycle"]["self"] == "[cycle]"
    assert cleaned["hostile"].startswith("<unrepresentable Hostile")
    assert cleaned["odd"].startswith("[unrecordable Unlistable")
    assert cleaned["bytes"] == "<2 bytes>"
    assert cleaned["set"] == [1, 2, 3]
    assert cleaned["nan"] == "nan"


def test_huge_values_are_bounded_with_explicit_markers():
    limits = Limits(max_string=100, max_items=10, max_depth=3, max_total=1000)
    redactor = Redactor(limits=limits)
    cleaned = redactor.clean({"blob": "x" * 10_000, "items": list(range(1000)),
                              "deep": {"a": {"b": {"c": {"d": 1}}}}})
    assert cleaned["blob"].endswith("…[truncated 9900 chars]")
    assert len(cleaned["items"]) == 11 and cleaned["items"][-1] == "[truncated 990 items]"
    assert cleaned["deep"]["a"]["b"] == "[truncated: deeper than 3 levels]"
    huge = redactor.clean(["y" * 100] * 10 + ["z"] * 100)
    assert sum(len(item) for item in huge) < 1200  # the shared budget holds


def test_large_integers_become_exact_strings():
    assert Redactor().clean({"n": 2**64, "m": 5}) == {"n": str(2**64), "m": 5}


def test_capture_records_only_named_arguments_and_redacts_secret_names():
    captured = Redactor().capture(["order_id", "api_key"],
                                  {"order_id": 7, "api_key": "k", "card": "4111"})
    assert captured == {"order_id": 7, "api_key": REDACTED}


def test_logs_carry_the_same_redacted_values_as_the_ledger(execaudit_capture):
    import pytest as _pytest
    import structlog

    from otel_execaudit import execution

    with structlog.testing.capture_logs() as logged, _pytest.raises(RuntimeError):
        with execution("leaky") as ex:
            with ex.step("connect"):
                raise RuntimeError("connect failed: password=hunter2")
    failures = [event for event in logged if event["event"] == "step failed"]
    assert len(failures) == 1 and failures[0]["execution_id"] == ex.execution_id
    assert failures[0]["error"] == "connect failed: password=[REDACTED]"
    assert "hunter2" not in str(logged)
    failed = [entry for entry in execaudit_capture.fields() if entry["kind"] == "step.failed"][0]
    assert failed["data"]["error_message"] == "connect failed: password=[REDACTED]"


def test_without_structlog_configuration_logs_go_to_standard_error(capfd):
    import subprocess
    import sys

    script = ("from otel_execaudit.logs import get_logger; "
              "get_logger().warning('export failing', spans_failed=3)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout == ""
    assert "export failing" in result.stderr and "spans_failed=3" in result.stderr
