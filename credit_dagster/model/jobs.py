"""The jobs that build and retrain the model: everything up to a champion."""

import dagster as dg

build_all = dg.define_asset_job(
    "build_all",
    selection=dg.AssetSelection.groups("ingest", "features", "model"),
    executor_def=dg.in_process_executor,
    description="Ingest the source files, check them, build features, train, validate and promote the model.",
)
train_model = dg.define_asset_job(
    "train_model", selection=dg.AssetSelection.groups("model"), executor_def=dg.in_process_executor,
    description="Retrain, validate and maybe promote the model.",
)
