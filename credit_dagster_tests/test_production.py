"""Dagster's production deployment (deploy/): its runs on the local PostgreSQL, the webserver, the
daemon and the code server as three processes, nights launched through the UI's GraphQL API and
by a schedule tick, an ingest from the UI reading the home's own data folder, a code server killed
under a run."""

import os
import shutil
import signal
from datetime import datetime, timedelta

import dagster as dg
import pytest

from credit_dagster import cli
from credit_dagster.monitoring import recovery
from credit_dagster.nightly import drops, partitions
from credit_dagster_tests.conftest import SCORED_DAYS
from credit_dagster_tests.services import (
    DEPLOY,
    code_server_answers,
    code_server_args,
    finished,
    production_services,
    start,
    status,
    submit,
    wait,
)


@pytest.mark.slow
@pytest.mark.services
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
    # a home built from the bank's data (no SYNTHETIC.txt), a synthetic set beside it, no CREDIT_DATA_DIR anywhere
    bank_data = tmp_path / "bank_data"
    shutil.copytree(synthetic_dir, bank_data, ignore=shutil.ignore_patterns("SYNTHETIC.txt"))
    (home / "data_dir.txt").write_text(str(bank_data))
    shutil.copytree(synthetic_dir, home / "data" / "synthetic_default", dirs_exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if k != "CREDIT_DATA_DIR"}, "CREDIT_HOME": str(home),
           "DAGSTER_HOME": str(dagster_home), "DAGSTER_PG_URL": database, "CREDIT_NIGHTLY_CRON": "* * * * *"}
    monkeypatch.delenv("CREDIT_DATA_DIR", raising=False)
    for key in ("CREDIT_HOME", "DAGSTER_HOME", "DAGSTER_PG_URL"):
        monkeypatch.setenv(key, env[key])
    logs = tmp_path / "logs"
    logs.mkdir()
    with production_services(env, logs) as (services, client, env), dg.DagsterInstance.get() as instance:
        code_port = env["CREDIT_CODE_SERVER_PORT"]
        # the partition known first, as the schedule, the sensor and the CLI do
        partitions.register(instance, [SCORED_DAYS[0]])
        first = wait("the webserver to load the code location", lambda: submit(client, SCORED_DAYS[0]), 180, logs)
        assert wait("the launched night", lambda: finished(client, first), 300, logs) == dg.DagsterRunStatus.SUCCESS

        def scheduled():
            # yesterday's night, launched by nobody here: by a schedule tick or, when the automation of a
            # landed drop is first, by it (the tick then skips a night already scored)
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": yesterday}))
            return runs and all(r.is_finished for r in runs) and runs[0]

        run = wait("the services' own night for yesterday", scheduled, 240, logs)
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.job_name == "nightly_scoring"
        assert {"dagster/schedule_name", "dagster/sensor_name"} & set(run.tags), run.tags
        assert instance.get_run_by_id(first).job_code_origin is not None  # launched runs of the code location

        # an ingest launched from the UI (a retrain's first step) reads the folder the home was built
        # from, as the command line does: never the synthetic set beside it
        table = dg.AssetKey(["raw", "application_test"])
        ingest = submit(client, "", "build_all", assets=[table])
        assert wait("the UI's ingest", lambda: finished(client, ingest), 300, logs) == dg.DagsterRunStatus.SUCCESS
        read = instance.get_latest_materialization_event(table).asset_materialization.metadata
        assert read["source_file"].value.startswith(str(bank_data)) and read["synthetic"].value is False, read

        # a second night; its code server (and the run's process with it) killed while it runs
        second = submit(client, SCORED_DAYS[0])
        wait("the second night to start", lambda: status(client, second) == dg.DagsterRunStatus.STARTED, 180, logs)
        os.killpg(services[0].pid, signal.SIGKILL)
        services[0].wait()
        assert wait("run monitoring to fail the run", lambda: finished(client, second), 180, logs) == dg.DagsterRunStatus.FAILURE
        said = " ".join(str(e.message) for e in instance.all_logs(second))
        assert "does not answer" in said and f"127.0.0.1:{code_port}" in said

        # the code server back, the night again: it succeeds
        services[0] = start(code_server_args(int(code_port)), env, logs / "code_server.log")
        # a run submitted before the code server answers fails at launch (the daemon cannot reach it)
        wait("the code server back", lambda: code_server_answers(int(code_port)), 180, logs)
        again = wait("the webserver to reload the code location", lambda: submit(client, SCORED_DAYS[0]), 180, logs)
        assert wait("the re-run", lambda: finished(client, again), 300, logs) == dg.DagsterRunStatus.SUCCESS

        # credit-dagster's own commands on the same instance: their runs are the deployment's runs
        # (the schedule scored that night: scoring it again is said, with a reason, and keeps what stood)
        assert cli.main(["score", "--start", yesterday, "--rescore", "--reason", "the operators' own run on the deployment",
                         "--data-dir", str(synthetic_dir)]) == 0
        ours = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": yesterday, recovery.PID_TAG: str(os.getpid())}))
        assert [r.status for r in ours] == [dg.DagsterRunStatus.SUCCESS] and ours[0].job_code_origin is not None


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
