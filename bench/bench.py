"""Benchmark: wall time, rows/s and peak RSS per pipeline stage, at a given synthetic scale.

Each stage runs in its own child process, so its peak RSS is its own (read from wait4).

    python bench/bench.py --scale 0.1                      # synth + ingest
    python bench/bench.py --scale 1 --stages synth,ingest --workdir /tmp/bench1
    python bench/bench.py --scale 0.1 --stages train --busy 1   # next to one busy process
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("synth", "ingest", "features", "features_pandas", "nightly_batch", "train", "score")


def stage_synth(workdir: Path, scale: float) -> dict:
    from credit_dagster.synth.generator import generate

    rows = generate(workdir / "data", scale=scale, seed=42, progress=False)
    size = sum(p.stat().st_size for p in (workdir / "data").glob("*.csv"))
    return {"rows": sum(rows.values()), "csv_bytes": size}


def stage_ingest(workdir: Path, scale: float) -> dict:
    import duckdb

    from credit_dagster.core.sources import SOURCE_TABLES
    from credit_dagster.ingest.loaders import find_source_file, load_table

    db = workdir / "warehouse.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db), config={"memory_limit": os.environ.get("CREDIT_DUCKDB_MEMORY_LIMIT", "4GB")})
    per_table = {}
    for spec in SOURCE_TABLES.values():
        report = load_table(con, spec, find_source_file(workdir / "data", spec))
        per_table[spec.name] = round(report.seconds, 2)
    rows = sum(con.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in SOURCE_TABLES)
    con.close()
    return {"rows": rows, "seconds_per_table": per_table}


def _warehouse(workdir: Path):
    import duckdb

    from credit_dagster.core import settings

    config = {"memory_limit": os.environ.get("CREDIT_DUCKDB_MEMORY_LIMIT", "4GB"), "threads": settings.threads()}
    return duckdb.connect(str(workdir / "warehouse.duckdb"), config=config)


def stage_features(workdir: Path, scale: float) -> dict:
    """The whole SQL feature build over the ingested raw tables."""
    from credit_dagster.features import sql_models

    con = _warehouse(workdir)
    per_model = {}
    for model in sql_models.discover():
        started = time.perf_counter()
        sql_models.build_model(con, model)
        per_model[model.name] = round(time.perf_counter() - started, 2)
    rows = con.execute("select count(*) from features.application_features").fetchall()[0][0]
    return {"rows": rows, "seconds_per_model": per_model}


def stage_features_pandas(workdir: Path, scale: float) -> dict:
    """The installments and bureau families done the usual way: read into pandas, groupby."""
    import numpy as np

    con = _warehouse(workdir)
    inst = con.execute("select * from raw.installments_payments").df()
    keys = ["SK_ID_CURR", "SK_ID_PREV", "NUM_INSTALMENT_VERSION", "NUM_INSTALMENT_NUMBER"]
    per = inst.groupby(keys, dropna=False).agg(
        due=("DAYS_INSTALMENT", "max"), amount=("AMT_INSTALMENT", "max"), paid=("AMT_PAYMENT", "sum"), last=("DAYS_ENTRY_PAYMENT", "max")
    ).reset_index()
    per["dpd"] = (per["last"] - per["due"]).clip(lower=0)
    per["late"] = (per["dpd"] > 0).astype(float).where(per["dpd"].notna())
    per["under"] = (per["amount"] - per["paid"]).clip(lower=0)
    per["ratio"] = per["paid"] / per["amount"].replace(0, np.nan)
    inst_features = per.groupby("SK_ID_CURR").agg(
        INST_COUNT=("due", "size"), INST_PAID_RATIO_MEAN=("ratio", "mean"), INST_DPD_MAX=("dpd", "max"),
        INST_DPD_MEAN=("dpd", "mean"), INST_LATE_SHARE=("late", "mean"), INST_UNDERPAID_SUM=("under", "sum"),
    )
    del inst, per
    bureau = con.execute("select * from raw.bureau").df()
    balance = con.execute("select * from raw.bureau_balance").df()
    balance["late"] = balance["STATUS"].isin(["1", "2", "3", "4", "5"])
    months = balance.groupby("SK_ID_BUREAU").agg(n_months=("STATUS", "size"), n_late=("late", "sum"))
    credits = bureau.join(months, on="SK_ID_BUREAU")
    credits["active"] = credits["CREDIT_ACTIVE"] == "Active"
    bureau_features = credits.groupby("SK_ID_CURR").agg(
        BUR_CREDIT_COUNT=("SK_ID_BUREAU", "size"), BUR_ACTIVE_COUNT=("active", "sum"),
        BUR_CREDIT_SUM=("AMT_CREDIT_SUM", "sum"), BUR_DEBT_SUM=("AMT_CREDIT_SUM_DEBT", "sum"),
        BUR_MAX_DAYS_OVERDUE=("CREDIT_DAY_OVERDUE", "max"), n_months=("n_months", "sum"), n_late=("n_late", "sum"),
    )
    bureau_features["BUR_BAL_LATE_SHARE"] = bureau_features["n_late"] / bureau_features["n_months"].replace(0, np.nan)
    return {"rows": len(inst_features) + len(bureau_features), "families": "installments + bureau/bureau_balance"}


def stage_nightly_batch(workdir: Path, scale: float) -> dict:
    """Features for 2,000 new applicants: the same SQL over that batch's rows only."""
    from credit_dagster.core.sources import SOURCE_TABLES
    from credit_dagster.features import sql_models

    con = _warehouse(workdir)
    con.execute("create or replace temp table batch_ids as select SK_ID_CURR from raw.application_test order by hash(SK_ID_CURR) limit 2000")
    started = time.perf_counter()
    con.execute("create schema if not exists batch_raw")
    for name in SOURCE_TABLES:
        if name == "bureau_balance":
            where = "SK_ID_BUREAU in (select SK_ID_BUREAU from batch_raw.bureau)"
        elif name == "application_train":
            where = "false"
        else:
            where = "SK_ID_CURR in (select SK_ID_CURR from batch_ids)"
        con.execute(f"create or replace table batch_raw.{name} as select * from raw.{name} where {where}")
    sql_models.build_all(con, sql_models.discover(), schemas={"raw": "batch_raw", "features": "batch_features"})
    rows = con.execute("select count(*) from batch_features.application_features").fetchall()[0][0]
    return {"rows": rows, "batch_seconds": round(time.perf_counter() - started, 2)}


