"""Model group: train and compare candidates, validate, promote a champion, write the model card."""


import dagster as dg
import numpy as np
import pandas as pd

from credit_dagster.core import settings
from credit_dagster.core.keys import CHAMPION, CREDIT_MODEL, FEATURES, LABELS, POOL
from credit_dagster.core.resources import SourceData, Warehouse
from credit_dagster.core.settings import reports_dir
from credit_dagster.features import sql_models
from credit_dagster.features.dictionary import not_inputs, protected, risk_directions
from credit_dagster.ingest.assets import is_synthetic
from credit_dagster.model import build, charts, fairness, metrics, model_card, promotion, technical_doc, training
from credit_dagster.model.resources import ModelStore
from credit_dagster.model.scorecard import Scorecard

GROUP = "model"


_PARAMS = training.TrainingParams()  # the one source of the training defaults (a test checks)
_SCORECARD = Scorecard()


class TrainingConfig(dg.Config):
    """`training.TrainingParams` as Dagster config (what each default means is said there), plus
    the policy: costs, the advisor band, the scorecard, sensitive attributes."""

    n_folds: int = _PARAMS.n_folds
    seed: int = _PARAMS.seed
    learning_rate: float = _PARAMS.learning_rate
    num_leaves: int = _PARAMS.num_leaves
    min_child_samples: int = _PARAMS.min_child_samples
    feature_fraction: float = _PARAMS.feature_fraction
    bagging_fraction: float = _PARAMS.bagging_fraction
    reg_lambda: float = _PARAMS.reg_lambda
    max_rounds: int = _PARAMS.max_rounds
    early_stopping_rounds: int = _PARAMS.early_stopping_rounds
    logreg_c: float = _PARAMS.logreg_c
    class_weight: bool = _PARAMS.class_weight
    monotone: bool = _PARAMS.monotone
    select_features: bool = _PARAMS.select_features
    selection_noise_quantile: float = _PARAMS.selection_noise_quantile
    compare_unselected: bool = _PARAMS.compare_unselected
    seeds_per_fold: int = _PARAMS.seeds_per_fold
    stability_seeds: int = _PARAMS.stability_seeds
    # empty: the settings (CREDIT_COST_FALSE_NEGATIVE, CREDIT_COST_FALSE_POSITIVE, CREDIT_REFER_MARGIN),
    # read when the run starts; a launch form's value wins for that run
    cost_false_negative: float | None = None
    cost_false_positive: float | None = None
    refer_margin: float | None = None  # refer to an advisor when |PD - threshold| < margin
    exclude_sensitive: bool = True
    base_points: float = _SCORECARD.base_points
    base_odds: float = _SCORECARD.base_odds
    points_to_double: float = _SCORECARD.points_to_double


def _or_setting(value: float | None, name: str) -> float:
    return value if value is not None else getattr(settings.current(), name)


class PromotionConfig(dg.Config):
    force: bool = False
    # a retrained model (new data) replaces the champion unless it is worse by more than this
    # ROC AUC with a 95 % interval below zero; on the same data it must be better beyond noise
    tolerance: float = 0.005


