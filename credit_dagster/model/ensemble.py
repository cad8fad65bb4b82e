"""The deployed model: the fold models of the cross-validation, averaged in log-odds.

Deploying the fold models themselves (rather than refitting one model on all rows) means the
calibrator is fitted on out-of-fold scores of the very models that score new applicants, on
the same scale; the average also steadies the model from seed to seed. Each fold model keeps
the features its own fold selected, so contributions are mapped back to the full feature list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd

from credit_dagster.core import settings
from credit_dagster.model import treeshap

_UNBUILT = object()


@dataclass
class Ensemble:
    boosters: list[lgb.Booster]
    # the fold models' trees as lookup tables: as the registry saved them, else built on first use;
    # None for LightGBM's own scoring (cross-validation's throw-away fold models, where building
    # the tables costs more than the few thousand rows they score)
    tables: treeshap.Forest | None | object = field(default=_UNBUILT, repr=False, compare=False)

    def forest(self) -> treeshap.Forest | None:
        """The tables (`treeshap`); None when its trees are too big for them or it was made
        without (LightGBM then scores and explains)."""
        if self.tables is _UNBUILT:
            self.tables = treeshap.Forest.of(self.boosters, [1 / len(self.boosters)] * len(self.boosters))
        return self.tables

    def warm_up(self) -> None:
        """Build the tables and load the compiled kernels now, not in the first request that scores."""
        forest = self.forest()
        if forest is not None:
            nothing = np.full((1, len(forest.names)), np.nan)
            forest.raw_score(nothing, 1), forest.contributions(nothing, 1)

    def _each(self, matrix: pd.DataFrame, **kwargs) -> list[np.ndarray]:
        values = as_float(matrix)
        position = {c: i for i, c in enumerate(matrix.columns)}
        # this process's threads (CREDIT_THREADS), not OpenMP's default of every core: two Celery
        # workers on one machine would otherwise each spin on all of its cores
        threads = settings.threads()
        return [b.predict(values[:, [position[c] for c in b.feature_name()]], num_threads=threads, **kwargs) for b in self.boosters]

    def raw_score(self, matrix: pd.DataFrame) -> np.ndarray:
        """Mean log-odds of the fold models."""
        forest = self.forest()
        if forest is not None:
            return forest.raw_score(self._read(matrix, forest.names), settings.threads())
        return np.mean(self._each(matrix, raw_score=True), axis=0)

    def contributions(self, matrix: pd.DataFrame) -> np.ndarray:
        """TreeSHAP log-odds contributions per column of `matrix` (0 for a feature a fold model
        does not use), averaged over the fold models; the last column is the base value. Each
        fold model's contributions add up to its raw score, so these add up to `raw_score`."""
        position = {c: i for i, c in enumerate(matrix.columns)}
        total = np.zeros((len(matrix), len(matrix.columns) + 1))
        forest = self.forest()
        if forest is not None:
            total[:, [position[c] for c in forest.names] + [len(matrix.columns)]] = forest.contributions(
                self._read(matrix, forest.names), settings.threads())
            return total
        for booster, contrib in zip(self.boosters, self._each(matrix, pred_contrib=True), strict=True):
            columns = [position[c] for c in booster.feature_name()] + [len(matrix.columns)]
            total[:, columns] += contrib
        return total / len(self.boosters)

    @staticmethod
    def _read(matrix: pd.DataFrame, names: list[str]) -> np.ndarray:
        position = {c: i for i, c in enumerate(matrix.columns)}
        return as_float(matrix)[:, [position[c] for c in names]]

    def used_features(self) -> list[str]:
        """Features at least one fold model reads."""
        return sorted({f for b in self.boosters for f in b.feature_name()})


def as_float(matrix: pd.DataFrame) -> np.ndarray:
    """The conversion LightGBM's pandas path makes (category codes, -1 as missing, float64),
    once for all fold models: per booster and call it costs ~20x the prediction on a few rows."""
    is_category = [isinstance(dtype, pd.CategoricalDtype) for dtype in matrix.dtypes]
    categorical = [i for i, c in enumerate(is_category) if c]
    numeric = [i for i, c in enumerate(is_category) if not c]
    values = np.empty(matrix.shape)
    values[:, numeric] = matrix.iloc[:, numeric].to_numpy(dtype=float)  # one block, not column by column
    for i in categorical:
        codes = matrix.iloc[:, i].cat.codes.to_numpy(dtype=float)
        codes[codes < 0] = np.nan
        values[:, i] = codes
    return values
