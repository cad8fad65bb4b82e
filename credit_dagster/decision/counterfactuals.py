"""What would change a refusal: the smallest change of what the client can act on (amount asked,
repayment term) that the same model would grant.

Counterfactuals are searched by changing the raw application and re-running the same feature
definitions and the same model, so every suggestion is a real re-score, not an estimate: the SQL
models, or, where the on-demand workspace has read application_features.sql's join (a `Mirror`),
application_clean in NumPy (features/application_rows.py) beside the night's own history features,
to the bit the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import duckdb
import numpy as np
import pandas as pd

from credit_dagster.core import settings, wording
from credit_dagster.core.sources import SOURCE_TABLES
from credit_dagster.decision import scoring
from credit_dagster.features import application_rows, sql_models
from credit_dagster.model.ensemble import as_float
from credit_dagster.model.registry import RegisteredModel
from credit_dagster.model.training import to_model_frame

AMOUNT_STEPS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5)  # share of the requested amount
TERM_STEPS = (1.0, 1.25, 1.5, 2.0)  # repayment term stretched by this factor (annuity divided by it)
COLUMNS = ["SK_ID_CURR", "cf_amount", "cf_term", "cf_pd", "counterfactual"]


def steps() -> pd.DataFrame:
    """The changes searched: every (share of the amount, stretch of the term) but no change."""
    return pd.DataFrame([(a, t) for a in AMOUNT_STEPS for t in TERM_STEPS if (a, t) != (1.0, 1.0)], columns=["amount", "term"])


def variants_sql(application: str, ids: str, steps: str, per_applicant: bool = False) -> str:
    """The raw applications of the ids in relation `ids`, once per step (amount, term) of relation
    `steps` (or, `per_applicant`, per row of `steps` with its SK_ID_CURR), with the amount and
    repayment changed and the step kept as cf_amount and cf_term."""
    steps_join = f"join {steps} s using (SK_ID_CURR)" if per_applicant else f"cross join {steps} s"
    return f"""select a.* replace (a.AMT_CREDIT * s.amount as AMT_CREDIT, a.AMT_ANNUITY * s.amount / s.term as AMT_ANNUITY),
                      s.amount as cf_amount, s.term as cf_term
               from {application} a join {ids} using (SK_ID_CURR) {steps_join}"""


def variant_names(model: RegisteredModel) -> list[str]:
    """What the search reads of the re-scored variants."""
    return list(dict.fromkeys(["SK_ID_CURR", "cf_amount", "cf_term", "AMT_CREDIT", "AMT_ANNUITY", *model.features]))


def variant_columns(model: RegisteredModel) -> str:
    """`variant_names`, as SQL selects them."""
    return ", ".join(f'"{c}"' for c in variant_names(model))


def closest_granted(model: RegisteredModel, variants: pd.DataFrame, matrix: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per applicant, the granted variant with the smallest change: least amount given up,
    then least term stretch. `matrix`: the variants' `model.matrix`, when the caller has it."""
    cf_pd = model.calibrator(model.ensemble.raw_score(model.matrix(variants) if matrix is None else matrix))
    granted = np.flatnonzero(scoring.policy_of(model).decide(cf_pd) == scoring.GRANTED)
    ids = variants["SK_ID_CURR"].to_numpy()[granted]
    change = ((1 - variants["cf_amount"]) + 0.1 * (variants["cf_term"] - 1)).to_numpy()[granted]
    order = np.lexsort((change, ids))  # by applicant, then change; stable, as pandas' sort on two keys
    first = order[np.r_[True, ids[order][1:] != ids[order][:-1]]] if len(order) else order
    rows = granted[first]
    return variants.iloc[rows].assign(cf_pd=cf_pd[rows])[["SK_ID_CURR", "cf_amount", "cf_term", "cf_pd", "AMT_CREDIT", "AMT_ANNUITY"]]


def describe(ids: list[int], best: list[pd.DataFrame], model: RegisteredModel) -> pd.DataFrame:
    """One row per id: the closest granted change found (or none) and its sentence."""
    result = pd.DataFrame({"SK_ID_CURR": ids}).merge(pd.concat(best), on="SK_ID_CURR", how="left")
    result["counterfactual"] = [_describe(r, model.metadata.refer_band) for r in result.itertuples()]
    return result.drop(columns=["AMT_CREDIT", "AMT_ANNUITY"])


