"""Model-building functions on data whose answers are known by hand."""

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from credit_dagster.ml import calibration, fairness, metrics, promotion, training
from credit_dagster.ml.registry import Registry
from credit_dagster.ml.scorecard import Scorecard


def test_perfect_separation_gives_auc_and_ks_of_one():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    s = metrics.summary(y, p, metrics.Costs())
    assert s["roc_auc"] == 1.0 and s["ks"] == 1.0 and s["pr_auc"] == 1.0


def test_cost_curve_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.9])
    costs = metrics.Costs(false_negative=10, false_positive=1)
    thresholds, cost = metrics.cost_curve(y, p, costs, thresholds=np.array([0.0, 0.3, 0.38, 0.5, 1.0]))
    # t=0: refuse all -> 2 good refused = 2/4; t=0.3: refuse 0.35, 0.4, 0.9 -> 1 good refused;
    # t=0.38: grant 0.1 and 0.35 -> one defaulter granted (10) + 1 good refused (0.4); t=0.5: 10 + 0; t=1: 20
    np.testing.assert_allclose(cost, np.array([2, 1, 11, 10, 20]) / 4)
    threshold, best = metrics.best_threshold(y, p, costs)
    assert best == 0.25 and 0.1 < threshold <= 0.35


def test_calibration_roundtrip_and_choice():
    rng = np.random.default_rng(0)
    logit = rng.normal(size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(2 * logit - 1)))).astype(int)
    calibrator, briers = calibration.choose(logit, y)
    assert set(briers) == {"isotonic", "sigmoid"} and calibrator.method == min(briers, key=briers.get)
    again = calibration.Calibrator.from_json(calibrator.to_json())
    np.testing.assert_allclose(again(logit), calibrator(logit))
    sigmoid = calibration.fit("sigmoid", logit, y)
    assert sigmoid.params["a"] == pytest.approx(2, abs=0.2) and sigmoid.params["b"] == pytest.approx(-1, abs=0.2)
    assert metrics.expected_calibration_error(y, sigmoid(logit)) < 0.02


def test_scorecard_anchors_and_grades():
    card = Scorecard()
    pd_at_50_to_1, pd_at_100_to_1 = 1 / 51, 1 / 101
    assert card.points(np.array([pd_at_50_to_1, pd_at_100_to_1])).tolist() == [600, 620]
    assert card.grades(np.array([0.01, 0.03, 0.07, 0.15, 0.5])).tolist() == list("ABCDE")


def test_fairness_audit_by_hand():
    groups = pd.Series(["F", "F", "F", "F", "M", "M", "M", "M"])
    y = np.array([0, 0, 1, 0, 0, 1, 1, 0])
    pd_ = np.array([0.1, 0.1, 0.6, 0.1, 0.6, 0.6, 0.6, 0.1])
    table = fairness.audit(groups, y, pd_, threshold=0.5, costs=metrics.Costs()).set_index("group")
    assert table.loc["F", "approval_rate"] == 0.75 and table.loc["M", "approval_rate"] == 0.25
    assert table.loc["M", "disparate_impact"] == pytest.approx(1 / 3) and table.loc["M", "four_fifths_flag"]
    assert table.loc["M", "false_positive_rate"] == 0.5 and table.loc["F", "true_positive_rate"] == 1.0
    assert fairness.age_band(pd.Series([-20 * 365.25, -40 * 365.25])).tolist() == ["<25", "35-44"]


def test_promotion_rules():
    assert promotion.decide(0.70, None, tolerance=0.005, force=False, checks_passed=True)[0]
    assert promotion.decide(0.698, 0.70, tolerance=0.005, force=False, checks_passed=True)[0]
    assert not promotion.decide(0.69, 0.70, tolerance=0.005, force=False, checks_passed=True)[0]
    assert not promotion.decide(0.80, 0.70, tolerance=0.005, force=False, checks_passed=False)[0]
    assert promotion.decide(0.50, 0.70, tolerance=0.005, force=True, checks_passed=False)[0]


@pytest.fixture
def small_data():
    rng = np.random.default_rng(3)
    n = 1500
    frame = pd.DataFrame({
        "SK_ID_CURR": np.arange(n), "X1": rng.normal(size=n), "X2": rng.normal(size=n),
        "CAT": rng.choice(["a", "b", "c"], n).astype(object), "APP_ONLY": rng.normal(size=n),
    })
    logit = -2.5 + 1.5 * frame["X1"] + (frame["CAT"] == "a")
    labels = pd.DataFrame({"SK_ID_CURR": frame["SK_ID_CURR"], "TARGET": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)})
    return training.make_dataset(frame, labels, excluded=(), app_columns=["APP_ONLY", "CAT"])


def test_cross_validation_ranks_candidates(small_data):
    params = training.TrainingParams(n_folds=3, learning_rate=0.1, min_child_samples=20, max_rounds=300, early_stopping_rounds=30)
    table, oof, rounds = training.cross_validate(small_data, params)
    auc = table.set_index("candidate")["roc_auc"]
    assert auc["dummy_prior"] == 0.5
    assert auc["lightgbm_all_tables"] > auc["lightgbm_application_only"] + 0.1  # X1 is not an application column here
    assert auc["logistic_regression"] > 0.75 and rounds["lightgbm_all_tables"] >= 1
    assert set(oof) == set(table["candidate"])


def test_contributions_add_up_to_the_raw_score(tmp_path, small_data):
    params = training.TrainingParams(learning_rate=0.1, min_child_samples=20)
    booster, _ = training.fit_lightgbm(small_data.X, small_data.y, params, rounds=50)
    registry = Registry(tmp_path)
    version = registry.register(booster, {"features": small_data.features, "categories": small_data.categories,
                                          "calibration": {"method": "sigmoid", "params": {"a": 1.0, "b": 0.0}}, "threshold": 0.5})
    model = registry.load(version)
    frame = small_data.X.assign(CAT=small_data.X["CAT"].astype(object)).head(200)
    contributions = model.contributions(frame)
    np.testing.assert_allclose(contributions.sum(axis=1), model.raw_score(frame), atol=1e-6)
    # an unknown category is treated as missing, not as an error
    assert np.isfinite(model.raw_score(frame.assign(CAT="never seen"))).all()


def test_registry_versions_and_champion(tmp_path):
    registry = Registry(tmp_path)
    booster = lgb.train({"objective": "binary", "verbosity": -1}, lgb.Dataset(np.random.default_rng(0).normal(size=(100, 2)),
                                                                              np.arange(100) % 2), num_boost_round=2)
    first = registry.register(booster, {"features": ["a", "b"]})
    second = registry.register(booster, {"features": ["a", "b"]})
    assert registry.versions() == [first, second] and registry.alias("champion") is None
    registry.promote(first, "first model")
    assert registry.load("champion").version == first
    assert [e["event"] for e in registry.history()] == ["registered", "registered", "promoted to champion"]
    with pytest.raises(LookupError, match="no model 'v9999'"):
        registry.load("v9999")


def test_planted_leak_is_found(small_data):
    leaky = small_data.X.assign(LEAK=small_data.y + np.random.default_rng(0).normal(0, 0.01, len(small_data.y)))
    data = training.Dataset(small_data.ids, leaky, small_data.y, small_data.categories, small_data.app_only_features)
    assert [name for name, _ in training.single_feature_leaks(data)] == ["LEAK"]
