"""Candidate models compared on the same stratified folds, then the final LightGBM fit.

Everything fitted from data (imputation, scaling, encoding, early stopping) is fitted inside
each training fold, so the out-of-fold predictions are honest estimates for new applicants.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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

from credit_dagster.ml import calibration, metrics


@dataclass
class TrainingParams:
    n_folds: int = 5
    seed: int = 42
    learning_rate: float = 0.02
    num_leaves: int = 7
    min_child_samples: int = 100
    feature_fraction: float = 0.5
    bagging_fraction: float = 0.8
    reg_lambda: float = 10.0
    max_rounds: int = 2000
    early_stopping_rounds: int = 100
    logreg_c: float = 0.05
    costs: metrics.Costs = field(default_factory=metrics.Costs)


@dataclass
class Dataset:
    """Labelled rows ready for training: categoricals as pandas categories with fixed levels."""

    ids: np.ndarray
    X: pd.DataFrame
    y: np.ndarray
    categories: dict[str, list[str]]
    app_only_features: list[str]

    @property
    def features(self) -> list[str]:
        return list(self.X.columns)


def to_model_frame(frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    """The exact matrix the model reads: same columns, same category levels (unknown -> missing)."""
    X = frame.reindex(columns=features).copy()
    for col in features:
        if col in categories:
            X[col] = pd.Categorical(X[col].astype("object"), categories=categories[col])
        else:
            X[col] = pd.to_numeric(X[col], errors="coerce").astype(float)
    return X


def make_dataset(features: pd.DataFrame, labels: pd.DataFrame, excluded: tuple[str, ...], app_columns: list[str]) -> Dataset:
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
    )


def lgb_params(params: TrainingParams, y: np.ndarray) -> dict:
    return {
        "objective": "binary", "metric": "auc", "learning_rate": params.learning_rate, "num_leaves": params.num_leaves,
        "min_child_samples": params.min_child_samples, "feature_fraction": params.feature_fraction,
        "bagging_fraction": params.bagging_fraction, "bagging_freq": 1, "lambda_l2": params.reg_lambda,
        # imbalance by weights: defaulters count as much in total as good clients (so early stopping
        # watches AUC: log-loss of the reweighted model rises from the first round)
        "scale_pos_weight": float((1 - y).sum() / max(y.sum(), 1)),
        "seed": params.seed, "verbosity": -1, "num_threads": 0, "deterministic": True, "force_col_wise": True,
    }


def fit_lightgbm(X: pd.DataFrame, y: np.ndarray, params: TrainingParams, rounds: int | None = None) -> tuple[lgb.Booster, int]:
    """Fit on all given rows; without `rounds`, choose them by early stopping in a 3-fold CV of
    these rows. A single small hold-out (a few dozen defaulters) makes the stopping round, and so
    the model, a matter of luck; the inner CV steadies it at three times the fitting cost."""
    p = lgb_params(params, y)
    if rounds is None:
        history = lgb.cv(
            p, lgb.Dataset(X, y), num_boost_round=params.max_rounds, nfold=3, stratified=True, seed=params.seed,
            callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
        )
        rounds = len(history["valid auc-mean"])
    return lgb.train(p, lgb.Dataset(X, y), num_boost_round=rounds), rounds


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


def cross_validate(data: Dataset, params: TrainingParams) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, int]]:
    """Out-of-fold raw scores (log-odds) for every candidate on the same folds, and the comparison table."""
    folds = list(StratifiedKFold(n_splits=params.n_folds, shuffle=True, random_state=params.seed).split(data.X, data.y))
    candidates = {
        "dummy_prior": data.features,
        "logistic_regression": data.features,
        "lightgbm_application_only": data.app_only_features,
        "lightgbm_all_tables": data.features,
    }
    oof = {name: np.zeros(len(data.y)) for name in candidates}
    seconds = dict.fromkeys(candidates, 0.0)
    best_rounds = {name: [] for name in candidates if name.startswith("lightgbm")}
    for train, test in folds:
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
                booster, rounds = fit_lightgbm(X_train, y_train, params)
                best_rounds[name].append(rounds)
                oof[name][test] = booster.predict(X_test, raw_score=True, num_iteration=rounds)
            seconds[name] += time.perf_counter() - started
    rows = []
    for name, raw in oof.items():
        # raw class-weighted scores are not probabilities: cost and Brier are taken after each
        # candidate's own calibration, so candidates are compared as they would be deployed
        calibrator, _ = calibration.choose(raw, data.y, params.seed)
        row = {"candidate": name, **metrics.summary(data.y, calibrator(raw), params.costs), "train_seconds": round(seconds[name], 2)}
        row["features"] = len(candidates[name])
        rows.append(row)
    rounds = {name: int(np.mean(r)) for name, r in best_rounds.items()}
    return pd.DataFrame(rows), oof, rounds


def global_importance(booster: lgb.Booster, X: pd.DataFrame, max_rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Mean |SHAP value| per feature (LightGBM's pred_contrib gives TreeSHAP values)."""
    sample = X.sample(min(len(X), max_rows), random_state=seed) if len(X) > max_rows else X
    contrib = booster.predict(sample, pred_contrib=True)[:, :-1]
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
