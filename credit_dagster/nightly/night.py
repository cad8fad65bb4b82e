"""A night's scoring, whatever the storage: the drop's features scored by the champion, with
reasons and counterfactuals (`score`), then written to the warehouse file (`write_warehouse`)
or, by a shard's worker, to the Parquet datasets (`shards.score_shard`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pandas as pd

from credit_dagster.core import refer_all, seals
from credit_dagster.decision import counterfactuals, ondemand, scoring
from credit_dagster.model.registry import RegisteredModel
from credit_dagster.nightly import partitions

DETAIL_COLUMNS = [
    "NAME_CONTRACT_TYPE", "AMT_CREDIT", "AMT_ANNUITY", "AMT_GOODS_PRICE", "AMT_INCOME_TOTAL", "NAME_INCOME_TYPE",
    "NAME_EDUCATION_TYPE", "OCCUPATION_TYPE", "NAME_HOUSING_TYPE", "CNT_FAM_MEMBERS", "APP_AGE_YEARS", "APP_YEARS_EMPLOYED",
]


@dataclass
class ScoredNight:
    """The tables a night adds, each with its partition_date: `tables` (name in schema scoring ->
    rows; `scored_applications` is also appended to `decision_audit`) and what the run reports."""

    tables: dict[str, pd.DataFrame]
    unknown: dict[str, list[str]] = field(default_factory=dict)
    searched: int = 0
    found: int = 0

    @property
    def scored(self) -> pd.DataFrame:
        return self.tables["scored_applications"]

    def metadata(self, model: RegisteredModel) -> dict:
        scored = self.scored
        return {"dagster/row_count": len(scored), "decisions": scored["decision"].value_counts().to_dict(),
                "model_version": model.version, "mean_pd": float(scored["probability_of_default"].mean()),
                "counterfactuals_found": self.found, "counterfactuals_searched": self.searched,
                "unknown_category_values": self.unknown, "refer_everything": bool(scored["refer_everything"].any())}


def score(con: duckdb.DuckDBPyConnection, schema: str, model: RegisteredModel, dictionary: pd.DataFrame, day: str,
          run_id: str, log: Callable[[str], None], warn: Callable[[str], None]) -> ScoredNight:
    """Score the applications of `<schema>_features.application_features` (the drop `schema`
    holds their raw rows, for the counterfactual search)."""
    features = scoring.frame(con, f"select * from {schema}_features.application_features")
    if features.empty:
        raise ValueError(f"drop {day} has no application left to score (empty, or all quarantined): see {schema}.quarantine")
    scored, contributions = scoring.score_and_explain(model, features, dictionary)
    if scored["refer_everything"].any():  # the night's log says so, with who set it and why
        warn(f"{refer_all.state().sentence()}: every decision of night {day} is referred to an advisor")
    unknown = scoring.unknown_categories(model, features)
    if unknown:
        warn(f"category values unseen in training, scored as missing: {unknown}")
    to_search = scored.loc[(scored["decision"] != scoring.GRANTED) & ~scored["held_back"], "SK_ID_CURR"].tolist()
    log(f"scored {len(scored):,} applications; searching a counterfactual for the {len(to_search):,} not granted")
    cf = counterfactuals.search(con, model, schema, to_search, work_schema=f"cf_{schema}", progress=log, mirror=ondemand.mirror())
    scored = counterfactuals.attach(scored, cf).assign(
        partition_date=day, **scoring.policy_columns(model), scored_at=datetime.now(UTC).replace(tzinfo=None), run_id=run_id)
    top = [r["feature"] for r in model.metadata.importance_top[:15] if r["feature"] in model.metadata.feature_medians]
    tables = {
        "scored_applications": scored,
        "applicant_details": features[["SK_ID_CURR", *[c for c in DETAIL_COLUMNS if c in features]]].assign(partition_date=day),
        "applicant_features": features.melt(id_vars="SK_ID_CURR", value_vars=top, var_name="feature",
                                            value_name="value").assign(partition_date=day),
        "applicant_contributions": contributions.assign(partition_date=day),
        # the application as submitted, for the dashboard's what-if (it never reads the drop)
        "applications": scoring.frame(con, f"select *, '{day}' as partition_date from {schema}.application_test"),
    }
    return ScoredNight(tables, unknown, len(to_search), int(cf["cf_amount"].notna().sum()) if len(cf) else 0)


def write_warehouse(con: duckdb.DuckDBPyConnection, night: ScoredNight, day: str) -> dict:
    """The night's rows into the warehouse in one transaction: each table's rows of the day
    replaced whole, the audit trail only grows; then the run's audit rows sealed (`seals`): the seal."""
    views = [r[0] for r in con.execute("select table_name from information_schema.tables where table_schema = 'scoring' "
                                       "and table_type = 'VIEW' order by 1").fetchall()]
    if views:  # published from the datasets (shards.publish): its nights live there
        raise ValueError(f"this warehouse's nights are on the Parquet datasets (scoring.{', scoring.'.join(views)} are views on "
                         "them): score with CREDIT_STORAGE=datasets, or start a new warehouse")
    con.execute("create schema if not exists scoring")
    for name in ("scored_applications", "decision_audit"):
        partitions.create_or_extend(con, f"scoring.{name}", scoring.DECISION_COLUMNS)
    columns = [r[0] for r in con.execute("describe scoring.scored_applications").fetchall()]
    con.register("scored_df", night.scored[columns])
    con.execute("begin transaction")
    for name, frame in night.tables.items():
        partitions.replace_partition(con, f"scoring.{name}", frame[columns] if name == "scored_applications" else frame, day,
                                     in_transaction=True)
    con.execute("insert into scoring.decision_audit by name select * from scored_df")
    con.execute("commit")
    return seals.seal(con, day, str(night.scored["run_id"].iloc[0]))