def search(
    con: duckdb.DuckDBPyConnection,
    model: RegisteredModel,
    drop_schema: str,
    ids: list[int],
    work_schema: str = "cf",
    chunk: int = 5_000,
    progress: Callable[[str], None] | None = None,
    mirror: application_rows.Mirror | None = None,
) -> pd.DataFrame:
    """For each applicant id, the smallest change of amount and term that makes it granted: the
    answer of the whole grid of `steps()` (`closest_granted`), found by bisection.

    The model is monotone in the amount asked (its constraints; `test_the_bisection_finds_what_the_grid_finds`
    checks every refused applicant of a night, synthetic and real): for each term, the largest
    share of the amount that is granted is found in at most five rounds instead of trying all nine, all
    applicants and terms of a chunk at once. Changing the amount asked changes no history: a
    variant keeps the night's history features (`{drop_schema}_features`) and only what reads the
    application is computed again, by `mirror` in NumPy when given, else by the SQL models rebuilt
    in `work_schema`. Chunks bound the memory on a large night; `progress` hears of each chunk done."""
    if not ids:
        return pd.DataFrame(columns=COLUMNS)
    by_sql = _by_sql(con, model, drop_schema, work_schema) if mirror is None else None
    best, started = [], time.perf_counter()
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        best.append(_bisect(part, by_sql or _in_numpy(con, model, drop_schema, part, mirror)))
        if progress:
            done = min(start + chunk, len(ids))
            progress(f"counterfactual search: {done:,} of {len(ids):,} applicants, {sum(map(len, best)):,} with a change found "
                     f"({time.perf_counter() - started:.0f} s)")
    if by_sql:
        con.execute(f"drop schema {work_schema}_raw cascade")
        con.execute(f"drop schema {work_schema}_features cascade")
    return describe(ids, best, model)


def _scored(model: RegisteredModel, variants: pd.DataFrame) -> pd.DataFrame:
    """The variants' columns with their cf_pd and whether they are granted."""
    cf_pd = model.calibrator(model.ensemble.raw_score(model.matrix(variants)))
    return variants.assign(cf_pd=cf_pd, granted=scoring.policy_of(model).decide(cf_pd) == scoring.GRANTED)


