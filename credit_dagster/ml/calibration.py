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


def choose(raw_logit: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[Calibrator, dict[str, float]]:
    """Pick isotonic or sigmoid by cross-validated Brier score on the out-of-fold scores, refit on all."""
    briers = {}
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    for method in ("isotonic", "sigmoid"):
        pred = np.empty(len(y))
        for train, test in folds.split(raw_logit, y):
            pred[test] = fit(method, raw_logit[train], y[train])(raw_logit[test])
        briers[method] = float(brier_score_loss(y, pred))
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
