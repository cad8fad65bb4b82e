"""Nightly scoring on daily partitions: drops, reasons, counterfactuals, audit, snapshot, schedule."""

import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from credit_dagster.core import snapshot
from credit_dagster.decision import counterfactuals, ondemand, scoring
from credit_dagster.definitions import defs
from credit_dagster.ingest.loaders import SourceFileError
from credit_dagster.model.registry import Registry
from credit_dagster.monitoring import drift
from credit_dagster.nightly import drops, partitions
from credit_dagster_tests.conftest import SCORED_DAYS, score_night, temporary_home

DAYS = SCORED_DAYS


@pytest.fixture(scope="module")
def home(scored_home):
    with temporary_home(scored_home) as root:
        yield root


def warehouse(home, read_only=True):
    return duckdb.connect(str(home / "warehouse.duckdb"), read_only=read_only)


def test_replay_splits_by_applicant_deterministically(home, synthetic_dir):
    test_ids = set(pd.read_csv(synthetic_dir / "application_test.csv")["SK_ID_CURR"])
    per_day = {day: pd.read_csv(home / "inbox" / day / "application_test.csv")["SK_ID_CURR"] for day in DAYS}
    assert set(per_day[DAYS[0]]) | set(per_day[DAYS[1]]) == test_ids
    assert (per_day[DAYS[0]] % 2 == 0).all() and (per_day[DAYS[1]] % 2 == 1).all()
    bureau = pd.read_csv(home / "inbox" / DAYS[0] / "bureau.csv")
    assert set(bureau["SK_ID_CURR"]) <= set(per_day[DAYS[0]])


def test_partition_run_scores_every_application_with_reasons(home):
    with warehouse(home) as con:
        scored = con.execute("select * from scoring.scored_applications where partition_date = ?", [DAYS[0]]).df()
        dropped = con.execute("select count(*) from drop_20261101.application_test").fetchone()[0]
    assert len(scored) == dropped and scored["SK_ID_CURR"].is_unique
    assert set(scored["decision"]) <= {scoring.GRANTED, scoring.REFUSED, scoring.REFER}
    assert scored["probability_of_default"].between(0, 1).all() and set(scored["grade"]) <= set("ABCDE")
    assert (scored["reason_1"].notna() | (scored["raw_score"] < scored["raw_score"].median())).all()
    named = ",".join(scored["reason_features"])
    assert not any(p in named for p in ("CODE_GENDER", "DAYS_BIRTH", "APP_AGE_YEARS"))
    assert scored.loc[scored["decision"] != scoring.GRANTED, "counterfactual"].notna().all()
    assert scored.loc[scored["decision"] == scoring.GRANTED, "counterfactual"].isna().all()
    assert (home / "serving" / "serving.duckdb").exists()
    assert (home / "reports" / "drift" / f"drift_{DAYS[0]}.html").exists()
    with warehouse(home) as con:
        score_drift = con.execute("select status, psi from monitoring.psi where feature = '(score)' and partition_date = ?",
                                  [DAYS[0]]).fetchall()
    # the night is drawn from the training population: the deployed model's scores must not look drifted
    assert score_drift and score_drift[0][0] == "stable", score_drift


def test_reasons_are_the_largest_risk_raising_contributions(home):
    model = Registry(home / "models").load("champion")
    with warehouse(home) as con:
        features = con.execute("select * from drop_20261101_features.application_features").df()
        dictionary = con.execute("select * from features.feature_dictionary").df()
    scored = scoring.score_frame(model, features, dictionary)
    contributions = model.contributions(features)
    row = int(np.argmax(scored["probability_of_default"].to_numpy()))
    names = scored.loc[row, "reason_features"].split(",")
    contrib = pd.Series(contributions[row, :-1], index=model.features)
    assert contrib[names[0]] == contrib.drop(dictionary.loc[dictionary["protected"], "feature"], errors="ignore").max()
    assert list(contrib[names]) == sorted(contrib[names], reverse=True) and (contrib[names] > 0).all()
    np.testing.assert_allclose(contributions.sum(axis=1), scored["raw_score"], atol=1e-6)


