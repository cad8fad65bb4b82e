"""Dagster's production deployment (deploy/): how long a run takes to launch on it.

    CREDIT_HOME=/path/to/scored/home python bench/production.py --runs 5 --night 2026-11-01

Starts the code server, the daemon and the webserver on a fresh database of the local PostgreSQL
(as `test_production.py` does), on a copy of the home, then launches through the webserver's
GraphQL API, one after another: `--runs` times the review fold (a short run: the launch's own
cost shows) and `--runs` times the night `--night`. For each: submitted to started (the daemon
takes it off the queue, the code server starts the run's process) and submitted to succeeded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from credit_dagster.nightly import partitions
from credit_dagster_tests.services import DEPLOY, FINISHED, finished, fresh_database, production_services, status, submit, wait


def launch(client, job: str, day: str | None) -> tuple[float, float]:
    began = time.monotonic()
    run_id = submit(client, day, job)
    started = None
    while True:
        now = status(client, run_id)
        if started is None and now in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS):
            started = time.monotonic() - began
        if now in FINISHED:
            assert now == dg.DagsterRunStatus.SUCCESS, f"{job} ended {now}"
            return started, time.monotonic() - began
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--night", default="2026-11-01", help="a night of the home's inbox")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_production_"))
    home, dagster_home, logs = work / "home", work / "dagster", work / "logs"
    shutil.copytree(os.environ["CREDIT_HOME"], home)
    # the night alone in the inbox: the daemon's late-drop sensor scores every unscored past drop
    # when it starts, and those runs would stand in the queue before the ones measured
    for day in (home / "inbox").iterdir():
        if day.name != args.night:
            shutil.rmtree(day)
    dagster_home.mkdir()
    logs.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "CREDIT_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    try:
        with fresh_database() as url:
            env["DAGSTER_PG_URL"] = url
            os.environ.update({k: env[k] for k in ("CREDIT_HOME", "DAGSTER_HOME", "DAGSTER_PG_URL")})
            began = time.monotonic()
            with production_services(env, logs) as (_, client, _):
                print(f"three services up, webserver answering: {time.monotonic() - began:.1f} s")
                with dg.DagsterInstance.get() as instance:
                    partitions.register(instance, [args.night])
                # a first night, not counted, once the webserver has loaded the code location
                first = wait("the code location", lambda: submit(client, args.night), 180, logs)
                wait("the first night", lambda: finished(client, first), 600, logs)
                for job, day in (("review_fold", None), ("nightly_scoring", args.night)):
                    times = [launch(client, job, day) for _ in range(args.runs)]
                    started, done = [t[0] for t in times], [t[1] for t in times]
                    print(f"{job} x{args.runs}: submitted to started median {statistics.median(started):.1f} s "
                          f"(max {max(started):.1f}), to succeeded median {statistics.median(done):.1f} s (max {max(done):.1f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