def stage_train(workdir: Path, scale: float) -> dict:
    """Cross-validation of all candidates plus the final fit; parameters from BENCH_TRAIN_PARAMS (JSON)."""
    from credit_dagster.features import sql_models
    from credit_dagster.features.dictionary import protected, risk_directions
    from credit_dagster.ingest.assets import is_synthetic
    from credit_dagster.model import build, training
    from credit_dagster.model.assets import load_training_frames
    from credit_dagster.model.scorecard import Scorecard

    overrides = json.loads(os.environ.get("BENCH_TRAIN_PARAMS", "{}"))
    con = _warehouse(workdir)
    features, labels, app_columns = load_training_frames(con)
    con.close()
    result = build.build_model(features, labels, excluded=protected(sql_models.discover()), app_columns=app_columns,
                               params=training.TrainingParams(**overrides), refer_margin=0.02, scorecard=Scorecard(),
                               directions=risk_directions(sql_models.discover()), progress=print)
    from credit_dagster.model.registry import Registry

    registry = Registry(workdir / "models")
    version = registry.register(result.model, dataclasses.replace(result.metadata, synthetic=is_synthetic(workdir / "data")), result.oof)
    registry.promote(version, "benchmark")
    con = _warehouse(workdir)
    con.execute("create schema if not exists model")
    con.register("oof", result.oof)
    con.execute("create or replace table model.oof_predictions as select * from oof")
    # the feature dictionary the scoring step words its reasons with
    from credit_dagster.features.dictionary import build_dictionary

    columns = [c for c in features.columns if c != "SK_ID_CURR"]
    con.register("dictionary", build_dictionary(sql_models.discover(), columns))
    con.execute("create or replace table features.feature_dictionary as select * from dictionary")
    con.close()
    auc = result.comparison.set_index("candidate")["roc_auc"].round(4).to_dict()
    seconds = result.comparison.set_index("candidate")["train_seconds"].to_dict()
    return {"rows": result.metadata.training_rows, "params": overrides, "cv_roc_auc": auc, "cv_seconds": seconds,
            "fold_rounds": result.metadata.fold_rounds, "features_used": result.metadata.feature_selection["used_by_any_fold"],
            "seed_spread": result.metadata.seed_spread}


