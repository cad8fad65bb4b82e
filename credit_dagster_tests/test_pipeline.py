"""The Dagster code location end to end on temporary homes: assets, checks, blocking gates."""

import shutil

import dagster as dg
import duckdb
import pytest

from credit_dagster.core.resources import SourceData, Warehouse
from credit_dagster.core.sources import SOURCE_TABLES
from credit_dagster.definitions import defs
from credit_dagster.model.resources import ModelStore
from credit_dagster_tests.conftest import run_all, temporary_home


def check_results(result):
    return {
        f"{e.event_specific_data.asset_key.path[-1]}:{e.event_specific_data.check_name}": e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_definitions_load_and_job_resolves():
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("build_all")
    assert {k.path[-1] for k in job.asset_layer.executable_asset_keys} >= set(SOURCE_TABLES) | {"raw_data_profile", "credit_model"}
    nightly = defs.resolve_job_def("nightly_scoring")
    assert {k.path[-1] for k in nightly.asset_layer.executable_asset_keys} == {
        "daily_drop", "daily_features", "scored_applications", "drift_report", "serving_snapshot"}
    assert defs.resolve_schedule_def("nightly_scoring_schedule").job_name == "nightly_scoring"
    assert defs.resolve_sensor_def("late_drop_sensor") and defs.resolve_sensor_def("drift_retraining_sensor")



def graph(defs: dg.Definitions) -> dict:
    """What a code location shows: its assets with partitions and automation, jobs with what they
    run, schedules, sensors and the default executor."""
    repo = defs.get_repository_def()
    return {
        "assets": {spec.key.to_user_string(): (type(spec.partitions_def).__name__ if spec.partitions_def else None,
                                               spec.automation_condition is not None) for spec in defs.resolve_all_asset_specs()},
        "jobs": {job.name: sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)
                 for job in repo.get_all_jobs() if not job.name.startswith("__")},
        "schedules": {s.name: (s.job_name, s.cron_schedule) for s in repo.schedule_defs},
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "executor": defs.resolve_job_def("nightly_scoring").executor_def.name,
    }


