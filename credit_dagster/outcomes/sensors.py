"""The back-test asks for a retrain: performance-based retraining, beside the drift-based one."""

import dagster as dg

from credit_dagster.core import settings
from credit_dagster.core.keys import BACKTEST_GRADES, BACKTEST_VINTAGES
from credit_dagster.model.jobs import train_model


def failing(metadata: dict, minimum: int) -> bool:
    """A back-test that failed its check on enough outcomes to be believed."""
    return metadata["failing"].value > 0 and metadata["outcomes_judged"].value >= minimum


@dg.sensor(job=train_model, minimum_interval_seconds=3600, default_status=dg.DefaultSensorStatus.STOPPED)
def performance_retraining_sensor(context: dg.SensorEvaluationContext):
    """Requests retraining when the latest back-test fails its check (a vintage's realized AUC
    below development by more than the tolerance, or a grade defaulting far above its PD) on at
    least CREDIT_RETRAIN_MIN_OUTCOMES (1000) outcomes. Off by default, like the drift sensor:
    start it in the UI."""
    minimum = settings.current().retrain_min_outcomes
    seen = []
    for key in (BACKTEST_VINTAGES, BACKTEST_GRADES):
        records = context.instance.fetch_materializations(key, limit=1).records
        if records and records[0].asset_materialization and failing(records[0].asset_materialization.metadata, minimum):
            seen.append((key.to_user_string(), records[0].storage_id))
    if seen:
        return dg.RunRequest(run_key="backtest-" + "-".join(str(i) for _, i in seen),
                             tags={"credit/reason": "back-test failed: " + ", ".join(k for k, _ in seen)})
    return dg.SkipReason(f"no back-test failing on {minimum:,} outcomes or more")