def load_training_frames(con) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The labelled applicants of the source data, and those whose repayment outcome is final
    (`outcome_labelled`), except the newest vintage, kept for the out-of-time test."""
    features = con.execute("select * from features.application_features").df()
    labels = con.execute("select * from features.application_labels").df()
    app_columns = [r[0] for r in con.execute("describe features.application_clean").fetchall()]
    learned, _ = outcome_labelled(con)
    if len(learned):
        # their features as their night computed them, in place of any computed since (the build's own table
        # holds application_test's applicants too, from data that may postdate the decision)
        features = pd.concat([features[~features["SK_ID_CURR"].isin(learned["SK_ID_CURR"])],
                              learned.drop(columns=["TARGET", "vintage"])], ignore_index=True)
        labels = pd.concat([labels, learned[["SK_ID_CURR", "TARGET"]]], ignore_index=True)
    return features, labels, app_columns


def outcome_labelled(con) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Applicants scored by a night whose outcome is final (payment difficulties, or
    CREDIT_OUTCOME_FINAL_MONTHS on book without): their features as the night computed them
    (`drop_<night>_features`, never recomputed from later data) with their TARGET. Split in two:
    the vintages a retrain learns from, and the newest vintage, which no model trains on (the
    out-of-time test of `champion_model`)."""
    empty = pd.DataFrame(columns=["SK_ID_CURR", "TARGET", "vintage"])
    has = con.execute("select count(*) from information_schema.tables where table_schema = 'outcomes' "
                      "and table_name = 'loan_outcomes'").fetchall()[0][0]
    if not has:
        return empty, empty
    rows = con.execute("""select o.SK_ID_CURR, o.TARGET, s.partition_date from outcomes.loan_outcomes o
                          join scoring.scored_applications s using (SK_ID_CURR)
                          where (o.TARGET = 1 or o.MONTHS_ON_BOOK >= ?)
                            and o.SK_ID_CURR not in (select SK_ID_CURR from features.application_labels)""",
                       [settings.current().outcome_final_months]).df()
    if rows.empty:
        return empty, empty
    frames = []
    for night, group in rows.groupby("partition_date"):
        ids = ", ".join(str(int(i)) for i in group["SK_ID_CURR"])
        schema = f"drop_{str(night)[:10].replace('-', '')}_features"
        frames.append(con.execute(f"select * from {schema}.application_features where SK_ID_CURR in ({ids})").df()
                      .merge(group[["SK_ID_CURR", "TARGET"]], on="SK_ID_CURR").assign(vintage=str(night)[:7]))
    found = pd.concat(frames, ignore_index=True)
    newest = found["vintage"].max()
    return found[found["vintage"] < newest].reset_index(drop=True), found[found["vintage"] == newest].reset_index(drop=True)


@dg.asset(key=CREDIT_MODEL, group_name=GROUP, deps=[FEATURES, LABELS], kinds={"lightgbm", "sklearn"}, pool=POOL)
def credit_model(context: dg.AssetExecutionContext, config: TrainingConfig, warehouse: Warehouse,
                 models: ModelStore, source: SourceData) -> dg.MaterializeResult:
    """Candidates compared on the same folds; the multi-table LightGBM calibrated, thresholded and registered."""
    settings = config.model_dump()
    params = training.TrainingParams(
        **{k: v for k, v in settings.items() if k in training.TrainingParams.__dataclass_fields__ and k != "costs"},
        costs=metrics.Costs(_or_setting(config.cost_false_negative, "cost_false_negative"),
                            _or_setting(config.cost_false_positive, "cost_false_positive")),
    )
    with warehouse.connect() as con:
        features, labels, app_columns = load_training_frames(con)
    sql = sql_models.discover()
    result = build.build_model(
        features, labels, excluded=protected(sql) if config.exclude_sensitive else (), app_columns=app_columns,
        params=params, refer_margin=_or_setting(config.refer_margin, "refer_margin"), never_inputs=not_inputs(sql, list(features.columns)),
        scorecard=Scorecard(config.base_points, config.base_odds, config.points_to_double),
        directions=risk_directions(sql), progress=context.log.info,
    )
    result.metadata.synthetic = is_synthetic(source.folder())
    registry = models.registry()
    version = registry.register(result.model, result.metadata, result.oof)
    folder = registry.root / version
    for name, png in result.charts.items():
        (folder / f"{name}.png").write_bytes(png)
    with warehouse.connect() as con:
        con.execute("create schema if not exists model")
        con.register("oof", result.oof.assign(model_version=version))
        con.register("comparison", result.comparison.assign(model_version=version))
        con.execute("create or replace table model.oof_predictions as select * from oof")
        con.execute("create or replace table model.candidate_comparison as select * from comparison")
    m = result.metadata
    cv = m.cv_metrics
    context.log.info(f"registered {version}: CV ROC AUC {cv['roc_auc']:.4f} (95 % interval {cv['roc_auc_low']:.4f}-"
                     f"{cv['roc_auc_high']:.4f}), threshold {m.threshold:.3f}")
    return dg.MaterializeResult(metadata={
        "model_version": version,
        "cv_roc_auc": cv["roc_auc"],
        "cv_roc_auc_interval": [round(cv["roc_auc_low"], 4), round(cv["roc_auc_high"], 4)],
        "fold_roc_auc": [round(a, 4) for a in m.fold_auc],
        "seed_spread_roc_auc": [round(a, 4) for a in m.seed_spread["roc_auc_pooled"]] if m.seed_spread else "not measured",
        "features_used": m.feature_selection["used_by_any_fold"],
        "mean_predicted_pd": m.mean_predicted_pd,
        "default_rate": m.default_rate,
        "threshold": m.threshold,
        "refer_band": m.refer_band,
        "calibration": m.calibration["method"],
        "calibration_error": m.calibration_error,
        "fold_rounds": m.fold_rounds,
        "training_rows": m.training_rows,
        "synthetic": m.synthetic,
        "comparison": dg.MetadataValue.md(result.comparison.round(4).to_markdown(index=False)),
        "cost_curve": dg.MetadataValue.md(f"![cost curve]({charts.data_uri(result.charts['cost_curve'])})"),
        "reliability": dg.MetadataValue.md(f"![reliability]({charts.data_uri(result.charts['reliability'])})"),
        "shap_beeswarm": dg.MetadataValue.md(f"![what moves the score]({charts.data_uri(result.charts['shap_beeswarm'])})"),
        "artefact": dg.MetadataValue.path(str(folder)),
    })


