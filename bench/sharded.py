"""Sharded nights on Celery workers against the single-process night: wall time, how many
cores the machine kept busy meanwhile, each step's time, peak RSS of the run's process and of each worker, and which step set it.

    CREDIT_HOME=/tmp/bench3 python bench/sharded.py --days 3 --nights 1 --workers 1,2
    CREDIT_HOME=/tmp/bench3 python bench/sharded.py --days 10 --nights 10 --workers 2   # a 10-night backfill
    CREDIT_HOME=/tmp/bench3 python bench/sharded.py --days 10 --nights 10 --workers 0 --skip-warehouse   # the same, in-process

The home must hold a trained champion (bench/bench.py --stages synth,ingest,features,train).
Its application_test is replayed as `--days` daily drops; the first `--nights` are scored once
into the warehouse file, in-process (the default), then for each worker count on the Parquet
datasets (CREDIT_STORAGE=datasets, CREDIT_SHARDS shards) with that many `credit-dagster worker`
processes on the local RabbitMQ and the production instance on a fresh database of the local
PostgreSQL. A sharded night is a landing run, a run per (night, shard) partition and a publish run,
which only the daemon runs side by side: with workers (or `--backfill`), every configuration is
launched through the webserver's GraphQL API (one night as the UI's "Launch run" of its
partition, several as its "Launch backfill"), queued and launched by the daemon of Dagster's
production services (deploy/), the automation launching each night's shards and publish step; otherwise `credit-dagster score
--start … --end …` scores them one after another. The scoring tables are dropped between
configurations, so each scores the same drops from the same state.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import threading
import time
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb

from credit_dagster.nightly import partitions
from credit_dagster_tests.services import (
    BIN,
    DEPLOY,
    celery_workers,
    fresh_database,
    launch_backfill,
    night_runs,
    production_services,
    published,
    run_table,
    submit,
    wait,
    worker_threads,
)

PAST = date(2026, 1, 1)
# a backfill's drops are dated in the future: the daemon's late-drop sensor, which scores every
# unscored past drop of the inbox, leaves them to the backfill (`credit-dagster score` refuses them)
FUTURE = date.today() + timedelta(days=365)


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
        peak = max(peak, next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0) / 1024)  # 0: a zombie
        todo += [int(c) for c in children]
    return round(peak)


class RssSampler:
    """Every process's resident memory under the given roots (the workers and their pool
    children), five times a second: `step_peak_rss` says which step set a worker's peak."""

    def __init__(self, roots: list[int]):
        self.roots, self.samples, self.done = roots, [], threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(0.2):
            todo = [(root, root) for root in self.roots]
            while todo:
                root, pid = todo.pop()
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    todo += [(root, int(c)) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
                except (FileNotFoundError, ProcessLookupError):
                    continue
                rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")), None)
                if rss is not None:  # a zombie has no memory left
                    self.samples.append((time.time(), root, pid, rss / 1024))

    def peaks(self) -> list[float]:
        """Each worker's highest sampled memory, in any of its processes: a step's child is gone
        by the end, and its VmHWM with it."""
        return [round(max((rss for _, r, _, rss in self.samples if r == root), default=0)) for root in self.roots]

    def stop(self) -> list[tuple[float, int, int, float]]:
        self.done.set()
        self.thread.join()
        return self.samples


def step_peak_rss(samples: list[tuple[float, int, int, float]]) -> dict:
    """The highest resident memory of the process that ran each kind of step, while it ran it."""
    peaks: dict[str, float] = {}
    with dg.DagsterInstance.get() as instance:
        for run in night_runs(instance):
            starts = {}
            for entry in instance.all_logs(run.run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}):
                key = entry.dagster_event.step_key
                if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                    starts[key] = (entry.timestamp, entry.dagster_event.pid)
                elif key in starts:
                    (began, pid), ended = starts.pop(key), entry.timestamp
                    held = [rss for t, _, p, rss in samples if p == pid and began <= t <= ended]
                    kind = key.split("__")[-1]
                    peaks[kind] = round(max([peaks.get(kind, 0), *held]))
    return peaks