def test_champion_is_monotone_along_each_constrained_feature(home):
    model = Registry(home / "models").load("champion")
    constraints = model.metadata.monotone_constraints
    used = set(model.ensemble.used_features())
    with warehouse(home) as con:
        features = con.execute("select * from drop_20261101_features.application_features limit 40").df()
    checked = 0
    for feature, sign in constraints.items():
        if feature not in used:
            continue
        grid = np.nanquantile(model.matrix(features)[feature].astype(float), np.linspace(0, 1, 12))
        if np.isnan(grid).all():
            continue
        scores = np.array([model.probability(features.assign(**{feature: value})) for value in grid])
        assert (np.diff(scores, axis=0) * sign >= -1e-12).all(), f"{feature} moves against its stated direction {sign:+d}"
        checked += 1
    assert checked >= 5  # the constraints are real, not vacuous


def test_counterfactual_search_in_chunks_finds_the_same_and_says_how_far_it_is(home):
    with warehouse(home) as con:
        ids = [r[0] for r in con.execute("""select SK_ID_CURR from scoring.scored_applications
                                             where partition_date = ? and decision <> 'granted' order by SK_ID_CURR limit 5""",
                                          [DAYS[0]]).fetchall()]
    assert len(ids) == 5
    model = Registry(home / "models").load("champion")
    said = []
    with warehouse(home, read_only=False) as con:
        whole = counterfactuals.search(con, model, "drop_20261101", ids, work_schema="cf_whole")
        chunked = counterfactuals.search(con, model, "drop_20261101", ids, work_schema="cf_chunks", chunk=2, progress=said.append)
    pd.testing.assert_frame_equal(whole, chunked)
    assert [m.split(" applicants")[0] for m in said] == [f"counterfactual search: {n} of 5" for n in (2, 4, 5)]


def test_counterfactual_is_verified_by_rescoring_the_changed_application(home):
    with warehouse(home) as con:
        row = con.execute("""select SK_ID_CURR, counterfactual from scoring.scored_applications
                             where partition_date = ? and counterfactual like 'Would be granted%' limit 1""", [DAYS[0]]).fetchone()
    if row is None:
        pytest.fail("no counterfactual was found on the synthetic drop: the search or the data changed")
    sk_id = row[0]
    with warehouse(home, read_only=False) as con:
        model = Registry(home / "models").load("champion")
        cf = counterfactuals.search(con, model, "drop_20261101", [sk_id], work_schema="cf_test")
        amount, term = cf.loc[0, "cf_amount"], cf.loc[0, "cf_term"]
        # the changed application, through the same drop -> SQL -> model path as a real night; it
        # comes back under a new id (with its whole history), since an id is never scored twice
        day, new_id = "2026-11-03", sk_id + 10_000_000
        source, folder = home / "inbox" / DAYS[0], home / "inbox" / "2026-11-03"
        folder.mkdir()
        for path in source.glob("*.csv"):
            table = pd.read_csv(path)
            if "SK_ID_CURR" in table:
                table = table[table["SK_ID_CURR"] == sk_id].assign(SK_ID_CURR=new_id)
            if path.name == "application_test.csv":
                table["AMT_CREDIT"] *= amount
                table["AMT_ANNUITY"] = table["AMT_ANNUITY"] * amount / term
            table.to_csv(folder / path.name, index=False)
    assert score_night(day).success
    with warehouse(home) as con:
        decision = con.execute("select decision from scoring.scored_applications where partition_date = ?", [day]).fetchall()
    assert decision == [(scoring.GRANTED,)]


@pytest.mark.slow  # the full suite (CI) runs it; the everyday subset stays under 3 minutes
def test_rerun_replaces_the_partition_and_the_audit_keeps_both_runs(home):
    score_night(DAYS[1])
    with warehouse(home) as con:
        before = con.execute("select count(*) from scoring.scored_applications").fetchone()[0]
        other = con.execute("select count(*) from scoring.scored_applications where partition_date <> ?", [DAYS[1]]).fetchone()[0]
    again = score_night(DAYS[1])
    with warehouse(home) as con:
        after = con.execute("select count(*) from scoring.scored_applications").fetchone()[0]
        runs = con.execute("select count(distinct run_id), count(*) from scoring.decision_audit where partition_date = ?",
                           [DAYS[1]]).fetchone()
        still_other = con.execute("select count(*) from scoring.scored_applications where partition_date <> ?", [DAYS[1]]).fetchone()[0]
        current_run = con.execute("select distinct run_id from scoring.scored_applications where partition_date = ?", [DAYS[1]]).fetchall()
    assert before == after and other == still_other
    assert runs[0] == 2 and runs[1] == 2 * (after - other)
    assert current_run == [(again.run_id,)]


