"""The Dagster code location: wiring only (assets, checks, jobs and resources meet here).

`build` gives the definitions for the settings it is given, so both storages' graphs (the
warehouse file, or the Parquet datasets in shards) come from one function with no branching at
import; `defs`, what `dagster` and the code server load, is built from the environment's settings.
"""

import dagster as dg

from credit_dagster.core import settings
from credit_dagster.core.resources import SourceData, Warehouse
from credit_dagster.features.assets import feature_checks, feature_dictionary, sql_assets
from credit_dagster.ingest.assets import raw_assets, raw_data_profile
from credit_dagster.ingest.checks import raw_checks
from credit_dagster.model.assets import champion_model, credit_model, model_card_report, model_checks
from credit_dagster.model.jobs import build_all, train_model
from credit_dagster.model.resources import ModelStore
from credit_dagster.monitoring.assets import monitoring_assets, monitoring_checks
from credit_dagster.monitoring.sensors import drift_retraining_sensor, incident_sensor
from credit_dagster.nightly.assets import nightly_checks
from credit_dagster.nightly.schedules import night
from credit_dagster.nightly.shard_assets import night_assets
from credit_dagster.outcomes.assets import backtest_job, backtest_schedule, outcome_assets, outcome_checks
from credit_dagster.outcomes.sensors import performance_retraining_sensor
from credit_dagster.retention.assets import retention, retention_job, retention_schedule
from credit_dagster.review.assets import review_assets, review_checks, review_job, review_schedule
from credit_dagster.serving.assets import ondemand_audit_job, ondemand_audit_schedule, serving_assets, serving_checks


def build(configured: settings.Settings) -> dg.Definitions:
    the_night = night(configured)
    return dg.Definitions(
        # by stage: ingest -> features -> model -> nightly -> monitoring -> review -> serving -> outcomes -> retention
        assets=the_night.follow([*raw_assets, raw_data_profile, *sql_assets, feature_dictionary, credit_model, champion_model,
                                 model_card_report, *night_assets(configured.storage, configured.shards), *monitoring_assets,
                                 *review_assets, *serving_assets, *outcome_assets, retention]),
        asset_checks=[*raw_checks, *feature_checks, *model_checks, *nightly_checks, *monitoring_checks, *review_checks,
                      *serving_checks, *outcome_checks],
        jobs=[build_all, train_model, *the_night.jobs, review_job, ondemand_audit_job, backtest_job, retention_job],
        schedules=[the_night.schedule, review_schedule, ondemand_audit_schedule, backtest_schedule, retention_schedule],
        sensors=[*the_night.sensors, drift_retraining_sensor, incident_sensor, performance_retraining_sensor],
        resources={"warehouse": Warehouse(), "source": SourceData(), "models": ModelStore()},
        # Runs of assets launched from the UI or by the automation (a sharded night's shards) use the
        # night's executor (CREDIT_EXECUTOR: in their run's process, or on Celery workers); the jobs
        # above name their own. One process writes the warehouse: DuckDB allows a single writer, and
        # runs are further serialized by the `duckdb_writer` pool (limit 1 in DAGSTER_HOME/dagster.yaml).
        executor=the_night.executor,
    )


defs = build(settings.current())
