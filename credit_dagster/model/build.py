"""Train, calibrate, choose the threshold and audit: the whole model build as one pure function."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from credit_dagster.model import calibration, charts, fairness, global_explanation, metrics, training
from credit_dagster.model.ensemble import Ensemble
from credit_dagster.model.metadata import ModelMetadata
from credit_dagster.model.scorecard import Scorecard
from credit_dagster.model.training import DEPLOYED


@dataclass
class ModelBuild:
    model: Ensemble
    metadata: ModelMetadata  # everything the registry stores beside the artefact
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
    directions: dict[str, int] | None = None,
    never_inputs: tuple[str, ...] = (),
    progress: training.Progress | None = None,
) -> ModelBuild:
    """Cross-validate the candidates, deploy the multi-table LightGBM's fold models with a
    calibrator fitted on their out-of-fold scores, and audit it. `directions` (+1/-1 per feature,
    from the feature dictionary) become monotone constraints. `excluded` (sensitive attributes)
    and `never_inputs` (what no lender could give as a reason) are kept out of the model."""
    data = training.make_dataset(features, labels, (*excluded, *never_inputs), app_columns, directions)
    cv = training.cross_validate(data, params, progress)
    raw = cv.oof[DEPLOYED]
    model = Ensemble(cv.boosters[DEPLOYED])
    calibrator, briers = calibration.choose(raw, data.y, cv.fold_of)
    # every out-of-fold figure below (threshold, ECE, reliability, fairness, drift reference) uses
    # PDs whose calibrator did not see the applicant's fold: what the deployed model does to new applicants
    pd_oof = calibration.cross_fit(raw, data.y, cv.fold_of, calibrator.method)[0]
    threshold, cost = metrics.best_threshold(data.y, pd_oof, params.costs)
    thresholds, curve = metrics.cost_curve(data.y, pd_oof, params.costs)
    reliability = calibration.reliability_table(data.y, pd_oof)
    audit_frame = features.set_index("SK_ID_CURR").loc[data.ids]
    audits = {
        "CODE_GENDER": fairness.audit(audit_frame["CODE_GENDER"], data.y, pd_oof, threshold, params.costs),
        "age_band": fairness.audit(fairness.age_band(audit_frame["DAYS_BIRTH"]), data.y, pd_oof, threshold, params.costs),
    }
    importance = training.global_importance(model, data.X)
    refer = (max(threshold - refer_margin, 0.0), min(threshold + refer_margin, 1.0))
    comparison = cv.comparison
    deployed_row = comparison.set_index("candidate").loc[DEPLOYED]
    spread = training.seed_spread(data, params, float(deployed_row["roc_auc_pooled"]), progress) if params.stability_seeds else None
    selections = cv.selections[DEPLOYED]
    dropped_everywhere = set.intersection(*(set(s.dropped) for s in selections)) if selections else set()
    metadata = ModelMetadata(
        candidate=DEPLOYED,
        features=data.features,
        categories=data.categories,
        excluded_features=list(excluded),
        never_inputs=list(never_inputs),
        params={k: v for k, v in vars(params).items() if k != "costs"},
        costs=vars(params.costs),
        fold_rounds=cv.rounds[DEPLOYED],
        ensemble_size=len(model.boosters),
        features_used=model.used_features(),
        feature_selection={
            "candidates": len(data.features),
            "kept_per_fold": [len(s.kept) for s in selections],
            "used_by_any_fold": len(model.used_features()),
            "dropped_in_every_fold": {f: selections[0].dropped[f] for f in sorted(dropped_everywhere)},
        },
        monotone_constraints={f: d for f, d in data.directions.items() if params.monotone},
        training_rows=len(data.y),
        default_rate=float(data.y.mean()),
        data_fingerprint=fingerprint(data.ids, data.y, data.X),
        cv_metrics=deployed_row.to_dict(),
        seed_spread=spread,
        fold_auc=[float(roc_auc_score(data.y[cv.fold_of == k], raw[cv.fold_of == k])) for k in range(params.n_folds)],
        comparison=comparison.to_dict(orient="records"),
        calibration=calibrator.to_json(),
        calibration_briers=briers,
        calibration_error=metrics.expected_calibration_error(data.y, pd_oof),
        mean_predicted_pd=float(np.mean(pd_oof)),
        threshold=threshold,
        expected_cost_per_applicant=cost,
        refer_band=list(refer),
        scorecard=vars(scorecard),
        reliability=reliability,
        importance_top=importance.head(30).to_dict(orient="records"),
        # typical values of the training population, to word a reason ("higher than most applicants")
        feature_medians={c: float(v) for c, v in data.X.select_dtypes("number").median().items() if pd.notna(v)},
        fairness={k: v.to_dict(orient="records") for k, v in audits.items()},
    )
    return ModelBuild(
        model=model, metadata=metadata, comparison=comparison,
        # pd_deployed: the deployed calibrator on the same scores, the reference for nightly score drift (a
        # step-wise isotonic calibrator per fold would put the reference's PDs on other steps than the night's)
        oof=pd.DataFrame({"SK_ID_CURR": data.ids, "TARGET": data.y, "fold": cv.fold_of, "raw_score": raw, "pd": pd_oof,
                          "pd_deployed": calibrator(raw)}),
        importance=importance, fairness=audits,
        charts={
            "cost_curve": charts.cost_curve_png(thresholds, curve, threshold, refer, "Expected cost by threshold (out-of-fold)"),
            "reliability": charts.reliability_png(reliability, "Reliability (out-of-fold, calibrated)"),
            **global_explanation.charts(model, data.X, seed=params.seed),
        },
    )
