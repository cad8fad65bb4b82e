"""The Dagster code location: wiring only (assets, checks, jobs and resources meet here)."""

import dagster as dg

from credit_dagster.assets.api import ondemand_audit
from credit_dagster.assets.features import feature_checks, feature_dictionary, sql_assets
from credit_dagster.assets.ingest import raw_assets, raw_data_profile
from credit_dagster.assets.model import champion_model, credit_model, model_card_report, model_checks
from credit_dagster.assets.scoring import scoring_assets, scoring_checks
from credit_dagster.checks.raw_checks import raw_checks
from credit_dagster.jobs import (
    build_all,
    drift_retraining_sensor,
    incident_sensor,
    late_drop_sensor,
    nightly_schedule,
    nightly_scoring,
    ondemand_audit_job,
    ondemand_audit_schedule,
    train_model,
)
from credit_dagster.resources import ModelStore, SourceData, Warehouse

defs = dg.Definitions(
    assets=[*raw_assets, raw_data_profile, *sql_assets, feature_dictionary, credit_model, champion_model, model_card_report, *scoring_assets,
            ondemand_audit],
    asset_checks=[*raw_checks, *feature_checks, *model_checks, *scoring_checks],
    jobs=[build_all, train_model, nightly_scoring, ondemand_audit_job],
    schedules=[nightly_schedule, ondemand_audit_schedule],
    sensors=[late_drop_sensor, drift_retraining_sensor, incident_sensor],
    resources={"warehouse": Warehouse(), "source": SourceData(), "models": ModelStore()},
    # One process writes the warehouse: DuckDB allows a single writer. Runs launched from the
    # UI are further serialized by the `duckdb_writer` pool (limit 1 in DAGSTER_HOME/dagster.yaml).
    executor=dg.in_process_executor,
)
