"""Stage 1, ingest: the source files into raw DuckDB tables with quarantine (pure loaders), their Great
Expectations gates and profile, and the Dagster assets and checks of the `ingest` group."""
