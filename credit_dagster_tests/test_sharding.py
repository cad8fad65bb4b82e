"""The sharded night on Parquet datasets (CREDIT_STORAGE=datasets) gives the single-process
night's answers: the same drop scored into the warehouse file and in shards on an in-memory
fsspec filesystem and on a folder."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import fsspec
import numpy as np
import pandas as pd
import pytest

from credit_dagster.core import datasets, keys, seals, settings
from credit_dagster.core.resources import Warehouse
from credit_dagster.definitions import build
from credit_dagster.nightly import drops, night, partitions, schedules, shards
from credit_dagster_tests.conftest import reachable_or_skip, temporary_home
from credit_dagster_tests.services import (
    BIN,
    DEPLOY,
    backfill_runs,
    celery_workers,
    launch_backfill,
    night_runs,
    production_services,
    published,
    run_table,
    wait,
)

DAY, NEXT_DAY = "2026-10-01", "2026-10-02"
SHARDS = 3
DECISION = ["SK_ID_CURR", "probability_of_default", "points", "grade", "decision", "reason_1", "reason_2", "reason_3", "reason_4",
            "reason_features", "history_note", "counterfactual", "raw_score", "features_fingerprint", "model_version"]


def trained_copy(build, tmp_path_factory, name: str):
    """A copy of the trained home with no night scored yet (the shared build may have some: their decisions, seals and journals left out)."""
    root = tmp_path_factory.mktemp(name)
    shutil.copytree(build[0], root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("inbox", "serving", "api", "*.lock"))
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    for (schema,) in con.execute("select distinct schema_name from information_schema.schemata "
                                 "where schema_name = 'scoring' or schema_name like 'drop_%'").fetchall():
        con.execute(f"drop schema {schema} cascade")
    con.close()
    return root


def run_night(synthetic_dir, day: str = DAY) -> list[dg.ExecuteInProcessResult]:
    """The night's runs, one after another as `credit-dagster score` runs them, from the code
    location the environment now asks for (CREDIT_STORAGE, CREDIT_SHARDS), as a code server
    started with it would build it."""
    drops.replay(synthetic_dir, drops.inbox_dir(), 2, date.fromisoformat(day))
    instance = dg.DagsterInstance.ephemeral()
    partitions.register(instance, [day])
    configured = settings.current()
    defs = build(configured)
    return [defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=key)
            for job, key in schedules.night_runs(day, configured)]


def stored(table: str, day: str = DAY) -> pd.DataFrame:
    with Warehouse().connect(read_only=True) as con:
        return con.execute(f"select * from scoring.{table} where partition_date = ? order by all", [day]).df()


@pytest.fixture(scope="module")
def single_process(build, synthetic_dir, tmp_path_factory):
    with temporary_home(trained_copy(build, tmp_path_factory, "single")):
        assert [r.success for r in run_night(synthetic_dir)] == [True]
        yield {t: stored(t) for t in ("scored_applications", "applicant_contributions", "applicant_details")}


@pytest.fixture(scope="module")
def sharded_in_memory(build, synthetic_dir, tmp_path_factory):
    """The same night in 3 shards on fsspec's in-memory filesystem (as a bucket would be)."""
    root = f"memory://credit-{uuid.uuid4().hex[:8]}"
    with temporary_home(trained_copy(build, tmp_path_factory, "sharded")) as home, pytest.MonkeyPatch.context() as mp:
        mp.setenv("CREDIT_STORAGE", "datasets")
        mp.setenv("CREDIT_DATASETS", root)
        mp.setenv("CREDIT_SHARDS", str(SHARDS))
        yield home, root, run_night(synthetic_dir)


def test_sharded_night_gives_the_single_process_answers(single_process, sharded_in_memory):
    home, root, results = sharded_in_memory
    assert all(r.success for r in results)
    # the landing, then each shard its own run of its (night, shard) partition, then the publish run
    assert [r.dagster_run.tags.get("dagster/partition/shard") for r in results] == [None, "00", "01", "02", None]
    assert {r.dagster_run.tags.get("dagster/partition/night", r.dagster_run.tags["dagster/partition"]) for r in results} == {DAY}
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


def test_a_partition_written_again_holds_the_last_rows_even_when_empty(tmp_path):
    """A shard written twice (a retried or re-run step), with rows or without: its last write
    stands, and an empty one still tells readers the table's columns."""
    root = str(tmp_path / "datasets")
    con = shards.connect(root)
    rows, empty = "select 1 as SK_ID_CURR, 0.5 as pd, '00' as shard", "select 1 as SK_ID_CURR, 0.5 as pd, '00' as shard where false"
    for sql, expected in ((empty, 0), (empty, 0), (rows, 1), (empty, 0), (rows, 1), (rows, 1)):
        datasets.write(con, sql, root, "scored", DAY, ["00"])
        assert con.execute(f"select count(*) from ({datasets.scan(root, 'scored', DAY)})").fetchone()[0] == expected
        assert len(fsspec.filesystem("file").find(datasets.partition_path(root, "scored", DAY, "00"))) == 1
    assert [c[0] for c in con.execute(f"describe {datasets.scan(root, 'scored')}").fetchall()] == ["SK_ID_CURR", "pd", "night", "shard"]


