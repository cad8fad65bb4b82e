"""The sensors that watch the nights: severe drift asks for a retrain; a failed run becomes an incident."""

import dagster as dg

from credit_dagster.core import settings
from credit_dagster.core.keys import DRIFT
from credit_dagster.core.resources import Warehouse
from credit_dagster.core.warehouse import WarehouseBusy
from credit_dagster.model.jobs import train_model
from credit_dagster.monitoring import incidents


@dg.sensor(job=train_model, minimum_interval_seconds=3600, default_status=dg.DefaultSensorStatus.STOPPED)
def drift_retraining_sensor(context: dg.SensorEvaluationContext):
    """Requests retraining when the last CREDIT_RETRAIN_NIGHTS (3) drift reports all had a PSI of
    CREDIT_RETRAIN_PSI (0.25) or more above its noise floor, on a feature or the score. Off by
    default: start it in the UI."""
    configured = settings.current()
    nights, bound = configured.retrain_nights, configured.retrain_psi
    events = context.instance.fetch_materializations(DRIFT, limit=nights).records
    severe = [e for e in events if e.asset_materialization and
              max(e.asset_materialization.metadata["max_feature_psi_excess"].value,
                  e.asset_materialization.metadata["score_psi_excess"].value) >= bound]
    if len(events) == nights and len(severe) == nights:
        return dg.RunRequest(run_key=f"drift-{events[0].storage_id}")
    return dg.SkipReason(f"{len(severe)} of the last {len(events)} nights with PSI >= {bound}")


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
def incident_sensor(context: dg.RunFailureSensorContext) -> None:
    """Each failed run launched from the UI, the schedule or a sensor becomes one line of
    `monitoring.incidents` (job, partition, step, reason) and an error in the daemon's log.
    (Runs of the `credit-dagster` CLI record their own.) It never waits for the warehouse: the
    sensor runs in the code server, and a daemon waiting on it could not stop."""
    steps = context.get_step_failure_events()
    step = steps[0].step_key if steps else None
    reason = incidents.root_cause(steps[0].event_specific_data.error) if steps else context.failure_event.message
    run = context.dagster_run
    partition = run.tags.get("dagster/partition")
    context.log.error(f"run {run.run_id[:8]} of {run.job_name} {partition or ''} failed at {step}: {reason}")
    incident = {"run_id": run.run_id, "job": run.job_name, "partition_key": partition, "step": step, "reason": reason,
                "origin": "dagster daemon"}
    try:
        with Warehouse().connect(wait=False) as con:
            incidents.record(con, **incident)
    except WarehouseBusy as busy:
        path = incidents.keep_for_later(**incident)
        context.log.warning(f"{busy}: incident kept in {path}, folded into monitoring.incidents by the next night")
