"""Candidate models compared on the same stratified folds, then the final LightGBM fit.

Everything fitted from data (imputation, scaling, encoding, early stopping) is fitted inside
each training fold, so the out-of-fold predictions are honest estimates for new applicants.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from credit_dagster.core import settings
from credit_dagster.model import calibration, metrics
from credit_dagster.model.ensemble import Ensemble


@dataclass
class TrainingParams:
    n_folds: int = 5
    seed: int = 42
    learning_rate: float = 0.02
    num_leaves: int = 7  # shallow trees and strong regularisation: judged on applicants never seen
    min_child_samples: int = 100
    feature_fraction: float = 0.5
    bagging_fraction: float = 0.8
    reg_lambda: float = 10.0
    max_rounds: int = 3000
    early_stopping_rounds: int = 200
    logreg_c: float = 0.05
    # on the real sample class weights cost 0.017 of pooled AUC and raised the business cost from
    # 0.559 to 0.604 (BENCHMARKS.md); calibration turns unweighted scores into PDs anyway
    class_weight: bool = False
    monotone: bool = True  # constrain features whose risk direction the dictionary states
    select_features: bool = True
    # a feature is kept when its gain beats this quantile of the gains of shuffled copies of the features
    selection_noise_quantile: float = 0.5
    compare_unselected: bool = True  # also cross-validate the deployed recipe on every feature (costs one more candidate)
    seeds_per_fold: int = 1  # >1: each fold model is an average over that many seeds
    # the deployed recipe cross-validated again with this many other seeds, for the model card's
    # seed-to-seed spread (each costs one cross-validation of that candidate; 0 skips it)
    stability_seeds: int = 2
    threads: int = 0  # 0: settings.threads() (CREDIT_THREADS, default the physical cores)
    costs: metrics.Costs = field(default_factory=metrics.Costs)


DEPLOYED = "lightgbm_all_tables"
UNSELECTED = "lightgbm_all_tables_no_selection"


@dataclass
class Dataset:
    """Labelled rows ready for training: categoricals as pandas categories with fixed levels."""

    ids: np.ndarray
    X: pd.DataFrame
    y: np.ndarray
    categories: dict[str, list[str]]
    app_only_features: list[str]
    directions: dict[str, int] = field(default_factory=dict)  # +1 / -1 where the dictionary knows the risk direction

    @property
    def features(self) -> list[str]:
        return list(self.X.columns)


@lru_cache(maxsize=512)
def _category_type(levels: tuple[str, ...]) -> pd.CategoricalDtype:
    # validating the levels costs more than coding a few rows: once per set of levels
    return pd.CategoricalDtype(list(levels))


def to_model_frame(frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    """The exact matrix the model reads: same columns, same category levels (unknown -> missing)."""
    numeric = [c for c in features if c not in categories]
    X = frame.reindex(columns=numeric)  # the one copy of the numbers before their conversion
    try:  # one conversion for the numeric block: column by column it costs more than predicting a few rows
        values = X.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):  # text in a numeric column: unparsable values become missing
        values = X.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    block = pd.DataFrame(values, columns=numeric, index=frame.index)
    absent = pd.Series(np.nan, index=frame.index, dtype=object)
    coded = pd.DataFrame({c: pd.Categorical((frame[c] if c in frame else absent).astype("object"), dtype=_category_type(tuple(categories[c])))
                          for c in features if c in categories}, index=frame.index)
    return pd.concat([block, coded], axis=1, copy=False)[features]


def make_dataset(features: pd.DataFrame, labels: pd.DataFrame, excluded: tuple[str, ...], app_columns: list[str],
                 directions: dict[str, int] | None = None) -> Dataset:
    data = features.merge(labels[["SK_ID_CURR", "TARGET"]], on="SK_ID_CURR", how="inner")
    usable = [c for c in features.columns if c != "SK_ID_CURR" and c not in excluded and not c.startswith("SK_ID")]
    categories = {
        c: sorted(str(v) for v in data[c].dropna().unique())
        for c in usable if data[c].dtype == object or str(data[c].dtype) in ("string", "category")
    }
    X = to_model_frame(data, usable, categories)
    return Dataset(
        ids=data["SK_ID_CURR"].to_numpy(), X=X, y=data["TARGET"].to_numpy().astype(int),
        categories=categories, app_only_features=[c for c in usable if c in app_columns],
        directions={c: d for c, d in (directions or {}).items() if c in usable and c not in categories},
    )


def lgb_params(params: TrainingParams, y: np.ndarray) -> dict:
    p = {
        "objective": "binary", "metric": "auc", "learning_rate": params.learning_rate, "num_leaves": params.num_leaves,
        "min_child_samples": params.min_child_samples, "feature_fraction": params.feature_fraction,
        "bagging_fraction": params.bagging_fraction, "bagging_freq": 1, "lambda_l2": params.reg_lambda,
        "seed": params.seed, "verbosity": -1, "deterministic": True, "force_col_wise": True,
        "num_threads": params.threads or settings.threads(),
    }
    if params.class_weight:
        p["scale_pos_weight"] = float((1 - y).sum() / max(y.sum(), 1))
    return p


def _monotone(params: TrainingParams, columns: list[str], directions: dict[str, int]) -> dict:
    if not params.monotone or not any(directions.get(c) for c in columns):
        return {}
    # "intermediate" keeps most of the accuracy the basic method loses, at little cost
    return {"monotone_constraints": [directions.get(c, 0) for c in columns], "monotone_constraints_method": "intermediate"}


def fit_lightgbm(X: pd.DataFrame, y: np.ndarray, params: TrainingParams, rounds: int | None = None,
                 directions: dict[str, int] | None = None) -> tuple[list[lgb.Booster], int]:
    """Fit on all given rows (`seeds_per_fold` boosters); without `rounds`, choose them by early
    stopping in a 3-fold CV of these rows. A single small hold-out (a few dozen defaulters)
    makes the stopping round, and so the model, a matter of luck; the inner CV steadies it."""
    p = {**lgb_params(params, y), **_monotone(params, list(X.columns), directions or {})}
    if rounds is None:
        history = lgb.cv(
            p, lgb.Dataset(X, y), num_boost_round=params.max_rounds, nfold=3, stratified=True, seed=params.seed,
            callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
        )
        rounds = len(history["valid auc-mean"])
    boosters = [lgb.train({**p, "seed": params.seed + i}, lgb.Dataset(X, y), num_boost_round=rounds)
                for i in range(max(1, params.seeds_per_fold))]
    return boosters, rounds


@dataclass
class Selection:
    kept: list[str]
    dropped: dict[str, str]  # feature -> why


def _rank_matrix(X: pd.DataFrame) -> np.ndarray:
    """Ranks per numeric column, missing values ranked below everything (so missingness counts)."""
    ranks = X.rank(method="average").fillna(0.0)
    return ranks.to_numpy(dtype=float)


def select_features(X: pd.DataFrame, y: np.ndarray, params: TrainingParams, *, min_present: float = 0.01,
                    max_top_share: float = 0.995, max_rank_corr: float = 0.98, probe_rows: int = 50_000) -> Selection:
    """The features that earn their place, decided on training rows only (called inside each fold):
    drop near-empty columns (present in fewer than `min_present` of rows), near-constant ones (one
    value in `max_top_share` of the present rows), near-duplicates (rank correlation above
    `max_rank_corr` with a feature already kept), and features whose gain in a LightGBM fit is not
    above what shuffled copies of the features (which carry no signal) reach: noise, for this data."""
    rng = np.random.default_rng(params.seed)
    rows = rng.choice(len(X), size=min(len(X), probe_rows), replace=False) if len(X) > probe_rows else np.arange(len(X))
    sample, y_sample = X.iloc[rows], y[rows]
    dropped: dict[str, str] = {}
    for col in X.columns:
        present = sample[col].notna()
        share = float(present.mean())
        if share < min_present:
            dropped[col] = f"near-empty: present for {share:.2%} of applicants"
            continue
        top = float(sample.loc[present, col].value_counts(normalize=True).iloc[0])
        if top >= max_top_share:
            dropped[col] = f"near-constant: one value for {top:.2%} of applicants"
    numeric = [c for c in X.columns if c not in dropped and X[c].dtype != "category"]
    if len(numeric) > 1:
        corr = np.abs(np.corrcoef(_rank_matrix(sample[numeric]), rowvar=False))
        kept_idx: list[int] = []
        for i, col in enumerate(numeric):
            twin = next((j for j in kept_idx if corr[i, j] > max_rank_corr), None)
            if twin is None:
                kept_idx.append(i)
            else:
                dropped[col] = f"near-duplicate of {numeric[twin]} (rank correlation {corr[i, twin]:.3f})"
    candidates = [c for c in X.columns if c not in dropped]
    # probes: each candidate with its rows shuffled, so it keeps its distribution and loses its link to y
    shadows = sample[candidates].apply(lambda s: s.sample(frac=1.0, random_state=int(rng.integers(1 << 31))).to_numpy())
    shadows.columns = [f"__probe_{i}" for i in range(len(candidates))]
    for i, col in enumerate(candidates):
        if sample[col].dtype == "category":
            shadows[shadows.columns[i]] = pd.Categorical(shadows[shadows.columns[i]], categories=sample[col].cat.categories)
    probe_data = pd.concat([sample[candidates].reset_index(drop=True), shadows.reset_index(drop=True)], axis=1)
    p = {**lgb_params(params, y_sample), "learning_rate": 0.05, "feature_fraction": 1.0}
    booster = lgb.train(p, lgb.Dataset(probe_data, y_sample), num_boost_round=200)
    gain = pd.Series(booster.feature_importance("gain"), index=probe_data.columns)
    probes_quantile = params.selection_noise_quantile
    noise = float(np.quantile(gain[shadows.columns], probes_quantile)) if len(candidates) else 0.0
    for col in candidates:
        if gain[col] <= noise:
            dropped[col] = f"gain {gain[col]:.1f} not above shuffled copies ({probes_quantile:.0%} of them reach {noise:.1f})"
    return Selection(kept=[c for c in X.columns if c not in dropped], dropped=dropped)


def _logistic(X: pd.DataFrame, params: TrainingParams) -> Pipeline:
    numeric = [c for c in X.columns if X[c].dtype != "category"]
    categorical = [c for c in X.columns if X[c].dtype == "category"]
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"),
                              OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20)), categorical),
    ])
    model = LogisticRegression(C=params.logreg_c, class_weight="balanced", max_iter=2000)
    return Pipeline([("prep", prep), ("model", model)])


def _as_object(X: pd.DataFrame) -> pd.DataFrame:
    return X.astype({c: object for c in X.columns if X[c].dtype == "category"})


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass
class CVResult:
    comparison: pd.DataFrame  # one row per candidate: pooled and per-fold metrics
    oof: dict[str, np.ndarray]  # out-of-fold raw scores (log-odds) per candidate
    fold_of: np.ndarray  # the outer fold each row was scored in
    boosters: dict[str, list[lgb.Booster]]  # the fold models of each LightGBM candidate (the deployable ensembles)
    selections: dict[str, list[Selection]]
    rounds: dict[str, list[int]]


Progress = Callable[[str], None]


def cross_validate(data: Dataset, params: TrainingParams, progress: Progress | None = None,
                   only: tuple[str, ...] | None = None) -> CVResult:
    """Out-of-fold raw scores (log-odds) for every candidate (or those in `only`) on the same
    folds, and the comparison table. Feature selection and early stopping happen inside each
    training fold, so the out-of-fold scores stay honest; the LightGBM fold models are kept to
    be deployed."""
    say = progress or (lambda _message: None)
    folds = list(StratifiedKFold(n_splits=params.n_folds, shuffle=True, random_state=params.seed).split(data.X, data.y))
    candidates = {
        "dummy_prior": data.features,
        "logistic_regression": data.features,
        "lightgbm_application_only": data.app_only_features,
        DEPLOYED: data.features,
    }
    if params.select_features and params.compare_unselected:
        candidates[UNSELECTED] = data.features  # the deployed recipe without feature selection: what selection buys
    if only is not None:
        candidates = {name: cols for name, cols in candidates.items() if name in only}
    oof = {name: np.zeros(len(data.y)) for name in candidates}
    fold_of = np.zeros(len(data.y), dtype=int)
    seconds = dict.fromkeys(candidates, 0.0)
    lightgbm = [name for name in candidates if name.startswith("lightgbm")]
    boosters: dict[str, list[lgb.Booster]] = {name: [] for name in lightgbm}
    selections: dict[str, list[Selection]] = {name: [] for name in lightgbm}
    rounds: dict[str, list[int]] = {name: [] for name in lightgbm}
    started_all = time.perf_counter()
    for k, (train, test) in enumerate(folds):
        fold_of[test] = k
        for name, cols in candidates.items():
            started = time.perf_counter()
            X_train, X_test, y_train = data.X.iloc[train][cols], data.X.iloc[test][cols], data.y[train]
            if name == "dummy_prior":
                p = DummyClassifier(strategy="prior").fit(X_train, y_train).predict_proba(X_test)[:, 1]
                oof[name][test] = _logit(p)
            elif name == "logistic_regression":
                model = _logistic(X_train, params).fit(_as_object(X_train), y_train)
                oof[name][test] = model.decision_function(_as_object(X_test))
            else:
                select = params.select_features and name != UNSELECTED
                selection = select_features(X_train, y_train, params) if select else Selection(cols, {})
                fitted, n_rounds = fit_lightgbm(X_train[selection.kept], y_train, params, directions=data.directions)
                boosters[name].extend(fitted)
                selections[name].append(selection)
                rounds[name].append(n_rounds)
                oof[name][test] = Ensemble(fitted, tables=None).raw_score(X_test)
            seconds[name] += time.perf_counter() - started
            say(f"fold {k + 1}/{len(folds)}: {name} done in {time.perf_counter() - started:.1f}s "
                f"({time.perf_counter() - started_all:.0f}s elapsed)")
    rows = []
    for name, raw in oof.items():
        per_fold = [roc_auc_score(data.y[fold_of == k], raw[fold_of == k]) for k in range(len(folds))]
        # cost and Brier after calibration fitted on the other folds (cross-fitted), as deployed
        pd_ = calibration.cross_fit(raw, data.y, fold_of)[0]
        low, high = metrics.bootstrap_auc_interval(data.y, raw, seed=params.seed)
        row = {"candidate": name, **metrics.summary(data.y, pd_, params.costs),
               "roc_auc_pooled": float(roc_auc_score(data.y, raw)), "roc_auc_fold_mean": float(np.mean(per_fold)),
               "roc_auc_fold_std": float(np.std(per_fold)), "roc_auc_low": low, "roc_auc_high": high,
               "train_seconds": round(seconds[name], 2),
               "features": int(np.mean([len(s.kept) for s in selections[name]])) if name in selections else len(candidates[name])}
        rows.append(row)
    return CVResult(pd.DataFrame(rows), oof, fold_of, boosters, selections, rounds)


def seed_spread(data: Dataset, params: TrainingParams, first_auc: float, progress: Progress | None = None) -> dict:
    """The deployed recipe's pooled CV ROC AUC under `params.stability_seeds` other seeds (other
    folds, other LightGBM randomness) beside the build's own `first_auc`: how much of the figure is
    the luck of a seed. Each other seed costs one cross-validation of the deployed candidate."""
    seeds, aucs = [params.seed], [first_auc]
    for i in range(1, params.stability_seeds + 1):
        other = replace(params, seed=params.seed + i)
        (progress or (lambda _message: None))(f"seed-to-seed spread: seed {other.seed} ({i}/{params.stability_seeds})")
        cv = cross_validate(data, other, progress, only=(DEPLOYED,))
        seeds.append(other.seed)
        aucs.append(float(roc_auc_score(data.y, cv.oof[DEPLOYED])))
    return {"seeds": seeds, "roc_auc_pooled": aucs, "min": min(aucs), "max": max(aucs), "std": float(np.std(aucs))}


def global_importance(model: Ensemble, X: pd.DataFrame, max_rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Mean |SHAP value| per feature (LightGBM's pred_contrib gives TreeSHAP values)."""
    sample = X.sample(min(len(X), max_rows), random_state=seed) if len(X) > max_rows else X
    contrib = model.contributions(sample)[:, :-1]
    return (pd.DataFrame({"feature": X.columns, "mean_abs_shap": np.abs(contrib).mean(axis=0)})
            .sort_values("mean_abs_shap", ascending=False).reset_index(drop=True))


def single_feature_leaks(data: Dataset, max_auc: float = 0.95) -> list[tuple[str, float]]:
    """Features that alone separate defaulters almost perfectly: a sign the label leaked in."""
    leaks = []
    for col in data.features:
        values = data.X[col].cat.codes.astype(float) if data.X[col].dtype == "category" else data.X[col]
        present = values.notna().to_numpy()
        if present.sum() < 50 or len(np.unique(data.y[present])) < 2:
            continue
        auc = roc_auc_score(data.y[present], values[present])
        if max(auc, 1 - auc) > max_auc:
            leaks.append((col, round(float(max(auc, 1 - auc)), 4)))
    return leaks
