"""Fairness audit at the decision threshold, out of fold: what separates unequal treatment from
unequal risk.

Raw approval rates by group (the four-fifths rule) differ whenever groups differ in risk:
younger applicants default more, so any accurate model approves fewer of them, even with age
kept out of its inputs. Two questions tell a committee whether a group is treated unfairly:

- **equal opportunity**: among applicants who went on to repay, is each group approved about as
  often as the most approved one? (a group of good payers refused more is treated worse)
- **calibration within the group**: does the group default at the rate the model predicted for
  it? (a group whose risk is overstated is refused for risk it does not carry)

The gate acts on these two; the four-fifths figures are kept and shown beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import beta

from credit_dagster.core import settings
from credit_dagster.model.metrics import Costs

FOUR_FIFTHS = 0.8


@dataclass(frozen=True)
class Tolerances:
    """When a group is flagged (CREDIT_FAIRNESS_MIN_EQUAL_OPPORTUNITY, CREDIT_FAIRNESS_MAX_CALIBRATION_GAP)."""

    min_equal_opportunity: float = 0.8  # approval rate among repayers, against the most approved group's
    max_calibration_gap: float = 0.02  # observed minus predicted default rate, beyond its 95 % interval
    min_applicants: int = 50  # a smaller group says nothing either way


DEFAULT_TOLERANCES = Tolerances()


def configured_tolerances() -> Tolerances:
    """The tolerances CREDIT_FAIRNESS_MIN_EQUAL_OPPORTUNITY and CREDIT_FAIRNESS_MAX_CALIBRATION_GAP set."""
    configured = settings.current()
    return Tolerances(min_equal_opportunity=configured.fairness_min_equal_opportunity,
                      max_calibration_gap=configured.fairness_max_calibration_gap)


def jeffreys_interval(defaults: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Jeffreys interval of a default rate (Beta(1/2, 1/2) prior), as supervisors use in PD back-testing."""
    if n == 0:
        return 0.0, 1.0
    alpha = (1 - level) / 2
    low = 0.0 if defaults == 0 else float(beta.ppf(alpha, defaults + 0.5, n - defaults + 0.5))
    high = 1.0 if defaults == n else float(beta.ppf(1 - alpha, defaults + 0.5, n - defaults + 0.5))
    return low, high


def flags(fairness: dict[str, list[dict]], tolerances: Tolerances = DEFAULT_TOLERANCES) -> list[str]:
    """The groups a stored audit (attribute -> rows) flags for unequal treatment, in words."""
    out = []
    for attr, rows in fairness.items():
        for row in rows:
            if row.get("applicants", 0) < tolerances.min_applicants or "equal_opportunity" not in row:
                continue
            if row["equal_opportunity"] < tolerances.min_equal_opportunity:
                out.append(f"{attr} = {row['group']}: clients who repaid approved {row['equal_opportunity']:.2f} times as often "
                           "as in the most approved group (equal opportunity)")
            gap = row["predicted_default_rate"] - row["default_rate"]
            outside = not row["default_rate_low"] <= row["predicted_default_rate"] <= row["default_rate_high"]
            if outside and abs(gap) > tolerances.max_calibration_gap:
                words = "overstated" if gap > 0 else "understated"
                out.append(f"{attr} = {row['group']}: risk {words}: predicted {row['predicted_default_rate']:.1%}, observed "
                           f"{row['default_rate']:.1%} (95 % interval {row['default_rate_low']:.1%}-{row['default_rate_high']:.1%})")
    return out


def four_fifths(fairness: dict[str, list[dict]]) -> list[str]:
    """The groups whose raw approval rate is under four fifths of the most approved group's (shown, not gating)."""
    return [f"{attr} = {row['group']}: approved {row['disparate_impact']:.2f} times as often as the most approved group"
            for attr, rows in fairness.items() for row in rows if row["four_fifths_flag"]]


def age_band(days_birth: pd.Series) -> pd.Series:
    years = -days_birth / 365.25
    return pd.cut(years, [0, 25, 35, 45, 55, 65, 200], right=False,
                  labels=["<25", "25-34", "35-44", "45-54", "55-64", "65+"]).astype(str)


def audit(groups: pd.Series, y: np.ndarray, pd_: np.ndarray, threshold: float, costs: Costs) -> pd.DataFrame:
    """One row per group. Positive = predicted defaulter (refused); approval = not refused."""
    frame = pd.DataFrame({"group": groups.fillna("(missing)").to_numpy(), "y": y, "pd": pd_, "refused": pd_ >= threshold})
    rows = []
    for group, g in frame.groupby("group"):
        bad, good = g["y"] == 1, g["y"] == 0
        low, high = jeffreys_interval(int(bad.sum()), len(g))
        rows.append({
            "group": group, "applicants": len(g), "default_rate": g["y"].mean(),
            "default_rate_low": low, "default_rate_high": high, "predicted_default_rate": g["pd"].mean(),
            "approval_rate": 1 - g["refused"].mean(),
            "approval_rate_repaid": 1 - g.loc[good, "refused"].mean() if good.any() else np.nan,
            "true_positive_rate": g.loc[bad, "refused"].mean() if bad.any() else np.nan,
            "false_positive_rate": g.loc[good, "refused"].mean() if good.any() else np.nan,
            "cost_per_applicant": (costs.false_negative * (bad & ~g["refused"]).sum()
                                   + costs.false_positive * (good & g["refused"]).sum()) / len(g),
        })
    table = pd.DataFrame(rows)
    table["disparate_impact"] = table["approval_rate"] / table["approval_rate"].max()
    table["four_fifths_flag"] = table["disparate_impact"] < FOUR_FIFTHS
    table["equal_opportunity"] = table["approval_rate_repaid"] / table["approval_rate_repaid"].max()
    return table