def test_applicant_already_scored_is_quarantined_not_rescored(home):
    score_night(DAYS[1])  # idempotent: makes sure every applicant of that drop is scored, whatever ran before
    day = "2026-11-04"
    folder = home / "inbox" / day
    shutil.copytree(home / "inbox" / DAYS[1], folder)
    assert score_night(day, raise_on_error=False).success is False  # every applicant was scored on DAYS[1]: nothing left
    with warehouse(home) as con:
        reasons = con.execute("select distinct reason from drop_20261104.quarantine").fetchall()
        rescored = con.execute("select count(*) from scoring.scored_applications where partition_date = ?", [day]).fetchone()[0]
    assert reasons == [(f"already scored on {DAYS[1]}: not scored again",)] and rescored == 0


def test_bad_drops_fail_clearly(home):
    con = duckdb.connect()
    inbox = home / "inbox"
    bad = inbox / "2026-11-05"
    bad.mkdir()
    with pytest.raises(SourceFileError, match="no file application_test.csv"):
        drops.load_drop(con, inbox, "2026-11-05", 0.01)
    header = (inbox / DAYS[0] / "application_test.csv").read_text().splitlines()[0]
    (bad / "application_test.csv").write_text(header.replace("AMT_CREDIT,", "AMT_CREDITS,") + "\n")
    with pytest.raises(SourceFileError, match=r"missing column\(s\) AMT_CREDIT \(renamed to AMT_CREDITS\?\)"):
        drops.load_drop(con, inbox, "2026-11-05", 0.01)
    (bad / "application_test.csv").write_text(header + "\n")
    with pytest.raises(SourceFileError, match="no loadable data rows"):
        drops.load_drop(con, inbox, "2026-11-05", 0.01)
    with pytest.raises(SourceFileError, match="no drop for 2026-11-06"):
        drops.load_drop(con, inbox, "2026-11-06", 0.01)
    shutil.copy(inbox / DAYS[0] / "application_test.csv", bad / "application_test.csv")
    (bad / "bureau.csv.gz").write_bytes(b"not gzip at all")  # a corrupt side table stops the night: scoring without it is unsafe
    with pytest.raises(SourceFileError, match=r"bureau\.csv\.gz: cannot be read"):
        drops.load_drop(con, inbox, "2026-11-05", 0.01)


