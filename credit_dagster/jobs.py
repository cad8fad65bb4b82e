"""Jobs: the end-to-end build that `credit-dagster run` and the UI launch."""

import dagster as dg

build_all = dg.define_asset_job(
    "build_all",
    selection=dg.AssetSelection.all(),
    description="Ingest the source files, check them, and build everything downstream, in dependency order.",
)
