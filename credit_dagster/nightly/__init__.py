"""Stage 4, the night: drops, scoring with reasons and counterfactuals, partitions (pure), and the Dagster
assets and checks of the `scoring` group."""
