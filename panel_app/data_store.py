"""Reads the serving snapshot, never the warehouse: a short read-only connection per load.

Loads are cached by the snapshot file's modification time, so a new night shows up on the
next refresh and a reader never keeps the file (or the nightly writer) waiting. Lookups by
application number are done in pandas on an integer: no text typed by a user reaches SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from credit_dagster.core import formats, settings
from credit_dagster.core.snapshot import Table, snapshot_path
from credit_dagster.decision import neighbours, scoring
from credit_dagster.model.registry import RegisteredModel, Registry

LIST_COLUMNS = ["partition_date", "SK_ID_CURR", "decision", "grade", "points", "probability_of_default", "refer_low", "refer_high"]


@dataclass(frozen=True)
class Applicant:
    """Everything a relationship manager needs to explain one decision."""

    row: pd.Series  # the stored decision
    details: pd.Series  # the fields the comparison groups by
    application: pd.Series  # the application as submitted
    reasons: list[str]
    comparison: pd.DataFrame  # feature, meaning, client value, typical range of the labelled population
    contributions: pd.DataFrame  # rank, feature, value, contribution (TreeSHAP, log-odds)


class SnapshotStore:
    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else snapshot_path()

    def available(self) -> bool:
        return self.path.exists()

    def version(self) -> float:
        """Changes when a new snapshot is published: what caches of its tables are keyed on."""
        return self.path.stat().st_mtime

    def table(self, name: str) -> pd.DataFrame:
        return _load(str(self.path), self.version(), name)

    def _by_id(self, name: str) -> _ById:
        return _index(str(self.path), self.version(), name)

    def beside(self, file: str, name: str) -> pd.DataFrame | None:
        """A table of a small snapshot published beside this one (the back-test's), or None before its first."""
        path = self.path.with_name(file)
        return _load(str(path), path.stat().st_mtime, name) if path.exists() else None

    def model_summary(self) -> pd.Series:
        return self.table(Table.MODEL_SUMMARY).iloc[0]

    def meanings(self) -> dict[str, str]:
        return dict(self.table(Table.DICTIONARY)[["feature", "meaning"]].itertuples(index=False, name=None))

    def dictionary(self) -> pd.DataFrame:
        return self.table(Table.DICTIONARY)

    def compared_features(self) -> list[str]:
        return self.table(Table.FEATURE_REFERENCE)["feature"].tolist()

    def model(self) -> RegisteredModel:
        """The champion that scored the snapshot, from the model registry (files, read only)."""
        return _model(str(settings.models_dir()), str(self.model_summary()["model_version"]))

    def decisions(self, day: str | None = None, decision: str | None = None, search: str = "") -> pd.DataFrame:
        frame = self.table(Table.SCORED)
        if day:
            frame = frame[frame["partition_date"] == day]
        if decision:
            frame = frame[frame["decision"] == decision]
        if search.strip():
            frame = frame[frame["SK_ID_CURR"].astype(str).str.startswith(search.strip())]
        return frame.sort_values(["partition_date", "probability_of_default"], ascending=[False, False])[LIST_COLUMNS]

    def days(self) -> list[str]:
        return sorted(self.table(Table.SCORED)["partition_date"].unique(), reverse=True)

    def applicant(self, sk_id: int) -> Applicant:
        sk_id = int(sk_id)
        scored = self._by_id(Table.SCORED)
        if sk_id not in scored:
            raise KeyError(f"applicant {sk_id} is not in the snapshot")
        row = scored[sk_id].iloc[0]
        # a decision is kept longer than what was shown with it (retention: the drop's period)
        details = self._row(Table.DETAILS, sk_id)
        values = self._by_id(Table.FEATURES).get(sk_id, pd.DataFrame(columns=["feature", "value"]))[["feature", "value"]]
        comparison = (values.merge(self.table(Table.FEATURE_REFERENCE), on="feature", how="left")
                      .merge(self.table(Table.DICTIONARY)[["feature", "meaning"]], on="feature", how="left"))
        comparison = comparison[["meaning", "value", "p25", "median_all", "p75", "feature"]]
        empty = pd.DataFrame(columns=["rank", "feature", "value", "contribution"])
        return Applicant(row=row, details=details,
                         application=self._row(Table.APPLICATIONS, sk_id),
                         reasons=scoring.reasons_of(row), comparison=comparison,
                         contributions=self._by_id(Table.CONTRIBUTIONS).get(sk_id, empty))

    def _row(self, table: Table, sk_id: int) -> pd.Series:
        """The applicant's row of `table`; its columns empty if it has none (retention keeps a
        decision longer than the application and details shown with it)."""
        rows = self._by_id(table)
        if sk_id in rows:
            return rows[sk_id].iloc[0]
        return self.table(table).head(0).reindex([0]).assign(SK_ID_CURR=sk_id).iloc[0]  # missing values of each column's type

    def neighbours(self, sk_id: int, within: pd.DataFrame | None = None) -> pd.DataFrame:
        """The past labelled clients most like this applicant, nearest first, without their ids:
        among all of them (found when the snapshot was published), or only among `within` (rows of
        the reference population: the group the user picked), searched now."""
        reference = self.table(Table.REFERENCE)
        if within is None:
            similar = self._by_id(Table.SIMILAR).get(int(sk_id))
        else:
            values = self.applicant(sk_id).comparison.set_index("feature")["value"]
            features = [f for f in self.compared_features() if f in values.index and f in within]
            applicant = pd.DataFrame([{"SK_ID_CURR": int(sk_id), **{f: values[f] for f in features}}])
            # distances in the units of the whole population, as the published neighbours
            similar = neighbours.nearest(within, applicant, features, scale=reference) if len(within) else None
        if similar is None:
            return pd.DataFrame(columns=["rank", "outcome"])
        out = similar.merge(reference, left_on="neighbour_id", right_on="SK_ID_CURR", suffixes=("", "_ref")).sort_values("rank")
        out["outcome"] = out["TARGET"].map({0: "repaid", 1: "had payment difficulties"})
        return out.drop(columns=["SK_ID_CURR", "neighbour_id", "SK_ID_CURR_ref", "TARGET"])


@lru_cache(maxsize=32)
def _load(path: str, version: float, name: str) -> pd.DataFrame:
    with duckdb.connect(path, read_only=True) as con:
        formats.check_duckdb(con, "snapshots", Path(path).name)  # a snapshot a newer release published is refused
        return con.execute(f"select * from {name}").df()


class _ById:
    """A table sorted by applicant: a click finds its rows by binary search, not by a scan
    of every row (487,440 contribution rows at Kaggle scale)."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame.sort_values("SK_ID_CURR", kind="stable").reset_index(drop=True)
        self.ids = self.frame["SK_ID_CURR"].to_numpy()

    def get(self, sk_id: int, default=None):
        lo, hi = np.searchsorted(self.ids, sk_id, "left"), np.searchsorted(self.ids, sk_id, "right")
        return self.frame.iloc[lo:hi] if hi > lo else default

    def __contains__(self, sk_id: int) -> bool:
        return self.get(sk_id) is not None

    def __getitem__(self, sk_id: int) -> pd.DataFrame:
        return self.get(sk_id)


@lru_cache(maxsize=16)
def _index(path: str, version: float, name: str) -> _ById:
    return _ById(_load(path, version, name))


@lru_cache(maxsize=2)
def _model(models_dir: str, version: str) -> RegisteredModel:
    return Registry(Path(models_dir)).load(version)
