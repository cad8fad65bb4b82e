"""Back-testing the decisions on their outcomes, per model version and monthly vintage (the month
of the night that decided): did the applicants ranked riskier default more (realized ROC AUC and
Gini, with a bootstrap interval, against the development figure), did each grade default at the
rate it promised (the Jeffreys test supervisors use for PD back-testing: ECB's instructions for
IRB validation, EBA/GL/2017/16), and is the score stable against development (PSI).

Only granted applications can have an outcome: every figure says how many decisions it judges,
how many are still waiting for one, and how many it can never judge.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
from scipy.stats import beta, rankdata
from sklearn.metrics import roc_auc_score

from credit_dagster.monitoring.drift import psi

GRANTED = "granted"
BOOTSTRAP_DRAWS = 300
OK, WARN, FAIL = "ok", "warn", "fail"


def jeffreys_p(defaults: int, n: int, predicted: float) -> float:
    """The one-sided p-value that the grade's PD is not underestimated: the probability, under
    the Jeffreys posterior Beta(D + 1/2, N - D + 1/2) of the default rate, that it is at most the
    predicted PD. Small (under 5 %): more defaults than the PD allows."""
    return float(beta.cdf(predicted, defaults + 0.5, n - defaults + 0.5)) if n else float("nan")


def bootstrap_auc(y: np.ndarray, score: np.ndarray, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> tuple[float, float]:
    """The 95 % percentile interval of the ROC AUC over `draws` seeded resamples of the applicants."""
    rng, n, values = np.random.default_rng(seed), len(y), []
    for _ in range(draws):
        pick = rng.integers(0, n, n)
        if 0 < y[pick].sum() < n:
            values.append(_auc(y[pick], score[pick]))
    return (float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))) if values else (float("nan"), float("nan"))


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half: what `roc_auc_score`
    gives, without its input checks (a bootstrap calls it hundreds of times per vintage)."""
    ranks = rankdata(score)
    positives = int(y.sum())
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * (len(y) - positives)))


def auc_verdict(realized_high: float, development_low: float, tolerance: float) -> str:
    """The realized AUC's whole 95 % interval under the development interval: warn; under it by
    more than `tolerance`: fail. (A vintage of a few dozen defaults has an interval of ±0.1: its
    point estimate alone under development is noise, not news.)"""
    if np.isnan(realized_high) or realized_high >= development_low:
        return OK
    return FAIL if realized_high < development_low - tolerance else WARN


def grade_verdict(p_value: float, warn_below: float = 0.05, fail_below: float = 0.001) -> str:
    if np.isnan(p_value) or p_value >= warn_below:
        return OK
    return FAIL if p_value < fail_below else WARN


def granted_development(y: np.ndarray, pd_: np.ndarray, grant_below: float) -> dict[str, float]:
    """The development AUC among the applicants the policy would have granted (out-of-fold PD
    under `grant_below`), with its bootstrap interval: what a realized AUC, measured on granted
    applications alone, is to be compared with. The refused are the riskiest: without them the
    ranking has less to separate, and the AUC on the granted is lower than on everyone (on the
    real sample's held-out labelled applicants, 0.60 on the granted against 0.76 on all)."""
    keep = pd_ < grant_below
    if keep.sum() < 2 or not 0 < y[keep].sum() < keep.sum():
        return {}
    low, high = bootstrap_auc(y[keep], pd_[keep])
    return {"granted_auc": _auc(y[keep], pd_[keep]), "granted_auc_low": low, "granted_auc_high": high}


