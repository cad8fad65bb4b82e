"""The nightly flow's assets: one partition per day a drop of new applications arrived
(`partitions.drop_days`): drop -> features (the training SQL on that day's rows) -> scores with
reasons and counterfactuals (champion model). Drift and the serving snapshot follow in
`monitoring` and `serving`.
"""

from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import date

import dagster as dg
import duckdb

from credit_dagster.core import datasets, seals, settings
from credit_dagster.core.keys import CHAMPION, DAILY_FEATURES, DICTIONARY, DROP, POOL, SCORED, WAREHOUSE_QUEUE
from credit_dagster.core.resources import Warehouse
from credit_dagster.core.sources import SOURCE_TABLES
from credit_dagster.decision import scoring
from credit_dagster.features import sql_models
from credit_dagster.ingest import quality
from credit_dagster.ingest.assets import IngestConfig
from credit_dagster.ingest.checks import check_result, plausibility_result
from credit_dagster.model.resources import ModelStore
from credit_dagster.nightly import drops, night, partitions, shards


@dg.asset(key=DROP, group_name="nightly", partitions_def=partitions.drop_days, pool=POOL, op_tags=WAREHOUSE_QUEUE,
          kinds={"duckdb", "csv"})
def daily_drop(context: dg.AssetExecutionContext, config: IngestConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """The day's drop loaded into drop_<YYYYMMDD> with the raw-ingestion gates and quarantine."""
    with warehouse.connect() as con:
        loaded = drops.load_drop(con, drops.inbox_dir(), context.partition_key, config.reject_share())
        return drop_result(context, con, loaded)


def drop_result(context: dg.AssetExecutionContext, con: duckdb.DuckDBPyConnection, loaded: drops.DropLoad,
                **metadata) -> dg.MaterializeResult:
    """What a loaded drop reports, whatever its storage."""
    if loaded.already_scored:
        context.log.warning(f"{len(loaded.already_scored)} applicants were already scored on another day and are not scored again")
    return dg.MaterializeResult(metadata={
        "applications": con.execute(f"select count(*) from {loaded.schema}.application_test").fetchall()[0][0],
        "rows_quarantined": con.execute(f"select count(*) from {loaded.schema}.quarantine").fetchall()[0][0],
        "already_scored_elsewhere": loaded.already_scored[:50], "missing_side_files": loaded.missing_files,
        "rows": {name: r.rows for name, r in loaded.reports.items()}, "schema": loaded.schema,
        "inbox": dg.MetadataValue.path(str(drops.inbox_dir() / context.partition_key)), **metadata,
    })


@contextmanager
def drop_connection(warehouse: Warehouse, day: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection where the drop of `day` is the schema drop_<YYYYMMDD>: the warehouse, or
    (CREDIT_STORAGE=datasets) a connection of its own bound to the drop's datasets."""
    if settings.current().storage == "datasets":
        location = datasets.root()
        with closing(shards.connect(location)) as con:
            shards.bind_drop(con, location, day)
            yield con
    else:
        with warehouse.connect() as con:
            yield con


@dg.asset_check(asset=DROP, description="Warns when rows of the drop were held back (unparsable, duplicate, already scored).")
def drop_nothing_quarantined(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    schema = drops.drop_schema(context.partition_key)
    with drop_connection(warehouse, context.partition_key) as con:
        rows = con.execute(f"select table_name, line, reason from {schema}.quarantine limit 10").fetchall()
        total = con.execute(f"select count(*) from {schema}.quarantine").fetchall()[0][0]
    return dg.AssetCheckResult(passed=total == 0, severity=dg.AssetCheckSeverity.WARN,
                               description=f"{total} rows held back in {schema}.quarantine" if total else "no row held back",
                               metadata={"examples": [f"{t} line {line}: {r}" for t, line, r in rows]})


@dg.asset_check(asset=DROP, blocking=True,
                description="The raw tables' data-quality gates (GX: keys, value sets, ranges, foreign keys) on the night's drop.")
def drop_quality(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    schema = drops.drop_schema(context.partition_key)
    findings = []
    with drop_connection(warehouse, context.partition_key) as con:
        for name in drops.DROP_TABLES:
            spec = SOURCE_TABLES[name]
            for rule in quality.rules_for(spec):
                for finding in quality.RULES[rule](con, spec, schema):
                    finding.rule = f"{name}: {finding.rule}"
                    findings.append(finding)
    return check_result(findings)


@dg.asset_check(asset=DROP, description="Warns of the night's applications that are incomplete or implausible (referred to "
                "an advisor, never granted automatically), with counts per rule and examples.")
def drop_plausible(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    with drop_connection(warehouse, context.partition_key) as con:
        return plausibility_result(con, f"{drops.drop_schema(context.partition_key)}.application_test")


@dg.asset(key=DAILY_FEATURES, group_name="nightly", partitions_def=partitions.drop_days, deps=[DROP], pool=POOL, op_tags=WAREHOUSE_QUEUE,
          kinds={"duckdb", "sql"})
def daily_features(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The night's features: the training SQL models run on the drop's rows only."""
    schema = drops.drop_schema(context.partition_key)
    with warehouse.connect() as con:
        counts = sql_models.build_all(con, sql_models.discover(), schemas={"raw": schema, "features": f"{schema}_features"})
    return dg.MaterializeResult(metadata={"dagster/row_count": counts["application_features"], "schema": f"{schema}_features"})


@dg.asset(key=SCORED, group_name="nightly", partitions_def=partitions.drop_days, deps=[DAILY_FEATURES, CHAMPION, DICTIONARY], pool=POOL,
          op_tags=WAREHOUSE_QUEUE, kinds={"lightgbm", "duckdb"})
def scored_applications(context: dg.AssetExecutionContext, warehouse: Warehouse, models: ModelStore) -> dg.MaterializeResult:
    """Each application scored by the champion: PD, points, grade, decision, four reasons,
    and for refusals and referrals the smallest change that would grant it. Re-running a day
    replaces exactly that day's rows; every run is appended to scoring.decision_audit."""
    day = context.partition_key
    schema = drops.drop_schema(day)
    model = models.registry().load("champion")
    with warehouse.connect() as con:
        dictionary = con.execute("select * from features.feature_dictionary").df()
        scored = night.score(con, schema, model, dictionary, day, context.run.run_id, context.log.info, context.log.warning)
        sealed = night.write_warehouse(con, scored, day)
    # the seal's head outside the warehouse, where the night's check and `audit verify` can compare it
    return dg.MaterializeResult(metadata={**scored.metadata(model), "decision_audit_head": sealed["head"],
                                          "decision_audit_rows_sealed": sealed["rows"]})


@dg.asset_check(asset=SCORED, description="Every night's decisions as sealed: their audit rows chained again and compared with "
                "each run's seal (core/seals.py); fails naming the first place a row was edited, deleted or inserted.")
def decisions_untouched(warehouse: Warehouse) -> dg.AssetCheckResult:
    configured = settings.current()
    with warehouse.connect(read_only=True) as con:
        # the latest nights and the older nights whose turn it is (`credit-dagster audit verify` chains them all)
        checked = seals.verify(con, today=date.today(), recent=configured.seal_check_recent_nights,
                               rotation=configured.seal_check_rotation_nights)
    turn = (f" ({checked.deferred} older runs chained again in turn, each at least once in "
            f"{configured.seal_check_rotation_nights} nights)" if checked.deferred else "")
    return dg.AssetCheckResult(passed=not checked.problems, severity=dg.AssetCheckSeverity.ERROR,
                               description="; ".join(checked.problems[:5]) if checked.problems else
                               f"{checked.rows:,} decisions of {checked.runs} runs as sealed{turn}",
                               metadata={"problems": checked.problems[:20], "runs_sealed": checked.runs, "rows_sealed": checked.rows,
                                         "rows_before_seals": checked.unsealed_before, "runs_deferred": checked.deferred})


@dg.asset_check(asset=SCORED, description="Warns when the night has category values the model never saw (scored as missing).")
def known_category_values(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, models: ModelStore) -> dg.AssetCheckResult:
    schema = drops.drop_schema(context.partition_key)
    with warehouse.connect() as con:
        features = con.execute(f"select * from {schema}_features.application_features").df()
    unknown = scoring.unknown_categories(models.registry().load("champion"), features)
    return dg.AssetCheckResult(passed=not unknown, severity=dg.AssetCheckSeverity.WARN,
                               description=f"unseen values (scored as missing): {unknown}" if unknown else "every category value is known",
                               metadata={"unknown": {k: v[:20] for k, v in unknown.items()}})


nightly_assets = [daily_drop, daily_features, scored_applications]
nightly_checks = [drop_quality, drop_nothing_quarantined, drop_plausible, known_category_values, decisions_untouched]
