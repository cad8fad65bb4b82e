"""The night's jobs, its schedule (02:00 unless CREDIT_NIGHTLY_CRON says otherwise) and sensors, built for the
settings given (`night`), and the sensor that scores late drops."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from credit_dagster.core import datasets, settings
from credit_dagster.core.keys import DRIFT, DROP, SCORED, SHARDS, SNAPSHOT
from credit_dagster.nightly import drops, partitions

# a run under way (Dagster's own list of these, IN_PROGRESS_RUN_STATUSES, is private; a test compares)
IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
               dg.DagsterRunStatus.SUSPENDED]
# a night already asked for: under way, or waiting in the run queue (a backfill's nights wait there)
ASKED_FOR = [dg.DagsterRunStatus.QUEUED, *IN_PROGRESS]


def celery_config(configured: settings.Settings) -> dict:
    """The Celery executor's config (dagster-celery), also written for the workers
    (`credit-dagster worker`). A task is acknowledged only once its step is done, and a worker
    takes one at a time, so a worker killed mid-shard hands its shard back to the queue and
    another worker runs it again. Each step runs in a child process of its own, so what a step
    held goes back with it: a worker's memory is one step's, not what a night's steps left behind
    in one long-lived child (measured in BENCHMARKS.md)."""
    return {"broker": configured.celery_broker, "backend": configured.celery_backend,
            "config_source": {"task_acks_late": True, "task_reject_on_worker_lost": True, "worker_prefetch_multiplier": 1,
                              "worker_max_tasks_per_child": 1}}


def night_executor(configured: settings.Settings) -> dg.ExecutorDefinition:
    """Where a night's steps run (CREDIT_EXECUTOR): in the run's process, or on Celery workers."""
    if configured.executor == "in_process":
        return dg.in_process_executor
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(configured), name="celery")


def night_retry_policy(configured: settings.Settings) -> dg.RetryPolicy | None:
    """On the Parquet datasets (CREDIT_STORAGE=datasets), a step that reads every night (the
    landing's already-scored check, drift, the snapshot) may list a file that another night's
    re-run replaces before the step opens it: plain Parquet files give no snapshot of a table.
    Such a step fails with "No such file" and is tried again. The warehouse's nights take turns
    through the writer pool and need no retry."""
    return dg.RetryPolicy(max_retries=2, delay=5) if configured.storage == "datasets" else None


NIGHT = dg.AssetSelection.groups("nightly", "monitoring") | dg.AssetSelection.assets(SNAPSHOT)  # not the API journal's fold: hourly
NIGHT_KEYS = {DROP, SHARDS, SCORED, DRIFT, SNAPSHOT}
# the night's jobs: one run on the warehouse; on the datasets the landing, then its shards and its publish step
NIGHTLY, NIGHT_SHARDS, NIGHT_PUBLISH = "nightly_scoring", "night_shards", "night_publish"
NIGHT_JOB_NAMES = {NIGHTLY, NIGHT_SHARDS, NIGHT_PUBLISH}


@dataclass(frozen=True)
class Night:
    """The night's jobs, schedule, sensors and executor for one storage and shard count."""

    sharded: bool  # on the Parquet datasets, in applicant shards (CREDIT_STORAGE=datasets)
    jobs: list  # of asset jobs (define_asset_job)
    schedule: dg.ScheduleDefinition
    sensors: list[dg.SensorDefinition]
    executor: dg.ExecutorDefinition

    def follow(self, assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
        """`assets` with, on the datasets, the night's later steps (drift, the snapshot) following
        its publish step by declarative automation (`partitions.after_the_drop`)."""
        if not self.sharded:
            return assets
        condition = partitions.after_the_drop()
        later = NIGHT_KEYS - {DROP, SHARDS, SCORED}
        return [a.map_asset_specs(lambda spec: spec.replace_attributes(automation_condition=condition) if spec.key in later else spec)
                if set(a.keys) & later else a for a in assets]


def night(configured: settings.Settings) -> Night:
    """The night as the settings ask for it: into the warehouse file, one run a night; or
    (CREDIT_STORAGE=datasets) landed, scored in CREDIT_SHARDS applicant shards and published,
    what follows the landing launched by the daemon's `night_automation` sensor."""
    executor, retry = night_executor(configured), night_retry_policy(configured)
    sharded = configured.storage == "datasets"
    nightly = dg.define_asset_job(
        NIGHTLY, selection=dg.AssetSelection.assets(DROP) if sharded else NIGHT, partitions_def=partitions.drop_days,
        executor_def=executor, op_retry_policy=retry,
        description="Load the day's drop, build its features, score it with the champion, watch drift, publish the snapshot "
        "(CREDIT_STORAGE=datasets: land the drop; its shards, the publish step, drift and the snapshot follow).")
    schedule = dg.ScheduleDefinition(
        name="nightly_scoring_schedule", job=nightly, cron_schedule=configured.nightly_cron, execution_fn=nightly_tick,
        execution_timezone=str(drops.TIMEZONE), default_status=dg.DefaultScheduleStatus.RUNNING,
        description=nightly_tick.__doc__)
    if not sharded:
        return Night(False, [nightly], schedule, [late_drop_sensor], executor)
    shards = dg.define_asset_job(
        NIGHT_SHARDS, selection=dg.AssetSelection.assets(SHARDS), partitions_def=partitions.night_shards(configured.shards),
        executor_def=executor, op_retry_policy=retry,
        description="Score one applicant shard of a landed night: its features, scores, reasons and counterfactuals.")
    publish = dg.define_asset_job(
        NIGHT_PUBLISH, selection=NIGHT - dg.AssetSelection.assets(DROP, SHARDS), partitions_def=partitions.drop_days,
        executor_def=executor, op_retry_policy=retry,
        description="Publish a night once each of its applicants was scored once by its shard; drift; the serving snapshot.")
    automation = dg.AutomationConditionSensorDefinition(
        "night_automation", target=NIGHT - dg.AssetSelection.assets(DROP), minimum_interval_seconds=10,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Scores the shards of a landed night, then publishes it (CREDIT_STORAGE=datasets).")
    return Night(True, [nightly, shards, publish], schedule, [late_drop_sensor, automation], executor)


def night_runs(day: str, configured: settings.Settings) -> list[tuple[str, str]]:
    """The runs of a night, in order, as (job, partition key): the night's one run, or on the
    datasets the landing, each shard, then the publish step with drift and the snapshot."""
    if configured.storage == "warehouse":
        return [(NIGHTLY, day)]
    return [(NIGHTLY, day), *[(NIGHT_SHARDS, dg.MultiPartitionKey({"night": day, "shard": shard}))
                              for shard in datasets.shard_names(configured.shards)], (NIGHT_PUBLISH, day)]


def of_the_night(run: dg.DagsterRun) -> bool:
    """A run of the nightly job, or one launched for a night's assets (the automation's)."""
    return run.job_name in NIGHT_JOB_NAMES or bool((run.asset_selection or set()) & NIGHT_KEYS)


def nights_under_way(instance: dg.DagsterInstance) -> set[str]:
    """The nights with a run queued or under way: of the nightly job, or one the automation
    launched for a night's assets (a shard's run carries its night as a tag of its own)."""
    return {record.dagster_run.tags.get("dagster/partition/night", record.dagster_run.tags.get("dagster/partition"))
            for record in instance.get_run_records(dg.RunsFilter(statuses=ASKED_FOR)) if of_the_night(record.dagster_run)}


def nights_between_runs(instance: dg.DagsterInstance, days: list[str]) -> set[str]:
    """Of `days`, the nights whose every run since their last landing succeeded: on the datasets
    the automation launches the next ones (the shards, then the publish step) on its next pass, so
    such a night is under way with no run queued for a few seconds; landing it again would score it
    twice. A night with a failed run since its landing is not: landing it again re-scores it."""
    waiting = set()
    for day in days:
        records = [r for tag in ("dagster/partition", "dagster/partition/night")
                   for r in instance.get_run_records(dg.RunsFilter(tags={tag: day})) if of_the_night(r.dagster_run)]
        landed = [r.create_timestamp for r in records
                  if r.dagster_run.job_name == NIGHTLY or DROP in (r.dagster_run.asset_selection or set())]
        since = [r for r in records if landed and r.create_timestamp >= max(landed)]
        if since and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in since):
            waiting.add(day)
    return waiting


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


def nightly_tick(context: dg.ScheduleEvaluationContext):
    """Scores the drop of the day that just ended, adding the day to the partitions, unless it is
    scored already (by the command line, say): its decisions stand. A night without a drop (a
    weekend, a holiday) is a skipped tick saying so, not a failed run and no partition;
    CREDIT_EMPTY_DAYS_ALERT (3) weekdays in a row without one log an error."""
    day = context.scheduled_execution_time.astimezone(drops.TIMEZONE).date() - timedelta(days=1)
    inbox = drops.inbox_dir()
    if drops.has_drop(inbox, day.isoformat()):
        if day.isoformat() in context.instance.get_materialized_partitions(SNAPSHOT):  # decisions made stay made
            return dg.SkipReason(f"night {day} is already scored: its decisions stand (`credit-dagster score --start {day} "
                                 "--rescore --reason ...` scores it again)")
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


@dg.sensor(job_name=NIGHTLY, minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING)
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
    # a night counts as done when its snapshot is published; one running or queued is left alone
    scored = context.instance.get_materialized_partitions(SNAPSHOT) if days else set()
    due = [day for day in days if day not in scored and is_late(day, datetime.now(UTC))]
    running = nights_under_way(context.instance) | nights_between_runs(context.instance, due)
    requests = []
    for day in [d for d in due if d not in running]:
        latest = max(p.stat().st_mtime for p in (inbox / day).iterdir())
        requests.append(dg.RunRequest(partition_key=day, run_key=f"late-drop-{day}-{int(latest)}"))
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=added,
                           skip_reason=None if requests else f"{len(days)} drops in {inbox}, none due and unscored")

