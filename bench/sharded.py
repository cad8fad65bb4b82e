"""Sharded nights on Celery workers against the single-process night: wall time, each step's
time, peak RSS of the run's process and of each worker.

    CREDIT_HOME=/tmp/bench3 python bench/sharded.py --days 3 --nights 1 --workers 1,2
    CREDIT_HOME=/tmp/bench3 python bench/sharded.py --days 30 --nights 10 --workers 2   # a 10-night backfill

The home must hold a trained champion (bench/bench.py --stages synth,ingest,features,train).
Its application_test is replayed as `--days` daily drops; the first `--nights` are scored with
`credit-dagster score --start … --end …`: once into the warehouse file, in-process (the default),
then for each worker count on the Parquet datasets (CREDIT_STORAGE=datasets, CREDIT_SHARDS
shards) with that many `credit-dagster worker` processes on the local RabbitMQ and the
production instance on a fresh database of the local PostgreSQL. The scoring tables are
dropped between configurations, so each scores the same drops from the same state.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import duckdb
import psycopg2

from credit_dagster_tests.conftest import SERVER
from credit_dagster_tests.test_production import BIN, DEPLOY, _start, _wait

START = date(2026, 1, 1)


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a process and its descendants (a Celery worker's pool child holds the step)."""
    peak, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        peak = max(peak, next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")) / 1024)
        todo += [int(c) for c in children]
    return round(peak)


def reset(home: Path) -> None:
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    for (schema,) in con.execute("select distinct schema_name from information_schema.schemata "
                                 "where schema_name in ('scoring', 'monitoring') or schema_name like 'drop_%'").fetchall():
        con.execute(f"drop schema {schema} cascade")
    con.close()
    shutil.rmtree(home / "datasets", ignore_errors=True)


def step_seconds(env: dict) -> dict:
    """Each step's seconds in the newest nightly run(s) of the instance, summed over nights."""
    import dagster as dg

    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_URL") if k in env})
    totals: dict[str, float] = {}
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs(dg.RunsFilter(job_name="nightly_scoring")):
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS):
                key = entry.dagster_event.step_key.split("__")[-1]
                totals[key] = round(totals.get(key, 0) + entry.dagster_event.event_specific_data.duration_ms / 1000, 1)
    return totals


def run_config(home: Path, nights: int, workers: int, shards: int, logs: Path) -> dict:
    reset(home)
    dagster_home = home / f"dagster_{workers}"
    shutil.rmtree(dagster_home, ignore_errors=True)
    dagster_home.mkdir()
    env = {**os.environ, "CREDIT_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    if workers:
        admin = psycopg2.connect(SERVER)
        admin.autocommit = True
        name = f"bench_{uuid.uuid4().hex[:8]}"
        admin.cursor().execute(f"create database {name}")
        shutil.copy(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
        env.update({"DAGSTER_PG_URL": SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://") + "/" + name,
                    "CREDIT_STORAGE": "datasets", "CREDIT_SHARDS": str(shards), "CREDIT_EXECUTOR": "celery"})
        subprocess.run([str(BIN / "celery"), "-b", "pyamqp://guest:guest@127.0.0.1:5672//", "purge", "-f", "-Q", "dagster,warehouse"],
                       env=env, capture_output=True, timeout=60)
    pool = [_start([str(BIN / "credit-dagster"), "worker", "--name", f"bench{i}@%h", "--queue", "dagster", "--queue", "warehouse"],
                   env, logs / f"worker{i}.log") for i in range(workers)]
    try:
        for i in range(workers):
            _wait(f"worker {i}", lambda i=i: "ready" in (logs / f"worker{i}.log").read_text(errors="replace"), 120, logs)
        end = (START + timedelta(days=nights - 1)).isoformat()
        began = time.monotonic()
        proc = subprocess.Popen([str(BIN / "credit-dagster"), "score", "--start", START.isoformat(), "--end", end], env=env,
                                stdout=(logs / f"score_{workers}.log").open("w"), stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - began
        assert status == 0, (logs / f"score_{workers}.log").read_text()[-3000:]
        result = {"workers": workers, "storage": "datasets" if workers else "warehouse", "nights": nights,
                  "wall_s": round(wall, 1), "run_process_peak_rss_mb": round(usage.ru_maxrss / 1024),
                  "worker_peak_rss_mb": [peak_rss_mb(p.pid) for p in pool], "step_seconds": step_seconds(env)}
    finally:
        for p in pool:
            os.killpg(p.pid, 15)
            p.wait(60)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=3, help="drops the test set is replayed as (1 night = 1/days of it)")
    parser.add_argument("--nights", type=int, default=1)
    parser.add_argument("--workers", default="1,2", help="worker counts to run on the datasets (0 = the warehouse, in-process)")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--skip-warehouse", action="store_true")
    parser.add_argument("--data-dir", help="the home's Kaggle-layout data (default CREDIT_HOME/data)")
    args = parser.parse_args()
    home = Path(os.environ["CREDIT_HOME"])
    logs = home / "bench_logs"
    logs.mkdir(exist_ok=True)
    shutil.rmtree(home / "inbox", ignore_errors=True)
    # in a process of its own: a child forked from a big parent starts with the parent's peak RSS
    data_dir = Path(args.data_dir) if args.data_dir else home / "data"
    subprocess.run([str(BIN / "credit-dagster"), "replay", "--days", str(args.days), "--start", START.isoformat(),
                    "--data-dir", str(data_dir)], env={**os.environ, "CREDIT_HOME": str(home)}, check=True, capture_output=True)
    applications = sum(duckdb.sql(f"select count(*) from read_csv('{home / 'inbox' / (START + timedelta(days=i)).isoformat()}"
                                  "/application_test.csv')").fetchall()[0][0] for i in range(args.nights))
    print(f"{args.nights} night(s), {applications:,} applications, {args.shards} shards")
    configs = ([] if args.skip_warehouse else [0]) + [int(w) for w in args.workers.split(",")]
    for workers in configs:
        result = run_config(home, args.nights, workers, args.shards, logs)
        print(json.dumps({"applications": applications, **result}), flush=True)


if __name__ == "__main__":
    main()
