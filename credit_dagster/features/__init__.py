"""Stage 2, features: the dbt-like SQL runner over `dbt_like_sql/` and the feature dictionary (pure), and the
Dagster assets of the `features` group (one per SQL file)."""