def test_what_a_killed_write_left_in_staging_is_swept_once_old(tmp_path):
    root = str(tmp_path / "datasets")
    fs = fsspec.filesystem("file")
    for name in ("20261001T010000_dead", "20261002T015900_running", "notes"):
        fs.makedirs(f"{root}/{datasets.STAGING}/{name}/night={DAY}/shard=00", exist_ok=True)
        fs.touch(f"{root}/{datasets.STAGING}/{name}/night={DAY}/shard=00/part_1.parquet")
    now = datetime(2026, 10, 2, 2, 0, tzinfo=UTC)
    assert datasets.sweep_staging(root, now=now) == ["20261001T010000_dead"]
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{root}/{datasets.STAGING}")) == ["20261002T015900_running", "notes"]


def test_a_workers_duckdb_spills_past_its_memory_limit_into_a_folder_of_its_own(tmp_path, monkeypatch):
    """A step's DuckDB holds what it loads within CREDIT_DUCKDB_MEMORY_LIMIT and spills the rest,
    each connection into its own folder of the temporary folder, gone once it is closed (DuckDB's
    own default, `.tmp` in the working directory, would be shared by two workers started there)."""
    import tempfile

    monkeypatch.setenv("CREDIT_DUCKDB_MEMORY_LIMIT", "64MB")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first, second = shards.connect(str(tmp_path / "datasets")), shards.connect(str(tmp_path / "datasets"))
    spills = [Path(c.execute("select current_setting('temp_directory')").fetchone()[0]) for c in (first, second)]
    assert spills[0] != spills[1] and all(s.parent == tmp_path for s in spills)
    # about 500 MB of rows, eight times the limit
    first.execute("create table t as select i, repeat('x', 40) || i as s from range(8000000) r(i)")
    assert first.execute("select count(*), sum(length(s)) from t").fetchone()[0] == 8_000_000
    assert any(spills[0].glob("duckdb_temp_*")) and not spills[1].exists()  # only the first spilled
    first.close()
    second.close()
    assert not spills[0].exists()


def test_a_reader_of_every_night_never_meets_a_half_written_shard(tmp_path):
    """One process rewrites a night's shards again and again (a large file each time) while this
    one reads the whole table, as another night's snapshot does: every read sees whole files and
    the other night's rows. What plain Parquet files cannot give: a read that listed a file the
    writer then replaced does not find it (the step fails and is retried, see night_retry_policy)."""
    root = str(tmp_path / "datasets")
    con = shards.connect(root)
    datasets.write(con, "select range as SK_ID_CURR, random() as pd, '00' as shard from range(1000)", root, "scored", "2026-10-01",
                   ["00"])
    writer = subprocess.Popen([sys.executable, "-c", f"""
import duckdb
from credit_dagster.core import datasets, keys
con = duckdb.connect()
for _ in range(15):
    datasets.write(con, "select range as SK_ID_CURR, random() as pd, lpad((range % 2)::varchar, 2, '0') as shard from range(2000000)",
                   {root!r}, "scored", "2026-10-02", ["00", "01"])
"""])
    reads, raced = 0, 0
    while writer.poll() is None:
        try:
            night, n = con.execute(f"select count(*) filter (where night = '2026-10-01'), count(*) from "
                                   f"({datasets.scan(root, 'scored')})").fetchone()
        except duckdb.IOException as error:  # listed, then replaced before it was opened
            assert "No such file" in str(error), error
            raced += 1
            continue
        # whole files only (while the night is swapped, its new files land before its old ones go)
        assert night == 1000 and (n - 1000) % 1_000_000 == 0
        reads += 1
    assert writer.returncode == 0 and reads > 5 and raced < reads
    assert con.execute(f"select count(*) from ({datasets.scan(root, 'scored', '2026-10-02')})").fetchone()[0] == 2_000_000
    assert not fsspec.filesystem("file").find(f"{root}/{datasets.STAGING}")  # nothing left half-way


def test_drift_and_snapshot_read_the_whole_sharded_night(sharded_in_memory):
    home, root, results = sharded_in_memory
    result = results[-1]  # the publish run
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"monitoring/drift_report", "serving/serving_snapshot"} <= materialized
    con = duckdb.connect(str(home / "serving" / "serving.duckdb"), read_only=True)
    con2 = shards.connect(root)
    assert (con.execute("select count(*) from scored_applications").fetchone()[0]
            == con2.execute(f"select count(*) from ({datasets.scan(root, 'scored_applications', DAY)})").fetchone()[0])
    psi = result.asset_materializations_for_node("monitoring__drift_report")[0].metadata
    assert psi["score_psi"].value >= 0


