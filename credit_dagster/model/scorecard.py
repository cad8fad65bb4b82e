"""Probabilities to scorecard points and grades, as credit committees read them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scorecard:
    """`base_points` at good:bad odds of `base_odds`; every `points_to_double` points double the odds."""

    base_points: float = 600.0
    base_odds: float = 50.0
    points_to_double: float = 20.0
    # upper PD bounds of grades A-D; anything above the last is E
    grade_bounds: tuple[float, ...] = (0.02, 0.05, 0.10, 0.20)

    def points(self, pd_: np.ndarray) -> np.ndarray:
        pd_ = np.clip(np.asarray(pd_, dtype=float), 1e-6, 1 - 1e-6)
        factor = self.points_to_double / np.log(2)
        offset = self.base_points - factor * np.log(self.base_odds)
        return np.round(offset + factor * np.log((1 - pd_) / pd_)).astype(int)

    def grades(self, pd_: np.ndarray) -> np.ndarray:
        return np.asarray(list("ABCDE"))[np.searchsorted(self.grade_bounds, np.asarray(pd_, dtype=float), side="right")]