def stage_score(workdir: Path, scale: float) -> dict:
    """The nightly job on one drop holding the whole application_test: load, features, scores with
    reasons and counterfactuals, drift report, snapshot. Needs the train stage's champion."""
    os.environ["CREDIT_HOME"] = str(workdir)
    os.environ["CREDIT_INBOX"] = str(workdir / "inbox")
    import shutil

    import dagster as dg

    from credit_dagster.definitions import defs
    from credit_dagster.nightly import drops, partitions

    day = "2026-01-01"
    shutil.rmtree(workdir / "inbox", ignore_errors=True)
    con = _warehouse(workdir)
    for table in ("scored_applications", "decision_audit", "applicant_details", "applicant_features"):
        con.execute(f"drop table if exists scoring.{table}")
    con.close()
    drops.replay(workdir / "data", workdir / "inbox", 1, __import__("datetime").date.fromisoformat(day))
    instance = dg.DagsterInstance.ephemeral()
    partitions.register(instance, [day])
    result = defs.resolve_job_def("nightly_scoring").execute_in_process(instance=instance, partition_key=day, raise_on_error=True)
    steps = {e.step_key.split("__")[-1]: round(e.event_specific_data.duration_ms / 1000, 1)
             for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    meta = result.asset_materializations_for_node("scoring__scored_applications")[0].metadata
    return {"rows": meta["dagster/row_count"].value, "step_seconds": steps,
            "counterfactuals_searched": meta["counterfactuals_searched"].value, "counterfactuals_found": meta["counterfactuals_found"].value}


def run_stage(name: str, workdir: Path, scale: float) -> dict:
    """Run one stage in a child process; return its own wall time and peak RSS."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "_stage", name, str(workdir), str(scale)], stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"stage {name} failed (status {status})")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024)  # Linux reports KiB
    result["rows_per_s"] = round(result["rows"] / result["wall_s"]) if result.get("rows") else None
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_stage":
        _, _, name, workdir, scale = sys.argv
        print(json.dumps(globals()[f"stage_{name}"](Path(workdir), float(scale))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--workdir", default=None, help="default: bench/out/scale_<scale>")
    parser.add_argument("--busy", type=int, default=0, help="this many other processes keep a core busy meanwhile")
    args = parser.parse_args()
    workdir = Path(args.workdir or Path(__file__).parent / "out" / f"scale_{args.scale}")
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"scale {args.scale}, workdir {workdir}, {os.cpu_count()} cores, {args.busy} busy processes beside")
    # another job on the same machine: a pure-Python loop holds one core for as long as it runs
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        run_stages(args, workdir)
    finally:
        for process in busy:
            process.kill()


def run_stages(args: argparse.Namespace, workdir: Path) -> None:
    results = {}
    for name in args.stages.split(","):
        result = results[name] = run_stage(name, workdir, args.scale)
        print(f"{name:10s} wall {result['wall_s']:>7.1f} s  peak RSS {result['peak_rss_mb']:>6,} MB  "
              f"rows {result.get('rows', 0):>12,}  rows/s {result.get('rows_per_s') or 0:>10,}  "
              + json.dumps({k: v for k, v in result.items() if k not in ('wall_s', 'peak_rss_mb', 'rows', 'rows_per_s')}))
    if {"features", "features_pandas"} <= results.keys():
        sql = results["features"]["seconds_per_model"]
        sql_s = sql["installments_features"] + sql["bureau_features"]
        pandas = results["features_pandas"]
        print(f"installments + bureau families: DuckDB SQL {sql_s:.1f} s vs pandas groupby {pandas['wall_s']:.1f} s "
              f"(x{pandas['wall_s'] / sql_s:.1f} time); peak RSS whole SQL build {results['features']['peak_rss_mb']:,} MB "
              f"vs pandas two families {pandas['peak_rss_mb']:,} MB (x{pandas['peak_rss_mb'] / results['features']['peak_rss_mb']:.1f})")


if __name__ == "__main__":
    main()
