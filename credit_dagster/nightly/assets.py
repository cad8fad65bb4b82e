"""The nightly flow's assets: one partition per day a drop of new applications arrived
(`partitions.drop_days`): drop -> features (the training SQL on that day's rows) -> scores with
reasons and counterfactuals (champion model). Drift and the serving snapshot follow in
`monitoring` and `serving`.
"""

from datetime import UTC, datetime

import dagster as dg

from credit_dagster.core import refer_all
from credit_dagster.core.keys import CHAMPION, DAILY_FEATURES, DICTIONARY, DROP, POOL, SCORED
from credit_dagster.core.resources import Warehouse
from credit_dagster.core.sources import SOURCE_TABLES
from credit_dagster.features import sql_models
from credit_dagster.ingest import quality
from credit_dagster.ingest.assets import IngestConfig
from credit_dagster.ingest.checks import check_result, plausibility_result
from credit_dagster.model.resources import ModelStore
from credit_dagster.nightly import drops, partitions, scoring

DETAIL_COLUMNS = [
    "NAME_CONTRACT_TYPE", "AMT_CREDIT", "AMT_ANNUITY", "AMT_GOODS_PRICE", "AMT_INCOME_TOTAL", "NAME_INCOME_TYPE",
    "NAME_EDUCATION_TYPE", "OCCUPATION_TYPE", "NAME_HOUSING_TYPE", "CNT_FAM_MEMBERS", "APP_AGE_YEARS", "APP_YEARS_EMPLOYED",
]


