"""Stage 4, the decision engine the night, the API and the dashboard share: scoring and its policy, reasons
in plain language, counterfactuals, on-demand scoring through the nightly SQL, nearest past clients.
Pure code: no Dagster."""