def test_a_sharded_night_s_decisions_are_sealed_shard_by_shard_when_published(sharded_in_memory):
    home, root, results = sharded_in_memory
    publish = results[-1]
    heads = publish.asset_materializations_for_node("scoring__scored_applications")[0].metadata["decision_audit_heads"].value
    shard_runs = {r.run_id for r in results[1:-1]}
    assert set(heads) == shard_runs  # each shard's run, sealed once the night is whole
    [check] = [e.event_specific_data for e in publish.all_events
               if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == "decisions_untouched"]
    assert check.passed
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CREDIT_HOME", str(home))
        mp.setenv("CREDIT_STORAGE", "datasets")
        mp.setenv("CREDIT_DATASETS", root)
        with Warehouse().connect(read_only=True) as con:
            checked = seals.verify(con)
            rows = con.execute("select count(*) from scoring.decision_audit").fetchone()[0]
        assert checked.problems == [] and checked.runs == len(shard_runs) and checked.rows == rows > 100
        # a decision edited in the bucket is found, in its shard's run
        fs = fsspec.filesystem("memory")
        path = sorted(fs.find(f"{root}/decision_audit"))[0]
        con = duckdb.connect()
        con.register_filesystem(fs)
        edited = con.execute(f"select * replace ('granted' as decision, 0.001 as probability_of_default) from read_parquet('memory://{path}')").df()
        pristine = fs.cat_file(path)
        with fs.open(path, "wb") as f:
            edited.to_parquet(f)
        try:
            with Warehouse().connect(read_only=True) as con:
                problems = seals.verify(con).problems
        finally:
            fs.pipe_file(path, pristine)  # the module's night as it was, for the tests after
        assert len(problems) == 1 and "was edited" in problems[0]


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


def test_a_warehouse_published_from_the_datasets_is_not_written_as_a_warehouse_again(tmp_path):
    con = duckdb.connect()
    root = str(tmp_path / "datasets")
    datasets.write(con, "select 1::bigint as SK_ID_CURR, '01' as shard", root, "scored_applications", DAY, ["01"])
    con.execute("create schema scoring")  # as shards.publish leaves it
    con.execute(f"create view scoring.scored_applications as {datasets.scan(root, 'scored_applications')}")
    # CREDIT_STORAGE set back to warehouse: the night is refused before anything is read or written
    with pytest.raises(ValueError, match="nights are on the Parquet datasets .* score with CREDIT_STORAGE=datasets"):
        night.write_warehouse(con, None, DAY)



BROKER = ("127.0.0.1", 5672)


def _broker_or_skip():
    try:
        socket.create_connection(BROKER, timeout=3).close()
    except OSError as error:
        reachable_or_skip(f"RabbitMQ at {BROKER[0]}:{BROKER[1]}", error)


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        todo += [int(c) for c in children.read_text().split()] if children.exists() else []
    return found


def _failures(instance: dg.DagsterInstance, runs: list[dg.DagsterRun]) -> str:
    """What the failed runs said: their failed steps' and the runs' own failure messages."""
    kinds = (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.ENGINE_EVENT)
    return "\n".join(f"{run.tags.get('dagster/partition')} {e.dagster_event.event_type_value} {e.dagster_event.step_key}: "
                     f"{e.dagster_event.message} {getattr(e.dagster_event.event_specific_data, 'error', '') or ''}"
                     for run in runs if run.status != dg.DagsterRunStatus.SUCCESS
                     for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.event_type in kinds)


def _first_shard_start(instance: dg.DagsterInstance) -> dg.EventLogEntry | None:
    """The first start of a shard's scoring step, if one has started."""
    records = instance.get_event_records(dg.EventRecordsFilter(event_type=dg.DagsterEventType.STEP_START), ascending=True)
    return next((r.event_log_entry for r in records if "scored_shards" in r.event_log_entry.step_key), None)


def _shard_starts(instance: dg.DagsterInstance) -> list[dg.EventLogEntry]:
    """Every start of a shard's scoring step, in the runs the automation launched for the shards."""
    return [e for run in night_runs(instance) if keys.SHARDS in (run.asset_selection or set())
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)]


