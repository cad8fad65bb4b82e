"""Model quality and business-cost metrics, on numpy arrays (no Dagster, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


@dataclass(frozen=True)
class Costs:
    """Cost of a missed defaulter (granted, then defaults) and of a wrongly refused good client."""

    false_negative: float = 10.0
    false_positive: float = 1.0


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """Largest gap between the score distributions of defaulters and good clients."""
    order = np.argsort(p)
    y_sorted = np.asarray(y)[order]
    bad = np.cumsum(y_sorted) / max(y_sorted.sum(), 1)
    good = np.cumsum(1 - y_sorted) / max((1 - y_sorted).sum(), 1)
    return float(np.max(np.abs(bad - good)))


def cost_curve(y: np.ndarray, p: np.ndarray, costs: Costs, thresholds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Expected cost per applicant when refusing every applicant with probability >= threshold."""
    y = np.asarray(y)
    thresholds = np.linspace(0.0, 1.0, 201) if thresholds is None else thresholds
    order = np.argsort(p)
    p_sorted, y_sorted = np.asarray(p)[order], y[order]
    # granted = p < t: count defaulters granted (FN) and good clients refused (FP) per threshold
    granted = np.searchsorted(p_sorted, thresholds, side="left")
    bad_granted = np.concatenate([[0], np.cumsum(y_sorted)])[granted]
    good_granted = granted - bad_granted
    good_refused = (1 - y).sum() - good_granted
    cost = (costs.false_negative * bad_granted + costs.false_positive * good_refused) / len(y)
    return thresholds, cost


def best_threshold(y: np.ndarray, p: np.ndarray, costs: Costs) -> tuple[float, float]:
    """The threshold with the lowest expected cost per applicant, and that cost."""
    thresholds, cost = cost_curve(y, p, costs)
    i = int(np.argmin(cost))
    return float(thresholds[i]), float(cost[i])


def summary(y: np.ndarray, p: np.ndarray, costs: Costs) -> dict[str, float]:
    threshold, cost = best_threshold(y, p, costs)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, np.clip(p, 0, 1))),
        "ks": ks_statistic(y, p),
        "business_cost": cost,
        "best_threshold": threshold,
    }


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Average |observed - predicted| default rate over equal-count bins, weighted by bin size."""
    order = np.argsort(p)
    error = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            error += len(chunk) * abs(np.mean(np.asarray(y)[chunk]) - np.mean(np.asarray(p)[chunk]))
    return float(error / len(p))


def bootstrap_auc_interval(y: np.ndarray, p: np.ndarray, *, draws: int = 200, level: float = 0.95, seed: int = 0,
                           max_rows: int = 100_000) -> tuple[float, float]:
    """Percentile bootstrap interval of the ROC AUC (resampling applicants; seeded)."""
    y, p = np.asarray(y), np.asarray(p)
    rng = np.random.default_rng(seed)
    size = min(len(y), max_rows)  # above max_rows, subsamples of that size (a slightly wider, cheaper interval)
    aucs = []
    for _ in range(draws):
        idx = rng.integers(0, len(y), size=size)
        if 0 < y[idx].sum() < size:
            aucs.append(roc_auc_score(y[idx], p[idx]))
    tail = (1 - level) / 2
    return float(np.quantile(aucs, tail)), float(np.quantile(aucs, 1 - tail))


def paired_auc_difference(y: np.ndarray, challenger: np.ndarray, champion: np.ndarray, *, draws: int = 200,
                          seed: int = 0) -> dict[str, float]:
    """ROC AUC of challenger minus champion on the same applicants, with a paired bootstrap 95 % interval."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(draws):
        idx = rng.integers(0, len(y), size=len(y))
        if 0 < y[idx].sum() < len(y):
            diffs.append(roc_auc_score(y[idx], challenger[idx]) - roc_auc_score(y[idx], champion[idx]))
    return {"difference": float(roc_auc_score(y, challenger) - roc_auc_score(y, champion)),
            "low": float(np.quantile(diffs, 0.025)), "high": float(np.quantile(diffs, 0.975))}
