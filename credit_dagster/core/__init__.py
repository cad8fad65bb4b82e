"""What every stage shares and that imports no stage: settings, source contracts, asset keys and the writer
pool, client wording, the plausibility rules, the serving snapshot's file, the audit journal, Dagster resources."""
