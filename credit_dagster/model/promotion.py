"""Whether a new model may replace the champion."""

from __future__ import annotations


def decide(
    difference: dict[str, float] | None,
    *,
    same_data: bool,
    tolerance: float,
    force: bool,
    checks_passed: bool,
    fairness_flags: list[str] = (),
    synthetic: bool = False,
) -> tuple[bool, str]:
    """`difference`: challenger minus champion ROC AUC on the same applicants with its paired
    bootstrap 95 % interval (`difference`, `low`, `high`), None when there is no champion.

    - forced promotion always wins (it is recorded as such);
    - a failed blocking check or a four-fifths fairness flag stops automatic promotion (the flag
      then needs an explicit sign-off: `credit-dagster promote VERSION --reason ...`), except on
      SYNTHETIC data, where no person is concerned and the sign-off is recorded as automatic;
    - on the same data, the challenger must be better beyond noise (interval above zero), so
      the champion does not change on a lucky seed;
    - on new data (a retrain), the challenger replaces the champion unless it is worse by more
      than `tolerance` with an interval below zero."""
    if force:
        return True, "promotion forced by configuration"
    if not checks_passed:
        return False, "a blocking validation check failed"
    if fairness_flags and not synthetic:
        return False, ("fairness audit flags " + "; ".join(fairness_flags)
                       + ": review the model card, then sign off with `credit-dagster promote VERSION --reason \"...\"`")
    signed = ("; fairness flags on SYNTHETIC data (" + "; ".join(fairness_flags) + ") signed off automatically") if fairness_flags else ""
    if difference is None:
        return True, "no champion yet" + signed
    d, low, high = difference["difference"], difference["low"], difference["high"]
    interval = f"ROC AUC difference {d:+.4f} (95 % interval {low:+.4f} to {high:+.4f})"
    if same_data:
        if low > 0:
            return True, f"better than the champion beyond noise on the same applicants: {interval}" + signed
        return False, f"not better than the champion beyond noise on the same applicants: {interval}; the champion stays"
    if d < -tolerance and high < 0:
        return False, f"worse than the champion on the new data by more than {tolerance}: {interval}"
    return True, f"retrained on new data and not worse than the champion beyond {tolerance}: {interval}" + signed
