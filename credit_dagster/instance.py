"""The persistent Dagster instance under CREDIT_HOME: telemetry off, one DuckDB writer at a time.

The one module that uses Dagster's private API (`dagster._...`): creating a run from the UI's code
location and executing it in this process (`execute_as_launched`) has no public equivalent.
It was checked against the release in `PRIVATE_API_CHECKED_WITH`; a test fails when the
installed Dagster differs, so an upgrade re-checks it (and no other module may import `dagster._`).
The production instance (deploy/dagster.yaml) names `CodeServerRunLauncher` here for the same reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

from credit_dagster.core import settings

if TYPE_CHECKING:
    from dagster import DagsterInstance
    from dagster._core.execution.job_execution_result import JobExecutionResult

PROJECT_ROOT = Path(__file__).resolve().parents[1]

DAGSTER_YAML = """\
# Written by credit-dagster. Offline: no telemetry.
telemetry:
  enabled: false
# DuckDB allows one writing process: every warehouse-writing op is in pool `duckdb_writer`.
concurrency:
  pools:
    default_limit: 1
# Runs launched from the UI: the daemon fails a run whose process died and frees its pool slots.
run_monitoring:
  enabled: true
  poll_interval_seconds: 60
  free_slots_after_run_end_seconds: 30
"""


def private_home() -> None:
    """CREDIT_HOME as private as CREDIT_UMASK says, also when an older release (or a person) made it
    readable by others: its own mode tightened, never loosened."""
    home = settings.credit_home()
    mask = int(settings.current().umask, 8)
    if home.exists() and home.stat().st_uid == os.getuid() and home.stat().st_mode & mask:
        home.chmod(home.stat().st_mode & 0o7777 & ~mask)


def prepare_dagster_home() -> Path:
    """Create DAGSTER_HOME (default CREDIT_HOME/dagster) with its dagster.yaml, and export it."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    private_home()
    config = home / "dagster.yaml"
    # (re)write our own file when an older release wrote it; leave a file the user wrote alone
    if not config.exists() or (config.read_text().startswith("# Written by credit-dagster") and config.read_text() != DAGSTER_YAML):
        config.write_text(DAGSTER_YAML)
    check_services(home)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


class ServiceUnreachable(RuntimeError):
    """A service the Dagster instance is configured to use cannot be reached."""


def check_services(home: Path) -> None:
    """An instance on PostgreSQL (deploy/dagster.yaml) fails on its first query with a long
    traceback when the database is away: say it in one line first, naming what to fix."""
    text = (home / "dagster.yaml").read_text()
    if "DAGSTER_PG_URL" not in text:
        return
    url = os.environ.get("DAGSTER_PG_URL")
    if not url:
        raise ServiceUnreachable(f"{home / 'dagster.yaml'} keeps Dagster's runs on PostgreSQL, but DAGSTER_PG_URL is not set "
                                 "(e.g. postgresql+psycopg2://dagster:secret@pg.bank.internal:5432/dagster)")
    import psycopg2

    try:
        psycopg2.connect(url.replace("+psycopg2", "", 1), connect_timeout=5).close()  # without SQLAlchemy's driver name
    except psycopg2.OperationalError as error:
        shown = url.split("@")[-1]  # never the password
        raise ServiceUnreachable(f"Dagster's PostgreSQL at {shown} (DAGSTER_PG_URL) cannot be reached: "
                                 f"{str(error).strip().splitlines()[0]}") from error


PRIVATE_API_CHECKED_WITH = "1.13.27"

# The code location `credit-dagster ui` serves (workspace.yaml's python_module, named after it).
LOCATION = "credit_dagster.definitions"


def execute_as_launched(instance: DagsterInstance, job_name: str, run_config: dict, tags: dict[str, str],
                        partition_key: str | None = None) -> JobExecutionResult:
    """Run `job_name` in this process, recorded as a run of the UI's code location.

    `execute_in_process` records runs without their origin: the UI lists them under Runs but
    leaves them off the Overview timeline and the Jobs page, and cannot re-execute them. Here
    the run is created from the code location (loaded in this process) like a launched run,
    then executed in this process (the definitions' in-process executor), so a command killed
    with its run still kills the run, and the run carries its job's origin in the UI."""
    from dagster._cli.job import _create_run
    from dagster._core.execution.api import execute_run
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._utils.hosted_user_process import recon_job_from_origin

    from credit_dagster.definitions import defs

    if partition_key is not None:
        tags = {**tags, **defs.resolve_job_def(job_name).get_tags_for_partition_key(partition_key, selected_asset_keys=None)}
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=LOCATION, working_directory=str(PROJECT_ROOT)),
        location_name=LOCATION)
    with origin.create_location(instance) as location:
        repository = location.get_repository("__repository__")
        run = _create_run(instance, location, repository, repository.get_full_job(job_name), run_config, tags, None, None)
    return execute_run(recon_job_from_origin(run.job_code_origin), run, instance)


class CodeServerRunLauncher(DefaultRunLauncher):
    """Dagster's DefaultRunLauncher (each run a process of the code server that loaded it, the
    `dagster api grpc` service), which also answers run monitoring's question "is the run's process
    alive?" by asking that code server for the runs it is executing.

    DefaultRunLauncher leaves the question unanswered, so a run whose code server died (its
    process, container or machine, and the run's process with it) would stay STARTED for ever and
    hold its night's place in the queue and its pool slot. Here run monitoring fails it within
    its poll interval (deploy/dagster.yaml), and the night can be run again."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        from dagster._grpc.types import GetCurrentRunsResult
        from dagster._serdes import deserialize_value

        from credit_dagster.monitoring.recovery import HOST_TAG, PID_TAG, process_gone

        client = self._get_grpc_client_for_termination(run.run_id)
        if client is None:
            # Not launched through a code server: a `credit-dagster` command running it in its own
            # process (execute_as_launched), or some other in-process execution. Run monitoring
            # fails a run on any answer but RUNNING, so an answer this launcher cannot give (a
            # process on another host, or none recorded) leaves the run to whoever runs it; the
            # next credit-dagster command on that host fails it if its process died.
            gone = process_gone(run)
            where = f"process {run.tags.get(PID_TAG)} on {run.tags.get(HOST_TAG)}"
            if gone:
                return CheckRunHealthResult(WorkerStatus.FAILED, f"the credit-dagster {where} that ran it died without finishing it")
            if gone is None:
                return CheckRunHealthResult(WorkerStatus.RUNNING, "run outside any code server, in a process this host cannot see")
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run by the credit-dagster {where}")
        where = f"{client.host}:{client.port}"
        try:
            current = deserialize_value(client.get_current_runs(), GetCurrentRunsResult).current_runs
        except Exception as error:  # any failure to reach it: unreachable, refused, restarting
            return CheckRunHealthResult(WorkerStatus.FAILED, f"the code server that ran it, at {where}, does not answer "
                                                             f"({type(error).__name__}): its process died with it")
        if run.run_id in current:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.NOT_FOUND, f"the code server at {where} is not running it (restarted since)")
