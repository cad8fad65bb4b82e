"""Derive the marginal distributions the synthetic generator samples from.

Run once by a maintainer against a folder in the Kaggle layout (the real sample or the full
download); it writes `credit_dagster/synth/catalog.json`: per table and column, the missing
share, the 365243 sentinel share, and either the value set with frequencies (categorical or
discrete columns) or 41 quantiles (continuous columns). Only these aggregate statistics are
kept; no row of the source data is copied.

    python scripts/build_synth_catalog.py ../shared/data/home_credit_sample
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from credit_dagster.core.sources import SENTINEL_DAYS, SOURCE_TABLES

MAX_DISCRETE = 40  # numeric columns with at most this many values are sampled as a value set
OUT = Path(__file__).resolve().parents[1] / "credit_dagster" / "synth" / "catalog.json"


def describe_column(values: pd.Series) -> dict:
    n = len(values)
    present = values.dropna()
    entry: dict = {"null": round(1 - len(present) / n, 4) if n else 1.0}
    if present.empty:
        entry["kind"] = "empty"
        return entry
    if values.dtype == object:
        freq = present.value_counts(normalize=True)
        entry.update(kind="cat", values=[str(v) for v in freq.index], p=[round(float(p), 6) for p in freq])
        return entry
    sentinel = present == SENTINEL_DAYS
    entry["sentinel"] = round(float(sentinel.mean()), 4)
    present = present[~sentinel]
    if present.nunique() <= MAX_DISCRETE:
        freq = present.value_counts(normalize=True).sort_index()
        entry.update(kind="disc", values=[float(v) for v in freq.index], p=[round(float(p), 6) for p in freq])
    else:
        qs = np.quantile(present.to_numpy(dtype=float), np.linspace(0, 1, 41))
        entry.update(kind="num", q=[float(f"{q:.6g}") for q in qs])
    return entry


def main(data_dir: str) -> None:
    catalog: dict[str, dict] = {}
    for spec in SOURCE_TABLES.values():
        frames = [pd.read_csv(p) for p in sorted(Path(data_dir).glob(f"{spec.file_stem}.csv*"))]
        if spec.name == "application_train":
            frames.append(pd.read_csv(next(Path(data_dir).glob("application_test.csv*"))))
        df = pd.concat(frames, ignore_index=True)
        catalog[spec.name] = {c: describe_column(df[c]) for c in spec.columns if c in df}
    OUT.write_text(json.dumps(catalog, indent=0, sort_keys=False))
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
