"""The dbt-like runner: refs, order, atomic builds, and errors that name the file."""

import duckdb
import pytest

from credit_dagster.features import sql_models


def write(folder, name, text):
    path = folder / "features" / f"{name}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_project_models_parse_in_dependency_order():
    models = sql_models.discover()
    order = [m.name for m in models]
    assert order.index("application_features") > max(order.index(r) for r in models[order.index("application_features")].refs)
    wide = next(m for m in models if m.name == "application_features")
    assert wide.grain.startswith("one row per SK_ID_CURR") and wide.group == "features"
    assert ("raw", "bureau_balance") in next(m for m in models if m.name == "bureau_features").sources


def test_unknown_ref_and_cycle_name_the_files(tmp_path):
    write(tmp_path, "a", "select * from {{ ref('missing') }}")
    with pytest.raises(sql_models.SqlModelError, match=r"a\.sql: ref to unknown model\(s\) missing"):
        sql_models.discover(tmp_path)
    write(tmp_path, "a", "select * from {{ ref('b') }}")
    write(tmp_path, "b", "select * from {{ ref('a') }}")
    with pytest.raises(sql_models.SqlModelError, match=r"ref cycle: .*a\.sql.*b\.sql|ref cycle: .*b\.sql.*a\.sql"):
        sql_models.discover(tmp_path)


def test_not_a_select_is_refused(tmp_path):
    write(tmp_path, "drop_it", "drop table raw.bureau")
    with pytest.raises(sql_models.SqlModelError, match="drop_it.sql: a model must be a plain select"):
        sql_models.discover(tmp_path)


def test_sql_error_names_the_file_and_keeps_the_previous_table(tmp_path):
    con = duckdb.connect()
    con.execute("create schema raw; create table raw.t as select 1 as x")
    write(tmp_path, "m", "select x + 1 as y from {{ source('raw', 't') }}")
    model = sql_models.discover(tmp_path)[0]
    assert sql_models.build_model(con, model) == 1
    write(tmp_path, "m", "select no_such_column from {{ source('raw', 't') }}")
    broken = sql_models.discover(tmp_path)[0]
    with pytest.raises(sql_models.SqlModelError, match=r"m\.sql: .*no_such_column"):
        sql_models.build_model(con, broken)
    assert con.execute("select y from features.m").fetchall() == [(2,)]
