"""Sampling from the per-column marginal distributions stored in `catalog.json`.

The catalog holds aggregate statistics of the public Kaggle data (value frequencies, 41
quantiles, missing and 365243-sentinel shares). Columns that carry no default signal are
drawn from it independently; the generator overrides the columns that must be consistent
with each other or with the latent risk.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from credit_dagster.core.sources import SENTINEL_DAYS

CATALOG_PATH = Path(__file__).with_name("catalog.json")


@cache
def catalog() -> dict[str, dict[str, dict]]:
    return json.loads(CATALOG_PATH.read_text())


def from_quantiles(entry: dict, u: np.ndarray) -> np.ndarray:
    """Inverse CDF by linear interpolation between the stored quantiles (u in [0, 1])."""
    q = np.asarray(entry["q"], dtype=float)
    return np.interp(u, np.linspace(0, 1, len(q)), q)


def sample(rng: np.random.Generator, entry: dict, n: int, *, u: np.ndarray | None = None) -> np.ndarray:
    """Draw n values like the catalogued column: float array (NaN = missing) or object array."""
    kind = entry["kind"]
    if kind == "empty":
        return np.full(n, np.nan)
    if kind == "cat":
        out = rng.choice(np.asarray(entry["values"], dtype=object), size=n, p=_normalised(entry["p"]))
        out[rng.random(n) < entry["null"]] = None
        return out
    if kind == "disc":
        out = rng.choice(np.asarray(entry["values"], dtype=float), size=n, p=_normalised(entry["p"]))
    else:
        out = from_quantiles(entry, rng.random(n) if u is None else u)
    sentinel = entry.get("sentinel", 0.0)
    if sentinel:
        out[rng.random(n) < sentinel] = SENTINEL_DAYS
    out[rng.random(n) < entry["null"]] = np.nan
    return out


def choice(rng: np.random.Generator, entry: dict, n: int, *, exclude: tuple[str, ...] = ()) -> np.ndarray:
    """Draw category values without missing ones, optionally leaving some values out."""
    values = np.asarray(entry["values"], dtype=object)
    p = np.asarray(entry["p"], dtype=float)
    keep = ~np.isin(values, exclude)
    return rng.choice(values[keep], size=n, p=_normalised(p[keep]))


def _normalised(p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return p / p.sum()
