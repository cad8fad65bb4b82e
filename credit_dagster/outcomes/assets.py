"""Outcomes' assets: the outcome files folded in and settled (`outcomes.loan_outcomes`, with
`outcomes.quarantine`), and the back-test of every model version per monthly vintage
(`outcomes.backtest_vintages`, `outcomes.backtest_grades`) with the checks that act on it.

Not partitioned: outcomes arrive for any vintage in any order, and every delivery can change
the figures of many vintages at once; settling all reports ever received and recomputing every
vintage (seconds for a million outcomes, see BENCHMARKS.md) keeps the tables a function of what
was received, whatever the order."""

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from credit_dagster.core import settings, snapshot
from credit_dagster.core.keys import BACKTEST_GRADES, BACKTEST_OVERRIDES, BACKTEST_VINTAGES, OUTCOMES, POOL, REVIEW, SCORED
from credit_dagster.core.resources import Warehouse
from credit_dagster.ingest import quality
from credit_dagster.model import charts, technical_doc
from credit_dagster.model.resources import ModelStore
from credit_dagster.nightly import partitions
from credit_dagster.outcomes import backtest, reports

RECEIVED = {"SK_ID_CURR": "bigint", "REPORTING_DATE": "varchar", "MONTHS_ON_BOOK": "bigint", "WORST_DPD": "bigint", "TARGET": "bigint",
            "file": "varchar", "line": "bigint", "delivery": "varchar"}
DELIVERIES = {"delivery": "varchar", "path": "varchar", "received_at": "varchar", "rows": "bigint", "unreadable_rows": "bigint",
              "error": "varchar"}
UNREADABLE = {"file": "varchar", "line": "bigint", "SK_ID_CURR": "varchar", "REPORTING_DATE": "varchar", "reason": "varchar",
              "delivery": "varchar"}


def inbox() -> Path:
    return settings.under_home(settings.current().outcomes_inbox, "outcomes", "inbox")


def decisions_sql(con) -> str:
    """Each scored application's decision as it stands: a person's once the review fold has it, else the model's."""
    has_review = con.execute("select count(*) from information_schema.tables where table_schema = 'review' "
                             "and table_name = 'final_decisions'").fetchall()[0][0]
    if not has_review:
        return ("select SK_ID_CURR, model_version, partition_date, probability_of_default, grade, decision as model_decision, "
                "decision as final_decision, 'model' as decided_by, null as reviewer from scoring.scored_applications")
    # the reviewer: who took the last decision on the case (the one a supervisor approved, for an override)
    return """select s.SK_ID_CURR, s.model_version, s.partition_date, s.probability_of_default, s.grade, s.decision as model_decision,
                     coalesce(f.final_decision, s.decision) as final_decision, coalesce(f.decided_by, 'model') as decided_by,
                     case when f.decided_by <> 'model' then r.reviewer end as reviewer
              from scoring.scored_applications s left join review.final_decisions f using (SK_ID_CURR)
              left join (select sk_id as SK_ID_CURR, arg_max("user", "at") as reviewer from review.actions where action = 'decide'
                         group by sk_id) r using (SK_ID_CURR)"""


