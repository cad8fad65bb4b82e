"""The sharded night on Parquet datasets (CREDIT_STORAGE=datasets) gives the single-process
night's answers: the same drop scored into the warehouse file and in shards on an in-memory
fsspec filesystem and on a folder."""

import importlib
import os
import shutil
import signal
import socket
import subprocess
import uuid
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import fsspec
import numpy as np
import pandas as pd
import pytest

import credit_dagster.definitions
from credit_dagster.core import datasets
from credit_dagster.core.resources import Warehouse
from credit_dagster.nightly import drops, partitions, shards
from credit_dagster_tests.conftest import temporary_home
from credit_dagster_tests.test_production import BIN, DEPLOY, _start, _wait

DAY = "2026-10-01"
SHARDS = 3
DECISION = ["SK_ID_CURR", "probability_of_default", "points", "grade", "decision", "reason_1", "reason_2", "reason_3", "reason_4",
            "reason_features", "history_note", "counterfactual", "raw_score", "features_fingerprint", "model_version"]


def trained_copy(build, tmp_path_factory, name: str):
    """A copy of the trained home with no night scored yet (the shared build may have some)."""
    root = tmp_path_factory.mktemp(name)
    shutil.copytree(build[0], root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("inbox", "serving", "*.lock"))
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    for (schema,) in con.execute("select distinct schema_name from information_schema.schemata "
                                 "where schema_name = 'scoring' or schema_name like 'drop_%'").fetchall():
        con.execute(f"drop schema {schema} cascade")
    con.close()
    return root


@contextmanager
def code_location():
    """The code location as the environment now asks (CREDIT_STORAGE, CREDIT_SHARDS), as a code
    server started with it would load it; the suite's own is restored after."""
    try:
        yield importlib.reload(credit_dagster.definitions).defs
    finally:
        with pytest.MonkeyPatch.context() as mp:
            for name in ("CREDIT_STORAGE", "CREDIT_SHARDS"):
                mp.delenv(name, raising=False)
            importlib.reload(credit_dagster.definitions)


def run_night(synthetic_dir, day: str = DAY) -> dg.ExecuteInProcessResult:
    drops.replay(synthetic_dir, drops.inbox_dir(), 2, date.fromisoformat(day))
    instance = dg.DagsterInstance.ephemeral()
    partitions.register(instance, [day])
    with code_location() as defs:
        return defs.resolve_job_def("nightly_scoring").execute_in_process(instance=instance, partition_key=day)


def stored(table: str, day: str = DAY) -> pd.DataFrame:
    with Warehouse().connect(read_only=True) as con:
        return con.execute(f"select * from scoring.{table} where partition_date = ? order by all", [day]).df()


@pytest.fixture(scope="module")
def single_process(build, synthetic_dir, tmp_path_factory):
    with temporary_home(trained_copy(build, tmp_path_factory, "single")):
        assert run_night(synthetic_dir).success
        yield {t: stored(t) for t in ("scored_applications", "applicant_contributions", "applicant_details")}


@pytest.fixture(scope="module")
def sharded_in_memory(build, synthetic_dir, tmp_path_factory):
    """The same night in 3 shards on fsspec's in-memory filesystem (as a bucket would be)."""
    root = f"memory://credit-{uuid.uuid4().hex[:8]}"
    with temporary_home(trained_copy(build, tmp_path_factory, "sharded")) as home, pytest.MonkeyPatch.context() as mp:
        mp.setenv("CREDIT_STORAGE", "datasets")
        mp.setenv("CREDIT_DATASETS", root)
        mp.setenv("CREDIT_SHARDS", str(SHARDS))
        result = run_night(synthetic_dir)
        yield home, root, result


def test_sharded_night_gives_the_single_process_answers(single_process, sharded_in_memory):
    home, root, result = sharded_in_memory
    assert result.success
    steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert {f"scoring__scored_shard_{s:02d}" for s in range(SHARDS)} <= steps  # each shard its own step
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CREDIT_HOME", str(home))
        mp.setenv("CREDIT_STORAGE", "datasets")
        mp.setenv("CREDIT_DATASETS", root)
        sharded = {t: stored(t) for t in single_process}
    one, many = single_process["scored_applications"], sharded["scored_applications"]
    assert len(one) > 100 and list(one["SK_ID_CURR"]) == list(many["SK_ID_CURR"])
    assert np.abs(one["probability_of_default"].to_numpy() - many["probability_of_default"].to_numpy()).max() < 1e-9
    assert np.abs(one["raw_score"].to_numpy() - many["raw_score"].to_numpy()).max() < 1e-9
    exact = [c for c in DECISION if c not in ("probability_of_default", "raw_score")]
    pd.testing.assert_frame_equal(one[exact].reset_index(drop=True), many[exact].reset_index(drop=True))
    assert one["counterfactual"].notna().sum() > 0  # the comparison covers counterfactuals found
    for table in ("applicant_contributions", "applicant_details"):
        a, b = single_process[table], sharded[table]
        numeric = a.select_dtypes("number").columns
        assert list(a.columns) == [c for c in b.columns if c in a.columns] and len(a) == len(b)
        assert np.allclose(a[numeric].to_numpy(float), b[numeric].to_numpy(float), rtol=0, atol=1e-9, equal_nan=True)
        pd.testing.assert_frame_equal(a.drop(columns=numeric).reset_index(drop=True), b[a.columns].drop(columns=numeric)
                                      .reset_index(drop=True))


