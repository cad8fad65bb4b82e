"""Jobs, the nightly schedule, and the sensors that watch for late drops and severe drift."""

import os
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from credit_dagster import drops, incidents
from credit_dagster.assets.scoring import DRIFT, SNAPSHOT, daily
from credit_dagster.resources import Warehouse

build_all = dg.define_asset_job(
    "build_all",
    selection=dg.AssetSelection.groups("raw", "features", "model"),
    description="Ingest the source files, check them, build features, train, validate and promote the model.",
)
train_model = dg.define_asset_job(
    "train_model", selection=dg.AssetSelection.groups("model"), description="Retrain, validate and maybe promote the model."
)
ondemand_audit_job = dg.define_asset_job(
    "ondemand_audit", selection=dg.AssetSelection.groups("api"),
    description="Fold the scoring API's audit files into scoring.ondemand_audit (idempotent).",
)
# hourly: the API's own files are the record of truth meanwhile (fsync'ed before each answer)
ondemand_audit_schedule = dg.ScheduleDefinition(job=ondemand_audit_job, cron_schedule="15 * * * *", execution_timezone="Europe/Paris",
                                                default_status=dg.DefaultScheduleStatus.RUNNING)
nightly_scoring = dg.define_asset_job(
    "nightly_scoring",
    selection=dg.AssetSelection.groups("scoring", "monitoring", "serving"),
    partitions_def=daily,
    description="Load the day's drop, build its features, score it with the champion, watch drift, publish the snapshot.",
)

def empty_business_days(inbox, day: date) -> int:
    """Weekdays in a row, up to `day`, with no drop in the inbox."""
    count = 0
    while count < 31:
        if day.weekday() < 5:
            if any((inbox / day.isoformat()).glob("application_test.csv*")):
                break
            count += 1
        day -= timedelta(days=1)
    return count


# 02:00 Europe/Paris every day, for the day that just ended (the partition of yesterday).
@dg.schedule(job=nightly_scoring, cron_schedule="0 2 * * *", execution_timezone="Europe/Paris",
             name="nightly_scoring_schedule", default_status=dg.DefaultScheduleStatus.RUNNING)
def nightly_schedule(context: dg.ScheduleEvaluationContext):
    """Scores yesterday's drop. A night without a drop (a weekend, a holiday) is a skipped tick,
    not a failed run; CREDIT_EMPTY_DAYS_ALERT (3) weekdays in a row without one log an error."""
    day = context.scheduled_execution_time.astimezone(ZoneInfo("Europe/Paris")).date() - timedelta(days=1)
    inbox = drops.inbox_dir()
    if any((inbox / day.isoformat()).glob("application_test.csv*")):
        return dg.RunRequest(partition_key=day.isoformat(), run_key=f"nightly-{day.isoformat()}")
    empty = empty_business_days(inbox, day)
    alert = int(os.environ.get("CREDIT_EMPTY_DAYS_ALERT", "3"))
    message = f"no drop for {day} in {inbox}: nothing to score ({empty} weekday(s) in a row without a drop)"
    if empty >= alert:
        context.log.error(f"{message}: check the feed that fills the inbox")
    return dg.SkipReason(message)


@dg.sensor(job=nightly_scoring, minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING)
def late_drop_sensor(context: dg.SensorEvaluationContext):
    """Scores a drop that arrived after its night's run, or completes a night that failed after
    scoring: a past day with a drop folder but no published snapshot."""
    inbox = drops.inbox_dir()
    if not inbox.is_dir():
        return dg.SkipReason(f"no inbox at {inbox}")
    keys = set(daily.get_partition_keys(dynamic_partitions_store=context.instance))
    # a night counts as done when its snapshot is published: a night that failed after scoring
    # (drift or snapshot) is run again, not skipped
    scored = context.instance.get_materialized_partitions(SNAPSHOT)
    requests = []
    for folder in sorted(inbox.iterdir()):
        day = folder.name
        if day in keys and day not in scored and any(folder.glob("application_test.csv*")):
            latest = max(p.stat().st_mtime for p in folder.iterdir())
            requests.append(dg.RunRequest(partition_key=day, run_key=f"late-drop-{day}-{int(latest)}"))
    return requests or dg.SkipReason("every drop in the inbox is scored")


@dg.sensor(job=train_model, minimum_interval_seconds=3600, default_status=dg.DefaultSensorStatus.STOPPED)
def drift_retraining_sensor(context: dg.SensorEvaluationContext):
    """Requests retraining when the last CREDIT_RETRAIN_NIGHTS (3) drift reports all had a PSI of
    CREDIT_RETRAIN_PSI (0.25) or more above its noise floor, on a feature or the score. Off by
    default: start it in the UI."""
    nights = int(os.environ.get("CREDIT_RETRAIN_NIGHTS", "3"))
    bound = float(os.environ.get("CREDIT_RETRAIN_PSI", "0.25"))
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
    (Runs of the `credit-dagster` CLI record their own.)"""
    steps = context.get_step_failure_events()
    step = steps[0].step_key if steps else None
    reason = incidents.root_cause(steps[0].event_specific_data.error) if steps else context.failure_event.message
    run = context.dagster_run
    partition = run.tags.get("dagster/partition")
    context.log.error(f"run {run.run_id[:8]} of {run.job_name} {partition or ''} failed at {step}: {reason}")
    with Warehouse().connect() as con:
        incidents.record(con, run_id=run.run_id, job=run.job_name, partition_key=partition, step=step, reason=reason,
                         origin="dagster daemon")
