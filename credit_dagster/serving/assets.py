"""Serving's assets: the read-only snapshot the dashboard and the API read, and the fold of
the API's audit journal into the warehouse."""

import dagster as dg
import pandas as pd

from credit_dagster.core import audit, seals, snapshot
from credit_dagster.core.keys import DRIFT, ONDEMAND_AUDIT, POOL, SCORED, SNAPSHOT, WAREHOUSE_QUEUE
from credit_dagster.core.resources import Warehouse
from credit_dagster.core.snapshot import Table
from credit_dagster.decision import neighbours, ondemand, scoring
from credit_dagster.model.resources import ModelStore
from credit_dagster.monitoring import incidents, night_metrics
from credit_dagster.nightly import drops, partitions
from credit_dagster.review import rescore

# what the dashboard groups clients by when it compares one with similar clients
GROUP_COLUMNS = ["NAME_CONTRACT_TYPE", "NAME_INCOME_TYPE", "NAME_EDUCATION_TYPE", "NAME_HOUSING_TYPE", "APP_AGE_YEARS",
                 "AMT_INCOME_TOTAL"]
REFERENCE_SAMPLE = 20_000  # labelled clients the dashboard compares with (distributions, nearest neighbours)

SERVING_TABLES = {
    Table.SCORED: "select * from scoring.scored_applications",
    Table.DETAILS: "select * from scoring.applicant_details",
    Table.FEATURES: "select * from scoring.applicant_features",
    Table.CONTRIBUTIONS: "select * from scoring.applicant_contributions",
    Table.APPLICATIONS: "select * from scoring.applications",
    Table.DICTIONARY: "select * from features.feature_dictionary",
    Table.PSI: "select * from monitoring.psi",
}


@dg.asset(key=SNAPSHOT, group_name="serving", partitions_def=partitions.drop_days, deps=[SCORED, DRIFT], pool=POOL,
          op_tags=WAREHOUSE_QUEUE, kinds={"duckdb"})
def serving_snapshot(context: dg.AssetExecutionContext, warehouse: Warehouse, models: ModelStore) -> dg.MaterializeResult:
    """The read-only DuckDB file the dashboard and the API read, swapped in atomically after a
    good night: decisions and their explanations, the labelled clients they are compared with
    (and each applicant's nearest ones), the champion's summary, fairness and model history."""
    registry = models.registry()
    model = registry.load("champion")
    summary = pd.DataFrame([{
        "model_version": model.version, "created_at": model.metadata.created_at, "threshold": model.threshold,
        "refer_low": model.metadata.refer_band[0], "refer_high": model.metadata.refer_band[1],
        "cv_roc_auc": model.metadata.cv_metrics["roc_auc"], "calibration": model.metadata.calibration["method"],
        "synthetic": bool(model.metadata.synthetic), "published_for": context.partition_key,
        **{f"scorecard_{k}": ",".join(map(str, v)) if isinstance(v, list) else v for k, v in model.metadata.scorecard.items()},
    }])
    fairness = pd.DataFrame([{"attribute": attribute, **row} for attribute, rows in model.metadata.fairness.items()
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
        frames = {"summary_df": summary, "importance_df": pd.DataFrame(model.metadata.importance_top), "heads_df": pd.DataFrame(seals.heads()),
                  "fairness_df": fairness, "history_df": registry.catalogue(), "reference_df": reference, "similar_df": similar}
        for name, frame in frames.items():
            con.register(name, frame)
        schemas = {r[0] for r in con.execute("select schema_name from information_schema.schemata").fetchall()}
        nights = [drops.drop_schema(d) for (d,) in con.execute("select distinct partition_date from scoring.scored_applications").fetchall()]
        cols = ", ".join(f'"{c}"::double as "{c}"' for c in compared)
        tables = {
            **SERVING_TABLES,
            Table.MODEL_SUMMARY: "select * from summary_df",
            Table.MODEL_IMPORTANCE: "select * from importance_df",
            Table.MODEL_FAIRNESS: "select * from fairness_df",
            Table.MODEL_HISTORY: "select * from history_df",
            Table.REFERENCE: "select * from reference_df",
            Table.SIMILAR: "select * from similar_df",
            Table.AUDIT_HEADS: "select * from heads_df",
            # what on-demand scoring reuses for an applicant sent without history rows
            **ondemand.history_tables_sql([n for n in nights if f"{n}_features" in schemas]),
            # where the labelled population stands on each compared feature, for the dashboard
            Table.FEATURE_REFERENCE: f"""
                select feature, median(value) as median_all, quantile_cont(value, 0.25) as p25, quantile_cont(value, 0.75) as p75
                from (unpivot (select {cols} from features.application_features
                               where SK_ID_CURR in (select SK_ID_CURR from features.application_labels))
                      on columns(*) into name feature value value)
                group by feature""",
        }
        # an on-demand lookup of a few applicants reads the index, not row groups of 300,000 rows
        history = {name: "SK_ID_CURR" for name in tables if name.startswith(ondemand.HISTORY_PREFIX)}
        # before the new decisions are served: where they change one that stood, it keeps standing and a person decides
        changed, opened = rescore.keep_earlier_decisions(con, context.partition_key, context.run.tags.get(rescore.REASON_TAG))
        if changed:
            context.log.warning(f"night {context.partition_key} scored again: {changed} decision(s) differ from the ones that stood, "
                                f"which keep standing; {opened} review case(s) opened")
        counts = snapshot.publish(con, tables, snapshot.snapshot_path(), indexed=history)
        run = context.instance.get_run_record_by_id(context.run_id)
        figures = night_metrics.write(con, context.partition_key, run.start_time if run else None)
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(snapshot.snapshot_path())), "tables": counts,
                                          "decisions_changed_by_scoring_again": changed, "review_cases_opened": opened,
                                          "night_metrics": dg.MetadataValue.path(str(night_metrics.metrics_path())),
                                          "applicants": figures["credit_night_applicants"]})


