"""Scoring applications on demand, outside the night: the API's scoring and the dashboard's what-if.

The submitted rows go through the very SQL models of the nightly run, in a private in-memory
DuckDB (never the warehouse, whose single writer is the night), then the champion, reasons and
counterfactuals of `scoring`. History features come from the rows submitted with an
application; an applicant sent without history rows keeps the history the platform already
holds: the history feature tables the serving snapshot publishes (`history_<model>`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import duckdb
import pandas as pd

from credit_dagster import scoring, settings, sql_models
from credit_dagster.ml.registry import RegisteredModel
from credit_dagster.sources import SOURCE_TABLES

APPLICATION = "application_test"
HISTORY_TABLES = ("bureau", "bureau_balance", "previous_application", "pos_cash_balance", "installments_payments", "credit_card_balance")
SUBMITTED, STORED, NONE = "submitted", "stored", "none"
_PANDAS_TYPES = {"BIGINT": "Int64", "INTEGER": "Int64", "DOUBLE": "Float64", "VARCHAR": "object"}


@dataclass
class Batch:
    """Applications in the application_test layout, and optional rows of the six history tables."""

    applications: pd.DataFrame
    history: dict[str, pd.DataFrame] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _models() -> tuple[list[sql_models.SqlModel], frozenset[str]]:
    models = sql_models.discover()
    return models, frozenset(scoring.models_reading(models, APPLICATION))


def history_models() -> list[str]:
    """The SQL models that aggregate history only: what an applicant keeps between applications."""
    models, reading_application = _models()
    return [m.name for m in models if m.name not in reading_application and any(s[0] == "raw" for s in m.sources)
            and ("raw", "application_train") not in m.sources]


def typed(table: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with every declared column of `table`, in nullable pandas types DuckDB maps one to one."""
    columns = SOURCE_TABLES[table].columns
    frame = rows.reindex(columns=list(columns))
    return frame.astype({c: _PANDAS_TYPES[t] for c, t in columns.items()})


def _load(con: duckdb.DuckDBPyConnection, schema: str, table: str, rows: pd.DataFrame | None) -> None:
    columns = ", ".join(f'"{c}" {t}' for c, t in SOURCE_TABLES[table].columns.items())
    con.execute(f"create table {schema}.{table} ({columns})")
    if rows is not None and len(rows):
        name = f"rows_{table}"
        con.register(name, typed(table, rows))
        con.execute(f"insert into {schema}.{table} by name select * from {name}")
        con.unregister(name)


def _submitted_ids(con: duckdb.DuckDBPyConnection, schema: str) -> set[int]:
    union = " union ".join(f"select SK_ID_CURR from {schema}.{t}" for t in HISTORY_TABLES if t != "bureau_balance")
    return {r[0] for r in con.execute(union).fetchall()}


def score(batch: Batch, model: RegisteredModel, dictionary: pd.DataFrame, stored_history: Path | None,
          *, search_counterfactuals: bool = True) -> pd.DataFrame:
    """Score `batch` as the night would: one row per application with the nightly fields
    (PD, points, grade, decision, reasons, counterfactual, fingerprint) and `history_source`.
    Without `search_counterfactuals` (the dashboard's what-if), the counterfactual is empty."""
    ids = batch.applications["SK_ID_CURR"].astype("int64").tolist()
    schema = "od"  # private to this in-memory connection
    features_schema = f"{schema}_features"
    models, reading_application = _models()
    with duckdb.connect(config={"threads": settings.threads()}) as con:
        con.execute(f"create schema {schema}")
        _load(con, schema, APPLICATION, batch.applications)
        _load(con, schema, "application_train", None)
        for table in HISTORY_TABLES:
            _load(con, schema, table, batch.history.get(table))
        submitted = _submitted_ids(con, schema) & set(ids)
        schemas = {"raw": schema, "features": features_schema}
        for m in models:
            if m.name not in reading_application:
                sql_models.build_model(con, m, schemas=schemas)
        stored = _add_stored_history(con, features_schema, [i for i in ids if i not in submitted], stored_history)
        for m in models:
            if m.name in reading_application:
                sql_models.build_model(con, m, schemas=schemas)
        features = scoring.frame(con, f"select * from {features_schema}.application_features")
        scored = scoring.score_frame(model, features, dictionary)
        refused = scored.loc[scored["decision"] != scoring.GRANTED, "SK_ID_CURR"].tolist() if search_counterfactuals else []
        cf = scoring.counterfactuals(con, model, schema, refused, work_schema=f"cf_{uuid.uuid4().hex[:8]}")
    scored = scored.merge(cf[["SK_ID_CURR", "counterfactual"]], on="SK_ID_CURR", how="left")
    scored["history_source"] = [SUBMITTED if i in submitted else STORED if i in stored else NONE for i in scored["SK_ID_CURR"]]
    scored["unknown_categories"] = unknown_categories(model, features)
    # answer in the order asked
    return scored.set_index("SK_ID_CURR").loc[ids].reset_index()


def unknown_categories(model: RegisteredModel, features: pd.DataFrame) -> list[dict[str, str]]:
    """Per row, the category values the model never saw in training (scored as missing)."""
    known = {c: set(v) for c, v in model.metadata["categories"].items() if c in features}
    values = {c: features[c].to_numpy(dtype=object) for c in known}
    return [{c: str(values[c][i]) for c in known if pd.notna(values[c][i]) and str(values[c][i]) not in known[c]}
            for i in range(len(features))]


def _add_stored_history(con: duckdb.DuckDBPyConnection, features_schema: str, ids: list[int], snapshot: Path | None) -> set[int]:
    """Copy the published history features of `ids` into this connection; the ids found."""
    if not ids or snapshot is None or not snapshot.exists():
        return set()
    alias = "stored_" + uuid.uuid4().hex[:8]
    # the file is opened once, read-only: a snapshot swapped in meanwhile (os.replace) does not
    # change what this request reads
    con.execute(f"attach '{snapshot}' as {alias} (read_only)")
    try:
        published = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_catalog = ?", [alias]).fetchall()}
        con.register("stored_ids", pd.DataFrame({"SK_ID_CURR": ids}))
        found: set[int] = set()
        for name in history_models():
            if f"history_{name}" not in published:
                continue
            con.execute(f"""insert into {features_schema}.{name} by name
                            select * from {alias}.history_{name} where SK_ID_CURR in (select SK_ID_CURR from stored_ids)""")
            found |= {r[0] for r in con.execute(f"select SK_ID_CURR from {features_schema}.{name}").fetchall()}
    finally:
        con.execute(f"detach {alias}")
    return found & set(ids)


def history_tables_sql(drop_schemas: list[str]) -> dict[str, str]:
    """`history_<model>` tables for the serving snapshot: each applicant's newest history
    features, from the latest drop that had them, else from the training build."""
    tables = {}
    for name in history_models():
        sources = [f"select *, {i} as _rank from {s}_features.{name}" for i, s in enumerate(sorted(drop_schemas, reverse=True))]
        sources.append(f"select *, {len(drop_schemas)} as _rank from features.{name}")
        tables[f"history_{name}"] = (f"select * exclude (_rank) from ({' union all by name '.join(sources)}) "
                                     "qualify row_number() over (partition by SK_ID_CURR order by _rank) = 1")
    return tables