@dg.asset(key=DROP, group_name="scoring", partitions_def=partitions.drop_days, pool=POOL, kinds={"duckdb", "csv"})
def daily_drop(context: dg.AssetExecutionContext, config: IngestConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """The day's drop loaded into drop_<YYYYMMDD> with the raw-ingestion gates and quarantine."""
    day = context.partition_key
    with warehouse.connect() as con:
        loaded = drops.load_drop(con, drops.inbox_dir(), day, config.max_reject_share)
        applications = con.execute(f"select count(*) from {loaded.schema}.application_test").fetchall()[0][0]
        quarantined = con.execute(f"select count(*) from {loaded.schema}.quarantine").fetchall()[0][0]
    if loaded.already_scored:
        context.log.warning(f"{len(loaded.already_scored)} applicants were already scored on another day and are not scored again")
    return dg.MaterializeResult(metadata={
        "applications": applications, "rows_quarantined": quarantined,
        "already_scored_elsewhere": loaded.already_scored[:50], "missing_side_files": loaded.missing_files,
        "rows": {name: r.rows for name, r in loaded.reports.items()}, "schema": loaded.schema,
        "inbox": dg.MetadataValue.path(str(drops.inbox_dir() / day)),
    })


@dg.asset_check(asset=DROP, description="Warns when rows of the drop were held back (unparsable, duplicate, already scored).")
def drop_nothing_quarantined(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    schema = drops.drop_schema(context.partition_key)
    with warehouse.connect() as con:
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
    with warehouse.connect() as con:
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
    with warehouse.connect() as con:
        return plausibility_result(con, f"{drops.drop_schema(context.partition_key)}.application_test")


@dg.asset(key=DAILY_FEATURES, group_name="scoring", partitions_def=partitions.drop_days, deps=[DROP], pool=POOL, kinds={"duckdb", "sql"})
def daily_features(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The night's features: the training SQL models run on the drop's rows only."""
    schema = drops.drop_schema(context.partition_key)
    with warehouse.connect() as con:
        counts = sql_models.build_all(con, sql_models.discover(), schemas={"raw": schema, "features": f"{schema}_features"})
    return dg.MaterializeResult(metadata={"dagster/row_count": counts["application_features"], "schema": f"{schema}_features"})


@dg.asset(key=SCORED, group_name="scoring", partitions_def=partitions.drop_days, deps=[DAILY_FEATURES, CHAMPION, DICTIONARY], pool=POOL,
          kinds={"lightgbm", "duckdb"})
def scored_applications(context: dg.AssetExecutionContext, warehouse: Warehouse, models: ModelStore) -> dg.MaterializeResult:
    """Each application scored by the champion: PD, points, grade, decision, four reasons,
    and for refusals and referrals the smallest change that would grant it. Re-running a day
    replaces exactly that day's rows; every run is appended to scoring.decision_audit."""
    day = context.partition_key
    schema = drops.drop_schema(day)
    model = models.registry().load("champion")
    with warehouse.connect() as con:
        features = con.execute(f"select * from {schema}_features.application_features").df()
        dictionary = con.execute("select * from features.feature_dictionary").df()
        if features.empty:
            raise ValueError(f"drop {day} has no application left to score (empty, or all quarantined): see {schema}.quarantine")
        scored, contributions = scoring.score_and_explain(model, features, dictionary)
        if scored["refer_everything"].any():  # the night's log says so, with who set it and why
            context.log.warning(f"{refer_all.state().sentence()}: every decision of night {day} is referred to an advisor")
        unknown = scoring.unknown_categories(model, features)
        if unknown:
            context.log.warning(f"category values unseen in training, scored as missing: {unknown}")
        to_search = scored.loc[(scored["decision"] != scoring.GRANTED) & ~scored["held_back"], "SK_ID_CURR"].tolist()
        context.log.info(f"scored {len(scored):,} applications; searching a counterfactual for the {len(to_search):,} not granted")
        cf = scoring.counterfactuals(con, model, schema, to_search, work_schema=f"cf_{schema}", progress=context.log.info)
        scored = scoring.with_counterfactuals(scored, cf)
        scored = scored.assign(partition_date=day, **scoring.policy_columns(model),
                               scored_at=datetime.now(UTC).replace(tzinfo=None), run_id=context.run.run_id)
        details = features[["SK_ID_CURR", *[c for c in DETAIL_COLUMNS if c in features]]].assign(partition_date=day)
        top = [r["feature"] for r in model.metadata.importance_top[:15] if r["feature"] in model.metadata.feature_medians]
        values = features.melt(id_vars="SK_ID_CURR", value_vars=top, var_name="feature", value_name="value").assign(partition_date=day)
        con.execute("create schema if not exists scoring")
        for name in ("scored_applications", "decision_audit"):
            partitions.create_or_extend(con, f"scoring.{name}", scoring.DECISION_COLUMNS)
        columns = [r[0] for r in con.execute("describe scoring.scored_applications").fetchall()]
        con.register("scored_df", scored[columns])
        # one transaction: the day's rows are replaced whole, the audit only grows
        con.execute("begin transaction")
        partitions.replace_partition(con, "scoring.scored_applications", scored[columns], day, in_transaction=True)
        con.execute("insert into scoring.decision_audit by name select * from scored_df")
        partitions.replace_partition(con, "scoring.applicant_details", details, day, in_transaction=True)
        partitions.replace_partition(con, "scoring.applicant_features", values, day, in_transaction=True)
        partitions.replace_partition(con, "scoring.applicant_contributions", contributions.assign(partition_date=day), day,
                                     in_transaction=True)
        # the application as submitted, for the dashboard's what-if (it never reads the drop)
        partitions.replace_partition(con, "scoring.applications", scoring.frame(
            con, f"select *, '{day}' as partition_date from {schema}.application_test"), day, in_transaction=True)
        con.execute("commit")
    counts = scored["decision"].value_counts().to_dict()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(scored), "decisions": counts, "model_version": model.version,
        "mean_pd": float(scored["probability_of_default"].mean()),
        "counterfactuals_found": int(cf["cf_amount"].notna().sum()) if len(cf) else 0,
        "counterfactuals_searched": len(to_search),
        "unknown_category_values": unknown, "refer_everything": bool(scored["refer_everything"].any()),
    })


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
nightly_checks = [drop_quality, drop_nothing_quarantined, drop_plausible, known_category_values]