@dg.asset_check(asset=SNAPSHOT, description="every journal (review, switch, API decisions and reads, dashboard access) is a whole chain")
def journals_untouched() -> dg.AssetCheckResult:
    """Each night, every journal's hash chain walked: an edited, deleted or reordered line fails the
    check, naming the first; each chain's head is kept in this check's metadata, a copy outside the
    journals (`credit-dagster audit verify --head` compares a journal with it)."""
    walked = {name: audit.verify(folder, prefix) for name, (folder, prefix) in audit.journals().items()}
    broken = [f"{name}: {breaks[0]}" for name, (_, _, breaks) in walked.items() if breaks]
    return dg.AssetCheckResult(
        passed=not broken, severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(broken) if broken else f"{sum(n for n, _, _ in walked.values()):,} journal lines, every chain whole",
        metadata={**{f"{name} head": head for name, (_, head, _) in walked.items()},
                  **{f"{name} lines": n for name, (n, _, _) in walked.items()}})


serving_checks = [journals_untouched]

COLUMNS = {**scoring.DECISION_COLUMNS, "caller": "varchar", "history_source": "varchar"}


@dg.asset(key=ONDEMAND_AUDIT, group_name="serving", pool=POOL, kinds={"duckdb"})
def ondemand_audit(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Every decision the scoring API gave (model version, threshold, calibration, feature
    fingerprint, time, caller), from the API's append-only files under CREDIT_HOME/api/audit.
    `run_id` holds the API's decision id."""
    records, problems = audit.read()
    for problem in problems:
        context.log.warning(f"unreadable audit line (a write cut short; that answer was never sent): {problem}")
    with warehouse.connect() as con:
        con.execute("create schema if not exists scoring")
        partitions.create_or_extend(con, "scoring.ondemand_audit", COLUMNS)
        added = 0
        if len(records):
            con.register("records_df", records.reindex(columns=list(COLUMNS)))
            before = con.execute("select count(*) from scoring.ondemand_audit").fetchall()[0][0]
            con.execute("""insert into scoring.ondemand_audit by name
                           select * from records_df where run_id not in (select run_id from scoring.ondemand_audit)""")
            added = con.execute("select count(*) from scoring.ondemand_audit").fetchall()[0][0] - before
        total = con.execute("select count(*) from scoring.ondemand_audit").fetchall()[0][0]
    return dg.MaterializeResult(metadata={"dagster/row_count": total, "added": added, "unreadable_lines": problems[:20],
                                          "folder": dg.MetadataValue.path(str(audit.audit_dir()))})


ondemand_audit_job = dg.define_asset_job(
    "ondemand_audit", selection=dg.AssetSelection.assets(ONDEMAND_AUDIT), executor_def=dg.in_process_executor,
    description="Fold the scoring API's audit files into scoring.ondemand_audit (idempotent).",
)
# hourly: the API's own files are the record of truth meanwhile (fsync'ed before each answer)
ondemand_audit_schedule = dg.ScheduleDefinition(job=ondemand_audit_job, cron_schedule="15 * * * *", execution_timezone="Europe/Paris",
                                                default_status=dg.DefaultScheduleStatus.RUNNING)

serving_assets = [serving_snapshot, ondemand_audit]
