"""Retention's asset: once a day, each store's data past its period removed (policy.py), and what went in the metadata."""

from datetime import UTC, datetime

import dagster as dg

from credit_dagster.core import settings
from credit_dagster.core.keys import POOL
from credit_dagster.core.resources import Warehouse
from credit_dagster.nightly import drops
from credit_dagster.retention import policy

RETENTION = dg.AssetKey(["governance", "retention"])


@dg.asset(key=RETENTION, group_name="retention", pool=POOL, kinds={"duckdb"})
def retention(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Drops, decisions and access logs past their retention periods (CREDIT_RETENTION_*_DAYS)
    removed, recorded first in the retention journal so the audit chains still verify."""
    with warehouse.connect() as con:
        applied = policy.apply(con, drops.inbox_dir(), datetime.now(UTC).date())
    for where, n in applied.removed.items():
        context.log.info(f"retention: {n:,} removed from {where}")
    return dg.MaterializeResult(metadata={"oldest_day_kept": applied.cutoffs, "removed": dict(applied.removed),
                                          "removed_total": sum(applied.removed.values()), "nights_retired": applied.nights_retired})


retention_job = dg.define_asset_job("retention", selection=dg.AssetSelection.assets(RETENTION), executor_def=dg.in_process_executor,
                                    description="Remove what each store holds past its retention period (idempotent).")
retention_schedule = dg.ScheduleDefinition(job=retention_job, cron_schedule=settings.current().retention_cron, execution_timezone="Europe/Paris",
                                           default_status=dg.DefaultScheduleStatus.RUNNING)
