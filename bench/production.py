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
import uuid
from pathlib import Path

import dagster as dg
import psycopg2

from credit_dagster.instance import LOCATION
from credit_dagster.nightly import partitions
from credit_dagster_tests.conftest import SERVER
from credit_dagster_tests.test_production import BIN, DEPLOY, _client, _finished, _free_port, _start, _status, _submit, _wait


def launch(client, job: str, tags: dict) -> tuple[float, float]:
    began = time.monotonic()
    run_id = client.submit_job_execution(job, repository_location_name=LOCATION, repository_name="__repository__", tags=tags)
    started = None
    while True:
        status = _status(client, run_id)
        if started is None and status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS):
            started = time.monotonic() - began
        if _finished(client, run_id):
            assert status == dg.DagsterRunStatus.SUCCESS, f"{job} ended {status}"
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
    dagster_home.mkdir()
    logs.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
    admin = psycopg2.connect(SERVER)
    admin.autocommit = True
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin.cursor().execute(f"create database {name}")
    url = SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://") + "/" + name
    code_port, web_port = _free_port(), _free_port()
    env = {**os.environ, "CREDIT_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "DAGSTER_PG_URL": url,
           "CREDIT_CODE_SERVER_HOST": "127.0.0.1", "CREDIT_CODE_SERVER_PORT": str(code_port)}
    os.environ.update({k: env[k] for k in ("CREDIT_HOME", "DAGSTER_HOME", "DAGSTER_PG_URL")})
    workspace = str(DEPLOY / "workspace.yaml")
    services = [
        _start([str(BIN / "dagster"), "api", "grpc", "-m", "credit_dagster.definitions", "--location-name", LOCATION,
                "-h", "127.0.0.1", "-p", str(code_port)], env, logs / "code_server.log"),
        _start([str(BIN / "dagster-daemon"), "run", "-w", workspace], env, logs / "daemon.log"),
        _start([str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(web_port)], env, logs / "webserver.log")]
    try:
        began = time.monotonic()
        client = _wait("the webserver", lambda: _client(web_port), 180, logs)
        print(f"three services up, webserver answering: {time.monotonic() - began:.1f} s")
        with dg.DagsterInstance.get() as instance:
            partitions.register(instance, [args.night])
        # a first night, not counted, once the webserver has loaded the code location
        first = _wait("the code location", lambda: _submit(client, args.night), 180, logs)
        _wait("the first night", lambda: _finished(client, first), 600, logs)
        for job, tags in (("review_fold", {}), ("nightly_scoring", {"dagster/partition": args.night})):
            times = [launch(client, job, tags) for _ in range(args.runs)]
            started, done = [t[0] for t in times], [t[1] for t in times]
            print(f"{job} x{args.runs}: submitted to started median {statistics.median(started):.1f} s "
                  f"(max {max(started):.1f}), to succeeded median {statistics.median(done):.1f} s (max {max(done):.1f})")
    finally:
        for service in services:
            service.terminate()
        for service in services:
            service.wait(30)
        admin.cursor().execute(f"drop database {name} with (force)")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
