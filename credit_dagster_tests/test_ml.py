"""Model-building functions on data whose answers are known by hand."""

import dataclasses

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from credit_dagster.core import settings as credit_settings
from credit_dagster.model import calibration, fairness, metrics, model_card, promotion, training
from credit_dagster.model.ensemble import Ensemble
from credit_dagster.model.metadata import ModelMetadata
from credit_dagster.model.registry import Registry
from credit_dagster.model.scorecard import Scorecard


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
    # equal opportunity: among those who repaid, F approved 3 of 3, M 1 of 2
    assert table.loc["F", "approval_rate_repaid"] == 1.0 and table.loc["M", "approval_rate_repaid"] == 0.5
    assert table.loc["M", "equal_opportunity"] == 0.5
    assert table.loc["M", "predicted_default_rate"] == pytest.approx(0.475) and table.loc["M", "default_rate"] == 0.5


def test_the_dagster_config_takes_the_training_defaults():
    from dataclasses import asdict

    from credit_dagster.model.assets import TrainingConfig

    params, config = asdict(training.TrainingParams()), TrainingConfig().model_dump()
    shared = set(params) & set(config)
    assert {"n_folds", "max_rounds", "early_stopping_rounds", "stability_seeds", "learning_rate"} <= shared
    assert {k: config[k] for k in shared} == {k: params[k] for k in shared}
    # the costs and the refer band are settings, read when a run starts; the launch form may override them
    assert config["cost_false_negative"] is None and config["refer_margin"] is None
    defaults = credit_settings.Settings()
    assert (defaults.cost_false_negative, defaults.cost_false_positive) == tuple(params["costs"].values())


def test_the_costs_the_refer_band_and_the_bad_row_limit_are_settings(monkeypatch):
    from credit_dagster.ingest.assets import IngestConfig
    from credit_dagster.model.assets import _or_setting

    monkeypatch.setenv("CREDIT_COST_FALSE_NEGATIVE", "5")
    monkeypatch.setenv("CREDIT_REFER_MARGIN", "0.05")
    monkeypatch.setenv("CREDIT_MAX_REJECT_SHARE", "0.2")
    assert (_or_setting(None, "cost_false_negative"), _or_setting(None, "refer_margin"), _or_setting(0.01, "refer_margin")) == (5, 0.05, 0.01)
    assert IngestConfig().reject_share() == 0.2 and IngestConfig(max_reject_share=0.0).reject_share() == 0.0
    monkeypatch.setenv("CREDIT_REFER_MARGIN", "0.7")  # wider than the probability scale: refused, by name
    with pytest.raises(ValueError, match="refer_margin"):
        credit_settings.current()


def test_jeffreys_interval_by_hand():
    from scipy.stats import beta

    low, high = fairness.jeffreys_interval(10, 100)
    assert low == pytest.approx(beta.ppf(0.025, 10.5, 90.5)) and high == pytest.approx(beta.ppf(0.975, 10.5, 90.5))
    assert fairness.jeffreys_interval(0, 50)[0] == 0.0 and fairness.jeffreys_interval(50, 50)[1] == 1.0


def _group(name, n, rate, predicted, repaid_approved, approved=0.8):
    low, high = fairness.jeffreys_interval(round(rate * n), n)
    return {"group": name, "applicants": n, "default_rate": rate, "default_rate_low": low, "default_rate_high": high,
            "predicted_default_rate": predicted, "approval_rate": approved, "approval_rate_repaid": repaid_approved,
            "disparate_impact": 1.0, "four_fifths_flag": False}


