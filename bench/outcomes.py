"""Outcome ingestion and back-test at volume: a million outcome reports.

    python bench/outcomes.py --applicants 83334 --months 12 --models /path/to/home/models

A temporary CREDIT_HOME gets `scoring.scored_applications` with `--applicants` granted, refused
and referred decisions spread over twelve monthly vintages (the PD and grade drawn as a night
gives them, the version the champion of `--models`), and one outcome file per month on book:
`--applicants` x `--months` reports in all (83,334 x 12 = 1,000,008). Then the `backtest` job
runs in-process (fold the files, settle every report, back-test per vintage and grade, curves,
overrides); its wall time per asset and the process's peak RSS are printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--applicants", type=int, default=83_334)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--models", required=True, help="a models folder with a champion (any CREDIT_HOME/models)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="outcomes-bench-"))
    os.environ["CREDIT_HOME"] = str(home)
    os.environ.pop("DAGSTER_HOME", None)
    shutil.copytree(args.models, home / "models")
    from credit_dagster.model.registry import Registry

    version = Registry(home / "models").alias("champion")
    rng = np.random.default_rng(0)
    n = args.applicants
    pd_ = np.clip(rng.beta(1.2, 14, n), 0.005, 0.6)
    grades = np.select([pd_ < 0.02, pd_ < 0.05, pd_ < 0.1, pd_ < 0.2], list("ABCD"), "E")
    decision = np.where(pd_ < 0.12, "granted", np.where(pd_ < 0.15, "refer to an advisor", "refused"))
    nights = pd.to_datetime("2025-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    scored = pd.DataFrame({"SK_ID_CURR": np.arange(n) + 10_000_000, "model_version": version, "partition_date": nights.strftime("%Y-%m-%d"),
                           "probability_of_default": pd_, "grade": grades, "decision": decision})
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("create schema scoring")
        con.execute("create table scoring.scored_applications as select * from scored")
    default_month = np.where(rng.random(n) < pd_, rng.integers(1, args.months + 1, n), 10**6)
    inbox = home / "outcomes" / "inbox"
    for month in range(1, args.months + 1):
        defaulted = default_month <= month
        report = pd.DataFrame({"SK_ID_CURR": scored["SK_ID_CURR"],
                               "REPORTING_DATE": (nights + pd.DateOffset(months=month)).strftime("%Y-%m-%d"),
                               "MONTHS_ON_BOOK": month, "WORST_DPD": np.where(defaulted, 90, 0), "TARGET": defaulted.astype(int)})
        (inbox / f"month_{month:02d}").mkdir(parents=True)
        report.to_csv(inbox / f"month_{month:02d}" / "loan_outcomes.csv", index=False)
    print(f"{n:,} decisions, {n * args.months:,} outcome reports in {args.months} files ({(decision == 'granted').sum():,} granted)")
    from credit_dagster.definitions import defs

    started = time.perf_counter()
    result = defs.resolve_job_def("backtest").execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    wall = time.perf_counter() - started
    steps = {e.step_key: e.event_specific_data.duration_ms / 1000 for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    print(f"backtest job: {'SUCCESS' if result.success else 'FAILURE'} in {wall:.1f} s; " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()))
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        counts = {t: con.execute(f"select count(*) from outcomes.{t}").fetchone()[0]
                  for t in ("received", "loan_outcomes", "quarantine", "backtest_vintages", "backtest_grades")}
    print(f"tables: {counts}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
