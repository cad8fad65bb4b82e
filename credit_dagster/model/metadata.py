"""What the registry records of a model (`metadata.json`), typed: one field each, read by name.

Written by `build.build_model` (the registry adds version, time and code version), read back
with `from_json`. A registry written by an older release still reads: a field it lacks takes
its default below, and a key this release no longer knows is left aside.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class ModelMetadata:
    # what the deployed model reads and how
    candidate: str = ""
    features: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)  # the category levels of each categorical feature
    excluded_features: list[str] = field(default_factory=list)  # sensitive attributes kept out
    never_inputs: list[str] = field(default_factory=list)  # what no lender could give as a reason
    params: dict = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    fold_rounds: list[int] = field(default_factory=list)
    ensemble_size: int = 0
    features_used: list[str] = field(default_factory=list)
    feature_selection: dict = field(default_factory=dict)
    monotone_constraints: dict[str, int] = field(default_factory=dict)
    # the data it learned from
    training_rows: int = 0
    default_rate: float = 0.0
    data_fingerprint: str = ""
    synthetic: bool = False
    # how good it is (out of fold)
    cv_metrics: dict[str, float] = field(default_factory=dict)
    seed_spread: dict | None = None
    fold_auc: list[float] = field(default_factory=list)
    comparison: list[dict] = field(default_factory=list)
    calibration: dict = field(default_factory=dict)  # the calibrator, as `Calibrator.to_json` writes it
    calibration_briers: dict[str, float] = field(default_factory=dict)
    calibration_error: float = 0.0
    mean_predicted_pd: float = 0.0
    # the policy
    threshold: float = 0.0
    expected_cost_per_applicant: float = 0.0
    refer_band: list[float] = field(default_factory=list)
    scorecard: dict = field(default_factory=dict)
    # explanations and audits
    reliability: list[dict] = field(default_factory=list)
    importance_top: list[dict] = field(default_factory=list)
    feature_medians: dict[str, float] = field(default_factory=dict)  # typical values, to word a reason
    fairness: dict[str, list[dict]] = field(default_factory=dict)
    # set by the registry
    version: str = ""
    created_at: str = ""
    code_version: str = ""
    tables: dict = field(default_factory=dict)  # the TreeSHAP tables' file and SHA-256 (none from an earlier release)

    @classmethod
    def from_json(cls, values: dict) -> ModelMetadata:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_json(self) -> dict:
        return asdict(self)
