"""Stage 5, the night: drops, a night's scoring with the decision engine (`credit_dagster.decision`),
shards and partitions (pure), and the Dagster assets and checks of the `nightly` group."""
