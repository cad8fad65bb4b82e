"""Outcomes come back: bad files quarantined with their reason, deliveries in any order give the
same tables, and the back-test equals an independent computation on SYNTHETIC outcomes."""

import itertools
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta
from sklearn.metrics import roc_auc_score

from credit_dagster.outcomes import backtest, reports
from credit_dagster.review import cases as review
from credit_dagster.review.journal import ReviewJournal

HEADER = "SK_ID_CURR,REPORTING_DATE,MONTHS_ON_BOOK,WORST_DPD,TARGET\n"
DECISIONS = pd.DataFrame({"SK_ID_CURR": [1, 2, 3, 4, 5], "partition_date": "2026-11-02",
                          "final_decision": ["granted", "refused", "granted", "granted", "refer to an advisor"]})


def _file(tmp_path, name: str, rows: str):
    path = tmp_path / name
    path.write_text(HEADER + rows)
    return path


def test_each_bad_report_is_quarantined_with_its_reason(tmp_path):
    path = _file(tmp_path, "a.csv", "1,2026-12-02,1,0,0\n1,2027-01-02,2,95,1\n1,2027-02-02,3,95,0\n"  # a default withdrawn
                                    "2,2026-12-02,1,0,0\n5,2026-12-02,1,0,0\n9,2026-12-02,1,0,0\n"  # refused, referred, unknown
                                    "3,2026-10-01,1,0,0\n"  # before the decision
                                    "4,2026-12-02,1,0,0\n4,2026-12-02,1,30,0\n"  # one date, two stories
                                    "x,2026-13-01,-1,a,2\n"  # unreadable
                                    "1,2027-01-02,2,95,1\n3,2027-01-02,2,0,0\n")  # a repeat, a good one
    good, unreadable = reports.read(path)
    assert len(unreadable) == 1 and unreadable.at[0, "line"] == 11
    assert all(w in unreadable.at[0, "reason"] for w in ("SK_ID_CURR 'x'", "REPORTING_DATE '2026-13-01'", "MONTHS_ON_BOOK '-1'",
                                                         "WORST_DPD 'a'", "TARGET '2'"))
    outcomes, quarantine, _ = reports.settle(good, DECISIONS)
    why = dict(zip(quarantine["line"], quarantine["reason"], strict=True))
    assert "withdraws a default" in why[4]
    assert why[5].startswith("never granted (refused)") and why[6].startswith("never granted (refer to an advisor)")
    assert why[7].startswith("unknown applicant") and "before the decision" in why[8]
    assert "disagree" in why[9] and "disagree" in why[10]
    assert outcomes.set_index("SK_ID_CURR")[["REPORTING_DATE", "TARGET", "reports"]].to_dict("index") == {
        1: {"REPORTING_DATE": "2027-01-02", "TARGET": 1, "reports": 2},  # the latest that stands; the repeat counted once
        3: {"REPORTING_DATE": "2027-01-02", "TARGET": 0, "reports": 1}}


