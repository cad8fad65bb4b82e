"""Past labelled clients most like an applicant, for the dashboard's comparison.

Computed once when the snapshot is published (not per click): features are standardized by
the labelled population's median and interquartile range (robust to the heavy tails of
amounts), a missing value sits at the median, and the distance is Euclidean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

K = 5


def standardize(reference: pd.DataFrame, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """`frame[features]` in units of the reference's interquartile range around its median."""
    ref = reference[features].astype(float)
    centre = ref.median()
    spread = (ref.quantile(0.75) - ref.quantile(0.25)).replace(0, np.nan).fillna(ref.std()).replace(0, 1).fillna(1)
    return ((frame[features].astype(float) - centre) / spread).fillna(0.0).to_numpy()


def nearest(reference: pd.DataFrame, applicants: pd.DataFrame, features: list[str], k: int = K,
            scale: pd.DataFrame | None = None) -> pd.DataFrame:
    """For each applicant (SK_ID_CURR + features), its k nearest reference clients:
    SK_ID_CURR, rank (1 = nearest), neighbour_id, distance; in the units of `scale` (default the
    reference itself)."""
    if applicants.empty or reference.empty:
        return pd.DataFrame({"SK_ID_CURR": pd.Series(dtype="int64"), "rank": pd.Series(dtype="int64"),
                             "neighbour_id": pd.Series(dtype="int64"), "distance": pd.Series(dtype=float)})
    k = min(k, len(reference))
    scale = reference if scale is None else scale
    index = NearestNeighbors(n_neighbors=k).fit(standardize(scale, reference, features))
    distance, position = index.kneighbors(standardize(scale, applicants, features))
    return pd.DataFrame({
        "SK_ID_CURR": np.repeat(applicants["SK_ID_CURR"].to_numpy(), k),
        "rank": np.tile(np.arange(1, k + 1), len(applicants)),
        "neighbour_id": reference["SK_ID_CURR"].to_numpy()[position.ravel()],
        "distance": distance.ravel(),
    })
