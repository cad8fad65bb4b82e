"""Whether a new model may replace the champion."""

from __future__ import annotations


def decide(candidate_auc: float, champion_auc: float | None, *, tolerance: float, force: bool, checks_passed: bool) -> tuple[bool, str]:
    """Promote when the blocking checks passed and the candidate is not worse than the champion
    on the same data (within `tolerance` of ROC AUC), or when promotion is forced."""
    if force:
        return True, "promotion forced by configuration"
    if not checks_passed:
        return False, "a blocking validation check failed"
    if champion_auc is None:
        return True, "no champion yet"
    if candidate_auc >= champion_auc - tolerance:
        return True, f"ROC AUC {candidate_auc:.4f} is not worse than the champion's {champion_auc:.4f} (tolerance {tolerance})"
    return False, f"ROC AUC {candidate_auc:.4f} is worse than the champion's {champion_auc:.4f} by more than {tolerance}"