@pytest.mark.parametrize("text, words", [("SK_ID_CURR,TARGET\n1,0\n", r"missing column\(s\) REPORTING_DATE"), ("", "not a readable CSV")])
def test_a_file_that_is_no_outcome_file_is_refused_whole(tmp_path, text, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(reports.OutcomeFileError, match=words):
        reports.read(path)


def test_deliveries_in_any_order_or_repeated_give_the_same_tables(tmp_path):
    files = [_file(tmp_path, "m1.csv", "1,2026-12-02,1,0,0\n3,2026-12-02,1,0,0\n4,2026-12-02,1,0,0\n"),
             _file(tmp_path, "m2.csv", "1,2027-01-02,2,95,1\n3,2027-01-02,2,5,0\n4,2027-01-02,2,0,0\n"),
             _file(tmp_path, "m3.csv", "1,2027-02-02,3,95,0\n3,2027-02-02,3,5,0\n4,2027-02-02,3,0,1\n")]
    results = set()
    for order in [*itertools.permutations(files), (*files, files[1], files[0])]:
        received = pd.concat([reports.read(f)[0] for f in order], ignore_index=True)
        outcomes, quarantine, standing = reports.settle(received, DECISIONS)
        results.add((outcomes.to_csv(index=False), quarantine.drop_duplicates().to_csv(index=False), standing.to_csv(index=False)))
    assert len(results) == 1
    outcomes = pd.read_csv(pd.io.common.StringIO(next(iter(results))[0])).set_index("SK_ID_CURR")
    assert outcomes.loc[1, "TARGET"] == 1 and outcomes.loc[4, "TARGET"] == 1 and outcomes.loc[3, "REPORTING_DATE"] == "2027-02-02"


def test_a_model_scoring_noise_fails_and_a_grade_above_its_pd_is_flagged():
    rng = np.random.default_rng(3)
    n = 6000
    target = (rng.random(n) < 0.08).astype(float)
    rows = pd.DataFrame({"model_version": "v", "vintage": "2026-11", "final_decision": "granted", "TARGET": target,
                         "probability_of_default": rng.uniform(0.02, 0.15, n), "grade": "C"})
    development = {"roc_auc": 0.80, "roc_auc_low": 0.78, "roc_auc_high": 0.82, "granted_auc": 0.75, "granted_auc_low": 0.73,
                   "granted_auc_high": 0.77}
    table = backtest.vintages(rows, {"v": development}, {}, tolerance=0.05,
                              min_outcomes=100, min_defaults=5)
    assert table.at[0, "verdict"] == backtest.FAIL and table.at[0, "realized_auc_high"] < 0.6
    rate = target.mean()
    calibrated = rows.assign(probability_of_default=rate)
    low = rows.assign(probability_of_default=0.6 * rate)  # promises less than it delivers
    assert backtest.grades(calibrated, 100).set_index("grade").at["C", "verdict"] == backtest.OK
    flagged = backtest.grades(low, 100).set_index("grade")
    assert flagged.at["C", "verdict"] == backtest.FAIL and flagged.at["all", "verdict"] == backtest.FAIL
    d = int(target.sum())
    assert flagged.at["C", "jeffreys_p"] == pytest.approx(beta.cdf(0.6 * rate, d + 0.5, n - d + 0.5))


@pytest.mark.slow
def test_synthetic_outcomes_back_test_equals_an_independent_computation(tmp_path, scored_home, synthetic_dir):
    """Three more nights scored beside the fixture's, SYNTHETIC outcomes of their granted
    applications delivered (and one delivered again, and a malformed file beside them), the
    back-test run: its figures are those computed here on the same rows."""
    from credit_dagster.definitions import defs
    from credit_dagster.nightly import drops
    from credit_dagster.outcomes.assets import decisions_sql, inbox
    from credit_dagster.synth import outcomes as synthetic
    from credit_dagster_tests.conftest import SCORED_DAYS, score_night, temporary_home

    home = tmp_path / "home"
    shutil.copytree(scored_home, home)
    # The fixture's unscored drop (odd SK_ID_CURR) as three nights: the same data replayed in six
    # drops (SK_ID_CURR mod 6), of which the odd ones are exactly that drop's applicants.
    sixths = drops.replay(synthetic_dir, tmp_path / "sixths", 6, date.fromisoformat(SCORED_DAYS[0]))
    shutil.rmtree(home / "inbox" / SCORED_DAYS[1])
    nights = ["2026-11-02", "2026-11-03", "2026-11-04"]
    for sixth, night in zip(list(sixths)[1::2], nights, strict=True):
        (tmp_path / "sixths" / sixth).rename(home / "inbox" / night)
    with temporary_home(home):
        for night in nights:
            assert score_night(night).success
        # an advisor grants a referred application: a loan, so an outcome, credited to her
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            referred = con.execute("select SK_ID_CURR from scoring.scored_applications where decision = ? limit 1", [review.REFER]).fetchone()[0]
        ReviewJournal().record(referred, review.DECIDE, user="ann", role=review.ADVISOR, model_version="v", model_decision=review.REFER,
                               revision=0, final=review.GRANTED, reason_codes=("verified_income",))
        assert defs.resolve_job_def("review_fold").execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            decided = con.execute(decisions_sql(con)).df()
        assert tuple(decided.set_index("SK_ID_CURR").loc[referred, ["final_decision", "decided_by", "reviewer"]]) == ("granted", "advisor", "ann")
        granted = decided[decided["final_decision"] == "granted"]
        delivered = synthetic.outcomes(synthetic_dir, granted, months=12)
        for name in ("m12", "m12_again"):
            (inbox() / name).mkdir(parents=True)
            delivered.to_csv(inbox() / name / reports.FILE, index=False)
        (inbox() / "broken").mkdir()
        (inbox() / "broken" / reports.FILE).write_text("SK_ID_CURR;TARGET\n1;0\n")
        result = defs.resolve_job_def("backtest").execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        checks = {e.event_specific_data.check_name: e.event_specific_data.passed for e in result.all_events
                  if e.event_type_value == "ASSET_CHECK_EVALUATION"}
        assert result.success and checks["every_outcome_file_read"] is False  # said, and the good files taken
        assert checks["outcomes_expectations"] is True  # Great Expectations on what was settled
        plots = {k for e in result.get_asset_materialization_events() for k in e.materialization.metadata if k.endswith("_plot")}
        assert plots == {"realized_auc_plot", "calibration_plot"}  # pictures in the Dagster UI too
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            vintages = con.execute("select * from outcomes.backtest_vintages").df()
            grades = con.execute("select * from outcomes.backtest_grades").df()
            received = con.execute("select count(*) from outcomes.received").fetchone()[0]
            overrides = con.execute("select * from outcomes.backtest_overrides").df().set_index(["segment", "value"])
        assert overrides.loc[("reviewer", "ann"), "decided_by_people"] == 1 and overrides.loc[("reviewer", "ann"), "their_outcomes"] == 1
    assert received == len(delivered)  # the same file delivered twice is taken once
    assert len(decided["partition_date"].unique()) == 4 and len(vintages) == 1  # the fixture's night and three more, all November
    joined = granted.merge(delivered, on="SK_ID_CURR")
    row = vintages.iloc[0]
    assert row["decisions"] == len(decided) and row["never_judged"] == len(decided) - len(granted)
    assert row["with_outcome"] == len(joined) and row["defaults"] == joined["TARGET"].sum()
    assert row["realized_auc"] == pytest.approx(roc_auc_score(joined["TARGET"], joined["probability_of_default"]), abs=1e-12)
    assert row["realized_auc_low"] < row["realized_auc"] < row["realized_auc_high"]
    # the version's technical documentation says how it held up (Annex IV point 9), with these figures
    documented = (home / "models" / row["model_version"] / "technical_documentation.md").read_text()
    line = next(line for line in documented.splitlines() if line.startswith(f"| {row['vintage']} "))
    assert f" {round(row['realized_auc'], 4):g} " in line and f" {int(row['with_outcome'])} " in line and row["verdict"] in line
    # Evidently's classification report of the vintage, whose ROC AUC is the back-test's own
    shown = {k: v for e in result.get_asset_materialization_events() for k, v in e.materialization.metadata.items()}
    assert shown["evidently_roc_auc"].value == pytest.approx(row["realized_auc"], abs=1e-9)
    assert "SYNTHETIC data" in Path(shown["evidently_report"].path).read_text()
    expected = joined.groupby("grade").agg(n=("TARGET", "size"), d=("TARGET", "sum"), p=("probability_of_default", "mean"))
    got = grades[grades["grade"] != "all"].set_index("grade")
    assert (got["with_outcome"] == expected["n"]).all() and (got["defaults"] == expected["d"]).all()
    assert np.allclose(got["predicted_rate"], expected["p"]) and np.allclose(got["observed_rate"], expected["d"] / expected["n"])
    # the generator's own label: the model ranks its defaulters above chance, as in development
    assert row["realized_auc"] > 0.6
    # the supervisor sees it in the dashboard, in pictures and in words
    from panel_app import view_model as vm
    from panel_app.data_store import SnapshotStore
    from panel_app.views import Dashboard

    store = SnapshotStore(home / "serving" / "serving.duckdb")
    seen = vm.backtesting(store)
    assert f"{len(joined):,} granted applications have an outcome" in seen.sentence
    assert set(seen.grades["grade"]) == set(expected.index) and "by month 12" in seen.curves_sentence
    with temporary_home(home):  # the access log of this look stays in the copy
        board = Dashboard(store, "sue", "supervisor")
        board.section.value = "Supervisor"
    shown = " ".join(str(p.object) for p in board.detail.objects[0].objects if isinstance(getattr(p, "object", None), str))
    assert "Back-testing on repayment outcomes" in shown and "Realized AUC (95 % interval)" in shown
    assert "Overrides and how they repaid" in shown and "Reviewer ann" in shown and "Realized ROC AUC" not in shown  # a picture
    assert len(seen.auc_over_time) == 1 and seen.auc_over_time.iloc[0]["realized_auc"] == pytest.approx(row["realized_auc"])
    # the realized AUC said beside development's, with a verdict a supervisor can act on
    assert f"realized AUC {row['realized_auc']:.3f}" in seen.auc_sentence and "in development among those the policy grants" in seen.auc_sentence
    assert any(v in seen.auc_sentence for v in ("as development promised", "within the tolerance", "no longer ranks as promised"))
    assert "Does the model still rank as in development?" in shown


def test_overrides_are_counted_per_reviewer_and_grade_with_their_default_rate():
    rows = pd.DataFrame([
        # (model's, final, decided by, reviewer, grade, TARGET)
        ("refused", "granted", "supervisor", "ann", "D", 1.0), ("refused", "granted", "supervisor", "ann", "D", 0.0),
        ("refer to an advisor", "granted", "advisor", "ann", "C", 0.0), ("granted", "refused", "supervisor", "bob", "B", None),
        ("refer to an advisor", "refused", "advisor", "bob", "C", None),
        ("granted", "granted", "model", None, "B", 0.0), ("granted", "granted", "model", None, "D", 1.0),
        ("granted", "granted", "model", None, "D", 0.0), ("granted", "granted", "model", None, "D", 0.0),
    ], columns=["model_decision", "final_decision", "decided_by", "reviewer", "grade", "TARGET"])
    table = backtest.overrides(rows).set_index(["segment", "value"])
    assert tuple(table.loc[("overall", "all"), ["decided_by_people", "overrides", "granted_against_the_model", "their_outcomes"]]) == (5, 3, 3, 3)
    assert table.loc[("overall", "all"), "their_default_rate"] == pytest.approx(1 / 3)
    assert table.loc[("overall", "all"), "model_granted_default_rate"] == pytest.approx(1 / 4)
    assert table.loc[("reviewer", "ann"), "override_rate"] == pytest.approx(2 / 3) and table.loc[("reviewer", "bob"), "overrides"] == 1
    assert table.loc[("grade", "D"), "their_default_rate"] == 0.5 and table.loc[("grade", "D"), "model_granted_default_rate"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("failing, judged, expected", [(1, 5000, True), (1, 50, False), (0, 5000, False)])
def test_the_performance_sensor_asks_for_a_retrain_when_the_back_test_fails_on_enough_outcomes(failing, judged, expected):
    from credit_dagster.core.keys import BACKTEST_GRADES, BACKTEST_VINTAGES
    from credit_dagster.definitions import defs

    sensor = defs.resolve_sensor_def("performance_retraining_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED  # off by default, like the drift one
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(BACKTEST_VINTAGES, metadata={"failing": failing, "outcomes_judged": judged}))
        instance.report_runless_asset_event(dg.AssetMaterialization(BACKTEST_GRADES, metadata={"failing": 0, "outcomes_judged": judged}))
        with dg.build_sensor_context(instance=instance, definitions=defs) as context:
            requests = sensor.evaluate_tick(context).run_requests
    assert bool(requests) is expected
    if expected:
        assert requests[0].job_name in (None, "train_model") and "backtest_vintages" in requests[0].tags["credit/reason"]


def test_the_bootstrap_auc_is_scikit_learns_auc_ties_included():
    rng = np.random.default_rng(1)
    y = (rng.random(3000) < 0.1).astype(int)
    score = np.round(rng.random(3000) + 0.3 * y, 2)  # many ties
    assert backtest._auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


@pytest.mark.real_sample
def test_real_labelled_applicants_scored_as_drops_back_tested_then_learned_from_out_of_time(real_scored, real_dir, tmp_path, capsys):
    """The real sample end to end: the labelled applicants the model never trained on
    (`extra_labelled/`) sent as nightly drops, two nights scored (two monthly vintages), their
    TARGET delivered as outcomes, the back-test run: realized AUC on real applicants, equal to an
    independent computation. Then a retrain learns from the older vintage's outcomes and is judged
    against the champion out of time, on the newer vintage, in its model card."""
    from credit_dagster import cli
    from credit_dagster.definitions import defs
    from credit_dagster.model.assets import outcome_labelled
    from credit_dagster.model.resources import ModelStore
    from credit_dagster_tests.conftest import score_night, temporary_home

    home = tmp_path / "home"
    shutil.copytree(real_scored[0], home, ignore=shutil.ignore_patterns("inbox"))
    nights = ["2026-09-30", "2026-10-01"]  # two nights of four (half of them), across a month end: two vintages
    with temporary_home(home):
        assert cli.main(["replay", "--labelled", "--days", "4", "--start", nights[0], "--data-dir", str(real_dir)]) == 0
        for night in nights:
            assert score_night(night).success
        assert cli.main(["backtest", "--labelled-outcomes", "--data-dir", str(real_dir)]) == 0
        printed = capsys.readouterr().out
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            scored = con.execute("select SK_ID_CURR, partition_date, probability_of_default, decision, model_version "
                                 "from scoring.scored_applications where partition_date in (?, ?)", nights).df()
            vintages = con.execute("select * from outcomes.backtest_vintages").df().set_index("vintage")
            learned, newest = outcome_labelled(con)
            base = con.execute("select count(*) from features.application_labels").fetchone()[0]
        registry = ModelStore().registry()
        champion = registry.alias("champion")
        retrain = defs.resolve_job_def("train_model").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            run_config={"resources": {"source": {"config": {"data_dir": str(real_dir)}}},
                        "ops": {"model__credit_model": {"config": {"stability_seeds": 0, "n_folds": 3}}}})
        assert retrain.success
        candidate = registry.load(registry.versions()[-1])
        judged = [e for e in registry.history() if e["event"] == "out-of-time test" and e["version"] == candidate.version]
        card = (registry.root / candidate.version / "model_card.md").read_text()
    labels = pd.read_csv(real_dir / "extra_labelled" / "application_train.csv.gz", usecols=["SK_ID_CURR", "TARGET"])
    assert len(scored) == labels["SK_ID_CURR"].mod(4).isin([0, 1]).sum() and "the labelled applicants' outcomes" in printed  # each once
    granted = scored[scored["decision"] == "granted"].merge(labels, on="SK_ID_CURR")
    assert set(vintages.index) >= {"2026-09", "2026-10"}
    for vintage, night in zip(("2026-09", "2026-10"), nights, strict=True):
        row, ours = vintages.loc[vintage], granted[granted["partition_date"].astype(str).str[:10] == night]
        assert row["decisions"] == (scored["partition_date"].astype(str).str[:10] == night).sum() and row["with_outcome"] == len(ours)
        assert row["defaults"] == ours["TARGET"].sum() and row["realized_auc"] == pytest.approx(
            roc_auc_score(ours["TARGET"], ours["probability_of_default"]), abs=1e-12)
    row = vintages.loc["2026-09"]
    realized = row["realized_auc"]
    everyone = scored.merge(labels, on="SK_ID_CURR")
    print(f"real labelled applicants: {len(scored):,} scored over two nights, {len(granted):,} granted, {int(granted['TARGET'].sum())} "
          f"defaults; vintage 2026-09 realized AUC {realized:.3f} ({row['realized_auc_low']:.3f}-{row['realized_auc_high']:.3f}), "
          f"development {row['development_auc']:.3f}, among those it grants {row['development_granted_auc']:.3f} "
          f"({row['development_granted_auc_low']:.3f}-{row['development_granted_auc_high']:.3f}); over all scored "
          f"{roc_auc_score(everyone['TARGET'], everyone['probability_of_default']):.3f}")
    # the model ranks real applicants it never saw; among the granted alone (the riskiest refused) the AUC is lower,
    # and it is judged against development's AUC among the applicants the policy grants
    assert roc_auc_score(everyone["TARGET"], everyone["probability_of_default"]) > 0.65
    assert row["development_granted_auc"] < row["development_auc"] and row["verdict"] in ("ok", "warn")
    # outcomes become labels: the older vintage's granted applicants join the training set, the newer one judges
    assert set(learned["vintage"]) == {"2026-09"} and set(newest["vintage"]) == {"2026-10"}
    assert len(learned) == vintages.loc["2026-09", "with_outcome"] and len(newest) == vintages.loc["2026-10", "with_outcome"]
    assert candidate.metadata.training_rows == base + len(learned)
    print(f"retrain on real outcomes: {judged[0]['reason'] if judged else 'no out-of-time test'}")
    assert len(judged) == 1 and f"{candidate.version} minus {champion}" in judged[0]["reason"]
    assert f"out of time, on vintage 2026-10 ({len(newest):,} applicants with a final outcome" in card
    # later: the retrain made champion scores a newer night; every real decision of the oldest night is made again exactly
    # by the version that made it (credit-dagster decision replay)
    with temporary_home(home):
        assert cli.main(["promote", candidate.version, "--reason", "test: the retrain becomes champion"]) == 0
        assert score_night("2026-10-02").success
        capsys.readouterr()
        assert cli.main(["decision", "replay", "--at", nights[0]]) == 0
    first = (scored["partition_date"].astype(str).str[:10] == nights[0]).sum()
    assert f"night {nights[0]}: {first:,} of {first:,} decisions replayed exactly" in capsys.readouterr().out


@pytest.mark.slow
def test_a_retrain_learns_from_final_outcomes_and_is_judged_out_of_time(tmp_path, scored_home, synthetic_dir, monkeypatch):
    """Two vintages with final outcomes: a retrain adds the older one's applicants to its
    training set, with the features their night computed; the newest vintage, trained on by
    neither model, judges the challenger against the champion (paired bootstrap), in the card."""
    from credit_dagster.definitions import defs
    from credit_dagster.model.assets import load_training_frames, outcome_labelled
    from credit_dagster.model.resources import ModelStore
    from credit_dagster.outcomes.assets import decisions_sql, inbox
    from credit_dagster.synth import outcomes as synthetic
    from credit_dagster_tests.conftest import SCORED_DAYS, score_night, temporary_home

    monkeypatch.setenv("CREDIT_BACKTEST_MIN_OUTCOMES", "30")  # a small SYNTHETIC night grants a hundred or so
    monkeypatch.delenv("CREDIT_DATA_DIR", raising=False)  # the retrain reads the folder the home was built from
    home = tmp_path / "home"
    shutil.copytree(scored_home, home)
    (home / "data_dir.txt").write_text(str(synthetic_dir))
    december = "2026-12-01"
    (home / "inbox" / SCORED_DAYS[1]).rename(home / "inbox" / december)  # the second night a month later: a second vintage
    with temporary_home(home):
        assert score_night(december).success
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            decided = con.execute(decisions_sql(con)).df()
        granted = decided[decided["final_decision"] == "granted"]
        (inbox() / "m12").mkdir(parents=True)
        synthetic.outcomes(synthetic_dir, granted, months=12).to_csv(inbox() / "m12" / reports.FILE, index=False)
        assert defs.resolve_job_def("backtest").execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            learned, newest = outcome_labelled(con)
            features, labels, _ = load_training_frames(con)
            november = con.execute(f"select * from drop_{SCORED_DAYS[0].replace('-', '')}_features.application_features").df()
            base = con.execute("select count(*) from features.application_labels").fetchone()[0]
        assert set(learned["vintage"]) == {"2026-11"} and set(newest["vintage"]) == {"2026-12"}
        assert len(learned) == (granted["partition_date"] == SCORED_DAYS[0]).sum() and len(labels) == base + len(learned)
        # the features as the night computed them, not recomputed
        night = november.set_index("SK_ID_CURR").loc[learned["SK_ID_CURR"]]
        row = features.set_index("SK_ID_CURR").loc[learned["SK_ID_CURR"], night.columns]
        pd.testing.assert_frame_equal(row, night, check_dtype=False)
        retrain = defs.resolve_job_def("train_model").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            run_config={"ops": {"model__credit_model": {"config": {"stability_seeds": 0, "n_folds": 3}}}})
        assert retrain.success
        registry = ModelStore().registry()
        candidate = registry.load(registry.versions()[-1])
        assert candidate.metadata.training_rows == base + len(learned)
        judged = [e for e in registry.history() if e["event"] == "out-of-time test"]
        assert len(judged) == 1 and "on vintage 2026-12" in judged[0]["reason"] and f"{len(newest):,} applicants" in judged[0]["reason"]
        card = (registry.root / candidate.version / "model_card.md").read_text()
        assert "out of time, on vintage 2026-12" in card
