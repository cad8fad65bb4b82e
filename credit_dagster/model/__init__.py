"""Stage 3, model: training, calibration, scorecard, fairness, registry and model card (pure), and the
Dagster assets and checks of the `model` group."""
