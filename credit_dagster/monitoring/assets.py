"""Monitoring's assets: the night's drift against the training population (PSI and Evidently)."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from credit_dagster.core.keys import DRIFT, POOL, SCORED, WAREHOUSE_QUEUE
from credit_dagster.core.resources import Warehouse
from credit_dagster.core.settings import reports_dir
from credit_dagster.model.resources import ModelStore
from credit_dagster.monitoring import drift
from credit_dagster.nightly import drops, partitions


@dg.asset(key=DRIFT, group_name="monitoring", partitions_def=partitions.drop_days, deps=[SCORED], pool=POOL,
          op_tags=WAREHOUSE_QUEUE, kinds={"evidently", "html"})
def drift_report(context: dg.AssetExecutionContext, warehouse: Warehouse, models: ModelStore) -> dg.MaterializeResult:
    """The night's most important features and score against the training population: PSI per
    feature, its sampling noise floor and the excess over it (0.10 investigate, 0.25 act) in
    monitoring.psi, and an Evidently data-drift report."""
    day = context.partition_key
    schema = drops.drop_schema(day)
    model = models.registry().load("champion")
    top = [r["feature"] for r in model.metadata.importance_top[:15]]
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
        table = drift.psi_table(reference, current, top)
        score_row = drift.psi_row("(score)", ref_score["score"], cur_score["score"])
        table = pd.concat([table, pd.DataFrame([score_row])])
        table = table.assign(partition_date=day, model_version=model.version, computed_at=datetime.now(UTC).replace(tzinfo=None))
        con.execute("create schema if not exists monitoring")
        partitions.replace_partition(con, "monitoring.psi", table, day)
    synthetic = model.metadata.synthetic
    path = reports_dir() / "drift" / f"drift_{day}.html"
    banner = f"Drift of {day} against the training population of model {model.version}" + (" (SYNTHETIC data)" if synthetic else "")
    context.log.info(f"drift: PSI done (worst excess {table['psi_excess'].max():.3f}); writing the Evidently report")
    summary = drift.evidently_report(reference, current, path, banner, table)
    worst = table.sort_values("psi_excess", ascending=False).head(10)
    features_only = table[table["feature"] != "(score)"]
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.path(str(path)),
        "score_psi": score_row["psi"], "score_psi_excess": score_row["psi_excess"],
        "max_feature_psi": float(features_only["psi"].max()), "max_feature_psi_excess": float(features_only["psi_excess"].max()),
        "evidently_drifted_share": summary["drifted_share"], "label_drift": drift.LABEL_NOTE,
        "evidently_columns_left_out_empty": summary["columns_left_out_empty"],
        "verdict": summary["verdict"],
        "psi_top10": dg.MetadataValue.md(worst[["feature", "psi", "noise_floor", "psi_excess", "status"]].round(4).to_markdown(index=False)),
    })


@dg.asset_check(asset=DRIFT, description="PSI above its sampling noise floor, for the score and top features: warns at 0.10, fails at 0.25.")
def population_stable(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    day = context.partition_key
    with warehouse.connect() as con:
        rows = con.execute("select feature, psi_excess from monitoring.psi where partition_date = ? order by 2 desc", [day]).fetchall()
    act = [f"{f} {p:.3f}" for f, p in rows if p >= drift.ACT]
    investigate = [f"{f} {p:.3f}" for f, p in rows if drift.INVESTIGATE <= p < drift.ACT]
    severity = dg.AssetCheckSeverity.ERROR if act else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        passed=not act and not investigate, severity=severity,
        description=(f"act (PSI >= 0.25): {act}; " if act else "") + (f"investigate (PSI >= 0.10): {investigate}" if investigate else "")
        or "all PSI within 0.10 of their sampling noise floor",
        metadata={"act": act, "investigate": investigate},
    )


monitoring_assets = [drift_report]
monitoring_checks = [population_stable]