@dg.asset(key=OUTCOMES, group_name="outcomes", deps=[SCORED, REVIEW], pool=POOL, kinds={"duckdb"})
def loan_outcomes(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Every new outcome file of the inbox (each once, by checksum) into outcomes.received, then
    what stands of all reports ever received: one outcome per applicant, and outcomes.quarantine."""
    files = sorted(p for p in inbox().rglob("*.csv") if p.is_file())
    with warehouse.connect() as con:
        con.execute("create schema if not exists outcomes")
        for table, columns in (("received", RECEIVED), ("deliveries", DELIVERIES), ("unreadable", UNREADABLE)):
            partitions.create_or_extend(con, f"outcomes.{table}", columns)
        seen = {r[0] for r in con.execute("select delivery from outcomes.deliveries").fetchall()}
        new, failed = 0, []
        for path in files:
            delivery = hashlib.sha256(path.read_bytes()).hexdigest()
            if delivery in seen:
                continue  # the same file delivered again: applied once
            seen.add(delivery)
            try:
                good, unreadable = reports.read(path)
            except reports.OutcomeFileError as exc:
                failed.append(str(exc))
                context.log.error(f"outcome file not taken: {exc}")
                con.execute("insert into outcomes.deliveries values (?, ?, ?, 0, 0, ?)",
                            [delivery, str(path), datetime.now(UTC).isoformat(), str(exc)])
                continue
            con.register("good_df", good.assign(file=str(path.relative_to(inbox())), delivery=delivery))
            con.register("bad_df", unreadable.assign(file=str(path.relative_to(inbox())), delivery=delivery))
            con.execute("begin transaction")
            con.execute("insert into outcomes.received by name select * from good_df")
            con.execute("insert into outcomes.unreadable by name select * from bad_df")
            con.execute("insert into outcomes.deliveries values (?, ?, ?, ?, ?, null)",
                        [delivery, str(path), datetime.now(UTC).isoformat(), len(good), len(unreadable)])
            con.execute("commit")
            new += 1
        received = con.execute("select * from outcomes.received").df()
        decisions = con.execute(decisions_sql(con)).df()
        settled, quarantined, standing = reports.settle(received, decisions)
        unreadable = con.execute("select file, line, SK_ID_CURR, REPORTING_DATE, reason from outcomes.unreadable").df()
        quarantine = pd.concat([unreadable, quarantined.astype({"SK_ID_CURR": str})], ignore_index=True)
        con.register("settled_df", settled)
        con.register("quarantine_df", quarantine)
        con.register("standing_df", standing)
        con.execute("create or replace table outcomes.loan_outcomes as select * from settled_df")
        con.execute("create or replace table outcomes.loan_reports as select * from standing_df")
        con.execute("create or replace table outcomes.quarantine as select * from quarantine_df")
    reasons = quarantine["reason"].str.split(":").str[0].value_counts().head(10).to_dict() if len(quarantine) else {}
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(settled), "new_files": new, "files_not_taken": failed, "reports_received": len(received),
        "quarantined": len(quarantine), "quarantined_by_reason": reasons, "defaults": int(settled["TARGET"].sum()),
        "inbox": dg.MetadataValue.path(str(inbox())),
    })


@dg.asset_check(asset=OUTCOMES, description="Fails when an outcome file could not be read at all (a column missing, not a CSV).")
def every_outcome_file_read(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        failed = [r[0] for r in con.execute("select error from outcomes.deliveries where error is not null").fetchall()]
    return dg.AssetCheckResult(passed=not failed, severity=dg.AssetCheckSeverity.ERROR,
                               description=f"{len(failed)} file(s) not taken: {failed[0]}" if failed else "every file was read",
                               metadata={"not_taken": failed[:20]})


@dg.asset_check(asset=OUTCOMES, blocking=True, description="Great Expectations on the settled outcomes: one per applicant, "
                "TARGET 0 or 1, months on book and days past due in range, a date on each. Blocks the back-test.")
def outcomes_expectations(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        settled = con.execute("select * from outcomes.loan_outcomes").df()
    # GX through `quality`, which turns its usage statistics off before importing it
    expect = quality.gx().expectations
    findings = quality.run_expectations(settled, [
        (expect.ExpectColumnValuesToBeUnique(column="SK_ID_CURR"), True),
        (expect.ExpectColumnValuesToBeInSet(column="TARGET", value_set=[0, 1]), True),
        (expect.ExpectColumnValuesToBeBetween(column="MONTHS_ON_BOOK", min_value=0, max_value=600), True),
        (expect.ExpectColumnValuesToBeBetween(column="WORST_DPD", min_value=0, max_value=100_000), True),
        (expect.ExpectColumnValuesToNotBeNull(column="REPORTING_DATE"), True),
    ])
    failed = [f.describe() for f in findings if not f.passed]
    return dg.AssetCheckResult(passed=not failed, severity=dg.AssetCheckSeverity.ERROR,
                               description="; ".join(failed) if failed else f"{len(findings)} expectations met by {len(settled):,} outcomes",
                               metadata={"findings": [f.describe() for f in findings]})


def _judged(warehouse: Warehouse) -> pd.DataFrame:
    with warehouse.connect() as con:
        return backtest.judged(con.execute(decisions_sql(con)).df(), con.execute("select * from outcomes.loan_outcomes").df())


def _development(models: ModelStore, versions) -> tuple[dict, dict]:
    """Per model version, its cross-validated AUC and, from its out-of-fold scores, the AUC among
    the applicants its policy grants (`backtest.granted_development`) and the PDs PSI compares with."""
    registry = models.registry()
    development, reference = {}, {}
    for version in versions:
        metadata = registry.load(version).metadata
        development[version] = {k: metadata.cv_metrics.get(k, float("nan")) for k in ("roc_auc", "roc_auc_low", "roc_auc_high")}
        oof = registry.out_of_fold(version)
        if oof is not None:
            reference[version] = oof["pd_deployed" if "pd_deployed" in oof else "pd"]
            development[version] |= backtest.granted_development(oof["TARGET"].to_numpy(int), reference[version].to_numpy(float),
                                                                 metadata.refer_band[0])
    return development, reference


def _markdown(frame: pd.DataFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.round(4).to_markdown(index=False) if len(frame) else "no decision yet")


def _picture(png: bytes, words: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![{words}]({charts.data_uri(png)})")


def _evidently_quality(models: ModelStore, rows: pd.DataFrame, judged: pd.DataFrame) -> dict:
    """Evidently's classification report of the newest judged vintage of the newest model version
    that has one, against that version's development among the applicants its policy grants."""
    if judged.empty:
        return {}
    latest = judged.sort_values(["model_version", "vintage"]).iloc[-1]
    version, vintage = latest["model_version"], latest["vintage"]
    registry = models.registry()
    model, oof = registry.load(version), registry.out_of_fold(version)
    if oof is None:
        return {}
    grant_below = model.metadata.refer_band[0]
    reference = oof.assign(probability_of_default=oof["pd_deployed" if "pd_deployed" in oof else "pd"])
    reference = reference[reference["probability_of_default"] < grant_below]
    current = rows[(rows["model_version"] == version) & (rows["vintage"] == vintage) & (rows["final_decision"] == backtest.GRANTED)
                   & rows["TARGET"].notna()]
    # Among the granted every PD is under the grant bound: the confusion matrix splits them at
    # development's median instead, the riskier half of the granted against the safer half.
    threshold = float(reference["probability_of_default"].median())
    path = settings.reports_dir() / "backtest" / f"evidently_classification_{version}_{vintage}.html"
    banner = (f"Vintage {vintage}, model {version}: {len(current):,} granted applications with an outcome, against development's "
              f"{len(reference):,} the same policy grants (out of fold). Predicted default: PD of {threshold:.2%} or more, "
              "development's median among the granted." + (" SYNTHETIC data." if model.metadata.synthetic else ""))
    figures = backtest.evidently_quality(current, reference, path, banner, threshold)
    return {"evidently_report": dg.MetadataValue.path(str(path)), **figures}


@dg.asset(key=BACKTEST_VINTAGES, group_name="outcomes", deps=[OUTCOMES], pool=POOL, kinds={"duckdb"})
def backtest_vintages(warehouse: Warehouse, models: ModelStore) -> dg.MaterializeResult:
    """Per model version and monthly vintage: decisions, outcomes so far, realized ROC AUC and
    Gini with a bootstrap 95 % interval against development, PSI of the PD against development."""
    rows = _judged(warehouse)
    development, reference = _development(models, rows["model_version"].unique())
    current = settings.current()
    table = backtest.vintages(rows, development, reference, current.backtest_auc_tolerance, current.backtest_min_outcomes,
                              current.backtest_min_defaults)
    with warehouse.connect() as con:
        con.register("vintages_df", table)
        con.execute("create or replace table outcomes.backtest_vintages as select * from vintages_df")
    judged = table[table["verdict"].isin([backtest.OK, backtest.WARN, backtest.FAIL])] if len(table) else table
    plot = {"realized_auc_plot": _picture(charts.intervals_png(
        [f"{v}\n{m[:5]}" for v, m in zip(judged["vintage"], judged["model_version"], strict=True)], judged["realized_auc"].tolist(),
        judged["realized_auc_low"].tolist(), judged["realized_auc_high"].tolist(), judged["development_granted_auc"].tolist(),
        "development, among the granted", "ROC AUC", "Realized ROC AUC per vintage and model"), "realized AUC per vintage")} if len(judged) else {}
    quality = _evidently_quality(models, rows, judged)
    registry = models.registry()
    recorded = sorted(set(table["model_version"]) & set(registry.versions())) if len(table) else []
    for version in recorded:
        technical_doc.record_backtest(registry, version, table)  # its technical documentation says how it held up
    if registry.versions() and registry.versions()[-1] in recorded:  # the one beside the model card in the reports
        technical_doc.publish(registry, registry.versions()[-1], settings.reports_dir())
    return dg.MaterializeResult(metadata={**plot, **quality,
        "dagster/row_count": len(table), "failing": int((table["verdict"] == backtest.FAIL).sum()) if len(table) else 0,
        "outcomes_judged": int(judged["with_outcome"].sum()) if len(judged) else 0, "vintages": _markdown(table[[
        "model_version", "vintage", "decisions", "never_judged", "with_outcome", "defaults", "realized_auc", "realized_auc_low",
        "realized_auc_high", "development_auc", "psi", "verdict"]] if len(table) else table)})


@dg.asset(key=BACKTEST_GRADES, group_name="outcomes", deps=[OUTCOMES, BACKTEST_VINTAGES, BACKTEST_OVERRIDES], pool=POOL, kinds={"duckdb"})
def backtest_grades(warehouse: Warehouse) -> dg.MaterializeResult:
    """Per model version, vintage and grade: observed against predicted default rate with the
    Jeffreys interval and test, and the whole portfolio's test (grade `all`). The back-test
    tables, the vintage curves (`backtest.curves`) and the overrides are then published in a
    small snapshot of their own for the dashboard (`serving/backtest.duckdb`)."""
    rows = _judged(warehouse)
    table = backtest.grades(rows, settings.current().backtest_min_outcomes)
    with warehouse.connect() as con:
        curves = backtest.curves(con.execute("select * from outcomes.loan_reports").df(), rows)
        con.register("grades_df", table)
        con.register("curves_df", curves)
        con.execute("create or replace table outcomes.backtest_grades as select * from grades_df")
        published = snapshot.publish(con, {"backtest_vintages": "select * from outcomes.backtest_vintages",
                                           "backtest_grades": "select * from outcomes.backtest_grades",
                                           "backtest_curves": "select * from curves_df",
                                           "backtest_overrides": "select * from outcomes.backtest_overrides"},
                                     snapshot.beside(snapshot.BACKTEST_SNAPSHOT))
    latest = table[table["grade"] != "all"]
    latest = latest[(latest["vintage"] == latest["vintage"].max()) & (latest["model_version"] == latest["model_version"].max())]
    plot = {"calibration_plot": _picture(charts.intervals_png(
        latest["grade"].tolist(), latest["observed_rate"].tolist(), latest["observed_low"].tolist(), latest["observed_high"].tolist(),
        latest["predicted_rate"].tolist(), "predicted", "default rate",
        f"Defaults per grade, vintage {latest['vintage'].iloc[0]}"), "observed against predicted per grade")} if len(latest) else {}
    return dg.MaterializeResult(metadata={**plot, "dagster/row_count": len(table), "grades": _markdown(table), "published": published,
                                          "failing": int((table["verdict"] == backtest.FAIL).sum()),
                                          "outcomes_judged": int(table.loc[table["grade"] == "all", "with_outcome"].sum()),
                                          "snapshot": dg.MetadataValue.path(str(snapshot.beside(snapshot.BACKTEST_SNAPSHOT)))})


@dg.asset(key=BACKTEST_OVERRIDES, group_name="outcomes", deps=[OUTCOMES], pool=POOL, kinds={"duckdb"})
def backtest_overrides(warehouse: Warehouse) -> dg.MaterializeResult:
    """Overrides monitored (EBA/GL/2020/06 4.3.4): per reviewer, per grade and overall, how many
    decisions people took, how many reversed the model, and how the applications a person granted
    against the model repaid against those the model granted itself."""
    rows = _judged(warehouse)
    table = backtest.overrides(rows)
    with warehouse.connect() as con:
        con.register("overrides_df", table)
        con.execute("create or replace table outcomes.backtest_overrides as select * from overrides_df")
    return dg.MaterializeResult(metadata={"dagster/row_count": len(table), "overrides": _markdown(table)})


def _verdicts(warehouse: Warehouse, table: str, what: str) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        found = con.execute(f"select * from outcomes.{table} where verdict in ('warn', 'fail')").df()
    failing = found["verdict"].eq(backtest.FAIL).any()
    names = [" ".join(str(v) for v in r) for r in found.drop(columns="verdict").iloc[:, :3].itertuples(index=False)]
    return dg.AssetCheckResult(
        passed=found.empty, severity=dg.AssetCheckSeverity.ERROR if failing else dg.AssetCheckSeverity.WARN,
        description=f"{len(found)} {what} outside what development promised" if len(found) else f"every {what} judged holds",
        metadata={"outside": names[:20]})


@dg.asset_check(asset=BACKTEST_VINTAGES, description="Warns when a vintage's realized AUC falls under the development interval; "
                "fails beyond CREDIT_BACKTEST_AUC_TOLERANCE.")
def realized_auc_holds(warehouse: Warehouse) -> dg.AssetCheckResult:
    return _verdicts(warehouse, "backtest_vintages", "vintage(s)")


@dg.asset_check(asset=BACKTEST_GRADES, description="Warns when a grade defaults more than its PD allows (Jeffreys p < 5 %); "
                "fails under 0.1 %.")
def grades_calibrated(warehouse: Warehouse) -> dg.AssetCheckResult:
    return _verdicts(warehouse, "backtest_grades", "grade(s)")


backtest_job = dg.define_asset_job("backtest", selection=dg.AssetSelection.groups("outcomes"), executor_def=dg.in_process_executor,
                                   description="Fold new outcome files, settle them, back-test every model version per vintage.")
backtest_schedule = dg.ScheduleDefinition(job=backtest_job, cron_schedule="0 7 * * *", execution_timezone="Europe/Paris",
                                          default_status=dg.DefaultScheduleStatus.RUNNING)
outcome_assets = [loan_outcomes, backtest_vintages, backtest_grades, backtest_overrides]
outcome_checks = [every_outcome_file_read, outcomes_expectations, realized_auc_holds, grades_calibrated]
