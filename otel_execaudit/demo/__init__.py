"""The bundled example: a release pipeline recorded twice, once cleanly and once failing, then
a plan run through the guarded executor (a dry run, a LIVE run the guards block, a pinned one).

The steps only pretend to touch the world; what they record is real. Run it with
``execaudit demo`` (or ``make demo``)::

    >>> import otel_execaudit, tempfile, os
    >>> _ = otel_execaudit.configure(ledger=os.path.join(tempfile.mkdtemp(), "l.db"),
    ...                              exporter="none")
    >>> [(record.live_mode_state, record.status.value) for record in run_demo()]
    [('LIVE', 'completed'), ('LIVE', 'failed')]
    >>> [result.status.value for result in run_guarded_demo()]
    ['SUCCESS', 'BLOCKED', 'SUCCESS']
    >>> otel_execaudit.shutdown()
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_execaudit.executor.adapters import ActionOutcome, AdapterRegistry
from otel_execaudit.executor.executor import Executor
from otel_execaudit.recording.instrument import execution
from otel_execaudit.recording.records import ExecutionRecord, SideEffectCategory
from otel_execaudit.executor.results import ExecutionResult


class MigrationError(RuntimeError):
    """What the second demo run's migration step raises."""


@dataclass(frozen=True)
class DemoStep:
    name: str
    category: SideEffectCategory
    effect: str
    reversible: bool


STEPS = (
    DemoStep("fetch_manifest", SideEffectCategory.NETWORK,
             "GET https://releases.example.com/v2.4.0/manifest.json", True),
    DemoStep("write_config", SideEffectCategory.CONFIGURATION,
             "Wrote /etc/shop/feature-flags.yaml (checkout_v2: true)", True),
    DemoStep("snapshot_database", SideEffectCategory.FILE_SYSTEM,
             "Created /var/backups/shop-2026-11-22.sql.gz", True),
    DemoStep("migrate_database", SideEffectCategory.DATA_MUTATION,
             "ALTER TABLE orders DROP COLUMN legacy_status", False),
    DemoStep("notify_customers", SideEffectCategory.NETWORK,
             "Sent release e-mail to 1,204 customers", False),
)


def _migrate(fail: bool) -> None:
    if fail:
        raise MigrationError("column orders.legacy_status is referenced by view v_open_orders; "
                             "drop the view first (connection password=hunter2 was used)")


def run_release(*, fail_migration: bool) -> ExecutionRecord:
    """One recorded run of the release plan. A failing migration re-raises, as real code would;
    the demo catches it to show the record."""
    ex = execution("release-shop-v2.4.0", details={"release": "2.4.0", "environment": "staging",
                                                   "api_token": "tok_live_not_recorded"})
    try:
        with ex:
            for index, demo_step in enumerate(STEPS):
                with ex.step(demo_step.name, details={"attempt": 1}) as st:
                    st.declare(demo_step.category, demo_step.effect, demo_step.reversible)
                    if demo_step.name == "migrate_database":
                        _migrate(fail_migration)
                    st.side_effect(demo_step.category, demo_step.effect, demo_step.reversible)
                    st.set_output(ok=True, step=index)
    except MigrationError:
        pass
    return ex.record


def run_demo() -> tuple[ExecutionRecord, ExecutionRecord]:
    """Run the release plan twice: the first run completes, the second one's migration fails."""
    return run_release(fail_migration=False), run_release(fail_migration=True)


SCALE_PLAN = {
    "plan_id": "scale-checkout", "limits": {"actions": 20},
    "steps": [
        {"name": "read_replicas", "action_type": "describe_service",
         "params": {"service": "checkout"}},
        {"name": "scale_up", "action_type": "set_replicas",
         "params": {"service": "checkout", "replicas": 6},
         "side_effects": [{"category": "configuration", "reversible": True,
                           "description": "scale checkout from 3 to 6 replicas"}],
         "rollback": {"description": "scale checkout back to 3 replicas",
                      "actions": ["set_replicas checkout 3"]}},
    ],
}


def demo_adapters() -> AdapterRegistry:
    """Adapters that pretend to talk to an orchestrator."""
    adapters = AdapterRegistry()
    # It only reads, and says so: the one kind of step that runs for real in a dry run.
    adapters.adapter("describe_service", read_only=True)(lambda context: {"replicas": 3})

    @adapters.adapter("set_replicas", simulate=lambda context: (
        f"set {context.params['service']} to {context.params['replicas']} replicas"))
    def set_replicas(context):
        context.side_effect("configuration", f"{context.params['service']} scaled to "
                            f"{context.params['replicas']} replicas", reversible=True)
        return ActionOutcome.success("scaled", replicas=context.params["replicas"])

    return adapters


def run_guarded_demo() -> tuple[ExecutionResult, ExecutionResult, ExecutionResult]:
    """The scale-up plan: a dry run, a LIVE run without acknowledgement (blocked), and a LIVE
    run acknowledged and pinned to the dry run's plan hash."""
    executor = Executor(adapters=demo_adapters())
    dry = executor.run(SCALE_PLAN, client_id=1)
    blocked = executor.run(SCALE_PLAN, client_id=1, mode="LIVE")
    live = executor.run(SCALE_PLAN, client_id=1, mode="LIVE", acknowledge_risk=True,
                        validated=True, validation_passed=True, plan_hash=dry.plan_hash)
    return dry, blocked, live
