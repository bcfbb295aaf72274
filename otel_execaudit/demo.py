"""The bundled example: a release pipeline recorded twice, once cleanly and once failing.

The steps only pretend to touch the world; what they record is real. Run it with
``execaudit demo`` (or ``make demo``)::

    >>> import otel_execaudit, tempfile, os
    >>> _ = otel_execaudit.configure(ledger=os.path.join(tempfile.mkdtemp(), "l.db"),
    ...                              exporter="none")
    >>> [record.status.value for record in run_demo()]
    ['completed', 'completed_partial']
    >>> otel_execaudit.shutdown()
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_execaudit.instrument import execution
from otel_execaudit.records import ExecutionRecord, SideEffectCategory


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
