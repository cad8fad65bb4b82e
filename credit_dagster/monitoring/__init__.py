"""Stage 6, monitoring: drift (PSI and Evidently), incidents and dead-run recovery (pure), and the Dagster
assets and checks of the `monitoring` group."""