def _latest(models: ModelStore):
    registry = models.registry()
    return registry.load(registry.versions()[-1])


@dg.asset_check(asset=CREDIT_MODEL, blocking=True, description="Cross-validated ROC AUC above a floor (CREDIT_MIN_AUC, default 0.60).")
def auc_above_floor(models: ModelStore) -> dg.AssetCheckResult:
    model = _latest(models)
    floor = settings.current().min_auc
    auc = model.metadata.cv_metrics["roc_auc"]
    return dg.AssetCheckResult(passed=auc > floor, severity=dg.AssetCheckSeverity.ERROR,
                               description=f"{model.version}: CV ROC AUC {auc:.4f} vs floor {floor}",
                               metadata={"roc_auc": auc, "floor": floor})


@dg.asset_check(asset=CREDIT_MODEL, blocking=True,
                description="No identifier or label among the features, and no single feature that alone predicts the label.")
def no_leakage(models: ModelStore, warehouse: Warehouse) -> dg.AssetCheckResult:
    model = _latest(models)
    with warehouse.connect() as con:
        features, labels, app_columns = load_training_frames(con)
    named = [f for f in model.features if "TARGET" in f.upper() or f.upper().startswith("SK_ID")]
    data = training.make_dataset(features[["SK_ID_CURR", *model.features]], labels, (), app_columns)
    leaks = training.single_feature_leaks(data)
    problems = [f"{f} is an identifier or label" for f in named] + [f"{f} alone has ROC AUC {a}" for f, a in leaks]
    return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
                               description="; ".join(problems) or "no leaking feature",
                               metadata={"suspicious": problems})


@dg.asset_check(asset=CREDIT_MODEL, blocking=True,
                description="Expected calibration error of out-of-fold PDs under a bound (CREDIT_MAX_ECE, default 0.03).")
def calibration_error_bounded(models: ModelStore) -> dg.AssetCheckResult:
    model = _latest(models)
    bound = settings.current().max_ece
    ece = model.metadata.calibration_error
    return dg.AssetCheckResult(passed=ece < bound, severity=dg.AssetCheckSeverity.ERROR,
                               description=f"{model.version}: ECE {ece:.4f} vs bound {bound}", metadata={"ece": ece, "bound": bound})


@dg.asset_check(asset=CREDIT_MODEL, blocking=True,
                description="Mean out-of-fold PD of the deployed model within CREDIT_MAX_MEAN_PD_GAP (default 0.01) of the observed default rate.")
