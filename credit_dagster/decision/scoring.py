"""Scoring a batch of applications: probability, points, grade, decision and reasons in plain language.

Reasons come from the model's own log-odds contributions (TreeSHAP), grouped and worded with
the feature dictionary (`reasons`), never naming a protected attribute. An incomplete or
implausible application (`plausibility`) is scored but referred to an advisor, never granted.
What would change a decision is `counterfactuals`.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from functools import lru_cache

import duckdb
import numpy as np
import pandas as pd

from credit_dagster.core import plausibility, refer_all, settings
from credit_dagster.decision.reasons import N_REASONS, Explainer
from credit_dagster.features import sql_models
from credit_dagster.model.registry import RegisteredModel
from credit_dagster.model.scorecard import Scorecard

# `frame` reads a DB-API result as Arrow on purpose (see there): the copy DuckDB warns of is
# cheaper than planning the query twice
warnings.filterwarnings("ignore", message=r"\s*Arrow output on a DB-API result", category=UserWarning)

GRANTED, REFUSED, REFER = "granted", "refused", "refer to an advisor"
# The columns of a stored decision (scoring.scored_applications, scoring.decision_audit and the
# on-demand audit trail): enough to re-state any decision and the model and policy behind it.
DECISION_COLUMNS = {
    "partition_date": "varchar", "SK_ID_CURR": "bigint", "probability_of_default": "double", "points": "integer",
    "grade": "varchar", "decision": "varchar", **{f"reason_{i}": "varchar" for i in range(1, N_REASONS + 1)},
    "reason_features": "varchar", "history_note": "varchar", "counterfactual": "varchar", "raw_score": "double", "features_fingerprint": "varchar",
    "model_version": "varchar", "threshold": "double", "refer_low": "double", "refer_high": "double",
    "calibration": "varchar", "scored_at": "timestamp", "run_id": "varchar",
}


@dataclass(frozen=True)
class Policy:
    """Granted under `low`, refused from `high`, an advisor decides between: the very bounds
    stored beside each decision (refer_low, refer_high), so the sentence that states them and the
    decision can never disagree by a rounding of the threshold and its margin."""

    low: float
    high: float

    def decide(self, pd_: np.ndarray) -> np.ndarray:
        pd_ = np.asarray(pd_, dtype=float)
        return np.where(pd_ < self.low, GRANTED, np.where(pd_ >= self.high, REFUSED, REFER)).astype(object)


def policy_columns(model: RegisteredModel) -> dict:
    """The model and policy behind a decision, as stored beside it."""
    low, high = model.metadata.refer_band
    return {"model_version": model.version, "threshold": model.threshold, "refer_low": low, "refer_high": high,
            "calibration": model.metadata.calibration["method"]}


def reasons_of(row) -> list[str]:
    """The reasons of a stored decision (reason_1..reason_4), without the empty ones."""
    return [r for r in (row.get(f"reason_{i}") for i in range(1, N_REASONS + 1)) if isinstance(r, str)]


def policy_of(model: RegisteredModel) -> Policy:
    low, high = model.metadata.refer_band
    return Policy(low=low, high=high)


def fingerprints(frame: pd.DataFrame) -> list[str]:
    """A short hash of each row's feature values, for the audit trail: the sha256 of pandas'
    row hash (`pd.util.hash_pandas_object(frame, index=False)`), computed as pandas does, but
    with the float columns hashed in one block: column by column, pandas spends more time
    on a few rows than the model takes to score them. Floats are hashed at single precision
    (7 significant digits): a sum over an applicant's history differs in its last bit with the
    order DuckDB adds the rows in (a sharded night adds them in another order), and the same
    features must keep the same fingerprint."""
    floats = [j for j, dtype in enumerate(frame.dtypes) if dtype == np.float64]
    columns = np.empty((frame.shape[1], len(frame)), dtype=np.uint64)
    if floats:
        single = frame.iloc[:, floats].to_numpy(dtype=np.float64).astype(np.float32).astype(np.float64)
        block = np.ascontiguousarray(single.T)
        columns[floats] = pd.util.hash_array(block.ravel()).reshape(block.shape)
    for j in sorted(set(range(frame.shape[1])) - set(floats)):
        column = frame.iloc[:, j]
        if isinstance(column.dtype, pd.CategoricalDtype):  # as pandas: the hash of the level, u8max if missing
            codes = column.cat.codes.to_numpy()
            columns[j] = np.where(codes >= 0, _level_hashes(column.dtype).take(np.maximum(codes, 0)), np.iinfo(np.uint64).max)
        else:
            columns[j] = pd.util.hash_pandas_object(column, index=False).to_numpy()
    # pandas' combine_hash_arrays (CPython's tuple hash), over the columns in order
    hashes, mult = np.full(len(frame), 0x345678, dtype=np.uint64), np.uint64(1000003)
    for i, column in enumerate(columns):
        hashes ^= column
        hashes *= mult
        mult += np.uint64(82520 + 2 * (len(columns) - i))
    hashes += np.uint64(97531)
    return [hashlib.sha256(h.tobytes()).hexdigest()[:16] for h in hashes]


@lru_cache(maxsize=256)
def _level_hashes(dtype: pd.CategoricalDtype) -> np.ndarray:
    # the model's category types are made once per set of levels, so this is hashed once each
    return pd.util.hash_array(np.asarray(dtype.categories._values), categorize=False)


def unknown_categories(model: RegisteredModel, features: pd.DataFrame) -> dict[str, list[str]]:
    """Category values the model never saw in training, per column (they are scored as missing)."""
    unknown = {}
    for col, known in model.metadata.categories.items():
        if col in features:
            values = set(features[col].dropna().astype(str)) - set(known)
            if values:
                unknown[col] = sorted(values)
    return unknown


def score_frame(model: RegisteredModel, features: pd.DataFrame, dictionary: pd.DataFrame,
                matrix: pd.DataFrame | None = None, switch: refer_all.Switch | None = None) -> pd.DataFrame:
    """Score rows of application_features: PD, points, grade, decision, reasons, fingerprint.
    `matrix`: their `model.matrix`, when the caller has it already; `switch`: "refer everything"
    as it stood (a replay), else as it stands now."""
    return _score(model, features, model.matrix(features) if matrix is None else matrix, dictionary, switch)[0]


def score_and_explain(
    model: RegisteredModel, features: pd.DataFrame, dictionary: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`score_frame`, and each row's groups that moved the score most (`Explainer.bars`)."""
    matrix = model.matrix(features)
    out, contributions = _score(model, features, matrix, dictionary)
    bars = explainer(model, dictionary).bars(out["SK_ID_CURR"].to_numpy(), contributions, matrix, features)
    return out, bars