def test_the_fairness_gate_acts_on_unequal_treatment_not_on_unequal_risk():
    def audit(*rows):
        table = pd.DataFrame(rows)
        table["equal_opportunity"] = table["approval_rate_repaid"] / table["approval_rate_repaid"].max()
        return {"age_band": table.to_dict("records")}

    # the young default more and are predicted to: fewer approved, but repayers treated alike: no flag
    fair = audit(_group("<25", 2000, 0.15, 0.15, 0.90, approved=0.5), _group("35-44", 4000, 0.05, 0.05, 0.95))
    assert fairness.flags(fair) == []
    # repayers refused more often: equal opportunity flags
    unequal = audit(_group("<25", 2000, 0.15, 0.15, 0.60), _group("35-44", 4000, 0.05, 0.05, 0.95))
    assert any("equal opportunity" in f and "<25" in f for f in fairness.flags(unequal))
    # a group's risk overstated beyond its interval and the tolerance: calibration flags
    overstated = audit(_group("<25", 2000, 0.10, 0.15, 0.90), _group("35-44", 4000, 0.05, 0.05, 0.95))
    assert any("risk overstated" in f for f in fairness.flags(overstated))
    assert fairness.flags(overstated, fairness.Tolerances(max_calibration_gap=0.06)) == []
    # a group too small to judge says nothing
    small = audit(_group("<25", 30, 0.10, 0.30, 0.20), _group("35-44", 4000, 0.05, 0.05, 0.95))
    assert fairness.flags(small) == []


def test_promotion_rules():
    def diff(d, low, high):
        return {"difference": d, "low": low, "high": high}

    rules = {"tolerance": 0.005, "force": False, "checks_passed": True}
    assert promotion.decide(None, same_data=False, **rules)[0]
    # same data: only a gain beyond noise replaces the champion
    assert promotion.decide(diff(0.02, 0.005, 0.035), same_data=True, **rules)[0]
    assert not promotion.decide(diff(0.004, -0.006, 0.014), same_data=True, **rules)[0]
    # new data: the retrain goes in unless it is credibly worse by more than the tolerance
    assert promotion.decide(diff(-0.004, -0.012, 0.004), same_data=False, **rules)[0]
    assert not promotion.decide(diff(-0.02, -0.03, -0.01), same_data=False, **rules)[0]
    assert not promotion.decide(diff(0.05, 0.04, 0.06), same_data=False, **{**rules, "checks_passed": False})[0]
    blocked, reason = promotion.decide(None, same_data=False, **rules, fairness_flags=["age_band = <25 (disparate impact 0.35)"])
    assert not blocked and "credit-dagster promote" in reason and "<25" in reason
    demo, reason = promotion.decide(None, same_data=False, **rules, fairness_flags=["age_band = <25"], synthetic=True)
    assert demo and "SYNTHETIC" in reason and "<25" in reason
    assert promotion.decide(diff(-0.5, -0.6, -0.4), same_data=True, **{**rules, "force": True, "checks_passed": False})[0]


def test_bootstrap_interval_and_paired_difference():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    good = y + rng.normal(0, 1.0, 4000)
    worse = y + rng.normal(0, 3.0, 4000)
    low, high = metrics.bootstrap_auc_interval(y, good)
    auc = metrics.summary(y, 1 / (1 + np.exp(-good)), metrics.Costs())["roc_auc"]
    assert low < auc < high and high - low < 0.05
    paired = metrics.paired_auc_difference(y, good, worse)
    assert paired["low"] > 0 and paired["low"] < paired["difference"] < paired["high"]
    same = metrics.paired_auc_difference(y, good, good + rng.normal(0, 0.01, 4000))
    assert same["low"] < 0 < same["high"]


def test_cross_fitted_calibration_never_sees_its_fold():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-(raw - 2)))).astype(int)
    fold_of = np.arange(3000) % 3
    # fold 0's labels flipped: a calibrator that saw them would predict them; one fitted on the others cannot
    y[fold_of == 0] = 1 - y[fold_of == 0]
    pred, fitted = calibration.cross_fit(raw, y, fold_of)
    expected = calibration.fit("sigmoid", raw[fold_of != 0], y[fold_of != 0])(raw[fold_of == 0])
    np.testing.assert_allclose(pred[fold_of == 0], expected)
    assert len(fitted) == 3 and pred[fold_of == 0].mean() < 0.3 < y[fold_of == 0].mean()


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
    return training.make_dataset(frame, labels, excluded=(), app_columns=["APP_ONLY", "CAT"], directions={"X1": 1, "X2": -1})