def mean_pd_matches_default_rate(models: ModelStore) -> dg.AssetCheckResult:
    model = _latest(models)
    bound = settings.current().max_mean_pd_gap
    predicted, observed = model.metadata.mean_predicted_pd, model.metadata.default_rate
    return dg.AssetCheckResult(passed=abs(predicted - observed) <= bound, severity=dg.AssetCheckSeverity.ERROR,
                               description=f"{model.version}: mean predicted PD {predicted:.4f} vs observed default rate {observed:.4f} "
                                           f"(gap allowed {bound})",
                               metadata={"mean_predicted_pd": predicted, "default_rate": observed, "bound": bound})


@dg.asset_check(asset=CREDIT_MODEL, blocking=True, description="Every model feature exists in features.application_features.")
def features_match_feature_table(models: ModelStore, warehouse: Warehouse) -> dg.AssetCheckResult:
    model = _latest(models)
    with warehouse.connect() as con:
        columns = {r[0] for r in con.execute("describe features.application_features").fetchall()}
    missing = [f for f in model.features if f not in columns]
    return dg.AssetCheckResult(passed=not missing, severity=dg.AssetCheckSeverity.ERROR,
                               description=f"missing from the feature table: {missing}" if missing else "all features present",
                               metadata={"missing": missing, "model_features": len(model.features)})


def fairness_flags(model) -> list[str]:
    return fairness.flags(model.metadata.fairness, fairness.configured_tolerances())


@dg.asset_check(asset=CREDIT_MODEL, description="Equal treatment by gender and age band (out-of-fold, at the threshold): clients "
                "who repaid approved about as often in every group (equal opportunity), and each group's default rate as "
                "predicted (calibration within the group). Raw approval rates (four-fifths rule) are reported beside them. Warns "
                "by default and stops automatic promotion; CREDIT_FAIRNESS_SEVERITY=error makes it fail.")
def fairness_equal_treatment(models: ModelStore) -> dg.AssetCheckResult:
    model = _latest(models)
    flags = fairness_flags(model)
    severity = dg.AssetCheckSeverity.ERROR if settings.current().fairness_severity == "error" else dg.AssetCheckSeverity.WARN
    if not flags:
        description = f"{model.version}: no group treated unequally"
    elif model.metadata.synthetic:
        description = f"{model.version}: " + "; ".join(flags) + ". SYNTHETIC data, no person concerned: signed off automatically."
    else:
        description = (f"{model.version}: " + "; ".join(flags) + ". Automatic promotion stops. The risk committee reviews the "
                       "fairness section of the model card and, if it accepts these differences as justified by risk, signs "
                       f"off: credit-dagster promote {model.version} --reason \"...\"")
    return dg.AssetCheckResult(passed=not flags, severity=severity, description=description,
                               metadata={"flags": flags, "four_fifths_rule": fairness.four_fifths(model.metadata.fairness)})


def compare_with_champion(registry, candidate, champion, features: pd.DataFrame) -> tuple[dict, bool, str]:
    """Challenger minus champion ROC AUC on the challenger's labelled applicants, paired bootstrap."""
    oof = registry.out_of_fold(candidate.version)
    champion_oof = registry.out_of_fold(champion.version)
    same_data = champion.metadata.data_fingerprint == candidate.metadata.data_fingerprint
    if same_data and champion_oof is not None:
        paired = oof.merge(champion_oof[["SK_ID_CURR", "raw_score"]], on="SK_ID_CURR", suffixes=("", "_champion"))
        basis = "out-of-fold scores of both models on the same applicants"
    else:
        # the champion may have trained on some of these rows: its AUC is optimistic, which
        # makes promotion conservative
        paired = oof.merge(features, on="SK_ID_CURR")
        paired["raw_score_champion"] = champion.raw_score(paired)
        basis = "champion re-scored on the challenger's labelled applicants"
    difference = metrics.paired_auc_difference(paired["TARGET"].to_numpy(), paired["raw_score"].to_numpy(),
                                               paired["raw_score_champion"].to_numpy())
    return difference, same_data, basis


