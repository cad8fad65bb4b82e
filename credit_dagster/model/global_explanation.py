"""The model card's global explanation, with shap: which features move the deployed model's
scores, and how, on a sample of the training population (beeswarm and dependence plots).

shap's TreeExplainer computes each fold model's TreeSHAP values; the deployed model averages
the fold models in log-odds, so its values are the average of theirs (TreeSHAP is additive).
Per applicant, at night, the same values come from `Ensemble.contributions` (the trees' TreeSHAP
values looked up in tables, `treeshap.py`), far faster on a whole night; a test checks that both agree.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: no display on a scheduler
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import shap  # noqa: E402

from credit_dagster.model.charts import png  # noqa: E402
from credit_dagster.model.ensemble import Ensemble, as_float  # noqa: E402

SAMPLE_ROWS = 2_000  # enough for the picture, a few seconds to explain


def shap_values(model: Ensemble, matrix: pd.DataFrame) -> shap.Explanation:
    """TreeSHAP values of the deployed model (fold models averaged) for each row of `matrix`."""
    values = as_float(matrix)
    position = {c: i for i, c in enumerate(matrix.columns)}
    total, base = np.zeros(matrix.shape), 0.0
    for booster in model.boosters:
        columns = [position[c] for c in booster.feature_name()]
        explainer = shap.TreeExplainer(booster)
        total[:, columns] += explainer.shap_values(values[:, columns])
        base += float(np.ravel(explainer.expected_value)[0])
    n = len(model.boosters)
    return shap.Explanation(values=total / n, base_values=np.full(len(matrix), base / n), data=values,
                            feature_names=list(matrix.columns))


def charts(model: Ensemble, matrix: pd.DataFrame, seed: int = 42) -> dict[str, bytes]:
    """Beeswarm of the features that move the scores most, and the dependence of the score on the
    first of them, as PNG, on a seeded sample of `matrix`."""
    sample = matrix.sample(min(SAMPLE_ROWS, len(matrix)), random_state=seed)
    explanation = shap_values(model, sample)
    plt.figure()
    shap.plots.beeswarm(explanation, max_display=15, show=False)
    plt.title("What moves the score (log-odds of default), each dot an applicant", fontsize=10)
    beeswarm = png(plt.gcf())
    top = int(np.argmax(np.abs(explanation.values).mean(axis=0)))
    plt.figure()
    shap.plots.scatter(explanation[:, top], show=False)
    plt.title(f"How {sample.columns[top]} moves the score", fontsize=10)
    dependence = png(plt.gcf())
    return {"shap_beeswarm": beeswarm, "shap_dependence": dependence}