def test_cross_validation_ranks_candidates(small_data):
    params = training.TrainingParams(n_folds=3, learning_rate=0.1, min_child_samples=20, max_rounds=300, early_stopping_rounds=30)
    cv = training.cross_validate(small_data, params)
    table = cv.comparison.set_index("candidate")
    auc = table["roc_auc_pooled"]
    assert table.loc["dummy_prior", "roc_auc_fold_mean"] == 0.5  # pooled, the priors of the folds differ a little
    assert auc["lightgbm_all_tables"] > auc["lightgbm_application_only"] + 0.1  # X1 is not an application column here
    assert auc["logistic_regression"] > 0.75 and min(cv.rounds["lightgbm_all_tables"]) >= 1
    assert set(cv.oof) == set(table.index) and len(cv.boosters["lightgbm_all_tables"]) == 3
    assert (table["roc_auc_low"] < table["roc_auc_pooled"]).all() and (table["roc_auc_pooled"] < table["roc_auc_high"]).all()
    assert all("X1" in s.kept for s in cv.selections["lightgbm_all_tables"])  # every fold keeps the signal


def test_seed_spread_cross_validates_the_deployed_recipe_with_other_seeds(small_data):
    params = training.TrainingParams(n_folds=3, learning_rate=0.1, min_child_samples=20, max_rounds=300, early_stopping_rounds=30,
                                     stability_seeds=2)
    cv = training.cross_validate(small_data, params, only=(training.DEPLOYED,))
    assert list(cv.comparison["candidate"]) == [training.DEPLOYED]
    first = roc_auc_score(small_data.y, cv.oof[training.DEPLOYED])
    spread = training.seed_spread(small_data, params, first)
    # the build's own seed first, then two others: other folds and boosting seeds, other AUCs
    assert spread["seeds"] == [42, 43, 44] and spread["roc_auc_pooled"][0] == first
    assert len(set(spread["roc_auc_pooled"])) == 3 and max(spread["roc_auc_pooled"]) - min(spread["roc_auc_pooled"]) < 0.05
    assert spread["min"] <= first <= spread["max"] and 0 < spread["std"] < 0.05


def test_the_model_card_says_the_seed_spread_or_that_it_was_not_measured(build):
    registry = Registry(build[0] / "models")
    meta = registry.load(registry.versions()[-1]).metadata
    charts = {"cost_curve": b"png", "reliability": b"png"}
    spread = {"seeds": [42, 43, 44], "roc_auc_pooled": [0.7253, 0.715, 0.7158], "min": 0.715, "max": 0.7253, "std": 0.0047}
    card = model_card.render_markdown(dataclasses.replace(meta, seed_spread=spread), champion={"promoted": True, "reason": "r"}, charts=charts,
                                      synthetic=True)
    assert "pooled ROC AUC of 0.7150-0.7253 (std 0.0047; 42: 0.7253, 43: 0.7150, 44: 0.7158)" in card
    assert "> **SYNTHETIC DATA.**" in card and "what moves the score" not in card  # a card without the shap pictures
    unmeasured = model_card.render_markdown(dataclasses.replace(meta, seed_spread=None), champion={"promoted": False, "reason": "r"},
                                            charts=charts, synthetic=False)
    assert "not measured for this model" in unmeasured and "SYNTHETIC" not in unmeasured


def test_the_model_card_shows_what_people_typed_and_data_named_as_text(build):
    """A sign-off's reason (typed at the command line), an out-of-time verdict and a group's name
    (read from the data) reach the card: as text, never as markup or a Markdown link."""
    from credit_dagster_tests.markup import ATTACK, SEEN_AS_TEXT, injected

    registry = Registry(build[0] / "models")
    meta = registry.load(registry.versions()[-1]).metadata
    attribute, rows = next(iter(meta.fairness.items()))
    fairness_rows = {attribute: [{**rows[0], "group": ATTACK}, *rows[1:]]}
    card = model_card.render_markdown(dataclasses.replace(meta, fairness=fairness_rows), synthetic=True,
                                      champion={"promoted": True, "reason": ATTACK, "out_of_time": ATTACK},
                                      charts={"cost_curve": b"png", "reliability": b"png"})
    page = model_card.render_html(card, f"Model card {ATTACK}")
    assert injected(page) == [] and page.count(SEEN_AS_TEXT) >= 4  # the reason, the verdict, the table's group, the title
    assert "javascript:alert(4)" in page and 'href="javascript' not in page