@dg.asset(key=CHAMPION, group_name=GROUP, deps=[CREDIT_MODEL], pool=POOL)
def champion_model(context: dg.AssetExecutionContext, config: PromotionConfig, models: ModelStore,
                   warehouse: Warehouse) -> dg.MaterializeResult:
    """The `champion` alias: the new model replaces it only if it passed the blocking checks
    (this asset does not run otherwise), no fairness flag awaits a sign-off, and it is better
    than the champion beyond noise (same data) or not credibly worse (new data)."""
    registry = models.registry()
    candidate = _latest(models)
    current = registry.alias("champion")
    difference, same_data, basis, out_of_time = None, False, "no champion yet", None
    if current and current != candidate.version:
        with warehouse.connect(read_only=True) as con:
            features, _, _ = load_training_frames(con)
            _, newest = outcome_labelled(con)
        champion = registry.load(current)
        difference, same_data, basis = compare_with_champion(registry, candidate, champion, features)
        out_of_time = out_of_time_test(candidate, champion, newest)
        if out_of_time:
            registry.note(candidate.version, "out-of-time test", out_of_time["sentence"])
            context.log.info(out_of_time["sentence"])
    promote, reason = promotion.decide(difference, same_data=same_data, tolerance=config.tolerance, force=config.force,
                                       checks_passed=True, fairness_flags=fairness_flags(candidate),
                                       synthetic=bool(candidate.metadata.synthetic))
    if current == candidate.version:
        promote, reason = True, "already champion"
    elif promote:
        registry.promote(candidate.version, reason)
    context.log.info(f"{candidate.version}: {'promoted' if promote else 'not promoted'} ({reason})")
    return dg.MaterializeResult(metadata={
        "candidate": candidate.version, "champion": registry.alias("champion") or "none",
        "promoted": promote, "reason": reason, "comparison_basis": basis,
        **({"auc_difference": difference} if difference else {}),
        **({"out_of_time": {k: v for k, v in out_of_time.items() if k != "sentence"}} if out_of_time else {}),
    })


def out_of_time_test(candidate, champion, newest: pd.DataFrame) -> dict | None:
    """Both models on the newest vintage of final outcomes, which neither trained on (paired
    bootstrap of the AUC difference), when it has enough outcomes (CREDIT_BACKTEST_MIN_OUTCOMES)."""
    y = newest["TARGET"].to_numpy(int) if len(newest) else np.array([], dtype=int)
    if len(y) < settings.current().backtest_min_outcomes or not 0 < y.sum() < len(y):
        return None
    result = metrics.paired_auc_difference(y, candidate.raw_score(newest), champion.raw_score(newest))
    vintage = str(newest["vintage"].iloc[0])
    return {"vintage": vintage, "applicants": len(y), "defaults": int(y.sum()), **result,
            "sentence": (f"out of time, on vintage {vintage} ({len(y):,} applicants with a final outcome, {int(y.sum())} defaults, "
                         f"trained on by neither): {candidate.version} minus {champion.version} ROC AUC {result['difference']:+.4f} "
                         f"(95 % interval {result['low']:+.4f} to {result['high']:+.4f})")}


@dg.asset(group_name=GROUP, key=dg.AssetKey([GROUP, "model_card"]), deps=[CHAMPION], kinds={"html"})
def model_card_report(models: ModelStore) -> dg.MaterializeResult:
    """The model card of the latest model (Markdown and HTML, readable offline), and its technical
    documentation (Annex IV: Markdown, HTML and PDF)."""
    registry = models.registry()
    model = _latest(models)
    folder = registry.root / model.version
    latest = model_card.write(registry, model.version, reports_dir())
    return dg.MaterializeResult(metadata={
        "model_version": model.version, "html": dg.MetadataValue.path(str(latest)),
        "markdown": dg.MetadataValue.path(str(folder / "model_card.md")),
        "technical_documentation": dg.MetadataValue.path(str(folder / f"{technical_doc.NAME}.html")),
        "fairness_flags": fairness_flags(model),
    })


model_checks = [auc_above_floor, no_leakage, calibration_error_bounded, mean_pd_matches_default_rate, features_match_feature_table,
                fairness_equal_treatment]