def explainer(model: RegisteredModel, dictionary: pd.DataFrame) -> Explainer:
    """The model's explainer for this dictionary and currency, built once (the API asks per round)."""
    currency = settings.current().currency
    key = (model.version, currency, int(pd.util.hash_pandas_object(dictionary, index=False).sum()))
    if key not in _explainers:
        _explainers.clear()  # one champion at a time
        _explainers[key] = Explainer(model.features, dictionary, model.metadata.feature_medians, currency)
    return _explainers[key]


_explainers: dict[tuple, Explainer] = {}


def held_back(features: pd.DataFrame, switch: refer_all.Switch = refer_all.OFF) -> list[str | None]:
    """Per row, why the model alone may not decide it (incomplete, implausible, or a supervisor
    switched "refer everything" on), or None."""
    missing, broken = plausibility.missing_required(features), plausibility.problems(features)
    return [plausibility.referral_reason(m, b) or (refer_all.REASON if switch.on else None) for m, b in zip(missing, broken, strict=True)]


def _score(model: RegisteredModel, features: pd.DataFrame, matrix: pd.DataFrame,
           dictionary: pd.DataFrame, switch: refer_all.Switch | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    contributions = model.ensemble.contributions(matrix)
    raw = contributions.sum(axis=1)
    pd_ = model.calibrator(raw)
    card = Scorecard(**{k: tuple(v) if isinstance(v, list) else v for k, v in model.metadata.scorecard.items()})
    texts, names, notes = explainer(model, dictionary).reasons(contributions, matrix, features)
    switch = refer_all.state() if switch is None else switch  # read at every scoring: it takes effect on the next round or night
    held = np.array(held_back(features, switch), dtype=object)
    # held back: referred, with why first, then what weighed most
    is_held = np.not_equal(held, None)
    decision = np.where(is_held, REFER, policy_of(model).decide(pd_)).astype(object)
    texts[is_held] = np.column_stack([held[is_held], texts[is_held, :-1]])
    names[is_held] = np.column_stack([np.full(is_held.sum(), "application", dtype=object), names[is_held, :-1]])
    out = pd.DataFrame({
        "SK_ID_CURR": features["SK_ID_CURR"].to_numpy(),
        "raw_score": raw, "probability_of_default": pd_,
        "points": card.points(pd_), "grade": card.grades(pd_), "decision": decision,
        "features_fingerprint": fingerprints(matrix),
    })
    for i in range(N_REASONS):
        out[f"reason_{i + 1}"] = texts[:, i]
    out["reason_features"] = [",".join(n for n in row if n is not None) for row in names.tolist()]
    out["history_note"] = notes
    out["held_back"] = is_held
    out["refer_everything"] = switch.on
    return out, contributions


def frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """A query's rows through Arrow: on a few rows DuckDB's `df()` spends more time filling
    null masks column by column than the query itself (the model matrix is the same), and
    a relation (`con.sql`) would plan the query twice, once to bind it and once to run it."""
    return con.execute(sql).to_arrow_reader().read_all().to_pandas()


def models_reading(models: list[sql_models.SqlModel], table: str) -> set[str]:
    """Names of the models that read raw `table`, directly or through other models."""
    affected = {m.name for m in models if ("raw", table) in m.sources}
    for model in models:  # build order: a model comes after everything it refs
        if affected & set(model.refs):
            affected.add(model.name)
    return affected
