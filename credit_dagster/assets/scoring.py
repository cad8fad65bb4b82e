"""Nightly scoring: one partition per day a drop of new applications arrived (`partitions.drop_days`).

drop -> features (same SQL as training, on that day's rows) -> scores with reasons and
counterfactuals (champion model) -> drift report -> serving snapshot.
"""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from credit_dagster import drops, incidents, monitoring, neighbours, ondemand, partitions, quality, scoring, snapshot, sql_models
from credit_dagster.assets.ingest import POOL, IngestConfig
from credit_dagster.checks.raw_checks import check_result, plausibility_result
from credit_dagster.resources import ModelStore, Warehouse
from credit_dagster.settings import reports_dir
from credit_dagster.sources import SOURCE_TABLES

DROP = dg.AssetKey(["scoring", "daily_drop"])
DAILY_FEATURES = dg.AssetKey(["scoring", "daily_features"])
SCORED = dg.AssetKey(["scoring", "scored_applications"])
DRIFT = dg.AssetKey(["monitoring", "drift_report"])
SNAPSHOT = dg.AssetKey(["serving", "serving_snapshot"])
CHAMPION = dg.AssetKey(["model", "champion_model"])
DICTIONARY = dg.AssetKey(["features", "feature_dictionary"])

# what the dashboard groups clients by when it compares one with similar clients
GROUP_COLUMNS = ["NAME_CONTRACT_TYPE", "NAME_INCOME_TYPE", "NAME_EDUCATION_TYPE", "NAME_HOUSING_TYPE", "APP_AGE_YEARS",
                 "AMT_INCOME_TOTAL"]
REFERENCE_SAMPLE = 20_000  # labelled clients the dashboard compares with (distributions, nearest neighbours)
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
        top = [r["feature"] for r in model.metadata["importance_top"][:15] if r["feature"] in model.metadata.get("feature_medians", {})]
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
        "unknown_category_values": unknown,
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


@dg.asset(key=DRIFT, group_name="monitoring", partitions_def=partitions.drop_days, deps=[SCORED], pool=POOL, kinds={"evidently", "html"})
def drift_report(context: dg.AssetExecutionContext, warehouse: Warehouse, models: ModelStore) -> dg.MaterializeResult:
    """The night's most important features and score against the training population: PSI per
    feature, its sampling noise floor and the excess over it (0.10 investigate, 0.25 act) in
    monitoring.psi, and an Evidently data-drift report."""
    day = context.partition_key
    schema = drops.drop_schema(day)
    model = models.registry().load("champion")
    top = [r["feature"] for r in model.metadata["importance_top"][:15]]
    with warehouse.connect() as con:
        columns = ", ".join(f'"{c}"' for c in top)
        reference = con.execute(f"""select {columns} from features.application_features
                                    where SK_ID_CURR in (select SK_ID_CURR from features.application_labels)""").df()
        current = con.execute(f"select {columns} from {schema}_features.application_features").df()
        ref_score = con.execute("select pd_deployed as score from model.oof_predictions").df()
        cur_score = con.execute("select probability_of_default as score from scoring.scored_applications where partition_date = ?",
                                [day]).df()
        context.log.info(f"drift: PSI of {len(top)} features and the score, {len(current):,} applications "
                         f"against {len(reference):,} in training")
        table = monitoring.psi_table(reference, current, top)
        score_row = monitoring.psi_row("(score)", ref_score["score"], cur_score["score"])
        table = pd.concat([table, pd.DataFrame([score_row])])
        table = table.assign(partition_date=day, model_version=model.version, computed_at=datetime.now(UTC).replace(tzinfo=None))
        con.execute("create schema if not exists monitoring")
        partitions.replace_partition(con, "monitoring.psi", table, day)
    synthetic = model.metadata.get("synthetic", False)
    path = reports_dir() / "drift" / f"drift_{day}.html"
    banner = f"Drift of {day} against the training population of model {model.version}" + (" (SYNTHETIC data)" if synthetic else "")
    context.log.info(f"drift: PSI done (worst excess {table['psi_excess'].max():.3f}); writing the Evidently report")
    summary = monitoring.evidently_report(reference, current, path, banner, table)
    worst = table.sort_values("psi_excess", ascending=False).head(10)
    features_only = table[table["feature"] != "(score)"]
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.path(str(path)),
        "score_psi": score_row["psi"], "score_psi_excess": score_row["psi_excess"],
        "max_feature_psi": float(features_only["psi"].max()), "max_feature_psi_excess": float(features_only["psi_excess"].max()),
        "evidently_drifted_share": summary["drifted_share"], "label_drift": monitoring.LABEL_NOTE,
        "evidently_columns_left_out_empty": summary["columns_left_out_empty"],
        "verdict": summary["verdict"],
        "psi_top10": dg.MetadataValue.md(worst[["feature", "psi", "noise_floor", "psi_excess", "status"]].round(4).to_markdown(index=False)),
    })


@dg.asset_check(asset=DRIFT, description="PSI above its sampling noise floor, for the score and top features: warns at 0.10, fails at 0.25.")
def population_stable(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    day = context.partition_key
    with warehouse.connect() as con:
        rows = con.execute("select feature, psi_excess from monitoring.psi where partition_date = ? order by 2 desc", [day]).fetchall()
    act = [f"{f} {p:.3f}" for f, p in rows if p >= monitoring.ACT]
    investigate = [f"{f} {p:.3f}" for f, p in rows if monitoring.INVESTIGATE <= p < monitoring.ACT]
    severity = dg.AssetCheckSeverity.ERROR if act else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        passed=not act and not investigate, severity=severity,
        description=(f"act (PSI >= 0.25): {act}; " if act else "") + (f"investigate (PSI >= 0.10): {investigate}" if investigate else "")
        or "all PSI within 0.10 of their sampling noise floor",
        metadata={"act": act, "investigate": investigate},
    )