def test_snapshot_swap_while_a_reader_holds_the_old_one(tmp_path):
    target = tmp_path / "serving.duckdb"
    writer = duckdb.connect()
    snapshot.publish(writer, {"t": "select 1 as night"}, target)
    reader = duckdb.connect(str(target), read_only=True)
    snapshot.publish(writer, {"t": "select 2 as night union all select 2"}, target)
    assert reader.execute("select count(*), max(night) from t").fetchone() == (1, 1)  # the old night, whole
    # a new reader in another process (as the dashboard is) sees the new night, whole
    query = f"import duckdb; print(duckdb.connect('{target}', read_only=True).execute('select count(*), max(night) from t').fetchone())"
    fresh = subprocess.run([sys.executable, "-c", query], capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == "(2, 2)"
    reader.close()
    assert [p.name for p in tmp_path.iterdir()] == ["serving.duckdb"]  # no temporary file left behind


def test_failed_night_keeps_the_previous_snapshot(tmp_path):
    target = tmp_path / "serving.duckdb"
    writer = duckdb.connect()
    snapshot.publish(writer, {"t": "select 1 as night"}, target)
    with pytest.raises(duckdb.Error):
        snapshot.publish(writer, {"t": "select * from no_such_table"}, target)
    with duckdb.connect(str(target), read_only=True) as reader:
        assert reader.execute("select night from t").fetchall() == [(1,)]


def test_decision_tables_of_an_older_release_get_the_new_columns():
    con = duckdb.connect()
    con.execute("create schema scoring")
    older = {c: t for c, t in scoring.DECISION_COLUMNS.items() if c != "history_note"}
    partitions.create_or_extend(con, "scoring.decision_audit", older)
    con.execute("insert into scoring.decision_audit (SK_ID_CURR, decision) values (1, 'granted')")
    partitions.create_or_extend(con, "scoring.decision_audit", scoring.DECISION_COLUMNS)
    con.execute("insert into scoring.decision_audit by name select 2 as SK_ID_CURR, 'No earlier application with us.' as history_note")
    assert con.execute("select SK_ID_CURR, decision, history_note from scoring.decision_audit order by 1").fetchall() == [
        (1, "granted", None), (2, None, "No earlier application with us.")]


def test_psi_identical_is_zero_and_shift_is_severe():
    rng = np.random.default_rng(0)
    ref = pd.Series(rng.normal(size=20_000))
    assert drift.psi(ref, ref) == pytest.approx(0, abs=1e-9)
    assert drift.psi(ref, pd.Series(rng.normal(1.0, size=5_000))) > drift.ACT
    cats = pd.Series(["a", "b"] * 500, dtype=object)
    assert drift.psi(cats, cats) == pytest.approx(0, abs=1e-9)
    assert drift.status(0.05) == "stable" and drift.status(0.12) == "investigate" and drift.status(0.3) == "act"


def test_small_night_of_a_many_valued_category_is_noise_not_drift():
    rng = np.random.default_rng(1)
    values = [f"org {i}" for i in range(58)]
    reference = pd.Series(rng.choice(values, 50_000), dtype=object)
    night = pd.Series(rng.choice(values, 300), dtype=object)  # same distribution, a small sample
    row = drift.psi_row("ORGANIZATION_TYPE", reference, night)
    assert row["psi"] > drift.INVESTIGATE  # raw PSI alone would raise a false alarm
    assert row["noise_floor"] > row["psi"] - drift.INVESTIGATE and row["status"] == "stable"
    shifted = pd.Series(rng.choice(values[:10], 300), dtype=object)  # real drift: 10 of 58 values only
    assert drift.psi_row("ORGANIZATION_TYPE", reference, shifted)["status"] == "act"


def test_the_drift_report_gives_the_psi_verdict_and_says_why_evidently_differs(tmp_path):
    """A night without a single bureau row (the real sample's test applicants): PSI says act on the
    bureau feature, Evidently cannot compare an empty column; the report says both, in one verdict."""
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"BUR_DEBT_SUM": rng.gamma(2, 1e5, 5_000), "AMT_CREDIT": rng.gamma(3, 2e5, 5_000)})
    night = pd.DataFrame({"BUR_DEBT_SUM": np.full(400, np.nan), "AMT_CREDIT": rng.gamma(3, 2e5, 400)})
    table = drift.psi_table(reference, night, ["BUR_DEBT_SUM", "AMT_CREDIT"])
    assert table.set_index("feature").at["BUR_DEBT_SUM", "status"] == "act"
    summary = drift.evidently_report(reference, night, tmp_path / "drift.html", "a test night", table)
    page = (tmp_path / "drift.html").read_text()
    assert summary["columns_left_out_empty"] == ["BUR_DEBT_SUM"]
    assert "act on BUR_DEBT_SUM" in summary["verdict"] and "Left out of Evidently" in summary["verdict"]
    assert "act on BUR_DEBT_SUM" in page and "no value for them at all: BUR_DEBT_SUM" in page


def _drop(inbox, day, files=("application_test.csv",)):
    (inbox / day).mkdir(parents=True)
    for name in files:
        (inbox / day / name).write_text("SK_ID_CURR\n1\n")


def test_schedule_runs_at_two_in_paris_for_the_day_that_ended(tmp_path, monkeypatch):
    schedule = defs.resolve_schedule_def("nightly_scoring_schedule")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "Europe/Paris"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = datetime(2026, 11, 22, 2, 0, tzinfo=ZoneInfo("Europe/Paris"))
    monkeypatch.setenv("CREDIT_INBOX", str(tmp_path))
    with dg.instance_for_test() as instance:  # a persistent instance, as the daemon's (schedules need its ref)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick) as context:
            skipped = schedule.evaluate_tick(context)
        # Saturday 21 November without a drop: a skipped tick saying why, not a failed run, no partition
        assert not skipped.run_requests and "no drop for 2026-11-21" in skipped.skip_message
        assert instance.get_dynamic_partitions("drop_days") == []
        _drop(tmp_path, "2026-11-21")
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                       repository_def=defs.get_repository_def()) as context:
            requests = list(schedule.evaluate_tick(context).run_requests)
        assert [r.partition_key for r in requests] == ["2026-11-21"]
        assert instance.get_dynamic_partitions("drop_days") == ["2026-11-21"]
        # scored meanwhile (by the command line, say): its decisions stand, the tick does not score it again
        from credit_dagster.core.keys import SNAPSHOT

        instance.report_runless_asset_event(dg.AssetMaterialization(SNAPSHOT, partition="2026-11-21"))
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                       repository_def=defs.get_repository_def()) as context:
            again = schedule.evaluate_tick(context)
        assert not again.run_requests and "already scored: its decisions stand" in again.skip_message


