"""The nightly flow on the Parquet datasets (CREDIT_STORAGE=datasets): the night's drop landed and
split by applicant shard, each shard scored as its own partition of `scoring/scored_shards`
(partitioned by night x shard, so a shard is its own run on any worker, shown, re-run and
backfilled alone), then the night published once every shard is in. The schedule, the late-drop
sensor and the UI launch the landing; the shards, the publish step, drift and the serving snapshot
follow by declarative automation (`partitions.after_the_drop`, the daemon's `night_automation`
sensor); `credit-dagster score` runs the same runs one after another in its own process.
"""

from contextlib import closing

import dagster as dg

from credit_dagster.core import datasets, seals, settings
from credit_dagster.core.keys import CHAMPION, DROP, POOL, SCORED, SHARDS, WAREHOUSE_QUEUE
from credit_dagster.core.resources import Warehouse
from credit_dagster.ingest.assets import IngestConfig
from credit_dagster.model.resources import ModelStore
from credit_dagster.nightly import drops, partitions, shards
from credit_dagster.nightly.assets import drop_result, nightly_assets


@dg.asset(key=DROP, group_name="nightly", partitions_def=partitions.drop_days, kinds={"parquet", "csv"})
def landed_drop(context: dg.AssetExecutionContext, config: IngestConfig) -> dg.MaterializeResult:
    """The day's drop with the raw-ingestion gates and quarantine, written as the drop_* datasets
    by night and applicant shard (no warehouse: any worker that sees the inbox can land it)."""
    location, n_shards = datasets.root(), settings.current().shards
    for left in datasets.sweep_staging(location):
        context.log.warning(f"removed {left} from the datasets' staging folder: a write killed half-way left it")
    with closing(shards.connect(location)) as con:
        loaded = shards.land(con, location, drops.inbox_dir(), context.partition_key, n_shards, config.reject_share())
        return drop_result(context, con, loaded, datasets=location, shards=n_shards)


def sharded_assets(n_shards: int) -> list[dg.AssetsDefinition]:
    """The landing, the scoring of each (night, shard) partition and the publish step of a sharded night."""

    @dg.asset(key=SHARDS, group_name="nightly", partitions_def=partitions.night_shards(n_shards),
              deps=[dg.AssetDep(DROP, partition_mapping=partitions.BY_NIGHT), CHAMPION],
              automation_condition=partitions.after_the_drop(), kinds={"lightgbm", "parquet"})
    def scored_shards(context: dg.AssetExecutionContext, models: ModelStore) -> dg.MaterializeResult:
        """One applicant shard of a night: its drop rows, features, scores, reasons and
        counterfactuals, written to the night's and shard's partition of every table."""
        keys = context.partition_key.keys_by_dimension
        location, day, shard = datasets.root(), keys["night"], keys["shard"]
        model = models.registry().load("champion")
        with closing(shards.connect(location)) as con:
            scored = shards.score_shard(con, location, day, shard, model, context.run.run_id, context.log.info, context.log.warning)
        if scored is None:
            context.log.info(f"shard {shard} of night {day} holds no application")
            return dg.MaterializeResult(metadata={"dagster/row_count": 0})
        return dg.MaterializeResult(metadata={**scored.metadata(model), "partition": datasets.partition_path(
            location, "scored_applications", day, shard)})

    @dg.asset(key=SCORED, group_name="nightly", partitions_def=partitions.drop_days, pool=POOL, op_tags=WAREHOUSE_QUEUE,
              deps=[dg.AssetDep(SHARDS, partition_mapping=partitions.BY_NIGHT)], automation_condition=partitions.after_the_drop(),
              kinds={"duckdb", "parquet"})
    def scored_applications(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        """The night published once every applicant of its drop was scored exactly once, by its
        own shard: the warehouse's scoring tables are views on the datasets of every night."""
        day = context.partition_key
        with warehouse.connect() as con:
            counts = shards.publish(con, datasets.root(), day)
            sealed = [seals.seal(con, day, run) for run in seals.unsealed(con, day)]  # each shard's run, once it is published
            decisions = dict(con.execute("select decision, count(*) from scoring.scored_applications where partition_date = ? "
                                         "group by 1", [day]).fetchall())
        context.log.info(f"night {day}: {counts['scored']:,} applicants scored once each across {n_shards} shards")
        return dg.MaterializeResult(metadata={"dagster/row_count": counts["scored"], "decisions": decisions,
                                              "landed": counts["landed"], "shards": n_shards, "datasets": datasets.root(),
                                              "decision_audit_heads": {s["run_id"]: s["head"] for s in sealed},
                                              "decision_audit_rows_sealed": sum(s["rows"] for s in sealed)})

    return [landed_drop, scored_shards, scored_applications]


def night_assets(storage: str, n_shards: int) -> list[dg.AssetsDefinition]:
    """The nightly flow for a storage (CREDIT_STORAGE): into the warehouse file, or landed,
    scored in `n_shards` applicant shards and published on the Parquet datasets."""
    return nightly_assets if storage == "warehouse" else sharded_assets(n_shards)