def test_sharded_night_is_written_by_night_and_shard_and_read_with_pruning(sharded_in_memory):
    home, root, _ = sharded_in_memory
    fs = fsspec.filesystem("memory")
    folders = {p.rsplit("/", 2)[-2] for p in fs.find(f"{root}/scored_applications")}
    assert folders == {f"shard={s:02d}" for s in range(SHARDS)}
    assert fs.find(f"{root}/scored_applications/night={DAY}")
    con = shards.connect(root)
    one_shard = con.execute(f"select distinct shard, SK_ID_CURR % {SHARDS} from ({datasets.scan(root, 'scored_applications', DAY, '01')})"
                            ).fetchall()
    assert one_shard == [("01", 1)]
    plan = con.execute(f"explain analyze select count(*) from ({datasets.scan(root, 'scored_applications', DAY, '01')})").fetchall()
    assert "Total Files Read: 1" in plan[0][1]  # partition pruning: the other shards' files are never opened
    assert shards.exactly_once(con, root, DAY)["scored"] > 100


def test_drift_and_snapshot_read_the_whole_sharded_night(sharded_in_memory):
    home, root, result = sharded_in_memory
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"monitoring/drift_report", "serving/serving_snapshot"} <= materialized
    con = duckdb.connect(str(home / "serving" / "serving.duckdb"), read_only=True)
    con2 = shards.connect(root)
    assert (con.execute("select count(*) from scored_applications").fetchone()[0]
            == con2.execute(f"select count(*) from ({datasets.scan(root, 'scored_applications', DAY)})").fetchone()[0])
    psi = result.asset_materializations_for_node("monitoring__drift_report")[0].metadata
    assert psi["score_psi"].value >= 0


def test_a_missing_or_doubled_applicant_stops_the_publish_and_says_who(tmp_path):
    root = str(tmp_path / "datasets")
    con = shards.connect(root)
    landed = "select range::bigint as SK_ID_CURR, lpad((range % 2)::varchar, 2, '0') as shard from range(6)"
    datasets.write(con, landed, root, "drop_application_test", DAY, ["00", "01"])
    datasets.write(con, "select * from (" + landed + ") where SK_ID_CURR <> 3", root, "scored_applications", DAY, ["00", "01"])
    with pytest.raises(shards.NightIncomplete, match=r"1 applicants of the drop not scored .*\[3\]"):
        shards.exactly_once(con, root, DAY)
    datasets.write(con, landed + " union all select 5, '00'", root, "scored_applications", DAY, ["00", "01"])
    with pytest.raises(shards.NightIncomplete, match="1 applicants scored more than once.*another shard"):
        shards.exactly_once(con, root, DAY)
    datasets.write(con, landed, root, "scored_applications", DAY, ["00", "01"])  # a re-run replaces, never adds
    assert shards.exactly_once(con, root, DAY) == {"landed": 6, "scored": 6}
    datasets.write(con, "select 7::bigint as SK_ID_CURR, '01' as shard", root, "decision_audit", DAY, ["01"], append=True)
    datasets.write(con, "select 7::bigint as SK_ID_CURR, '01' as shard", root, "decision_audit", DAY, ["01"], append=True)
    assert con.execute(f"select count(*) from ({datasets.scan(root, 'decision_audit', DAY)})").fetchone()[0] == 2


def test_a_warehouse_with_nights_in_its_own_tables_is_not_silently_switched(tmp_path):
    con = duckdb.connect()
    con.execute("create schema scoring")
    con.execute("create table scoring.scored_applications (SK_ID_CURR bigint)")
    root = str(tmp_path / "datasets")
    landed = "select 1::bigint as SK_ID_CURR, '01' as shard"
    datasets.write(con, landed, root, "drop_application_test", DAY, ["01"])
    datasets.write(con, landed, root, "scored_applications", DAY, ["01"])
    with pytest.raises(ValueError, match="switches to CREDIT_STORAGE=datasets before its first night"):
        shards.publish(con, root, DAY)