SERVING_TABLES = {
    "scored_applications": "select * from scoring.scored_applications",
    "applicant_details": "select * from scoring.applicant_details",
    "applicant_features": "select * from scoring.applicant_features",
    "applicant_contributions": "select * from scoring.applicant_contributions",
    "applications": "select * from scoring.applications",
    "feature_dictionary": "select * from features.feature_dictionary",
    "monitoring_psi": "select * from monitoring.psi",
}


@dg.asset(key=SNAPSHOT, group_name="serving", partitions_def=partitions.drop_days, deps=[SCORED, DRIFT], pool=POOL, kinds={"duckdb"})
def serving_snapshot(context: dg.AssetExecutionContext, warehouse: Warehouse, models: ModelStore) -> dg.MaterializeResult:
    """The read-only DuckDB file the dashboard and the API read, swapped in atomically after a
    good night: decisions and their explanations, the labelled clients they are compared with
    (and each applicant's nearest ones), the champion's summary, fairness and model history."""
    registry = models.registry()
    model = registry.load("champion")
    summary = pd.DataFrame([{
        "model_version": model.version, "created_at": model.metadata["created_at"], "threshold": model.threshold,
        "refer_low": model.metadata["refer_band"][0], "refer_high": model.metadata["refer_band"][1],
        "cv_roc_auc": model.metadata["cv_metrics"]["roc_auc"], "calibration": model.metadata["calibration"]["method"],
        "synthetic": bool(model.metadata.get("synthetic", False)), "published_for": context.partition_key,
        **{f"scorecard_{k}": ",".join(map(str, v)) if isinstance(v, list) else v for k, v in model.metadata["scorecard"].items()},
    }])
    fairness = pd.DataFrame([{"attribute": attribute, **row} for attribute, rows in model.metadata["fairness"].items()
                             for row in rows])
    with warehouse.connect() as con:
        folded = incidents.fold_kept(con)  # failed runs the incident sensor met with a busy warehouse
        if folded:
            context.log.info(f"{folded} incident(s) kept while the warehouse was busy, now in monitoring.incidents")
        # a backfill of an older night republishes everything: the snapshot is "for" its newest night
        newest = con.execute("select max(partition_date) from scoring.scored_applications").fetchall()[0][0]
        summary["published_for"] = max(str(newest or context.partition_key), context.partition_key)
        summary["published_by_run_for"] = context.partition_key
        compared = [r[0] for r in con.execute("select distinct feature from scoring.applicant_features").fetchall()]
        reference = scoring.frame(con, f"""
            select f.SK_ID_CURR, l.TARGET, {", ".join(f'f."{c}"' for c in dict.fromkeys(GROUP_COLUMNS + compared))}
            from features.application_features f join features.application_labels l using (SK_ID_CURR)
            using sample reservoir({REFERENCE_SAMPLE} rows) repeatable (42)""")
        applicants = scoring.frame(con, "pivot scoring.applicant_features on feature using first(value) group by SK_ID_CURR")
        similar = neighbours.nearest(reference, applicants, [c for c in compared if c in applicants])
        frames = {"summary_df": summary, "importance_df": pd.DataFrame(model.metadata["importance_top"]),
                  "fairness_df": fairness, "history_df": registry.catalogue(), "reference_df": reference, "similar_df": similar}
        for name, frame in frames.items():
            con.register(name, frame)
        schemas = {r[0] for r in con.execute("select schema_name from information_schema.schemata").fetchall()}
        nights = [drops.drop_schema(d) for (d,) in con.execute("select distinct partition_date from scoring.scored_applications").fetchall()]
        cols = ", ".join(f'"{c}"::double as "{c}"' for c in compared)
        tables = {
            **SERVING_TABLES,
            "model_summary": "select * from summary_df",
            "model_importance": "select * from importance_df",
            "model_fairness": "select * from fairness_df",
            "model_history": "select * from history_df",
            "reference_population": "select * from reference_df",
            "similar_clients": "select * from similar_df",
            # what on-demand scoring reuses for an applicant sent without history rows
            **ondemand.history_tables_sql([n for n in nights if f"{n}_features" in schemas]),
            # where the labelled population stands on each compared feature, for the dashboard
            "feature_reference": f"""
                select feature, median(value) as median_all, quantile_cont(value, 0.25) as p25, quantile_cont(value, 0.75) as p75
                from (unpivot (select {cols} from features.application_features
                               where SK_ID_CURR in (select SK_ID_CURR from features.application_labels))
                      on columns(*) into name feature value value)
                group by feature""",
        }
        # an on-demand lookup of a few applicants reads the index, not row groups of 300,000 rows
        history = {name: "SK_ID_CURR" for name in tables if name.startswith(ondemand.HISTORY_PREFIX)}
        counts = snapshot.publish(con, tables, snapshot.snapshot_path(), indexed=history)
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(snapshot.snapshot_path())), "tables": counts})


scoring_assets = [daily_drop, daily_features, scored_applications, drift_report, serving_snapshot]
scoring_checks = [drop_quality, drop_nothing_quarantined, drop_plausible, known_category_values, population_stable]
