"""Calibration of out-of-fold scores, serialisable as plain JSON (no pickles in the registry)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold


@dataclass(frozen=True)
class Calibrator:
    """Maps a raw model score (log-odds) to a probability of default."""

    method: str  # "isotonic" or "sigmoid"
    params: dict

    def __call__(self, raw_logit: np.ndarray) -> np.ndarray:
        raw_logit = np.asarray(raw_logit, dtype=float)
        if self.method == "sigmoid":
            return 1 / (1 + np.exp(-(self.params["a"] * raw_logit + self.params["b"])))
        return np.interp(raw_logit, self.params["x"], self.params["y"])

    def to_json(self) -> dict:
        return {"method": self.method, "params": self.params}

    @classmethod
    def from_json(cls, data: dict) -> Calibrator:
        return cls(data["method"], data["params"])


def fit(method: str, raw_logit: np.ndarray, y: np.ndarray) -> Calibrator:
    if method == "sigmoid":
        model = LogisticRegression(C=1e6).fit(raw_logit.reshape(-1, 1), y)
        return Calibrator("sigmoid", {"a": float(model.coef_[0, 0]), "b": float(model.intercept_[0])})
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(raw_logit, y)
    return Calibrator("isotonic", {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()})


def cross_fit(raw_logit: np.ndarray, y: np.ndarray, fold_of: np.ndarray, method: str = "sigmoid") -> tuple[np.ndarray, list[Calibrator]]:
    """Probabilities for each fold from a calibrator fitted on the other folds' scores only."""
    pred = np.empty(len(y))
    fitted = []
    for k in np.unique(fold_of):
        test = fold_of == k
        calibrator = fit(method, raw_logit[~test], y[~test])
        pred[test] = calibrator(raw_logit[test])
        fitted.append(calibrator)
    return pred, fitted


def choose(raw_logit: np.ndarray, y: np.ndarray, fold_of: np.ndarray | None = None, seed: int = 0) -> tuple[Calibrator, dict[str, float]]:
    """Pick isotonic or sigmoid by Brier score on folds the calibrator was not fitted on (the
    model's own outer folds when given), then refit the winner on all out-of-fold scores."""
    if fold_of is None:
        fold_of = np.empty(len(y), dtype=int)
        for k, (_, test) in enumerate(StratifiedKFold(n_splits=5, shuffle=True, random_state=seed).split(raw_logit, y)):
            fold_of[test] = k
    briers = {method: float(brier_score_loss(y, cross_fit(raw_logit, y, fold_of, method)[0])) for method in ("isotonic", "sigmoid")}
    best = min(briers, key=briers.get)
    return fit(best, raw_logit, y), briers


def reliability_table(y: np.ndarray, p: np.ndarray, bands: int = 10) -> list[dict]:
    """Observed against predicted default rate per score band (equal-count bands)."""
    order = np.argsort(p)
    rows = []
    for i, chunk in enumerate(np.array_split(order, bands)):
        if len(chunk):
            rows.append({
                "band": i + 1, "applicants": int(len(chunk)),
                "predicted_pd": float(np.mean(p[chunk])), "observed_default_rate": float(np.mean(y[chunk])),
                "min_pd": float(p[chunk].min()), "max_pd": float(p[chunk].max()),
            })
    return rows
