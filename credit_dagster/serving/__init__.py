"""Stage 8, serving: what the dashboard and the API read (the serving snapshot, each applicant's
history for on-demand scoring and nearest past clients) and the folds of the API's audit trail, with
the Dagster assets of the `serving` group. The API itself is a front end: `credit_dagster.api`."""
