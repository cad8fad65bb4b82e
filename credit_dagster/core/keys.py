"""What the stages share: asset keys and the writer pool.

An asset's key is its table (`features/application_features` is `features.application_features`);
a stage names another stage's assets from here, never by importing its Dagster module.
"""

import dagster as dg

# DuckDB allows one writer process: every asset that writes the warehouse takes this pool (limit 1)
POOL = "duckdb_writer"
# ... and runs where the warehouse file is: on Celery (CREDIT_EXECUTOR=celery) such steps go to the
# `warehouse` queue, served by the worker on that machine (`credit-dagster worker --queue warehouse`)
WAREHOUSE_QUEUE = {"dagster-celery/queue": "warehouse"}

FEATURES = dg.AssetKey(["features", "application_features"])
LABELS = dg.AssetKey(["features", "application_labels"])
DICTIONARY = dg.AssetKey(["features", "feature_dictionary"])
CREDIT_MODEL = dg.AssetKey(["model", "credit_model"])
CHAMPION = dg.AssetKey(["model", "champion_model"])
DROP = dg.AssetKey(["scoring", "daily_drop"])
DAILY_FEATURES = dg.AssetKey(["scoring", "daily_features"])
SCORED = dg.AssetKey(["scoring", "scored_applications"])
SHARDS = dg.AssetKey(["scoring", "scored_shards"])  # CREDIT_STORAGE=datasets: a night's applicant shards
DRIFT = dg.AssetKey(["monitoring", "drift_report"])
SNAPSHOT = dg.AssetKey(["serving", "serving_snapshot"])
ONDEMAND_AUDIT = dg.AssetKey(["scoring", "ondemand_audit"])
REVIEW = dg.AssetKey(["review", "review_cases"])
OUTCOMES = dg.AssetKey(["outcomes", "loan_outcomes"])
BACKTEST_VINTAGES = dg.AssetKey(["outcomes", "backtest_vintages"])
BACKTEST_GRADES = dg.AssetKey(["outcomes", "backtest_grades"])
BACKTEST_OVERRIDES = dg.AssetKey(["outcomes", "backtest_overrides"])
