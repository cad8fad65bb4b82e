"""Dagster's production deployment (deploy/) and Celery workers as real processes, for the tests
and the benchmarks that run against them: a fresh database on the machine's PostgreSQL, the code
server, the daemon and the webserver, `credit-dagster worker` processes, and the webserver's
GraphQL API to launch runs and backfills."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg2
from dagster_graphql import DagsterGraphQLClient

from credit_dagster.core import settings
from credit_dagster.core.keys import SNAPSHOT
from credit_dagster.instance import LOCATION, PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
BIN = Path(sys.executable).parent
# the machine's PostgreSQL (trust auth); each test or benchmark gets a database of its own on it
SERVER = os.environ.get("CREDIT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new database on SERVER, as the SQLAlchemy URL Dagster's PostgreSQL storage takes; dropped after."""
    admin = psycopg2.connect(SERVER, connect_timeout=5)
    admin.autocommit = True
    name = f"credit_{uuid.uuid4().hex[:10]}"
    admin.cursor().execute(f"create database {name}")
    try:
        yield SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://") + "/" + name
    finally:
        admin.cursor().execute(f"drop database {name} with (force)")
        admin.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    # its own process group: killing it kills what it started, as a container's end would
    return subprocess.Popen(args, env=env, cwd=PROJECT_ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to each process group still alive, SIGKILL to those that do not end in 30 s."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait(what: str, condition, timeout: float, logs: Path, every: float = 1):
    """`condition()`'s first true value, asked `every` seconds; after `timeout` seconds, an error
    with the tails of the logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log")))
    raise AssertionError(f"waited {timeout:.0f} s for {what}\n{tails}")


def code_server_args(port: int) -> list[str]:
    return [str(BIN / "dagster"), "api", "grpc", "-m", "credit_dagster.definitions", "--location-name", LOCATION,
            "-h", "127.0.0.1", "-p", str(port)]


def code_server_answers(port: int) -> bool:
    health = [str(BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(port)]
    return subprocess.run(health, capture_output=True).returncode == 0


@contextmanager
def production_services(env: dict, logs: Path) -> Iterator[tuple[list[subprocess.Popen], DagsterGraphQLClient, dict]]:
    """The code server, the daemon and the webserver of deploy/ as three processes on `env`
    (its DAGSTER_HOME holds deploy/dagster.yaml, DAGSTER_PG_URL a database); yields the processes
    (the code server first), a GraphQL client of the webserver once it answers, and the
    environment with the code server's address."""
    code_port, web_port = free_port(), free_port()
    env = {**env, "CREDIT_CODE_SERVER_HOST": "127.0.0.1", "CREDIT_CODE_SERVER_PORT": str(code_port)}
    workspace = str(DEPLOY / "workspace.yaml")
    # the storage created once, as docs/scaling.md says: the daemon and the webserver starting together on
    # an empty database race to create its tables, and one dies ("type "snapshots" already exists")
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=env, cwd=PROJECT_ROOT, check=True,
                   stdout=(logs / "migrate.log").open("ab"), stderr=subprocess.STDOUT)
    services = [start(code_server_args(code_port), env, logs / "code_server.log"),
                start([str(BIN / "dagster-daemon"), "run", "-w", workspace], env, logs / "daemon.log"),
                start([str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(web_port)], env,
                      logs / "webserver.log")]
    try:
        yield services, wait("the webserver", lambda: client(web_port), 180, logs), env
    finally:
        stop(services)