def test_one_function_builds_each_storages_graph_from_the_settings_it_is_given(monkeypatch):
    from credit_dagster.core.settings import Settings
    from credit_dagster.definitions import build

    for name in ("CREDIT_STORAGE", "CREDIT_SHARDS", "CREDIT_NIGHTLY_CRON", "CREDIT_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    warehouse = graph(build(Settings(storage="warehouse")))
    datasets = graph(build(Settings(storage="datasets", shards=3, nightly_cron="30 3 * * *", executor="celery")))
    assert graph(defs) == warehouse == graph(build(Settings()))  # the module's own is the environment's; building another changes nothing
    # the warehouse: one run a night, nothing launched by automation
    assert warehouse["jobs"]["nightly_scoring"] == ["monitoring/drift_report", "scoring/daily_drop", "scoring/daily_features",
                                                    "scoring/scored_applications", "serving/serving_snapshot"]
    assert not any(auto for _, auto in warehouse["assets"].values()) and "scoring/scored_shards" not in warehouse["assets"]
    assert {"night_shards", "night_publish"}.isdisjoint(warehouse["jobs"]) and "night_automation" not in warehouse["sensors"]
    assert warehouse["schedules"]["nightly_scoring_schedule"] == ("nightly_scoring", "0 2 * * *")
    assert warehouse["executor"] == "in_process"
    # the datasets: landed, scored by (night, shard), published; what follows the landing by automation
    assert datasets["jobs"]["nightly_scoring"] == ["scoring/daily_drop"]
    assert datasets["jobs"]["night_shards"] == ["scoring/scored_shards"]
    assert datasets["jobs"]["night_publish"] == ["monitoring/drift_report", "scoring/scored_applications", "serving/serving_snapshot"]
    assert datasets["assets"]["scoring/scored_shards"] == ("MultiPartitionsDefinition", True)
    assert {k for k, (_, auto) in datasets["assets"].items() if auto} == {
        "scoring/scored_shards", "scoring/scored_applications", "monitoring/drift_report", "serving/serving_snapshot"}
    assert "night_automation" in datasets["sensors"] and datasets["schedules"]["nightly_scoring_schedule"][1] == "30 3 * * *"
    assert datasets["executor"] == "celery"
    # everything else is the same graph
    automated = {k for k, (_, auto) in datasets["assets"].items() if auto}
    assert {k: v for k, v in warehouse["assets"].items() if k not in automated | {"scoring/daily_features"}} == {
        k: v for k, v in datasets["assets"].items() if k not in automated}

def test_full_run_on_synthetic_data(build, synthetic_dir):
    credit_home, result = build
    assert result.success
    checks = check_results(result)
    failed = [k for k, c in checks.items() if not c.passed]
    # the synthetic population carries an age gap the fairness gate may flag: a warning, signed off automatically on SYNTHETIC
    # data; like Kaggle's, a few synthetic applications lack their repayment: a warning, they would be referred
    assert checks and set(failed) <= {"credit_model:fairness_equal_treatment", "application_train:plausible_applications",
                                      "application_test:plausible_applications"}, failed
    if "credit_model:fairness_equal_treatment" in failed:
        fairness = checks["credit_model:fairness_equal_treatment"].description
        assert "signed off automatically" in fairness and "Automatic promotion stops" not in fairness
    plausible = checks["application_train:plausible_applications"]
    assert plausible.passed or "AMT_ANNUITY: required, not given" in plausible.description
    assert all(c.severity == dg.AssetCheckSeverity.WARN for k, c in checks.items() if k in failed)
    with duckdb.connect(str(credit_home / "warehouse.duckdb"), read_only=True) as con:
        for spec in SOURCE_TABLES.values():
            expected = sum(1 for _ in open(synthetic_dir / f"{spec.file_stem}.csv")) - 1
            assert con.execute(f"select count(*) from raw.{spec.name}").fetchone()[0] == expected
    report = (credit_home / "reports" / "raw_data_profile.html").read_text()
    assert "SYNTHETIC" in report and "Default rate by NAME_INCOME_TYPE" in report
    meta = result.asset_materializations_for_node("raw__application_train")[0].metadata
    assert meta["synthetic"].value is True and len(meta["sha256"].value) == 64
    card = (credit_home / "reports" / "model_card.html").read_text()
    assert "SYNTHETIC DATA" in card and "Fairness audit" in card and "data:image/png;base64" in card
    with temporary_home(credit_home):
        champion = ModelStore().registry().load("champion")
    assert champion.metadata.cv_metrics["roc_auc"] > 0.6 and champion.metadata.threshold > 0


def test_bad_label_blocks_downstream_and_duplicates_warn(credit_home, synthetic_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    lines = (data / "application_train.csv").read_text().splitlines()
    fields = lines[1].split(",")
    fields[1] = "2"  # TARGET outside {0, 1}
    lines[1] = ",".join(fields)
    (data / "application_train.csv").write_text("\n".join(lines + [lines[2]]) + "\n")  # and a duplicate applicant
    result = run_all(data)
    checks = check_results(result)
    value_check = checks["application_train:value_sets"]
    assert not value_check.passed and value_check.severity == dg.AssetCheckSeverity.ERROR
    assert "TARGET" in value_check.description and "[2]" in value_check.description
    assert not checks["application_train:nothing_quarantined"].passed
    assert checks["application_train:keys"].passed  # the duplicate was held back, not loaded
    # The blocking failure stops the profile, which reads application_train.
    assert "raw__raw_data_profile" not in {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}


@pytest.mark.real_sample
def test_real_sample_loads_and_reports_orphans(real_run):
    home, result, _ = real_run
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        counts = {t: con.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in SOURCE_TABLES}
        assert con.execute("select count(*) from raw.columns_description").fetchone()[0] == 219
        assert con.execute("select count(*) from raw.application_train where DAYS_EMPLOYED = 365243").fetchone()[0] > 1000
    assert counts["application_train"] == 7000 and counts["application_test"] == 48744
    assert counts["bureau"] == 33627 and counts["bureau_balance"] == 324756 and counts["credit_card_balance"] == 72661
    checks = check_results(result)
    fk = checks["previous_application:foreign_keys"]
    assert not fk.passed and fk.severity == dg.AssetCheckSeverity.WARN  # scattered rows: orphans are reported, not fatal
    assert checks["application_train:keys"].passed and checks["bureau_balance:value_sets"].passed


@pytest.mark.real_sample
def test_real_sample_features_have_the_grain_and_carry_information(real_run):
    home, _, _ = real_run
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows, ids = con.execute("select count(*), count(distinct SK_ID_CURR) from features.application_features").fetchone()
        assert rows == ids == 7000 + 48744
        columns = [r[0] for r in con.execute("describe features.application_features").fetchall()]
        stats = con.execute(
            "select " + ", ".join(f'count(distinct "{c}"), count("{c}")' for c in columns) + " from features.application_features"
        ).fetchone()
        dictionary = con.execute("select count(*) from features.feature_dictionary").fetchone()[0]
    distinct, present = dict(zip(columns, stats[0::2], strict=True)), dict(zip(columns, stats[1::2], strict=True))
    # Kaggle's FLAG_DOCUMENT_* and housing flags can be constant in a sample; every aggregate must vary.
    aggregates = [c for c in columns if c.split("_")[0] in {"BUR", "PREV", "POS", "INST", "CC", "APP"}]
    dead = [c for c in aggregates if present[c] == 0 or distinct[c] < 2]
    assert not dead, f"constant or empty aggregate features on the real sample: {dead}"
    assert dictionary == len(columns) - 1


@pytest.mark.real_sample
def test_real_sample_model_beats_application_only(real_run):
    home, result, held = real_run
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        auc = dict(con.execute("select candidate, roc_auc from model.candidate_comparison").fetchall())
    print("real-sample CV ROC AUC:", auc)
    assert auc["lightgbm_all_tables"] > auc["lightgbm_application_only"]
    assert auc["lightgbm_all_tables"] > 0.65 and auc["lightgbm_all_tables"] >= auc["lightgbm_all_tables_no_selection"] - 0.01
    model_checks = {k: c for k, c in check_results(result).items() if k.startswith("credit_model:")}
    assert all(c.passed for k, c in model_checks.items() if k != "credit_model:fairness_equal_treatment")
    # real applicants under 25 are approved far less often (they default more): the four-fifths figures say so, and the
    # gate acts only on unequal treatment (equal opportunity, calibration within the group); a flag holds the champion back
    fairness = model_checks["credit_model:fairness_equal_treatment"]
    assert fairness.severity == dg.AssetCheckSeverity.WARN and fairness.passed is not held
    four_fifths = fairness.metadata["four_fifths_rule"].value
    assert any(f.startswith("age_band = <25") for f in four_fifths), four_fifths
    if held:
        assert "risk committee" in fairness.description and "credit-dagster promote" in fairness.description


@pytest.mark.slow
def test_planted_leak_fails_the_blocking_check_and_keeps_the_champion(credit_home, build, synthetic_dir):
    shutil.copytree(build[0], credit_home)  # a built home of its own: the leak must not reach the shared one
    registry = ModelStore().registry()
    champion, versions = registry.alias("champion"), len(registry.versions())
    with duckdb.connect(str(credit_home / "warehouse.duckdb")) as con:
        con.execute("""create or replace table features.application_features as
            select f.*, l.TARGET * 1.0 as REPAYMENT_FLAG from features.application_features f
            left join features.application_labels l using (SK_ID_CURR)""")
    model_group = [a for a in defs.assets if a.keys and next(iter(a.keys)).path[0] == "model"]
    model_checks = [c for c in defs.asset_checks if next(iter(c.check_keys)).asset_key.path[0] == "model"]
    result = dg.materialize(
        [*model_group, *model_checks],
        instance=dg.DagsterInstance.ephemeral(),
        resources={"warehouse": Warehouse(), "source": SourceData(data_dir=str(synthetic_dir)), "models": ModelStore()},
        # the leak check needs a trained candidate, not the candidates' comparison: the deployed recipe alone, 3 folds
        run_config={"ops": {"model__credit_model": {"config": {"n_folds": 3, "compare_unselected": False, "stability_seeds": 0}}}},
        raise_on_error=False,
    )
    leak = check_results(result)["credit_model:no_leakage"]
    assert not leak.passed and "REPAYMENT_FLAG" in leak.description
    assert registry.alias("champion") == champion  # the leaking model was registered but never promoted
    assert len(registry.versions()) == versions + 1


@pytest.mark.real_sample
def test_real_sample_drop_is_scored(real_scored):
    home, day, _ = real_scored
    with duckdb.connect(str(home / "serving" / "serving.duckdb"), read_only=True) as con:
        scored = con.execute("select decision, count(*) from scored_applications group by 1").fetchall()
        reasons = con.execute("select count(*) from scored_applications where reason_1 is null").fetchone()[0]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        dropped = con.execute(f"select count(*) from drop_{day.replace('-', '')}.application_test").fetchone()[0]
    assert sum(n for _, n in scored) == dropped > 2000
    assert {d for d, _ in scored} <= {"granted", "refused", "refer to an advisor"} and reasons < dropped
