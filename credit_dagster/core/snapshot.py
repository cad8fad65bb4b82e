"""The serving snapshot: a separate, read-only DuckDB file the dashboard and any API read.

It is written to a temporary file beside the target and renamed over it in one step
(`os.replace`), so a reader sees either last night's snapshot or tonight's, never half of
one, and never opens the warehouse (a reader there would block the nightly writer).
"""

from __future__ import annotations

import os
import uuid
from enum import StrEnum
from pathlib import Path

import duckdb

from credit_dagster.core import formats, settings

SNAPSHOT_NAME = "serving.duckdb"


class Table(StrEnum):
    """The snapshot's tables: the one contract between the night that publishes them and the
    dashboard and the API that read them (besides `history_<model>`, one per history SQL model)."""

    SCORED = "scored_applications"  # the current decision per applicant, with reasons and counterfactual
    DETAILS = "applicant_details"  # what the dashboard shows of each application
    FEATURES = "applicant_features"  # each applicant's compared features (feature, value)
    CONTRIBUTIONS = "applicant_contributions"  # what moved each score, by group of features
    APPLICATIONS = "applications"  # each application as submitted (the what-if starts from it)
    DICTIONARY = "feature_dictionary"
    PSI = "monitoring_psi"
    MODEL_SUMMARY = "model_summary"
    MODEL_IMPORTANCE = "model_importance"
    MODEL_FAIRNESS = "model_fairness"
    MODEL_HISTORY = "model_history"
    REFERENCE = "reference_population"  # a seeded sample of the labelled clients
    SIMILAR = "similar_clients"  # each applicant's nearest past clients
    FEATURE_REFERENCE = "feature_reference"  # where the labelled population stands on each compared feature
    AUDIT_HEADS = "audit_heads"  # each sealed night's chain head and each journal's, as published: a copy outside the warehouse


def snapshot_path() -> Path:
    return settings.under_home(settings.current().serving_snapshot, "serving", SNAPSHOT_NAME)


# small snapshots published beside it by the stages after the night: the review's fold, the back-test
REVIEW_SNAPSHOT, BACKTEST_SNAPSHOT = "review.duckdb", "backtest.duckdb"


def beside(name: str) -> Path:
    """A small snapshot published beside the serving one."""
    return snapshot_path().with_name(name)


def publish(con: duckdb.DuckDBPyConnection, tables: dict[str, str], target: Path,
            indexed: dict[str, str] | None = None) -> dict[str, int]:
    """Copy each `name: select ...` from the warehouse into a new file, then swap it in atomically.
    `indexed`: tables looked up by a column (`name: column`), given an index on it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}-{uuid.uuid4().hex[:8]}.duckdb")
    alias = "snap_" + uuid.uuid4().hex[:8]
    con.execute(f"attach '{tmp}' as {alias}")
    counts = {}
    try:
        formats.stamp_duckdb(con, "snapshots", alias)
        for name, sql in tables.items():
            con.execute(f"create table {alias}.{name} as {sql}")
            counts[name] = con.execute(f"select count(*) from {alias}.{name}").fetchall()[0][0]
            if name in (indexed or {}):
                con.execute(f'create index {name}_by_{indexed[name]} on {alias}.{name} ("{indexed[name]}")')
    finally:
        con.execute(f"detach {alias}")
    os.replace(tmp, target)
    return counts
