"""The nightly flow on the Parquet datasets (CREDIT_STORAGE=datasets): the drop landed and split
by applicant shard, one scoring step per shard, then the publish step. The night stays one run
(one partition of `drop_days`), so the schedule, the late-drop sensor, the CLI and run monitoring
treat it as they treat the warehouse night; its shard steps run side by side on any worker
(CREDIT_EXECUTOR), and a failed shard is re-run alone (re-execute from failure, or materialize
that shard's partition). Drift and the serving snapshot follow unchanged, on the whole night.
"""

from contextlib import closing

import dagster as dg

from credit_dagster.core import datasets, settings
from credit_dagster.core.keys import CHAMPION, DROP, POOL, SCORED, WAREHOUSE_QUEUE
from credit_dagster.core.resources import Warehouse
from credit_dagster.ingest.assets import IngestConfig
from credit_dagster.model.resources import ModelStore
from credit_dagster.nightly import drops, partitions, shards
from credit_dagster.nightly.assets import drop_result, nightly_assets


def shard_key(shard: str) -> dg.AssetKey:
    return dg.AssetKey(["scoring", f"scored_shard_{shard}"])


@dg.asset(key=DROP, group_name="scoring", partitions_def=partitions.drop_days, kinds={"parquet", "csv"})
def landed_drop(context: dg.AssetExecutionContext, config: IngestConfig) -> dg.MaterializeResult:
    """The day's drop with the raw-ingestion gates and quarantine, written as the drop_* datasets
    by night and applicant shard (no warehouse: any worker that sees the inbox can land it)."""
    location, n_shards = datasets.root(), settings.current().shards
    for left in datasets.sweep_staging(location):
        context.log.warning(f"removed {left} from the datasets' staging folder: a write killed half-way left it")
    with closing(shards.connect(location)) as con:
        loaded = shards.land(con, location, drops.inbox_dir(), context.partition_key, n_shards, config.max_reject_share)
        return drop_result(context, con, loaded, datasets=location, shards=n_shards)


def shard_asset(shard: str) -> dg.AssetsDefinition:
    """The scoring step of one applicant shard."""

    @dg.asset(key=shard_key(shard), group_name="scoring", partitions_def=partitions.drop_days, deps=[DROP, CHAMPION],
              kinds={"lightgbm", "parquet"})
    def scored_shard(context: dg.AssetExecutionContext, models: ModelStore) -> dg.MaterializeResult:
        location, day = datasets.root(), context.partition_key
        model = models.registry().load("champion")
        with closing(shards.connect(location)) as con:
            scored = shards.score_shard(con, location, day, shard, model, context.run.run_id, context.log.info, context.log.warning)
        if scored is None:
            context.log.info(f"shard {shard} of night {day} holds no application")
            return dg.MaterializeResult(metadata={"dagster/row_count": 0})
        return dg.MaterializeResult(metadata={**scored.metadata(model), "partition": datasets.partition_path(
            location, "scored_applications", day, shard)})

    return scored_shard


def sharded_assets(n_shards: int) -> list[dg.AssetsDefinition]:
    """The landing, the `n_shards` scoring steps and the publish step of a sharded night."""

    @dg.asset(key=SCORED, group_name="scoring", partitions_def=partitions.drop_days, pool=POOL, op_tags=WAREHOUSE_QUEUE,
              deps=[shard_key(s) for s in datasets.shard_names(n_shards)], kinds={"duckdb", "parquet"})
    def scored_applications(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        """The night published once every applicant of its drop was scored exactly once, by its
        own shard: the warehouse's scoring tables are views on the datasets of every night."""
        day = context.partition_key
        with warehouse.connect() as con:
            counts = shards.publish(con, datasets.root(), day)
            decisions = dict(con.execute("select decision, count(*) from scoring.scored_applications where partition_date = ? "
                                         "group by 1", [day]).fetchall())
        context.log.info(f"night {day}: {counts['scored']:,} applicants scored once each across {n_shards} shards")
        return dg.MaterializeResult(metadata={"dagster/row_count": counts["scored"], "decisions": decisions,
                                              "landed": counts["landed"], "shards": n_shards, "datasets": datasets.root()})

    return [landed_drop, *[shard_asset(s) for s in datasets.shard_names(n_shards)], scored_applications]


def night_assets(storage: str, n_shards: int) -> list[dg.AssetsDefinition]:
    """The nightly flow for a storage (CREDIT_STORAGE): into the warehouse file, or landed,
    scored in `n_shards` applicant shards and published on the Parquet datasets."""
    return nightly_assets if storage == "warehouse" else sharded_assets(n_shards)
