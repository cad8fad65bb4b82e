"""The feature layer's SQL models, one file a table (`features/<table>.sql`): shipped as package data,
read through `importlib.resources` (`credit_dagster.features.sql_models.SQL_DIR`), so an installed
copy builds the same features as the checkout."""
