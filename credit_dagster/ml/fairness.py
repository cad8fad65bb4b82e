"""Fairness audit at the decision threshold: per group approval rate, error rates, cost."""

from __future__ import annotations

import numpy as np
import pandas as pd

from credit_dagster.ml.metrics import Costs

FOUR_FIFTHS = 0.8


def flags(fairness: dict[str, list[dict]]) -> list[str]:
    """The groups the four-fifths rule flags in a stored audit (attribute -> rows), in words."""
    return [f"{attr} = {row['group']} (disparate impact {row['disparate_impact']:.2f})"
            for attr, rows in fairness.items() for row in rows if row["four_fifths_flag"]]


def age_band(days_birth: pd.Series) -> pd.Series:
    years = -days_birth / 365.25
    return pd.cut(years, [0, 25, 35, 45, 55, 65, 200], right=False,
                  labels=["<25", "25-34", "35-44", "45-54", "55-64", "65+"]).astype(str)


def audit(groups: pd.Series, y: np.ndarray, pd_: np.ndarray, threshold: float, costs: Costs) -> pd.DataFrame:
    """One row per group. Positive = predicted defaulter (refused); approval = not refused."""
    frame = pd.DataFrame({"group": groups.fillna("(missing)").to_numpy(), "y": y, "refused": pd_ >= threshold})
    rows = []
    for group, g in frame.groupby("group"):
        bad, good = g["y"] == 1, g["y"] == 0
        rows.append({
            "group": group, "applicants": len(g), "default_rate": g["y"].mean(),
            "approval_rate": 1 - g["refused"].mean(),
            "true_positive_rate": g.loc[bad, "refused"].mean() if bad.any() else np.nan,
            "false_positive_rate": g.loc[good, "refused"].mean() if good.any() else np.nan,
            "cost_per_applicant": (costs.false_negative * (bad & ~g["refused"]).sum()
                                   + costs.false_positive * (good & g["refused"]).sum()) / len(g),
        })
    table = pd.DataFrame(rows)
    table["disparate_impact"] = table["approval_rate"] / table["approval_rate"].max()
    table["four_fifths_flag"] = table["disparate_impact"] < FOUR_FIFTHS
    return table
