"""Train, calibrate, choose the threshold and audit: the whole model build as one pure function."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from credit_dagster.ml import calibration, charts, fairness, metrics, training
from credit_dagster.ml.scorecard import Scorecard

DEPLOYED = "lightgbm_all_tables"


@dataclass
class ModelBuild:
    booster: lgb.Booster
    metadata: dict  # everything the registry stores beside the artefact
    comparison: pd.DataFrame
    oof: pd.DataFrame  # SK_ID_CURR, TARGET, raw score and calibrated PD of the deployed candidate
    importance: pd.DataFrame
    fairness: dict[str, pd.DataFrame]
    charts: dict[str, bytes]


def fingerprint(ids: np.ndarray, y: np.ndarray, X: pd.DataFrame) -> str:
    """Hash of the labelled rows and every feature value: same data, same fingerprint."""
    digest = hashlib.sha256()
    digest.update(np.asarray(ids, dtype=np.int64).tobytes())
    digest.update(np.asarray(y, dtype=np.int8).tobytes())
    digest.update(",".join(X.columns).encode())
    digest.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def build_model(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    excluded: tuple[str, ...],
    app_columns: list[str],
    params: training.TrainingParams,
    refer_margin: float,
    scorecard: Scorecard,
) -> ModelBuild:
    data = training.make_dataset(features, labels, excluded, app_columns)
    comparison, oof_raw, rounds = training.cross_validate(data, params)
    raw = oof_raw[DEPLOYED]
    calibrator, briers = calibration.choose(raw, data.y, params.seed)
    pd_oof = calibrator(raw)
    threshold, cost = metrics.best_threshold(data.y, pd_oof, params.costs)
    thresholds, curve = metrics.cost_curve(data.y, pd_oof, params.costs)
    # the final model: all labelled rows; the rounds the folds chose, scaled up a little
    # because the final fit sees 1/(k-1) more data than each fold did
    final_rounds = max(1, int(rounds[DEPLOYED] * (1 + 1 / (params.n_folds - 1))))
    booster, _ = training.fit_lightgbm(data.X, data.y, params, rounds=final_rounds)
    reliability = calibration.reliability_table(data.y, pd_oof)
    audit_frame = features.set_index("SK_ID_CURR").loc[data.ids]
    audits = {
        "CODE_GENDER": fairness.audit(audit_frame["CODE_GENDER"], data.y, pd_oof, threshold, params.costs),
        "age_band": fairness.audit(fairness.age_band(audit_frame["DAYS_BIRTH"]), data.y, pd_oof, threshold, params.costs),
    }
    importance = training.global_importance(booster, data.X)
    refer = (max(threshold - refer_margin, 0.0), min(threshold + refer_margin, 1.0))
    metadata = {
        "candidate": DEPLOYED,
        "features": data.features,
        "categories": data.categories,
        "excluded_features": list(excluded),
        "params": {k: v for k, v in vars(params).items() if k != "costs"},
        "costs": vars(params.costs),
        "final_rounds": final_rounds,
        "training_rows": len(data.y),
        "default_rate": float(data.y.mean()),
        "data_fingerprint": fingerprint(data.ids, data.y, data.X),
        "cv_metrics": comparison.set_index("candidate").loc[DEPLOYED].to_dict(),
        "comparison": comparison.to_dict(orient="records"),
        "calibration": calibrator.to_json(),
        "calibration_briers": briers,
        "calibration_error": metrics.expected_calibration_error(data.y, pd_oof),
        "threshold": threshold,
        "expected_cost_per_applicant": cost,
        "refer_band": list(refer),
        "scorecard": vars(scorecard),
        "reliability": reliability,
        "importance_top": importance.head(30).to_dict(orient="records"),
        # typical values of the training population, to word a reason ("higher than most applicants")
        "feature_medians": {c: float(v) for c, v in data.X.select_dtypes("number").median().items() if pd.notna(v)},
        "fairness": {k: v.to_dict(orient="records") for k, v in audits.items()},
    }
    return ModelBuild(
        booster=booster, metadata=metadata, comparison=comparison,
        oof=pd.DataFrame({"SK_ID_CURR": data.ids, "TARGET": data.y, "raw_score": raw, "pd": pd_oof}),
        importance=importance, fairness=audits,
        charts={
            "cost_curve": charts.cost_curve_png(thresholds, curve, threshold, refer, "Expected cost by threshold (out-of-fold)"),
            "reliability": charts.reliability_png(reliability, "Reliability (out-of-fold, calibrated)"),
        },
    )
