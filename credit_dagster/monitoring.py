"""Drift of a night's applications against the training population: PSI and an Evidently report."""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("DO_NOT_TRACK", "1")  # offline: no usage statistics from Evidently

INVESTIGATE, ACT = 0.10, 0.25
LABEL_NOTE = ("Label drift cannot be seen at scoring time: whether these applicants repay is known only months "
              "later, so this report covers the inputs and the score, not the outcome.")


def psi(reference: pd.Series, current: pd.Series, bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index; numeric columns binned at the reference deciles, missing as its own bin."""
    if reference.dtype == object or str(reference.dtype) == "category":
        ref_share = reference.astype(object).fillna("(missing)").value_counts(normalize=True)
        cur_share = current.astype(object).fillna("(missing)").value_counts(normalize=True)
    else:
        edges = np.unique(np.nanquantile(reference.astype(float), np.linspace(0, 1, bins + 1)))
        edges[0], edges[-1] = -np.inf, np.inf

        def shares(values: pd.Series) -> pd.Series:
            v = values.astype(float)
            binned = pd.cut(v, edges, include_lowest=True).astype(object).where(v.notna(), "(missing)")
            return binned.astype(str).value_counts(normalize=True)

        ref_share, cur_share = shares(reference), shares(current)
    keys = ref_share.index.union(cur_share.index)
    r = ref_share.reindex(keys, fill_value=0).to_numpy() + eps
    c = cur_share.reindex(keys, fill_value=0).to_numpy() + eps
    return float(np.sum((c - r) * np.log(c / r)))


def status(value: float) -> str:
    return "act" if value >= ACT else "investigate" if value >= INVESTIGATE else "stable"


def psi_table(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    rows = [{"feature": c, "psi": psi(reference[c], current[c])} for c in columns]
    table = pd.DataFrame(rows)
    table["status"] = table["psi"].map(status)
    return table.sort_values("psi", ascending=False).reset_index(drop=True)


def evidently_report(reference: pd.DataFrame, current: pd.DataFrame, path: Path, banner: str) -> dict:
    """Evidently's data-drift preset as a self-contained HTML file; returns the drift summary."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    # Evidently refuses a column that is empty on either side (a small night can have one)
    usable = [c for c in current.columns if current[c].notna().any() and reference[c].notna().any()]
    snapshot = Report([DataDriftPreset()]).run(current_data=current[usable], reference_data=reference[usable])
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    text = path.read_text()
    notice = f"<div style='background:#fff3cd;padding:8px;font-family:sans-serif'>{html.escape(banner)}<br>{html.escape(LABEL_NOTE)}</div>"
    path.write_text(text.replace("<body>", "<body>" + notice, 1))
    metrics = snapshot.dict()["metrics"]
    drifted = next((m["value"] for m in metrics if m["metric_name"].startswith("DriftedColumnsCount")), {})
    return {"drifted_columns": float(drifted.get("count", 0)), "drifted_share": float(drifted.get("share", 0)),
            "columns_left_out_empty": [c for c in current.columns if c not in usable]}