def _by_sql(con: duckdb.DuckDBPyConnection, model: RegisteredModel, drop_schema: str,
            work_schema: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Variants re-scored through the SQL models that read the application, rebuilt in
    `work_schema`_raw and _features over the drop's other tables and the night's history features."""
    raw, feats = f"{work_schema}_raw", f"{work_schema}_features"
    models = sql_models.discover()
    rebuilt = [m for m in models if m.name in scoring.models_reading(models, "application_test")]
    con.execute(f"create schema if not exists {raw}")
    con.execute(f"create schema if not exists {feats}")
    for name in ("application_train", *[t for t in SOURCE_TABLES if t not in ("application_train", "application_test")]):
        con.execute(f"create or replace view {raw}.{name} as select * from {drop_schema}.{name}")
    for m in models:
        if m not in rebuilt:
            con.execute(f"create or replace view {feats}.{m.name} as select * from {drop_schema}_features.{m.name}")

    def granted_variants(pairs: pd.DataFrame) -> pd.DataFrame:
        """`pairs` (SK_ID_CURR, amount, term) re-scored: their variants' columns, cf_pd and granted."""
        con.register("cf_pairs", pairs)
        con.execute(f"create or replace table {raw}.application_test as "
                    + variants_sql(f"{drop_schema}.application_test", "(select distinct SK_ID_CURR from cf_pairs)", "cf_pairs",
                                   per_applicant=True))
        for m in rebuilt:
            sql_models.build_model(con, m, schemas={"raw": raw, "features": feats})
        return _scored(model, scoring.frame(con, f"select {variant_columns(model)} from {feats}.application_features"))

    return granted_variants


def _in_numpy(con: duckdb.DuckDBPyConnection, model: RegisteredModel, drop_schema: str, ids: list[int],
              mirror: application_rows.Mirror) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Variants of applicants `ids` re-scored with application_clean in NumPy: the model's matrix
    of each applicant's night features, read once, with only the numbers the application gives
    made again (its history, and the categories, no change of amount touches). The rebuilt SQL
    models' answers to the bit (`test_the_bisection_finds_what_the_grid_finds_*` compares them
    with the SQL grid's)."""
    con.register("cf_ids", pd.DataFrame({"SK_ID_CURR": ids}))
    try:
        raw = con.execute(f"select * from {drop_schema}.application_test where SK_ID_CURR in (select SK_ID_CURR from cf_ids) "
                          "order by SK_ID_CURR").to_arrow_table()
        night = scoring.frame(con, f"select * from {drop_schema}_features.application_features "
                                   "where SK_ID_CURR in (select SK_ID_CURR from cf_ids) order by SK_ID_CURR")
    finally:
        con.unregister("cf_ids")
    applications = application_rows.arrays(raw)
    if not np.array_equal(applications["SK_ID_CURR"], np.unique(ids)) or not np.array_equal(night["SK_ID_CURR"], np.unique(ids)):
        raise ValueError(f"{drop_schema}: the applicants searched are not each once in the drop and its features")
    matrix = as_float(model.matrix(night))
    made = [c for c in model.features if c not in mirror.joined and c not in model.metadata.categories]
    at_made = [model.features.index(c) for c in made]

    def granted_variants(pairs: pd.DataFrame) -> pd.DataFrame:
        at = np.searchsorted(applications["SK_ID_CURR"], pairs["SK_ID_CURR"].to_numpy())
        columns = application_rows.variants(applications, at, pairs["amount"].to_numpy(dtype=float), pairs["term"].to_numpy(dtype=float))
        values = matrix[at]
        values[:, at_made] = as_float(to_model_frame(pd.DataFrame({c: columns[c] for c in made}), made, {}))
        cf_pd = model.calibrator(model.ensemble.raw_score(pd.DataFrame(values, columns=model.features, copy=False)))
        return pd.DataFrame({"SK_ID_CURR": columns["SK_ID_CURR"], "cf_amount": columns["cf_amount"], "cf_term": columns["cf_term"],
                             "AMT_CREDIT": columns["AMT_CREDIT"], "AMT_ANNUITY": columns["AMT_ANNUITY"], "cf_pd": cf_pd,
                             "granted": scoring.policy_of(model).decide(cf_pd) == scoring.GRANTED})

    return granted_variants


def _bisect(ids: list[int], granted_variants: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    """Per applicant, `closest_granted`'s choice among the grid, by bisection over the amount for
    each term: in AMOUNT_STEPS (largest first) the first granted share lies in [low, high), high
    meaning none; the unchanged application (1, 1) is known refused."""
    amounts = np.asarray(AMOUNT_STEPS)
    searches = pd.DataFrame([(i, t) for i in ids for t in TERM_STEPS], columns=["SK_ID_CURR", "term"])
    low = np.where(searches["term"].to_numpy() == 1.0, 1, 0)
    high = np.full(len(searches), len(amounts))
    found: list[pd.DataFrame] = []
    # first the smallest amount of each term: when even that is refused no amount of the term is
    # granted, and most searches of a night end there, after one variant instead of four
    mid = np.full(len(searches), len(amounts) - 1)
    while (open_ := low < high).any():
        asked = searches[open_].assign(amount=amounts[mid[open_]])
        scored = asked[["SK_ID_CURR", "amount", "term"]].merge(
            granted_variants(asked[["SK_ID_CURR", "amount", "term"]]),
            left_on=["SK_ID_CURR", "amount", "term"], right_on=["SK_ID_CURR", "cf_amount", "cf_term"], how="left")
        yes = scored["granted"].fillna(False).to_numpy(dtype=bool)
        found.append(scored[yes])
        rows = np.flatnonzero(open_)
        high[rows[yes]] = mid[rows[yes]]
        low[rows[~yes]] = mid[rows[~yes]] + 1
        mid = (low + high) // 2
    answers = searches.assign(amount=np.where(high < len(amounts), amounts[np.minimum(high, len(amounts) - 1)], np.nan))
    answers = answers.dropna(subset=["amount"])
    if answers.empty:  # typed as a found one would be: the night merges it on SK_ID_CURR
        return pd.DataFrame({"SK_ID_CURR": pd.Series(dtype="int64"),
                             **{c: pd.Series(dtype="float64") for c in ("cf_amount", "cf_term", "cf_pd", "AMT_CREDIT", "AMT_ANNUITY")}})
    # the grid's choice: the smallest change, ties to the larger amount, then the shorter term (its order)
    answers = answers.assign(change=(1 - answers["amount"]) + 0.1 * (answers["term"] - 1))
    answers = answers.sort_values(["SK_ID_CURR", "change", "amount", "term"], ascending=[True, True, False, True], kind="stable")
    chosen = answers.drop_duplicates("SK_ID_CURR")[["SK_ID_CURR", "amount", "term"]]
    variants = pd.concat(found).drop_duplicates(["SK_ID_CURR", "cf_amount", "cf_term"])
    return chosen.merge(variants, left_on=["SK_ID_CURR", "amount", "term"], right_on=["SK_ID_CURR", "cf_amount", "cf_term"])[
        ["SK_ID_CURR", "cf_amount", "cf_term", "cf_pd", "AMT_CREDIT", "AMT_ANNUITY"]]


def attach(scored: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    """`scored` with each row's counterfactual sentence; an application held back for an advisor
    has none searched: it must be completed or corrected first."""
    scored = scored.merge(found[["SK_ID_CURR", "counterfactual"]], on="SK_ID_CURR", how="left")
    scored.loc[scored["held_back"], "counterfactual"] = HELD
    return scored


HELD = "The application must be completed or corrected first; an advisor then decides."


def _describe(row, band: list[float]) -> str:
    if pd.isna(row.cf_amount):
        return (f"No change within reasonable bounds (down to {min(AMOUNT_STEPS):.0%} of the amount asked, "
                f"up to {max(TERM_STEPS):g} times the repayment term) would lead to approval.")
    parts, currency = [], settings.current().currency  # every amount a client reads says its currency
    if row.cf_amount < 1:
        parts.append(f"borrowing {1 - row.cf_amount:.0%} less ({wording.money(row.AMT_CREDIT, currency)} instead of the amount asked; "
                     "a larger down payment does the same)")
    if row.cf_term > 1:
        parts.append(f"repaying over a {row.cf_term:g} times longer term (instalment {wording.money(row.AMT_ANNUITY, currency)})")
    return ("Would be granted when " + " and ".join(parts)
            + f": estimated probability of default {wording.percents(row.cf_pd, *band)[0]}, under {wording.percents(row.cf_pd, *band)[1]}.")
