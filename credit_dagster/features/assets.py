"""Feature layer: one asset per SQL model in dbt_like_sql/, plus the feature dictionary."""

import dagster as dg

from credit_dagster.core.keys import DICTIONARY, POOL
from credit_dagster.core.resources import Warehouse
from credit_dagster.features import sql_models
from credit_dagster.features.dictionary import build_dictionary

MODELS = sql_models.discover()
_BY_NAME = {m.name: m for m in MODELS}
NON_FEATURES = ("SK_ID_CURR",)


def _key(model: sql_models.SqlModel) -> dg.AssetKey:
    return dg.AssetKey([model.group, model.name])


def _sql_asset(model: sql_models.SqlModel) -> dg.AssetsDefinition:
    @dg.asset(
        key=_key(model),
        group_name=model.group,
        deps=[_key(_BY_NAME[r]) for r in model.refs] + [dg.AssetKey([schema, table]) for schema, table in model.sources],
        description=f"{model.description} Grain: {model.grain}. SQL: dbt_like_sql/{model.group}/{model.name}.sql",
        kinds={"duckdb", "sql"},
        pool=POOL,
        metadata={
            "grain": model.grain,
            "sql_file": dg.MetadataValue.path(str(model.path)),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(c.name, description=f"{c.meaning} [{sql_models.RISK_DIRECTION[c.direction]}]") for c in model.columns]
            ),
        },
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            rows = sql_models.build_model(con, model)
            columns = len(con.execute(f"describe {model.group}.{model.name}").fetchall())
        return dg.MaterializeResult(metadata={"dagster/row_count": rows, "columns": columns, "table": f"{model.group}.{model.name}"})

    return _asset


sql_assets = [_sql_asset(m) for m in MODELS]
FEATURE_TABLE = _key(_BY_NAME["application_features"])


@dg.asset(key=DICTIONARY, group_name="features", deps=[FEATURE_TABLE],
          kinds={"duckdb"}, pool=POOL)
def feature_dictionary(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per feature: its meaning in a client's words, unit, reason group, source table, direction of risk."""
    with warehouse.connect() as con:
        columns = [r[0] for r in con.execute("describe features.application_features").fetchall() if r[0] not in NON_FEATURES]
        dictionary = build_dictionary(MODELS, columns)
        con.execute("create or replace table features.feature_dictionary as select * from dictionary")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(dictionary),
        "documented_in_sql": int(dictionary["documented"].sum()),
        "undocumented": dictionary.loc[~dictionary["documented"], "feature"].tolist(),
        "never_model_inputs": dictionary.loc[~dictionary["model_input"], "feature"].tolist(),
        "protected_features": dictionary.loc[dictionary["protected"], "feature"].tolist(),
        "preview": dg.MetadataValue.md(dictionary.head(30).to_markdown(index=False)),
    })


@dg.asset_check(asset=FEATURE_TABLE, blocking=True, description="One row per SK_ID_CURR, and no TARGET-derived column.")
def application_features_grain(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        rows, ids = con.execute("select count(*), count(distinct SK_ID_CURR) from features.application_features").fetchall()[0]
        leaking = [r[0] for r in con.execute("describe features.application_features").fetchall() if "TARGET" in r[0].upper()]
        applicants = con.execute(
            "select (select count(*) from raw.application_train) + (select count(*) from raw.application_test)"
        ).fetchall()[0][0]
    problems = []
    if rows != ids:
        problems.append(f"{rows - ids} duplicate SK_ID_CURR rows")
    if rows != applicants:
        problems.append(f"{rows} rows but {applicants} applicants in raw.application_train + raw.application_test")
    if leaking:
        problems.append(f"label column(s) in the features: {leaking}")
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) or f"{rows} applicants, one row each, no label column",
        metadata={"rows": rows, "distinct_applicants": ids, "label_columns": leaking},
    )


@dg.asset_check(asset=DICTIONARY,
                description="Every feature has a plain-language meaning written in the SQL header (warns on fall-backs).")
def every_feature_explained(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        fallback = [r[0] for r in con.execute(
            "select feature from features.feature_dictionary where not documented and source_model <> 'application_clean'"
        ).fetchall()]
    return dg.AssetCheckResult(
        passed=not fallback, severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(fallback)} aggregate features lack a documented meaning: {fallback[:10]}" if fallback else "all aggregates documented",
        metadata={"undocumented": fallback},
    )


feature_checks = [application_features_grain, every_feature_explained]