@pytest.mark.slow
@pytest.mark.services
def test_nights_launched_by_the_daemon_run_on_celery_workers_and_a_worker_killed_mid_shard_loses_nothing(
        build, synthetic_dir, tmp_path_factory, database, monkeypatch):
    """Dagster's production services (code server, daemon, webserver on the local PostgreSQL) and
    two `credit-dagster worker` processes on the local RabbitMQ; CREDIT_STORAGE=datasets in 2
    shards, CREDIT_EXECUTOR=celery. The daemon lands the inbox's two late nights at once (its
    late-drop sensor), then its automation scores each (night, shard) partition as its own run and
    publishes each night once its shards are in. The worker that starts a shard is killed with
    SIGKILL: the shard goes back to the queue, the other worker scores it, both nights publish with
    every applicant scored once. Then a backfill of the second night, launched as the UI's "Launch
    backfill" does, lands it again and the automation scores it again on the worker left: still
    once each, and the audit keeps both runs of each shard."""
    _broker_or_skip()
    home = trained_copy(build, tmp_path_factory, "celery")
    logs, dagster_home, location = home / "logs", home / "dagster_home", str(home / "datasets")
    logs.mkdir()
    dagster_home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_PG_URL": database, "DAGSTER_HOME": str(dagster_home), "CREDIT_HOME": str(home),
           "CREDIT_STORAGE": "datasets", "CREDIT_DATASETS": location, "CREDIT_SHARDS": "2", "CREDIT_EXECUTOR": "celery",
           "CREDIT_DATA_DIR": str(synthetic_dir), "CREDIT_INBOX": str(home / "inbox")}
    for key in ("DAGSTER_PG_URL", "DAGSTER_HOME"):
        monkeypatch.setenv(key, env[key])
    nights = [DAY, NEXT_DAY]
    # three drops, the third taken away: a night's applicants are then in both shards (SK_ID_CURR mod 3, then mod 2)
    subprocess.run([str(BIN / "credit-dagster"), "replay", "--days", "3", "--start", DAY], env=env, check=True, capture_output=True,
                   timeout=300)
    shutil.rmtree(home / "inbox" / "2026-10-03")
    with celery_workers(["w1", "w2"], env, logs) as workers, production_services(env, logs) as (_, client, _), \
            dg.DagsterInstance.get() as instance:
        def landings():
            return instance.get_runs(dg.RunsFilter(job_name="nightly_scoring"))

        launched = wait("the sensor's landings of the two late nights", lambda: len(landings()) == 2 and landings(), 240, logs)
        assert {r.tags["dagster/partition"] for r in launched} == set(nights)
        # the worker whose process starts a shard is killed at once, mid-shard
        # looked for ten times a second, in one query: a shard of these small nights takes about a second
        started = wait("a worker starting a shard", lambda: _first_shard_start(instance), 300, logs, every=0.1)
        victim = next(name for name, p in workers.items() if started.dagster_event.pid in _descendants(p.pid))
        os.killpg(workers[victim].pid, signal.SIGKILL)
        workers[victim].wait(30)
        ended = wait("both nights published", lambda: published(instance, nights), 600, logs)
        assert {r.status for r in ended} == {dg.DagsterRunStatus.SUCCESS}, _failures(instance, ended)
        shard_runs = sorted((r.tags["dagster/partition/night"], r.tags["dagster/partition/shard"]) for r in ended
                            if keys.SHARDS in (r.asset_selection or set()))
        assert shard_runs == [(night, f"{s:02d}") for night in nights for s in range(2)]  # each shard its own run, once
        # the killed worker's shard ran again in the same run, on the other worker
        again = [e for e in _shard_starts(instance) if e.run_id == started.run_id and e.dagster_event.pid != started.dagster_event.pid]
        assert again
        # each step in a process of its own (the workers' memory is one step's at a time)
        pids = [e.dagster_event.pid for e in _shard_starts(instance)]
        assert len(pids) == len(set(pids)) > len(shard_runs), pids
        con = shards.connect(location)
        first = {night: shards.exactly_once(con, location, night) for night in nights}
        assert all(c["scored"] == c["landed"] > 50 for c in first.values())

        # a backfill of the second night, as the UI launches it: landed again, then scored again by the automation
        backfill = wait("the backfill launched", lambda: launch_backfill(client, [NEXT_DAY]), 180, logs)
        runs = wait("the backfill's landing", lambda: backfill_runs(instance, backfill, 1), 600, logs)
        assert [r.tags["dagster/partition"] for r in runs] == [NEXT_DAY]
        rescored = wait("the night published again", lambda: published(instance, nights, times=len(nights) + 1), 600, logs)
        assert {r.status for r in rescored} == {dg.DagsterRunStatus.SUCCESS}, _failures(instance, rescored)
        for night, rounds in ((DAY, 1), (NEXT_DAY, 2)):
            assert shards.exactly_once(con, location, night) == first[night]
            audit = datasets.scan(location, "decision_audit", night)
            run_ids, rows = con.execute(f"select count(distinct run_id), count(*) from ({audit})").fetchone()
            # each shard scored by a run of its own, each time the night was scored
            assert (run_ids, rows) == (rounds * 2, rounds * first[night]["scored"]), run_table(instance)