def _remote_origin():
    from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="credit_dagster.definitions"))
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "nightly_scoring")


def test_the_partitions_are_the_drops_and_the_sensor_scores_the_late_ones(tmp_path, monkeypatch):
    from credit_dagster.core.keys import SHARDS, SNAPSHOT
    from credit_dagster.nightly import partitions

    monkeypatch.setenv("CREDIT_INBOX", str(tmp_path))
    today = drops.today().isoformat()
    for day in ("2026-11-01", "2026-11-02", "2026-11-04", "2026-11-05", "2026-11-06", "2026-11-07", "2026-11-08", today):
        _drop(tmp_path, day)
    _drop(tmp_path, "2026-11-03", files=("bureau.csv",))  # side tables alone are no drop
    _drop(tmp_path, "notes", files=("readme.txt",))
    sensor = defs.resolve_sensor_def("late_drop_sensor")
    with dg.instance_for_test() as instance:
        partitions.register(instance, ["2026-11-02"])
        instance.report_runless_asset_event(dg.AssetMaterialization(SNAPSHOT, partition="2026-11-02"))
        instance.add_run(dg.DagsterRun(job_name="nightly_scoring", run_id="still-running", status=dg.DagsterRunStatus.STARTED,
                                       tags={"dagster/partition": "2026-11-04"}))
        # a night a backfill put in the run queue (a queued run names the code location it will be launched from)
        instance.add_run(dg.DagsterRun(job_name="nightly_scoring", run_id="queued", status=dg.DagsterRunStatus.QUEUED,
                                       tags={"dagster/partition": "2026-11-05"}, remote_job_origin=_remote_origin()))
        # a sharded night (CREDIT_STORAGE=datasets) landed, one of its shards scored by a run the automation launched
        instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", run_id="shard", status=dg.DagsterRunStatus.STARTED,
                                       asset_selection=frozenset({SHARDS}),
                                       tags={"dagster/partition": "2026-11-06|01", "dagster/partition/night": "2026-11-06"}))
        # landed, its shard runs not yet launched by the automation's next pass: under way, not landed again ...
        for night in ("2026-11-07", "2026-11-08"):
            instance.add_run(dg.DagsterRun(job_name="nightly_scoring", run_id=f"landed-{night}", status=dg.DagsterRunStatus.SUCCESS,
                                           tags={"dagster/partition": night}))
        # ... unlike a landed night whose shard then failed: landing it again scores it again
        instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", run_id="failed-shard", status=dg.DagsterRunStatus.FAILURE,
                                       asset_selection=frozenset({SHARDS}),
                                       tags={"dagster/partition": "2026-11-08|00", "dagster/partition/night": "2026-11-08"}))
        with dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs) as context:
            result = sensor.evaluate_tick(context)
    # every drop of a day that has ended becomes a partition (today's waits for its night) ...
    assert [r.partition_keys for r in result.dynamic_partitions_requests] == [
        ["2026-11-01", "2026-11-04", "2026-11-05", "2026-11-06", "2026-11-07", "2026-11-08"]]
    # ... and only the unscored ones with no run queued or running (its landing, a shard of it), nor
    # landed and waiting for the automation, are scored
    assert [r.partition_key for r in result.run_requests] == ["2026-11-01", "2026-11-08"]


def test_a_drop_is_late_an_hour_after_its_nightly_tick():
    from credit_dagster.nightly.schedules import is_late

    paris = ZoneInfo("Europe/Paris")
    assert not is_late("2026-11-21", datetime(2026, 11, 22, 2, 59, tzinfo=paris))  # the schedule's turn
    assert is_late("2026-11-21", datetime(2026, 11, 22, 3, 0, tzinfo=paris))
    assert is_late("2026-11-21", datetime(2026, 11, 22, 2, 0, tzinfo=ZoneInfo("UTC")))  # 03:00 in Paris


