"""Stage 6, serving: what the dashboard and the API read (the serving snapshot, nearest past clients,
on-demand scoring through the nightly SQL) and the scoring API (`serving.api`), with the Dagster
assets of the `serving` and `api` groups."""