def test_feature_selection_drops_empty_constant_duplicate_and_noise():
    rng = np.random.default_rng(5)
    n = 4000
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2 + 1.5 * signal)))).astype(int)
    X = pd.DataFrame({
        "SIGNAL": signal, "SIGNAL_IN_YEARS": signal * 365.25 + 3,  # same order as SIGNAL
        "EMPTY": np.where(rng.random(n) < 0.002, 1.0, np.nan), "CONSTANT": np.where(rng.random(n) < 0.999, 1.0, 2.0),
        **{f"NOISE_{i}": rng.normal(size=n) for i in range(10)},
    })
    selection = training.select_features(X, y, training.TrainingParams())
    assert selection.kept[0] == "SIGNAL"
    noise_dropped = [f for f, why in selection.dropped.items() if "shuffled copies" in why]
    assert len(noise_dropped) >= 4 and all(f.startswith("NOISE") for f in noise_dropped)
    assert selection.dropped["SIGNAL_IN_YEARS"].startswith("near-duplicate of SIGNAL")
    assert selection.dropped["EMPTY"].startswith("near-empty") and selection.dropped["CONSTANT"].startswith("near-constant")


def test_monotone_constraints_hold_along_each_constrained_feature(small_data):
    params = training.TrainingParams(learning_rate=0.1, min_child_samples=20)
    boosters, _ = training.fit_lightgbm(small_data.X, small_data.y, params, rounds=80, directions=small_data.directions)
    model = Ensemble(boosters)
    grid = np.linspace(-3, 3, 25)
    rows = small_data.X.head(50)
    for feature, sign in small_data.directions.items():
        scores = np.array([model.raw_score(rows.assign(**{feature: value})) for value in grid])  # grid x rows
        steps = np.diff(scores, axis=0) * sign
        assert (steps >= -1e-12).all(), f"{feature} is not monotone ({sign:+d})"
    assert small_data.directions == {"X1": 1, "X2": -1}


def test_scoring_uses_the_configured_threads_not_every_core(small_data, monkeypatch):
    # two Celery workers on one machine each get CREDIT_THREADS of its cores (credit-dagster worker --threads)
    from concurrent.futures import ThreadPoolExecutor

    from credit_dagster.model import treeshap

    pools = []

    class Recorded(ThreadPoolExecutor):
        def __init__(self, workers: int):
            pools.append(workers)
            super().__init__(workers)

    monkeypatch.setattr(treeshap, "ThreadPoolExecutor", Recorded)
    small, _ = training.fit_lightgbm(small_data.X, small_data.y, training.TrainingParams(), rounds=5)
    rows = small_data.X.head(treeshap.BLOCK + 1)  # two blocks of rows
    for threads in ("1", "3"):
        monkeypatch.setenv("CREDIT_THREADS", threads)
        model = Ensemble(small)
        model.raw_score(rows)
        model.contributions(rows)
    assert pools == [3, 3]  # one thread: the blocks in turn, no pool
    # trees too big for the tables: LightGBM's own, told how many threads
    big, _ = training.fit_lightgbm(small_data.X, small_data.y, training.TrainingParams(num_leaves=31, min_child_samples=5), rounds=5)
    threads, predict = [], lgb.Booster.predict
    monkeypatch.setattr(lgb.Booster, "predict", lambda self, data, **kw: threads.append(kw.get("num_threads")) or predict(self, data, **kw))
    monkeypatch.setenv("CREDIT_THREADS", "1")
    model = Ensemble(big)
    assert model.forest() is None
    model.raw_score(rows)
    model.contributions(rows)
    assert threads == [1] * 2 * len(big)