def worker_threads(workers: int, threads: int = 0) -> int:
    """Each worker's threads: `threads`, else an equal share of this machine's cores."""
    return threads or max(1, settings.physical_cores() // max(workers, 1))


@contextmanager
def celery_workers(names: list[str], env: dict, logs: Path, threads: int = 0,
                   memory_limit: str = "") -> Iterator[dict[str, subprocess.Popen]]:
    """`credit-dagster worker` processes on the local RabbitMQ, serving both queues, ready, on
    `threads` threads each (default: an equal share of this machine's cores), DuckDB within
    `memory_limit` (default CREDIT_DUCKDB_MEMORY_LIMIT); tasks an earlier, interrupted run left on
    the shared broker are purged first."""
    subprocess.run([str(BIN / "celery"), "-b", BROKER, "purge", "-f", "-Q", "dagster,warehouse"], env=env, capture_output=True,
                   timeout=60)
    threads = str(worker_threads(len(names), threads))
    workers = {name: start([str(BIN / "credit-dagster"), "worker", "--name", f"{name}@%h", "--queue", "dagster",
                            "--queue", "warehouse", "--threads", threads, *(["--memory-limit", memory_limit] if memory_limit else [])],
                           env, logs / f"{name}.log") for name in names}
    try:
        for name in names:
            wait(f"worker {name} ready", lambda n=name: log_has(logs / f"{n}.log", "ready"), 120, logs)
        yield workers
    finally:
        stop(list(workers.values()))


def log_has(log: Path, *needles: str) -> bool:
    return log.exists() and any(all(n in line for n in needles) for line in log.read_text(errors="replace").splitlines())


def client(port: int) -> DagsterGraphQLClient | None:
    try:
        graphql = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=30)
        graphql._execute("query { version }")  # the webserver answers and has loaded its workspace
        return graphql
    except Exception:
        return None


def status(graphql: DagsterGraphQLClient, run_id: str):
    try:
        return graphql.get_run_status(run_id)
    except Exception:  # the webserver reloading its location answers with an error for a moment
        return None


def finished(graphql: DagsterGraphQLClient, run_id: str):
    found = status(graphql, run_id)
    return found if found in FINISHED else None


def submit(graphql: DagsterGraphQLClient, day: str, job: str = "nightly_scoring", assets: list[dg.AssetKey] | None = None) -> str | None:
    """A run of `job` for the night `day` (of its `assets` only, when given) launched as the UI's
    Launch button does; None while the webserver is still loading the code location."""
    try:
        return graphql.submit_job_execution(job, repository_location_name=LOCATION, repository_name="__repository__",
                                            tags={"dagster/partition": day} if day else {}, asset_selection=assets)
    except Exception:
        return None


BACKFILL = """mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on PartitionSetNotFoundError { message }
  }
}"""


def launch_backfill(graphql: DagsterGraphQLClient, nights: list[str], job: str = "nightly_scoring") -> str | None:
    """A backfill of `job` over `nights` launched as the UI's "Launch backfill" does (one run per
    night, queued and launched by the daemon); None while the location is still loading."""
    params = {"selector": {"partitionSetName": f"{job}_partition_set",
                           "repositorySelector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}},
              "partitionNames": nights}
    try:
        answer = graphql._execute(BACKFILL, {"params": params})["launchPartitionBackfill"]
    except Exception:
        return None
    if answer["__typename"] == "PartitionSetNotFoundError":  # the webserver still loading the code location
        return None
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise AssertionError(f"backfill refused: {answer}")
    return answer["backfillId"]


def backfill_runs(instance: dg.DagsterInstance, backfill_id: str, expected: int) -> list[dg.DagsterRun] | None:
    """The backfill's runs once the daemon has launched the `expected` ones and every one has ended."""
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    done = len(runs) == expected and all(r.status in FINISHED for r in runs)
    return runs if done else None


def night_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """The nights' runs, newest first: their landings (or whole nights) and what the automation
    launched after them (CREDIT_STORAGE=datasets: each shard, the publish step)."""
    from credit_dagster.nightly.schedules import NIGHT_KEYS

    return [r for r in instance.get_runs() if r.job_name == "nightly_scoring" or (r.asset_selection or set()) & NIGHT_KEYS]


def published(instance: dg.DagsterInstance, nights: list[str], times: int = 0) -> list[dg.DagsterRun] | None:
    """The nights' runs once every night's serving snapshot is published (at least `times` times
    in all) and no run of a night is left queued or under way."""
    runs = night_runs(instance)
    done = (set(nights) <= instance.get_materialized_partitions(SNAPSHOT) and all(r.is_finished for r in runs)
            and len(instance.fetch_materializations(SNAPSHOT, limit=10_000).records) >= times)
    return runs if done else None


def run_table(instance: dg.DagsterInstance) -> str:
    """The nights' runs, oldest first, to say what happened when a wait or a check fails."""
    return "\n".join(f"{r.run_id[:8]} {r.job_name} {r.tags.get('dagster/partition')} {r.status.value} "
                     f"{sorted(k.to_user_string() for k in r.asset_selection or [])} {r.tags.get('dagster/backfill', '')}"
                     for r in reversed(night_runs(instance)))
