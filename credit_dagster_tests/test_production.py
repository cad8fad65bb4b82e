"""Dagster's production deployment (deploy/): its runs on the local PostgreSQL, the webserver, the
daemon and the code server as three processes, nights launched through the UI's GraphQL API and
by a schedule tick, a code server killed under a run."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient

from credit_dagster import cli
from credit_dagster.instance import LOCATION, PROJECT_ROOT
from credit_dagster.monitoring import recovery
from credit_dagster.nightly import drops, partitions
from credit_dagster_tests.conftest import SCORED_DAYS

DEPLOY = PROJECT_ROOT / "deploy"
BIN = Path(sys.executable).parent
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    # its own process group: killing it kills what it started, as a container's end would
    return subprocess.Popen(args, env=env, cwd=PROJECT_ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait(what: str, condition, timeout: float, logs: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))
    raise AssertionError(f"waited {timeout:.0f} s for {what}\n{tails}")


def _status(client: DagsterGraphQLClient, run_id: str):
    try:
        return client.get_run_status(run_id)
    except Exception:  # the webserver reloading its location answers with an error for a moment
        return None


@pytest.mark.slow
def test_three_services_on_postgres_run_nights_from_graphql_and_a_schedule_and_fail_a_run_whose_code_server_died(
        scored_home, synthetic_dir, database, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(scored_home, home)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
    # the schedule ticks every minute here (02:00 in production) and scores yesterday's drop
    yesterday = (datetime.now(drops.TIMEZONE).date() - timedelta(days=1)).isoformat()
    (home / "inbox" / SCORED_DAYS[1]).rename(home / "inbox" / yesterday)
    code_port, web_port = _free_port(), _free_port()
    env = {**os.environ, "CREDIT_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "DAGSTER_PG_URL": database,
           "CREDIT_CODE_SERVER_HOST": "127.0.0.1", "CREDIT_CODE_SERVER_PORT": str(code_port), "CREDIT_NIGHTLY_CRON": "* * * * *"}
    for key in ("CREDIT_HOME", "DAGSTER_HOME", "DAGSTER_PG_URL"):
        monkeypatch.setenv(key, env[key])
    logs = tmp_path / "logs"
    logs.mkdir()
    code_server = [str(BIN / "dagster"), "api", "grpc", "-m", "credit_dagster.definitions", "--location-name", LOCATION,
                   "-h", "127.0.0.1", "-p", str(code_port)]
    workspace = str(DEPLOY / "workspace.yaml")
    services = [_start(code_server, env, logs / "code_server.log"),
                _start([str(BIN / "dagster-daemon"), "run", "-w", workspace], env, logs / "daemon.log"),
                _start([str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(web_port)], env,
                       logs / "webserver.log")]
    try:
        client = _wait("the webserver", lambda: _client(web_port), 180, logs)
        with dg.DagsterInstance.get() as instance:
            # the partition known first, as the schedule, the sensor and the CLI do
            partitions.register(instance, [SCORED_DAYS[0]])
            first = _wait("the webserver to load the code location", lambda: _submit(client, SCORED_DAYS[0]), 180, logs)
            assert _wait("the launched night", lambda: _finished(client, first), 300, logs) == dg.DagsterRunStatus.SUCCESS

            def scheduled():
                runs = instance.get_runs(dg.RunsFilter(tags={"dagster/schedule_name": "nightly_scoring_schedule"}))
                return runs and runs[0].is_finished and runs[0]

            run = _wait("a schedule tick's night", scheduled, 240, logs)
            assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == yesterday
            assert instance.get_run_by_id(first).job_code_origin is not None  # launched runs of the code location

            # a second night; its code server (and the run's process with it) killed while it runs
            second = _submit(client, SCORED_DAYS[0])
            _wait("the second night to start", lambda: _status(client, second) == dg.DagsterRunStatus.STARTED, 180, logs)
            os.killpg(services[0].pid, signal.SIGKILL)
            services[0].wait()
            assert _wait("run monitoring to fail the run", lambda: _finished(client, second), 180, logs) == dg.DagsterRunStatus.FAILURE
            said = " ".join(str(e.message) for e in instance.all_logs(second))
            assert "does not answer" in said and f"127.0.0.1:{code_port}" in said

            # the code server back, the night again: it succeeds
            services[0] = _start(code_server, env, logs / "code_server.log")
            # a run submitted before the code server answers fails at launch (the daemon cannot reach it)
            health = [str(BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(code_port)]
            _wait("the code server back", lambda: subprocess.run(health, capture_output=True).returncode == 0, 180, logs)
            again = _wait("the webserver to reload the code location", lambda: _submit(client, SCORED_DAYS[0]), 180, logs)
            assert _wait("the re-run", lambda: _finished(client, again), 300, logs) == dg.DagsterRunStatus.SUCCESS

            # credit-dagster's own commands on the same instance: their runs are the deployment's runs
            assert cli.main(["score", "--start", yesterday, "--data-dir", str(synthetic_dir)]) == 0
            ours = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": yesterday, recovery.PID_TAG: str(os.getpid())}))
            assert [r.status for r in ours] == [dg.DagsterRunStatus.SUCCESS] and ours[0].job_code_origin is not None
    finally:
        for service in services:
            if service.poll() is None:
                os.killpg(service.pid, signal.SIGTERM)
        for service in services:
            try:
                service.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(service.pid, signal.SIGKILL)


def _client(port: int) -> DagsterGraphQLClient | None:
    try:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=30)
        client._execute("query { version }")  # the webserver answers and has loaded its workspace
        return client
    except Exception:
        return None


def _finished(client: DagsterGraphQLClient, run_id: str):
    status = _status(client, run_id)
    return status if status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED) else None


def _submit(client: DagsterGraphQLClient, day: str) -> str | None:
    try:
        return client.submit_job_execution("nightly_scoring", repository_location_name=LOCATION,
                                           repository_name="__repository__", tags={"dagster/partition": day})
    except Exception:  # the location still reloading
        return None


@pytest.mark.parametrize("url, words", [
    (None, "DAGSTER_PG_URL is not set"),
    ("postgresql+psycopg2://dagster@127.0.0.1:9/dagster", "127.0.0.1:9/dagster (DAGSTER_PG_URL) cannot be reached")])
def test_commands_say_in_one_line_when_the_instance_database_is_away(credit_home, synthetic_dir, tmp_path, monkeypatch, capsys,
                                                                   url, words):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    if url:
        monkeypatch.setenv("DAGSTER_PG_URL", url)
    else:
        monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    assert cli.main(["score", "--start", SCORED_DAYS[0], "--data-dir", str(synthetic_dir)]) == 1
    said = capsys.readouterr().err
    assert words in said and "ServiceUnreachable" in said and len(said.strip().splitlines()) == 1