def busy_cpu_s() -> float:
    """The machine's busy CPU seconds so far, every process counted (/proc/stat): over a
    configuration, busy seconds / wall seconds is how many of the cores it kept busy."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def reset(home: Path) -> None:
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    for (schema,) in con.execute("select distinct schema_name from information_schema.schemata "
                                 "where schema_name in ('scoring', 'monitoring') or schema_name like 'drop_%'").fetchall():
        con.execute(f"drop schema {schema} cascade")
    con.close()
    shutil.rmtree(home / "datasets", ignore_errors=True)


def step_seconds() -> dict:
    """Each step's seconds in the nights' runs of the instance (DAGSTER_HOME), summed over nights and shards."""
    totals: dict[str, float] = {}
    with dg.DagsterInstance.get() as instance:
        for run in night_runs(instance):
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS):
                key = entry.dagster_event.step_key.split("__")[-1]
                totals[key] = round(totals.get(key, 0) + entry.dagster_event.event_specific_data.duration_ms / 1000, 1)
    return totals


def score_nights(days: list[str], env: dict, logs: Path, tag: str) -> dict:
    """`credit-dagster score` over the nights, one after another; its wall time and peak RSS."""
    began, busy = time.monotonic(), busy_cpu_s()
    proc = subprocess.Popen([str(BIN / "credit-dagster"), "score", "--start", days[0], "--end", days[-1]], env=env,
                            stdout=(logs / f"score_{tag}.log").open("w"), stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    assert status == 0, (logs / f"score_{tag}.log").read_text()[-3000:]
    wall = time.monotonic() - began
    return {"wall_s": round(wall, 1), "cores_busy": round((busy_cpu_s() - busy) / wall, 2),
            "run_process_peak_rss_mb": round(usage.ru_maxrss / 1024)}


def daemon_nights(days: list[str], env: dict, logs: Path) -> dict:
    """The nights launched through the webserver and run by the daemon: one night as the UI's
    "Launch run" of its partition (as the schedule launches it: no backfill), several as one
    backfill, which the daemon's backfill loop (every 30 s) follows. On the datasets the runs are
    the landings, and the automation launches each shard and the publish step after them. From the
    launch until every night is published: the time, the runs, how many ran at once at most."""
    with production_services(env, logs) as (_, client, _), dg.DagsterInstance.get() as instance:
        partitions.register(instance, days)
        began, busy, clock = time.monotonic(), busy_cpu_s(), time.time()
        if len(days) == 1:
            wait("the night launched", lambda: submit(client, days[0]), 300, logs)
        else:
            wait("the backfill launched", lambda: launch_backfill(client, days), 300, logs)
        runs = wait("every night published", lambda: published(instance, days), 7200, logs)
        wall, busy = time.monotonic() - began, busy_cpu_s() - busy
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}, run_table(instance)
        records = instance.get_run_records(dg.RunsFilter(run_ids=[r.run_id for r in runs]))
        spans = [(r.start_time, r.end_time) for r in records]
        at_once = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
        # when each run was created, started (its process up, the code location imported) and ended
        timeline = [f"{r.dagster_run.tags.get('dagster/partition')} {'+'.join(sorted(k.path[-1] for k in r.dagster_run.asset_selection or []))}"
                    f" {r.create_timestamp.timestamp() - clock:.1f}/{r.start_time - clock:.1f}/{r.end_time - clock:.1f}"
                    for r in sorted(records, key=lambda r: r.create_timestamp)]
    return {"wall_s": round(wall, 1), "cores_busy": round(busy / wall, 2), "runs": len(runs), "runs_at_once_max": at_once,
            "created/started/ended_s": timeline}


def run_config(home: Path, start: date, nights: int, workers: int, shards: int, logs: Path, backfill: bool,
               threads: int, memory_limit: str) -> dict:
    reset(home)
    dagster_home = home / f"dagster_{workers}"
    shutil.rmtree(dagster_home, ignore_errors=True)
    dagster_home.mkdir()
    env = {**os.environ, "CREDIT_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    days = [(start + timedelta(days=i)).isoformat() for i in range(nights)]
    with ExitStack() as stack:
        pool = {}
        if workers or backfill:  # the production instance on PostgreSQL
            shutil.copy(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
            env["DAGSTER_PG_URL"] = stack.enter_context(fresh_database())
        if workers:
            env.update({"CREDIT_STORAGE": "datasets", "CREDIT_SHARDS": str(shards), "CREDIT_EXECUTOR": "celery"})
            pool = stack.enter_context(celery_workers([f"bench{i}" for i in range(workers)], env, logs, threads, memory_limit))
        os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_URL") if k in env})
        sampler = RssSampler([p.pid for p in pool.values()])
        timing = daemon_nights(days, env, logs) if backfill else score_nights(days, env, logs, str(workers))
        samples = sampler.stop()
        return {"workers": workers, "threads_per_worker": worker_threads(workers, threads) if workers else None,
                "worker_duckdb_memory_limit": memory_limit or "CREDIT_DUCKDB_MEMORY_LIMIT" if workers else None,
                "storage": "datasets" if workers else "warehouse", "nights": nights,
                "launched_as": ("daemon, a run" if nights == 1 else "daemon backfill") if backfill else "credit-dagster score", **timing,
                "worker_peak_rss_mb": [max(peak_rss_mb(p.pid), sampled) for p, sampled in zip(pool.values(), sampler.peaks(), strict=True)],
                "step_seconds": step_seconds(),
                "worker_step_peak_rss_mb": step_peak_rss(samples) if pool else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=3, help="drops the test set is replayed as (1 night = 1/days of it)")
    parser.add_argument("--nights", type=int, default=1)
    parser.add_argument("--workers", default="1,2", help="worker counts to run on the datasets (0 = the warehouse, in-process)")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--skip-warehouse", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="each worker's threads (default: its share of the cores)")
    parser.add_argument("--memory-limit", default="", help="each worker's DuckDB memory limit (default CREDIT_DUCKDB_MEMORY_LIMIT)")
    parser.add_argument("--data-dir", help="the home's Kaggle-layout data (default CREDIT_HOME/data)")
    parser.add_argument("--backfill", action="store_true", help="the nights as a daemon backfill launched through GraphQL")
    args = parser.parse_args()
    home = Path(os.environ["CREDIT_HOME"])
    logs = home / "bench_logs"
    logs.mkdir(exist_ok=True)
    shutil.rmtree(home / "inbox", ignore_errors=True)
    # in a process of its own: a child forked from a big parent starts with the parent's peak RSS
    data_dir = Path(args.data_dir) if args.data_dir else home / "data"
    configs = ([] if args.skip_warehouse else [0]) + [int(w) for w in args.workers.split(",")]
    # a sharded night's shards are runs of their own: only the daemon runs them side by side
    # (`credit-dagster score` runs them one after another), so Celery workers mean a daemon backfill
    backfill = args.backfill or any(configs)
    start = FUTURE if backfill else PAST
    subprocess.run([str(BIN / "credit-dagster"), "replay", "--days", str(args.days), "--start", start.isoformat(),
                    "--data-dir", str(data_dir)], env={**os.environ, "CREDIT_HOME": str(home)}, check=True, capture_output=True)
    applications = sum(duckdb.sql(f"select count(*) from read_csv('{home / 'inbox' / (start + timedelta(days=i)).isoformat()}"
                                  "/application_test.csv')").fetchall()[0][0] for i in range(args.nights))
    print(f"{args.nights} night(s), {applications:,} applications, {args.shards} shards")
    for workers in configs:
        result = run_config(home, start, args.nights, workers, args.shards, logs, backfill, args.threads, args.memory_limit)
        print(json.dumps({"applications": applications, **result}), flush=True)


if __name__ == "__main__":
    main()