def test_late_drop_sensor_requests_unscored_days(home):
    sensor = defs.resolve_sensor_def("late_drop_sensor")
    with dg.instance_for_test() as instance, dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs) as context:
        requests = sensor.evaluate_tick(context).run_requests
    # nothing is materialized in this fresh instance: every drop folder with applications is due
    assert {r.partition_key for r in requests} >= set(DAYS)


def test_unknown_category_values_are_reported_and_scored_as_missing(home):
    model = Registry(home / "models").load("champion")
    with warehouse(home) as con:
        features = con.execute("select * from drop_20261101_features.application_features limit 5").df()
    column = next(iter(model.metadata.categories))
    changed = features.assign(**{column: "Brand-new category"})
    assert scoring.unknown_categories(model, changed) == {column: ["Brand-new category"]}
    as_missing = features.assign(**{column: None})
    np.testing.assert_allclose(model.raw_score(changed), model.raw_score(as_missing))


@pytest.mark.slow
def test_cli_backfills_a_range_of_days(home, synthetic_dir, capsys):
    from credit_dagster import cli

    with warehouse(home) as con:
        before = con.execute("select count(distinct run_id) from scoring.decision_audit").fetchone()[0]
    assert cli.main(["score", "--start", DAYS[0], "--end", DAYS[1], "--data-dir", str(synthetic_dir)]) == 0
    out = capsys.readouterr().out
    assert f"nightly_scoring [{DAYS[0]}]" in out and f"nightly_scoring [{DAYS[1]}]" in out
    with warehouse(home) as con:
        after = con.execute("select count(distinct run_id) from scoring.decision_audit").fetchone()[0]
        days = {r[0] for r in con.execute("select distinct partition_date from scoring.scored_applications").fetchall()}
    assert after == before + 2 and set(DAYS) <= days
    assert (home / "dagster" / "dagster.yaml").read_text().count("enabled: false") == 1


