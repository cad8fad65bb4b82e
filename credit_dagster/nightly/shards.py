"""A night in applicant shards on the Parquet datasets (CREDIT_STORAGE=datasets).

The drop is landed once (`land`: the same gates and quarantine as the warehouse path) and split
by shard, SK_ID_CURR mod N; each shard is then scored by its own step, on any worker, from its
own files only (`score_shard`: the same SQL models, model, reasons and counterfactuals as the
single-process night); `publish` checks that every applicant of the drop was scored exactly once
and binds the warehouse to the datasets (views), so drift, the serving snapshot, review and
back-testing read them as they read the warehouse's own tables.

Datasets under the root (`core.datasets`), all by night and shard: `drop_<table>` (the drop's
rows; `drop_quarantine` in shard `all`, it is the night's), `night_<model>` (each SQL model's rows
of the night), the tables `night.score` returns, and `decision_audit` (appended, never replaced).
No step but `publish` opens the warehouse, so shards never wait for its single writer.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb

from credit_dagster.core import datasets, settings
from credit_dagster.core.sources import SOURCE_TABLES
from credit_dagster.decision import scoring
from credit_dagster.features import sql_models
from credit_dagster.features.dictionary import build_dictionary
from credit_dagster.ingest.loaders import QUARANTINE_DDL
from credit_dagster.model.registry import RegisteredModel
from credit_dagster.nightly import drops, night

NIGHT_SHARD = "all"  # the shard folder of what belongs to the whole night (its quarantine)
DECISION_TABLES = ("scored_applications", "applicant_details", "applicant_features", "applicant_contributions", "applications")
AUDIT = "decision_audit"


class NightIncomplete(ValueError):
    """Some applicant of the drop was not scored, or scored more than once."""


def connect(location: str) -> duckdb.DuckDBPyConnection:
    """A worker's own in-memory DuckDB, able to read and write the datasets. Past its memory
    limit (CREDIT_DUCKDB_MEMORY_LIMIT) it spills to a folder of its own in the machine's temporary
    folder, which DuckDB makes when it first spills and removes on close: left alone, an in-memory
    DuckDB spills to `.tmp` in the working directory, which two workers in one folder would share."""
    spill = Path(tempfile.gettempdir()) / f"credit_duckdb_{uuid.uuid4().hex}"
    con = duckdb.connect(config={"memory_limit": settings.current().duckdb_memory_limit, "threads": settings.threads(),
                                 "temp_directory": str(spill)})
    datasets.attach(con, location)
    return con


def _view(con: duckdb.DuckDBPyConnection, name: str, location: str, table: str, night: str | None = None,
          shard: str | None = None) -> None:
    con.execute(f"create or replace view {name} as select * exclude (night, shard) from "
                f"({datasets.scan(location, table, night, shard)})")


def land(con: duckdb.DuckDBPyConnection, location: str, inbox: Path, day: str, n_shards: int,
         max_reject_share: float) -> drops.DropLoad:
    """Load the day's drop (drops.load_drop, here in `con`) and write it as the `drop_*` datasets,
    each row in its applicant's shard (a bureau_balance row in its bureau record's). Applicants
    scored on an earlier night, found in the scored_applications dataset, are quarantined."""
    con.execute("create schema if not exists scoring")
    if datasets.exists(location, "scored_applications"):
        _view(con, "scoring.scored_applications", location, "scored_applications")
    loaded = drops.load_drop(con, inbox, day, max_reject_share)
    names = datasets.shard_names(n_shards)
    for name in drops.DROP_TABLES:
        if name == "bureau_balance":  # an orphan (no bureau record in the drop) goes to the first shard: nothing is lost
            sql = (f"select bb.*, coalesce({datasets.shard_of_sql('b.SK_ID_CURR', n_shards)}, '{names[0]}') as shard "
                   f"from {loaded.schema}.bureau_balance bb left join {loaded.schema}.bureau b using (SK_ID_BUREAU)")
        else:
            sql = f"select *, {datasets.shard_of_sql('SK_ID_CURR', n_shards)} as shard from {loaded.schema}.{name}"
        datasets.write(con, sql, location, f"drop_{name}", day, names)
    datasets.write(con, f"select *, '{NIGHT_SHARD}' as shard from {loaded.schema}.quarantine", location, "drop_quarantine", day,
                   [NIGHT_SHARD])
    return loaded


def bind_drop(con: duckdb.DuckDBPyConnection, location: str, day: str, shard: str | None = None) -> str:
    """The drop of `day` (one shard of it, or all) as the schema drop_<YYYYMMDD> that the SQL
    models and checks read: views on the datasets, an empty table where the drop had no rows."""
    schema = drops.drop_schema(day)
    con.execute(f"create schema if not exists {schema}")
    for name in [*drops.DROP_TABLES, "quarantine"]:
        if datasets.exists(location, f"drop_{name}", day):
            _view(con, f"{schema}.{name}", location, f"drop_{name}", day, shard if name != "quarantine" else None)
        elif name == "quarantine":  # nothing held back that night
            con.execute(QUARANTINE_DDL.format(schema=schema))
        else:
            con.execute(f"create or replace table {schema}.{name} ({SOURCE_TABLES[name].columns_sql()})")
    # an empty application_train lets the same SQL models run on the drop (as drops.load_drop does)
    con.execute(f"create or replace table {schema}.application_train ({SOURCE_TABLES['application_train'].columns_sql()})")
    return schema


def score_shard(con: duckdb.DuckDBPyConnection, location: str, day: str, shard: str, model: RegisteredModel, run_id: str,
                log: Callable[[str], None], warn: Callable[[str], None]) -> night.ScoredNight | None:
    """Build the shard's features, score them and write every table to the shard's partitions
    (replacing them; the audit trail is appended). None when the shard has no application."""
    schema = bind_drop(con, location, day, shard)
    models = sql_models.discover()
    sql_models.build_all(con, models, schemas={"raw": schema, "features": f"{schema}_features"})
    for m in models:
        datasets.write(con, f"select *, '{shard}' as shard from {schema}_features.{m.name}", location, f"night_{m.name}", day, [shard])
    columns = [r[0] for r in con.execute(f"describe {schema}_features.application_features").fetchall() if r[0] != "SK_ID_CURR"]
    if not con.execute(f"select count(*) from {schema}_features.application_features").fetchall()[0][0]:
        for table in DECISION_TABLES:  # a re-run of a shard that is now empty leaves none of its old rows
            datasets.remove(location, table, day, shard)
        return None
    scored = night.score(con, schema, model, build_dictionary(models, columns), day, run_id, log, warn)
    for table, frame in scored.tables.items():
        con.register("shard_frame", frame)
        datasets.write(con, f"select *, '{shard}' as shard from shard_frame", location, table, day, [shard])
    # the decisions with their declared types, as the warehouse stores them
    typed = ", ".join(f'"{c}"::{t} as "{c}"' for c, t in scoring.DECISION_COLUMNS.items())
    con.register("shard_frame", scored.scored)
    for table in ("scored_applications", AUDIT):
        datasets.write(con, f"select {typed}, '{shard}' as shard from shard_frame", location, table, day, [shard], append=table == AUDIT)
    con.unregister("shard_frame")
    return scored


def exactly_once(con: duckdb.DuckDBPyConnection, location: str, day: str) -> dict:
    """Every applicant the drop landed was scored, once, in its own shard; NightIncomplete says who was not."""
    if not datasets.exists(location, "drop_application_test", day):
        raise NightIncomplete(f"night {day} was never landed: no drop_application_test dataset under {location}")
    landed = datasets.scan(location, "drop_application_test", day)
    scored = datasets.scan(location, "scored_applications", day) if datasets.exists(location, "scored_applications", day) \
        else "select null::bigint as SK_ID_CURR, null as shard where false"
    n_landed, n_scored, distinct, missing, extra, misplaced = con.execute(f"""
        with landed as ({landed}), scored as ({scored})
        select (select count(*) from landed), (select count(*) from scored), (select count(distinct SK_ID_CURR) from scored),
               (select list(SK_ID_CURR order by SK_ID_CURR) from (select SK_ID_CURR from landed except select SK_ID_CURR from scored)),
               (select list(SK_ID_CURR order by SK_ID_CURR) from (select SK_ID_CURR from scored except select SK_ID_CURR from landed)),
               (select count(*) from scored s join landed l using (SK_ID_CURR) where s.shard <> l.shard)""").fetchall()[0]
    missing, extra = missing or [], extra or []
    problems = []
    if missing:
        problems.append(f"{len(missing)} applicants of the drop not scored (a shard failed or was not run?), e.g. {missing[:10]}")
    if extra:
        problems.append(f"{len(extra)} scored applicants that the drop does not hold, e.g. {extra[:10]}")
    if n_scored != distinct:
        problems.append(f"{n_scored - distinct} applicants scored more than once")
    if misplaced:
        problems.append(f"{misplaced} applicants scored in another shard than their own (was CREDIT_SHARDS changed mid-night?)")
    if problems:
        raise NightIncomplete(f"night {day} is not published: " + "; ".join(problems))
    return {"landed": n_landed, "scored": n_scored}


def publish(con: duckdb.DuckDBPyConnection, location: str, day: str) -> dict:
    """Check the night (`exactly_once`), then bind the warehouse `con` to the datasets: the
    night's drop and features as its schemas drop_<day> and drop_<day>_features, and the
    decision tables of every night as views in schema scoring."""
    counts = exactly_once(con, location, day)
    kinds = dict(con.execute("select table_name, table_type from information_schema.tables where table_schema = 'scoring'").fetchall())
    stored = [t for t in (*DECISION_TABLES, AUDIT) if kinds.get(t) == "BASE TABLE"]
    if stored:
        raise ValueError(f"the warehouse holds nights scored into its own tables ({', '.join(stored)}): a warehouse switches "
                         "to CREDIT_STORAGE=datasets before its first night, or starts anew")
    schema = bind_drop(con, location, day)
    con.execute(f"create schema if not exists {schema}_features")
    con.execute("create schema if not exists scoring")
    for m in sql_models.discover():
        _view(con, f"{schema}_features.{m.name}", location, f"night_{m.name}", day)
    for table in (*DECISION_TABLES, AUDIT):
        _view(con, f"scoring.{table}", location, table)
    return counts
