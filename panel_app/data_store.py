"""Reads the serving snapshot, never the warehouse: a short read-only connection per load.

Loads are cached by the snapshot file's modification time, so a new night shows up on the
next refresh and a reader never keeps the file (or the nightly writer) waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb
import pandas as pd

from credit_dagster import scoring
from credit_dagster.snapshot import snapshot_path

LIST_COLUMNS = ["partition_date", "SK_ID_CURR", "decision", "grade", "points", "probability_of_default"]


@dataclass(frozen=True)
class Applicant:
    """Everything a relationship manager needs to explain one decision."""

    row: pd.Series
    details: pd.Series
    reasons: list[str]
    comparison: pd.DataFrame  # feature, meaning, client value, typical range of the labelled population


class SnapshotStore:
    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else snapshot_path()

    def available(self) -> bool:
        return self.path.exists()

    def _version(self) -> float:
        return self.path.stat().st_mtime

    def table(self, name: str) -> pd.DataFrame:
        return _load(str(self.path), self._version(), name)

    def model_summary(self) -> pd.Series:
        return self.table("model_summary").iloc[0]

    def decisions(self, day: str | None = None, decision: str | None = None, search: str = "") -> pd.DataFrame:
        frame = self.table("scored_applications")
        if day:
            frame = frame[frame["partition_date"] == day]
        if decision:
            frame = frame[frame["decision"] == decision]
        if search.strip():
            frame = frame[frame["SK_ID_CURR"].astype(str).str.startswith(search.strip())]
        return frame.sort_values(["partition_date", "probability_of_default"], ascending=[False, False])[LIST_COLUMNS]

    def days(self) -> list[str]:
        return sorted(self.table("scored_applications")["partition_date"].unique(), reverse=True)

    def applicant(self, sk_id: int) -> Applicant:
        scored = self.table("scored_applications")
        match = scored[scored["SK_ID_CURR"] == sk_id]
        if match.empty:
            raise KeyError(f"applicant {sk_id} is not in the snapshot")
        row = match.iloc[0]
        details = self.table("applicant_details")
        details = details[details["SK_ID_CURR"] == sk_id].iloc[0]
        values = self.table("applicant_features")
        values = values[values["SK_ID_CURR"] == sk_id][["feature", "value"]]
        comparison = (values.merge(self.table("feature_reference"), on="feature", how="left")
                      .merge(self.table("feature_dictionary")[["feature", "meaning"]], on="feature", how="left"))
        comparison = comparison[["meaning", "value", "p25", "median_all", "p75", "feature"]]
        return Applicant(row=row, details=details, reasons=scoring.reasons_of(row), comparison=comparison)


@lru_cache(maxsize=32)
def _load(path: str, version: float, name: str) -> pd.DataFrame:
    with duckdb.connect(path, read_only=True) as con:
        return con.execute(f"select * from {name}").df()
