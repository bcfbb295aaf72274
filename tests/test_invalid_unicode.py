"""Text that is not valid Unicode never stops an execution.

A lone surrogate (what ``os.fsdecode`` gives for a file name that is not UTF-8) reaches the
recorder in details, names, messages and captured arguments; each is recorded with U+FFFD in its
place and the redactor's marker, and the ledger still verifies.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from otel_execaudit import (
    AdapterRegistry,
    ExecutionStatus,
    Executor,
    LedgerWriteError,
    PlanError,
    ResultStatus,
    SideEffectCategory,
    execution,
    step,
    verify,
)

MARKED = "\ufffd[replaced 1 invalid chars]"  # one lone surrogate, as the redactor records it


def _entry(capture, kind):
    matching = [fields for fields in capture.fields() if fields["kind"] == kind]
    assert len(matching) == 1, [fields["kind"] for fields in capture.fields()]
    return matching[0]


def _assert_recorded_validly(capture):
    """The ledger verifies, and spans carry only text that UTF-8 can hold."""
    capture.runtime.ledger.sync()
    assert verify(capture.ledger_path).ok
    for span in capture.spans():
        json.dumps([span.name, dict(span.attributes or {}),
                    [(event.name, dict(event.attributes or {})) for event in span.events]],
                   ensure_ascii=False).encode("utf-8")


def test_a_lone_surrogate_in_step_details_keys_and_values(execaudit_capture):
    with execution("details") as ex:
        with ex.step("read", details={"name": "\ud800", "\udcff": "key"}) as st:
            st.set_output(**{"size": 3, "\ud801": "\ud802"})
            st.event("listed", entry="\udc80")
    assert ex.status is ExecutionStatus.COMPLETED
    started = _entry(execaudit_capture, "step.started")["data"]["details"]
    assert started == {"name": MARKED, MARKED: "key"}
    completed = _entry(execaudit_capture, "step.completed")["data"]["details"]
    assert completed == {"size": 3, MARKED: MARKED}
    assert _entry(execaudit_capture, "step.note")["data"]["details"] == {"entry": MARKED}
    assert ex.record.step_events[0].details == started
    _assert_recorded_validly(execaudit_capture)


def test_a_lone_surrogate_in_a_step_name(execaudit_capture):
    with execution("names") as ex:
        with ex.step("open \ud800"):
            pass
    assert ex.status is ExecutionStatus.COMPLETED
    assert _entry(execaudit_capture, "step.started")["data"]["step_name"] == "open " + MARKED
    assert "execute_tool open " + MARKED in [span.name for span in execaudit_capture.spans()]
    _assert_recorded_validly(execaudit_capture)


def test_a_lone_surrogate_in_the_plan_id_execution_id_and_details(execaudit_capture):
    with execution("plan-\ud800", execution_id="run-\udcff",
                   details={"ticket": "\ud800"}) as ex:
        with ex.step("only"):
            pass
    assert ex.status is ExecutionStatus.COMPLETED
    assert (ex.record.plan_id, ex.execution_id) == ("plan-" + MARKED, "run-" + MARKED)
    started = _entry(execaudit_capture, "execution.started")
    assert (started["plan_id"], started["execution_id"]) == ("plan-" + MARKED, "run-" + MARKED)
    assert started["data"]["details"] == {"ticket": MARKED}
    _assert_recorded_validly(execaudit_capture)


def test_an_exception_message_with_a_lone_surrogate(execaudit_capture):
    with pytest.raises(ValueError) as raised, execution("fails") as ex:
        with ex.step("parse"):
            raise ValueError("\ud800")
    assert str(raised.value) == "\ud800"  # the caller's exception is left as it was
    assert ex.status is ExecutionStatus.FAILED
    failed = _entry(execaudit_capture, "step.failed")["data"]
    assert failed["error_message"] == MARKED
    # The marker ends the text it fixed, so it follows the traceback's last line.
    assert failed["traceback"].endswith("ValueError: \ufffd\n[replaced 1 invalid chars]")
    assert _entry(execaudit_capture, "execution.ended")["data"]["reason"] == MARKED
    _assert_recorded_validly(execaudit_capture)


@pytest.mark.skipif(sys.getfilesystemencodeerrors() != "surrogateescape",
                    reason="os.fsdecode escapes undecodable bytes only on POSIX")
def test_a_captured_file_name_that_is_not_utf8(execaudit_capture):
    @step(capture=["path"])
    def read(path):
        return len(path)

    path = os.fsdecode(b"\xff.txt")
    assert path == "\udcff.txt"  # the input this test is about
    with execution("files") as ex:
        assert read(path) == 5  # the function gets the name exactly as it was given
    assert ex.status is ExecutionStatus.COMPLETED
    started = _entry(execaudit_capture, "step.started")["data"]["details"]
    assert started == {"arguments": {"path": "\ufffd.txt[replaced 1 invalid chars]"}}
    _assert_recorded_validly(execaudit_capture)


def test_a_side_effect_description_with_a_lone_surrogate(execaudit_capture):
    with execution("effects") as ex:
        with ex.step("delete") as st:
            st.side_effect(SideEffectCategory.FILE_SYSTEM, "deleted \udcff.txt",
                           reversible=False, details={"\udcff": 1})
    assert ex.status is ExecutionStatus.COMPLETED
    recorded = _entry(execaudit_capture, "side_effect")["data"]
    description = "deleted \ufffd.txt[replaced 1 invalid chars]"
    assert (recorded["description"], recorded["details"]) == (description, {MARKED: 1})
    assert ex.record.side_effects_report.observed[0].description == description
    _assert_recorded_validly(execaudit_capture)


def test_an_exception_type_whose_qualified_name_holds_a_lone_surrogate(execaudit_capture):
    odd = type("Odd", (Exception,), {"__qualname__": "Odd\ud800"})
    with pytest.raises(odd), execution("odd-error") as ex:
        with ex.step("parse"):
            raise odd("boom")
    assert ex.status is ExecutionStatus.FAILED
    failed = _entry(execaudit_capture, "step.failed")["data"]
    assert failed["error_type"] == __name__ + ".Odd" + MARKED
    _assert_recorded_validly(execaudit_capture)


def test_a_data_plan_whose_params_hold_a_lone_surrogate(execaudit_capture):
    adapters = AdapterRegistry()
    seen = []

    @adapters.adapter("stat_file", read_only=True)
    def stat_file(context):
        seen.append(context.params["path"])
        return {"size": 0}

    plan = {"plan_id": "stat", "steps": [{"name": "stat", "action_type": "stat_file",
                                          "params": {"path": "\udcff.txt"}}]}
    result = Executor(adapters=adapters).run(plan, client_id=1)
    assert result.status is ResultStatus.SUCCESS
    assert seen == ["\udcff.txt"]  # the adapter acts on the exact name, only the record is fixed
    started = _entry(execaudit_capture, "step.started")["data"]["details"]
    assert started["params"] == {"path": "\ufffd.txt[replaced 1 invalid chars]"}
    _assert_recorded_validly(execaudit_capture)
    other = {"plan_id": "stat", "steps": [{"name": "stat", "action_type": "stat_file",
                                           "params": {"path": "\udcfe.txt"}}]}
    executor = Executor(adapters=adapters)  # two names the ledger records alike are two plans
    assert executor.plan_hash(plan, client_id=1) != executor.plan_hash(other, client_id=1)