def judged(decisions: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """Every decision (`SK_ID_CURR`, `model_version`, `partition_date`, `probability_of_default`,
    `grade`, `final_decision`) with its vintage and, once reported, its outcome (`TARGET`,
    `MONTHS_ON_BOOK`; missing while none)."""
    out = decisions.merge(outcomes[["SK_ID_CURR", "TARGET", "MONTHS_ON_BOOK", "REPORTING_DATE"]], on="SK_ID_CURR", how="left")
    out["vintage"] = out["partition_date"].astype(str).str[:7]
    return out


def vintages(rows: pd.DataFrame, development: dict[str, dict], reference: dict[str, pd.Series], tolerance: float,
             min_outcomes: int, min_defaults: int) -> pd.DataFrame:
    """One row per model version and vintage: decisions, granted, with an outcome, defaults,
    realized AUC and Gini with their interval against development, PSI of the PD against
    development, and the verdict. `development[version]`: roc_auc, roc_auc_low, roc_auc_high
    (every applicant) and granted_auc, granted_auc_low, granted_auc_high (those the policy
    grants: `granted_development`, what the verdict compares with); `reference[version]`: the
    development PDs (out of fold)."""
    out = []
    for (version, vintage), group in rows.groupby(["model_version", "vintage"], sort=True):
        granted = group[group["final_decision"] == GRANTED]
        known = granted[granted["TARGET"].notna()]
        y, score = known["TARGET"].to_numpy(int), known["probability_of_default"].to_numpy(float)
        enough = len(known) >= min_outcomes and min_defaults <= y.sum() <= len(y) - min_defaults
        auc = float(roc_auc_score(y, score)) if enough else float("nan")
        low, high = bootstrap_auc(y, score) if enough else (float("nan"), float("nan"))
        dev = development.get(version, {})
        ref = reference.get(version)
        out.append({
            "model_version": version, "vintage": vintage, "decisions": len(group), "granted": len(granted),
            "never_judged": len(group) - len(granted), "with_outcome": len(known),
            "share_with_outcome": len(known) / len(granted) if len(granted) else 0.0, "defaults": int(y.sum()),
            "default_rate": float(y.mean()) if len(y) else float("nan"), "predicted_rate": float(score.mean()) if len(y) else float("nan"),
            "realized_auc": auc, "realized_auc_low": low, "realized_auc_high": high, "realized_gini": 2 * auc - 1,
            "development_auc": dev.get("roc_auc", float("nan")), "development_auc_low": dev.get("roc_auc_low", float("nan")),
            "development_auc_high": dev.get("roc_auc_high", float("nan")),
            # like with like: in development too, among the applicants the policy grants
            "development_granted_auc": dev.get("granted_auc", float("nan")),
            "development_granted_auc_low": dev.get("granted_auc_low", float("nan")),
            "development_granted_auc_high": dev.get("granted_auc_high", float("nan")),
            # the calibrated PD takes few distinct values, and the bin edges are those values: rounded alike on both
            # sides, or a reference read back from CSV puts a whole grade across an edge
            "psi": psi(ref.round(10), group["probability_of_default"].round(10)) if ref is not None and len(group) else float("nan"),
            "verdict": auc_verdict(high, dev.get("granted_auc_low", float("nan")), tolerance) if enough else "too few outcomes",
        })
    return pd.DataFrame(out)


def grades(rows: pd.DataFrame, min_outcomes: int) -> pd.DataFrame:
    """One row per model version, vintage and grade of the granted applications with an outcome:
    observed against predicted default rate, the Jeffreys interval and p-value, the verdict;
    and per version and vintage one row `grade = all` (the whole portfolio's test)."""
    known = rows[(rows["final_decision"] == GRANTED) & rows["TARGET"].notna()]
    out = []
    for (version, vintage), group in known.groupby(["model_version", "vintage"], sort=True):
        for grade, cell in [*group.groupby("grade", sort=True), ("all", group)]:
            n, d, predicted = len(cell), int(cell["TARGET"].sum()), float(cell["probability_of_default"].mean())
            p_value = jeffreys_p(d, n, predicted)
            out.append({"model_version": version, "vintage": vintage, "grade": grade, "with_outcome": n, "defaults": d,
                        "observed_rate": d / n, "predicted_rate": predicted,
                        "observed_low": float(beta.ppf(0.025, d + 0.5, n - d + 0.5)),
                        "observed_high": float(beta.ppf(0.975, d + 0.5, n - d + 0.5)),
                        "jeffreys_p": p_value, "verdict": grade_verdict(p_value) if n >= min_outcomes else "too few outcomes"})
    return pd.DataFrame(out, columns=["model_version", "vintage", "grade", "with_outcome", "defaults", "observed_rate", "predicted_rate",
                                      "observed_low", "observed_high", "jeffreys_p", "verdict"])


def curves(reports: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Vintage curves: per model version, grade and months on book, the share of the granted
    applications observed that long who had payment difficulties by then (`reports`: every
    report that stands; `rows`: the decisions, `judged`)."""
    granted = rows.loc[rows["final_decision"] == GRANTED, ["SK_ID_CURR", "model_version", "grade"]]
    seen = reports.groupby("SK_ID_CURR").agg(observed_to=("MONTHS_ON_BOOK", "max"))
    first = reports[reports["TARGET"] == 1].groupby("SK_ID_CURR")["MONTHS_ON_BOOK"].min().rename("defaulted_at")
    people = granted.merge(seen, on="SK_ID_CURR").merge(first, on="SK_ID_CURR", how="left")
    out = []
    for month in sorted(reports["MONTHS_ON_BOOK"].unique()):
        observed = people[people["observed_to"] >= month]
        for (version, grade), cell in observed.groupby(["model_version", "grade"], sort=True):
            defaulted = int((cell["defaulted_at"] <= month).sum())
            out.append({"model_version": version, "grade": grade, "months_on_book": int(month), "observed": len(cell),
                        "defaulted": defaulted, "cumulative_default_rate": defaulted / len(cell)})
    return pd.DataFrame(out, columns=["model_version", "grade", "months_on_book", "observed", "defaulted", "cumulative_default_rate"])


OVERRIDE_COLUMNS = ["segment", "value", "decided_by_people", "overrides", "override_rate", "granted_against_the_model",
                    "their_outcomes", "their_default_rate", "granted_by_the_model_outcomes", "model_granted_default_rate"]


def overrides(rows: pd.DataFrame) -> pd.DataFrame:
    """Per reviewer, per grade and overall (`rows`: `judged`, with `model_decision`, `decided_by`,
    `reviewer`): decisions taken by people, overrides (a person reversing the model's grant or
    refusal), and the default rate of the applications a person granted against the model beside
    that of those the model granted itself."""
    people = rows[rows["decided_by"] != "model"]
    model_granted = rows[(rows["decided_by"] == "model") & (rows["final_decision"] == GRANTED) & rows["TARGET"].notna()]
    out = []
    for segment, column in (("overall", None), ("reviewer", "reviewer"), ("grade", "grade")):
        groups = [("all", people)] if column is None else list(people.groupby(column, sort=True))
        for value, cell in groups:
            reversed_ = cell[cell["model_decision"].isin([GRANTED, "refused"]) & (cell["final_decision"] != cell["model_decision"])]
            against = cell[(cell["final_decision"] == GRANTED) & (cell["model_decision"] != GRANTED)]
            known = against[against["TARGET"].notna()]
            base = model_granted if column != "grade" else model_granted[model_granted["grade"] == value]
            out.append({"segment": segment, "value": str(value), "decided_by_people": len(cell), "overrides": len(reversed_),
                        "override_rate": len(reversed_) / len(cell) if len(cell) else float("nan"),
                        "granted_against_the_model": len(against), "their_outcomes": len(known),
                        "their_default_rate": float(known["TARGET"].mean()) if len(known) else float("nan"),
                        "granted_by_the_model_outcomes": len(base),
                        "model_granted_default_rate": float(base["TARGET"].mean()) if len(base) else float("nan")})
    return pd.DataFrame(out, columns=OVERRIDE_COLUMNS)


def evidently_quality(current: pd.DataFrame, reference: pd.DataFrame, path, banner: str, threshold: float) -> dict[str, float]:
    """Evidently's classification preset (ROC AUC and ROC curve, log loss, the confusion matrix
    and its rates at `threshold`, per class) as a self-contained HTML page: `current`, the granted
    applications of a vintage with their outcome, against `reference`, development's out-of-fold
    applicants the same policy grants; both with `TARGET` and `probability_of_default`. Returns
    the ROC AUC and log loss it measured on `current`, which equal the back-test's own."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    definition = DataDefinition(classification=[BinaryClassification(target="TARGET", prediction_probas="probability_of_default",
                                                                     pos_label=1)],
                                numerical_columns=["probability_of_default"], categorical_columns=["TARGET"])

    def dataset(frame: pd.DataFrame) -> Dataset:
        return Dataset.from_pandas(frame[["TARGET", "probability_of_default"]].astype({"TARGET": int}), data_definition=definition)

    result = Report([ClassificationPreset(probas_threshold=threshold)]).run(dataset(current), dataset(reference))
    path.parent.mkdir(parents=True, exist_ok=True)
    result.save_html(str(path))
    notice = f"<div style='background:#fff3cd;padding:8px;font-family:sans-serif'>{html.escape(banner)}</div>"
    path.write_text(path.read_text().replace("<body>", "<body>" + notice, 1))
    values = {m["metric_name"].split("(")[0]: m["value"] for m in result.dict()["metrics"]}
    return {"evidently_roc_auc": float(values["RocAuc"]), "evidently_log_loss": float(values["LogLoss"])}
