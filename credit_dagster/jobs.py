"""Jobs, the nightly schedule, and the sensors that watch for late drops and severe drift."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from credit_dagster.core import settings
from credit_dagster.core.keys import DRIFT, SNAPSHOT
from credit_dagster.core.resources import Warehouse, WarehouseBusy
from credit_dagster.monitoring import incidents
from credit_dagster.nightly import drops, partitions

# a run under way (Dagster's own list of these, IN_PROGRESS_RUN_STATUSES, is private; a test compares)
IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
               dg.DagsterRunStatus.SUSPENDED]

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
    partitions_def=partitions.drop_days,
    description="Load the day's drop, build its features, score it with the champion, watch drift, publish the snapshot.",
)


def empty_business_days(inbox: Path, day: date) -> int:
    """Weekdays in a row, up to `day`, with no drop in the inbox."""
    count = 0
    while count < 31:
        if day.weekday() < 5:
            if drops.has_drop(inbox, day.isoformat()):
                break
            count += 1
        day -= timedelta(days=1)
    return count


@dg.schedule(job=nightly_scoring, cron_schedule=f"{drops.NIGHT.minute} {drops.NIGHT.hour} * * *",
             execution_timezone=str(drops.TIMEZONE), name="nightly_scoring_schedule",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def nightly_schedule(context: dg.ScheduleEvaluationContext):
    """Scores the drop of the day that just ended, adding the day to the partitions. A night
    without a drop (a weekend, a holiday) is a skipped tick saying so, not a failed run and no
    partition; CREDIT_EMPTY_DAYS_ALERT (3) weekdays in a row without one log an error."""
    day = context.scheduled_execution_time.astimezone(drops.TIMEZONE).date() - timedelta(days=1)
    inbox = drops.inbox_dir()
    if drops.has_drop(inbox, day.isoformat()):
        partitions.register(context.instance, [day.isoformat()])
        return dg.RunRequest(partition_key=day.isoformat(), run_key=f"nightly-{day.isoformat()}")
    empty = empty_business_days(inbox, day)
    alert = settings.current().empty_days_alert
    message = f"no drop for {day} in {inbox}: nothing to score ({empty} weekday(s) in a row without a drop)"
    if empty >= alert:
        context.log.error(f"{message}: check the feed that fills the inbox")
    return dg.SkipReason(message)


# the schedule's run gets an hour to start before the late-drop sensor takes a drop as late
LATE_AFTER = timedelta(hours=1)


def is_late(day: str, now: datetime) -> bool:
    """The day's nightly tick (02:00 the next morning) is over by LATE_AFTER: a drop still unscored
    then is late (earlier, the schedule scores it and a sensor run would do the work twice)."""
    tick = datetime.combine(date.fromisoformat(day) + timedelta(days=1), drops.NIGHT, drops.TIMEZONE)
    return now >= tick + LATE_AFTER


@dg.sensor(job=nightly_scoring, minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING)
def late_drop_sensor(context: dg.SensorEvaluationContext):
    """Adds every drop in the inbox to the partitions (so the UI shows what is missing) and scores
    the nights that are due and unscored: a drop that arrived after its night's tick, or a night
    that failed after scoring (no published snapshot). The same days as the schedule's: folders
    YYYY-MM-DD holding an application file, for days that have ended."""
    inbox = drops.inbox_dir()
    days, strays = drops.days_in_inbox(inbox)
    if strays:
        context.log.warning(f"not drops, ignored in {inbox}: {', '.join(strays[:10])} (a drop is a folder YYYY-MM-DD)")
    days = [day for day in days if day < drops.today().isoformat()]
    new = partitions.missing(context.instance, days)
    added = [partitions.drop_days.build_add_request(new)] if new else []
    # a night counts as done when its snapshot is published; one still running is left alone
    scored = context.instance.get_materialized_partitions(SNAPSHOT) if days else set()
    running = {record.dagster_run.tags.get("dagster/partition") for record in context.instance.get_run_records(
        dg.RunsFilter(job_name=nightly_scoring.name, statuses=IN_PROGRESS))}
    requests = []
    for day in [d for d in days if d not in scored and d not in running and is_late(d, datetime.now(UTC))]:
        latest = max(p.stat().st_mtime for p in (inbox / day).iterdir())
        requests.append(dg.RunRequest(partition_key=day, run_key=f"late-drop-{day}-{int(latest)}"))
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=added,
                           skip_reason=None if requests else f"{len(days)} drops in {inbox}, none due and unscored")


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