def test_contributions_add_up_to_the_raw_score(tmp_path, small_data):
    params = training.TrainingParams(learning_rate=0.1, min_child_samples=20)
    boosters = [training.fit_lightgbm(small_data.X[cols], small_data.y, params, rounds=50)[0][0]
                for cols in (["X1", "CAT"], ["X1", "X2", "APP_ONLY"])]  # fold models with different selected features
    registry = Registry(tmp_path)
    version = registry.register(Ensemble(boosters), ModelMetadata(
        features=small_data.features, categories=small_data.categories,
        calibration={"method": "sigmoid", "params": {"a": 1.0, "b": 0.0}}, threshold=0.5))
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
    first = registry.register(Ensemble([booster]), ModelMetadata(features=["a", "b"]))
    second = registry.register(Ensemble([booster, booster]), ModelMetadata(features=["a", "b"]))
    assert registry.versions() == [first, second] and registry.alias("champion") is None
    registry.promote(first, "first model")
    assert registry.load("champion").version == first and len(registry.load(second).ensemble.boosters) == 2
    assert [e["event"] for e in registry.history()] == ["registered", "registered", "promoted to champion"]
    with pytest.raises(LookupError, match="no model 'v9999'"):
        registry.load("v9999")


def test_planted_leak_is_found(small_data):
    leaky = small_data.X.assign(LEAK=small_data.y + np.random.default_rng(0).normal(0, 0.01, len(small_data.y)))
    data = training.Dataset(small_data.ids, leaky, small_data.y, small_data.categories, small_data.app_only_features)
    assert [name for name, _ in training.single_feature_leaks(data)] == ["LEAK"]


def test_a_random_split_of_the_training_population_shows_no_score_drift(tmp_path):
    """The nightly score-drift reference (`pd_deployed`, out-of-fold) is on the deployed model's
    scale: applicants drawn from the same population, scored by the deployed fold ensemble, show
    a score PSI within its sampling noise, while a shifted population does not."""
    from credit_dagster.model import build
    from credit_dagster.monitoring import drift

    rng = np.random.default_rng(11)
    n = 9000
    frame = pd.DataFrame({
        "SK_ID_CURR": np.arange(n), "X1": rng.normal(size=n), "X2": rng.normal(size=n), "X3": rng.normal(size=n),
        "CAT": rng.choice(["a", "b", "c"], n).astype(object), "APP_ONLY": rng.normal(size=n),
        "CODE_GENDER": rng.choice(["F", "M"], n).astype(object), "DAYS_BIRTH": -rng.integers(20 * 365, 65 * 365, n),
    })
    logit = -2.6 + 0.9 * frame["X1"] - 0.5 * frame["X2"] + 0.4 * frame["X3"] * (frame["CAT"] == "a")
    labels = pd.DataFrame({"SK_ID_CURR": frame["SK_ID_CURR"], "TARGET": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)})
    trained, new = frame.iloc[:6000], frame.iloc[6000:]
    result = build.build_model(trained, labels, excluded=("CODE_GENDER", "DAYS_BIRTH"), app_columns=["APP_ONLY", "CAT"],
                               params=training.TrainingParams(n_folds=3, learning_rate=0.1, stability_seeds=0), refer_margin=0.02,
                               scorecard=Scorecard())
    registry = Registry(tmp_path)
    model = registry.load(registry.register(result.model, result.metadata, result.oof))
    reference = result.oof["pd_deployed"]
    same = drift.psi_row("(score)", reference, pd.Series(model.probability(new)))
    shifted = drift.psi_row("(score)", reference, pd.Series(model.probability(new.assign(X1=new["X1"] + 0.8))))
    assert same["psi"] < 0.05 and same["psi_excess"] < drift.INVESTIGATE / 2, same
    assert shifted["psi_excess"] >= drift.INVESTIGATE, shifted