@pytest.mark.parametrize("psi, expected", [(0.3, True), (0.05, False)])
def test_retraining_sensor_after_three_severe_nights(psi, expected):
    from credit_dagster.core.keys import DRIFT

    sensor = defs.resolve_sensor_def("drift_retraining_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    with dg.DagsterInstance.ephemeral() as instance:
        for _ in range(3):
            instance.report_runless_asset_event(dg.AssetMaterialization(DRIFT, metadata={"max_feature_psi_excess": psi, "score_psi_excess": 0.01}))
        with dg.build_sensor_context(instance=instance, definitions=defs) as context:
            requests = sensor.evaluate_tick(context).run_requests
    assert bool(requests) is expected


def test_drop_gates_block_a_bad_code_and_pass_a_clean_night(home):
    day = "2026-11-07"
    folder = home / "inbox" / day
    source = home / "inbox" / DAYS[0]
    folder.mkdir()
    for path in source.glob("*.csv"):
        table = pd.read_csv(path)
        if "SK_ID_CURR" in table:
            table = table.assign(SK_ID_CURR=table["SK_ID_CURR"] + 20_000_000)  # new applicants, same histories
        if path.name == "bureau_balance.csv":
            table.loc[table.index[:3], "STATUS"] = "Z"  # not a bureau status: warns, does not block
        table.to_csv(folder / path.name, index=False)
    result = score_night(day, raise_on_error=False)
    checks = {e.event_specific_data.check_name: e.event_specific_data for e in result.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    gate = checks["drop_quality"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.WARN
    assert "bureau_balance: expect_column_values_to_be_in_set on STATUS: 3 rows" in gate.description
    assert result.success  # a warning: the night is still scored


def test_each_published_night_leaves_its_figures_where_prometheus_reads_them(home):
    """The node exporter's text file of the latest night published: its applicants and decisions are
    the warehouse's for that night, in Prometheus' own format."""
    from datetime import UTC, datetime

    from prometheus_client.parser import text_string_to_metric_families

    from credit_dagster.monitoring import night_metrics

    text = night_metrics.metrics_path().read_text()
    samples = {(s.name, s.labels.get("decision")): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    day = datetime.fromtimestamp(samples[("credit_night_day_timestamp_seconds", None)], UTC).date().isoformat()
    with warehouse(home) as con:
        mix = dict(con.execute("select decision, count(*) from scoring.scored_applications where partition_date = ? group by 1",
                               [day]).fetchall())
    assert mix and samples[("credit_night_applicants", None)] == sum(mix.values())
    assert {d: samples[("credit_night_decisions", d)] for d in mix} == mix
    assert 0 < datetime.now(UTC).timestamp() - samples[("credit_night_published_timestamp_seconds", None)] < 6 * 3600
    assert samples[("credit_night_duration_seconds", None)] > 0 and ("credit_night_psi_max", None) in samples


def test_every_decision_of_a_night_replays_exactly_after_a_newer_champion_and_night_and_a_change_is_named(
        scored_home, tmp_path, monkeypatch, capsys):
    """`credit-dagster decision replay`: the night's decisions made again from its kept features and
    the model version each record names, once a newer champion (another policy) scored a newer
    night; an edited record is named figure by figure; a night whose features are gone says so."""
    import dataclasses

    from credit_dagster import cli
    from credit_dagster.core.settings import models_dir

    home = tmp_path / "home"
    shutil.copytree(scored_home, home, ignore=shutil.ignore_patterns("*.lock"))
    monkeypatch.setenv("CREDIT_HOME", str(home))
    registry = Registry(models_dir())
    old = registry.load("champion")
    low, high = old.metadata.refer_band
    newer = registry.register(old.ensemble, dataclasses.replace(old.metadata, refer_band=[low * 0.5, high * 0.8],
                                                                threshold=(low * 0.5 + high * 0.8) / 2))
    registry.promote(newer, reason="test: a newer champion with another policy")
    score_night(SCORED_DAYS[1])
    with warehouse(home) as con:
        night = con.execute("select SK_ID_CURR, decision, model_version, counterfactual from scoring.scored_applications "
                            "where partition_date = ?", [SCORED_DAYS[0]]).df()
        assert set(con.execute("select model_version from scoring.scored_applications where partition_date = ?",
                               [SCORED_DAYS[1]]).fetchall()) == {(newer,)}
    assert set(night["model_version"]) == {old.version} and {"granted", "refused"} <= set(night["decision"])

    assert cli.main(["decision", "replay", "--at", SCORED_DAYS[0]]) == 0
    assert f"night {SCORED_DAYS[0]}: {len(night):,} of {len(night):,} decisions replayed exactly" in capsys.readouterr().out
    refused = int(night.loc[night["counterfactual"].str.startswith("Would be granted", na=False), "SK_ID_CURR"].iloc[0])
    assert cli.main(["decision", "replay", str(refused)]) == 0  # its latest night: the older one, by the older model
    said = capsys.readouterr().out
    assert f"applicant {refused}, night {SCORED_DAYS[0]}" in said and f"model {old.version}" in said
    assert "replayed exactly" in said and "DIFFERS" not in said and "same    counterfactual: Would be granted" in said

    # a record edited after the night: by a rounding's worth, and a reason reworded
    with warehouse(home, read_only=False) as con:
        con.execute("update scoring.decision_audit set probability_of_default = probability_of_default + 1e-9, "
                    "reason_2 = 'edited' where SK_ID_CURR = ? and partition_date = ?", [refused, SCORED_DAYS[0]])
    assert cli.main(["decision", "replay", str(refused), "--at", SCORED_DAYS[0]]) == 1
    said = capsys.readouterr().out
    assert "DIFFERS probability_of_default" in said and "DIFFERS reason_2: edited" in said and "same    points" in said
    assert "2 of 13 differ: probability_of_default, reason_2" in said
    assert cli.main(["decision", "show", str(refused), "--at", SCORED_DAYS[0]]) == 0
    assert "  reason_2: edited" in capsys.readouterr().out

    # the night's features swept: said, not guessed
    with warehouse(home, read_only=False) as con:
        con.execute(f"drop schema {drops.drop_schema(SCORED_DAYS[0])}_features cascade")
    assert cli.main(["decision", "replay", str(refused), "--at", SCORED_DAYS[0]]) == 1
    assert f"the features of night {SCORED_DAYS[0]} are not kept any more" in capsys.readouterr().err


def grid_search(con: duckdb.DuckDBPyConnection, model, drop_schema: str, ids: list[int]) -> pd.DataFrame:
    """The oracle of the bisection: every step of the grid tried for every applicant, the closest
    granted kept (`closest_granted`), as the night searched before."""
    from credit_dagster.core.sources import SOURCE_TABLES
    from credit_dagster.features import sql_models

    models = sql_models.discover()
    rebuilt = scoring.models_reading(models, "application_test")
    con.execute("create schema if not exists grid_raw")
    con.execute("create schema if not exists grid_features")
    for name in [t for t in SOURCE_TABLES if t != "application_test"]:
        con.execute(f"create or replace view grid_raw.{name} as select * from {drop_schema}.{name}")
    for m in models:
        if m.name not in rebuilt:
            con.execute(f"create or replace view grid_features.{m.name} as select * from {drop_schema}_features.{m.name}")
    con.register("grid_steps", counterfactuals.steps())
    con.register("grid_ids", pd.DataFrame({"SK_ID_CURR": ids}))
    con.execute("create or replace table grid_raw.application_test as "
                + counterfactuals.variants_sql(f"{drop_schema}.application_test", "grid_ids", "grid_steps"))
    for m in models:
        if m.name in rebuilt:
            sql_models.build_model(con, m, schemas={"raw": "grid_raw", "features": "grid_features"})
    variants = scoring.frame(con, f"select {counterfactuals.variant_columns(model)} from grid_features.application_features")
    return counterfactuals.describe(ids, [counterfactuals.closest_granted(model, variants)], model)


def assert_bisection_is_the_grid(home: Path, day: str) -> int:
    from credit_dagster.core import warehouse as warehouse_module

    model = Registry(home / "models").load("champion")
    with warehouse_module.connect(home / "warehouse.duckdb", scratch=True) as con:
        ids = [r[0] for r in con.execute("select SK_ID_CURR from scoring.scored_applications where partition_date = ? "
                                         "and decision != 'granted' order by 1", [day]).fetchall()]
        catalog = con.execute("select current_database()").fetchone()[0]
        con.execute("attach ':memory:' as work")
        con.execute("use work")
        drop = f"{catalog}.{drops.drop_schema(day)}"
        # the variants featured in NumPy (the night's way) and by the SQL models (where the SQL is not mirrored)
        bisected = counterfactuals.search(con, model, drop, ids, work_schema="bisect", chunk=max(1, len(ids) // 2),
                                          mirror=ondemand.mirror())
        by_sql = counterfactuals.search(con, model, drop, ids, work_schema="bisect", chunk=max(1, len(ids) // 2))
        grid = grid_search(con, model, drop, ids)
    columns = ["SK_ID_CURR", "cf_amount", "cf_term", "cf_pd", "counterfactual"]
    for found in (bisected, by_sql):
        pd.testing.assert_frame_equal(found[columns].reset_index(drop=True), grid[columns].reset_index(drop=True), check_exact=False,
                                      rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(bisected, by_sql)  # to the bit
    assert bisected["cf_amount"].notna().any() and bisected["cf_amount"].isna().any()  # both kinds of answer were compared
    # a chunk where no change grants anyone: its answers are typed as found ones, and the night attaches them
    none = bisected.loc[bisected["cf_amount"].isna(), "SK_ID_CURR"].head(3).astype(int).tolist()
    with warehouse_module.connect(home / "warehouse.duckdb", scratch=True) as con:
        catalog = con.execute("select current_database()").fetchone()[0]
        con.execute("attach ':memory:' as work")
        con.execute("use work")
        nothing = counterfactuals.search(con, model, f"{catalog}.{drops.drop_schema(day)}", none, work_schema="none")
    assert nothing["SK_ID_CURR"].dtype == "int64" and nothing["cf_amount"].isna().all()
    scored = pd.DataFrame({"SK_ID_CURR": np.array(none, dtype="int64"), "held_back": False})
    assert counterfactuals.attach(scored, nothing)["counterfactual"].str.startswith("No change within").all()
    return len(ids)


def test_the_bisection_finds_what_the_grid_finds_for_every_refused_applicant_of_a_night(home):
    assert assert_bisection_is_the_grid(home, SCORED_DAYS[0]) > 20


@pytest.mark.real_sample
def test_the_bisection_finds_what_the_grid_finds_on_a_real_night(real_scored):
    home, day, _ = real_scored
    print(f"real night {day}: bisection = grid for {assert_bisection_is_the_grid(home, day):,} applicants not granted")