BROKER = ("127.0.0.1", 5672)


def _broker_or_skip():
    try:
        socket.create_connection(BROKER, timeout=3).close()
    except OSError as error:
        message = f"RabbitMQ at {BROKER[0]}:{BROKER[1]} cannot be reached: {error}"
        if os.environ.get("CI"):  # CI runs beside the services: there, their absence is a failure
            pytest.fail(message)
        pytest.skip(message)


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        todo += [int(c) for c in children.read_text().split()] if children.exists() else []
    return found


def _log_has(log: Path, *needles: str) -> bool:
    return log.exists() and any(all(n in line for n in needles) for line in log.read_text(errors="replace").splitlines())


@pytest.mark.slow
def test_celery_workers_score_the_shards_and_a_worker_killed_mid_shard_loses_nothing(build, synthetic_dir, tmp_path_factory,
                                                                                    database):
    """Two `credit-dagster worker` processes on the local RabbitMQ, the production instance on the
    local PostgreSQL (workers write the run's events too: SQLite is no store for several
    processes); the night scored through `credit-dagster score` with CREDIT_EXECUTOR=celery; the
    worker running a shard is killed with
    SIGKILL: its shard goes back to the queue, the other worker scores it, and the night is
    published with every applicant scored once; a re-run scores nobody twice."""
    _broker_or_skip()
    home = trained_copy(build, tmp_path_factory, "celery")
    logs = home / "logs"
    logs.mkdir()
    (home / "dagster_home").mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster_home" / "dagster.yaml")
    env = {**os.environ, "DAGSTER_PG_URL": database,
           "CREDIT_HOME": str(home), "CREDIT_STORAGE": "datasets", "CREDIT_DATASETS": str(home / "datasets"),
           "CREDIT_SHARDS": "4", "CREDIT_EXECUTOR": "celery", "DAGSTER_HOME": str(home / "dagster_home"),
           "CREDIT_DATA_DIR": str(synthetic_dir)}
    cli_bin = str(BIN / "credit-dagster")
    # tasks left on the shared broker by an earlier, interrupted run are not this test's
    subprocess.run([str(BIN / "celery"), "-b", "pyamqp://guest:guest@127.0.0.1:5672//", "purge", "-f", "-Q", "dagster,warehouse"],
                   env=env, capture_output=True, timeout=60)
    subprocess.run([cli_bin, "replay", "--days", "2", "--start", DAY], env=env, check=True, capture_output=True, timeout=300)
    workers = {name: _start([cli_bin, "worker", "--name", f"{name}@%h", "--queue", "dagster", "--queue", "warehouse"], env,
                            logs / f"{name}.log") for name in ("w1", "w2")}
    try:
        for name in workers:
            _wait(f"worker {name} ready", lambda n=name: _log_has(logs / f"{n}.log", "ready"), 90, logs)
        night = _start([cli_bin, "score", "--start", DAY], env, logs / "score.log")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
            mp.setenv("DAGSTER_PG_URL", database)
            instance = dg.DagsterInstance.get()
        run = _wait("the night's run", lambda: next(iter(instance.get_runs(dg.RunsFilter(job_name="nightly_scoring"))), None), 120, logs)
        # the worker whose process starts a shard is killed at once, mid-shard
        started = _wait("a worker starting a shard", lambda: next(
            (e.dagster_event for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
             if "scored_shard_" in e.dagster_event.step_key), None), 300, logs)
        victim = next(n for n, p in workers.items() if started.pid in _descendants(p.pid))
        os.killpg(workers[victim].pid, signal.SIGKILL)
        workers[victim].wait(30)
        step = started.step_key
        assert night.wait(600) == 0, (logs / "score.log").read_text()[-4000:]
        # the killed worker's shard, run again, by the other worker: the night succeeded
        runs_of_step = [e.dagster_event for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
                        if e.dagster_event.step_key == step]
        assert len(runs_of_step) == 2 and runs_of_step[1].pid != started.pid
        con = shards.connect(str(home / "datasets"))
        first = shards.exactly_once(con, str(home / "datasets"), DAY)
        assert first["scored"] == first["landed"] > 100
        # a re-run of the night (one worker left) replaces the shards: still once each, the audit keeps both runs
        assert subprocess.run([cli_bin, "score", "--start", DAY], env=env, capture_output=True, timeout=600).returncode == 0
        assert shards.exactly_once(con, str(home / "datasets"), DAY) == first
        audit = datasets.scan(str(home / "datasets"), "decision_audit", DAY)
        runs, rows = con.execute(f"select count(distinct run_id), count(*) from ({audit})").fetchone()
        assert runs == 2 and rows >= 2 * first["scored"]
    finally:
        for process in workers.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)