def test_shap_and_lightgbm_give_the_same_treeshap_values_and_the_card_shows_them(build):
    """The model card's global explanation (shap) and the nightly reasons (the tables of treeshap.py)
    are the same TreeSHAP values of the deployed fold ensemble."""
    import duckdb

    from credit_dagster.model import global_explanation
    from credit_dagster_tests.conftest import temporary_home

    home, _ = build
    with temporary_home(home):
        registry = Registry(home / "models")
        model = registry.load(registry.versions()[-1])
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        features = con.execute("select * from features.application_features using sample reservoir(300 rows) repeatable (1)").df()
    matrix = model.matrix(features)
    explanation = global_explanation.shap_values(model.ensemble, matrix)
    nightly = model.ensemble.contributions(matrix)
    np.testing.assert_allclose(explanation.values, nightly[:, :-1], atol=1e-6)
    np.testing.assert_allclose(explanation.base_values, nightly[:, -1], atol=1e-6)
    folder = registry.root / model.version
    assert (folder / "shap_beeswarm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "what moves the score, each dot an applicant" in (folder / "model_card.md").read_text()


def test_model_metadata_is_typed_and_an_older_registry_still_reads(build):
    import json

    # a registry written before a field existed, with a key since retired
    older = {"candidate": "lightgbm_all_tables", "features": ["X1"], "threshold": 0.1, "refer_band": [0.08, 0.12], "retired": 1}
    meta = ModelMetadata.from_json(older)
    assert meta.threshold == 0.1 and meta.never_inputs == [] and meta.seed_spread is None and meta.feature_medians == {}
    assert ModelMetadata.from_json(meta.to_json()) == meta
    # the file a build writes is the same JSON object as before, read back field by field
    registry = Registry(build[0] / "models")
    version = registry.versions()[-1]
    written = json.loads((registry.root / version / "metadata.json").read_text())
    assert set(written) - {"format_stamp"} == set(ModelMetadata().to_json()) and written["version"] == version
    assert written["format_stamp"]["store"] == "registry"  # the format beside the fields (core/formats.py)
    loaded = registry.load(version).metadata
    assert loaded.cv_metrics == written["cv_metrics"] and loaded.features == written["features"]


def test_the_technical_documentation_reads_every_figure_from_the_registry(build):
    """The Annex IV document of each registered version: every part there, each figure the
    registry's, none typed by hand (other figures give another document), as HTML and PDF."""
    import io

    import pypdf

    from credit_dagster.model import technical_doc
    from credit_dagster.model.documents import plain

    registry = Registry(build[0] / "models")
    version = registry.versions()[-1]
    folder = registry.root / version
    text, meta = (folder / "technical_documentation.md").read_text(), registry.metadata(version)
    assert [f"Annex IV point {n})" in text for n in range(1, 10)] == [True] * 9 and "EBA/GL/2020/06 4.3.3" in text
    m = meta.cv_metrics
    figures = [f"{m['roc_auc']:.4f} (95 % interval {m['roc_auc_low']:.4f} to {m['roc_auc_high']:.4f})", f"{meta.training_rows:,} labelled",
               f"default rate {meta.default_rate:.2%}", f"granted* below {meta.threshold:.2%}", meta.data_fingerprint,
               f"between {meta.refer_band[0]:.2%} and {meta.refer_band[1]:.2%}", ", ".join(f"{a:.4f}" for a in meta.fold_auc),
               f"rounds per fold {', '.join(map(str, meta.fold_rounds))}", f"{len(meta.features_used)} used",
               ", ".join(plain(f) for f in meta.excluded_features)]
    assert [f for f in figures if f not in text] == []
    assert "technical_documentation.html" in (folder / "model_card.md").read_text()  # the card links to it
    document = pypdf.PdfReader(io.BytesIO((folder / "technical_documentation.pdf").read_bytes()))
    pdf_text = " ".join(" ".join(p.extract_text().split()) for p in document.pages)
    assert "Annex IV point 9" in pdf_text and f"{m['roc_auc']:.4f}" in pdf_text
    # no figure typed by hand: a version with other figures is documented with them, and its changes said
    other = dataclasses.replace(meta, version="v9", cv_metrics={**m, "roc_auc": 0.61234}, training_rows=123_456, threshold=0.0612,
                                features_used=[*meta.features_used[1:], "NEW_FEATURE"])
    rendered = technical_doc.render(other, history=[], previous=meta, backtest=None)
    assert "0.6123" in rendered and "123,456 labelled" in rendered and "granted* below 6.12%" in rendered
    assert f"ROC AUC out of fold {m['roc_auc']:.4f} → 0.6123" in rendered and f"threshold {meta.threshold:.2%} → 6.12%" in rendered
    assert "that it did not use: NEW\\_FEATURE" in rendered and f"no longer used: {plain(meta.features_used[0])}" in rendered
