"""Nightly partitions: in Dagster, one per day a drop arrived; in DuckDB tables, a day's rows
replaced in one transaction (delete the day, insert it), so a re-run never duplicates."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
import duckdb
import pandas as pd

from credit_dagster.core import datasets
from credit_dagster.core.keys import CHAMPION

# One partition per drop, not per calendar day: the UI then counts as missing only drops that
# were not scored (a weekend or a holiday without applications is no gap), and a backfill of
# "missing" partitions launches runs that have something to score. The schedule, the late-drop
# sensor and the CLI add a day when they find its drop (`register`).
drop_days = dg.DynamicPartitionsDefinition(name="drop_days")

# a shard's assets take their night's partition of a night's assets, and a night's assets every
# shard of their night (CREDIT_STORAGE=datasets)
BY_NIGHT = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="night")


def after_the_drop() -> dg.AutomationCondition:
    """On the Parquet datasets (CREDIT_STORAGE=datasets), a night's drop is landed by its own run,
    and the rest of the night follows by declarative automation (the daemon's `night_automation`
    sensor): each asset once its night's inputs were updated, none of them missing or running; a
    new champion does not score old nights again. A warehouse night is one run: no condition."""
    return dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets(CHAMPION))


def night_shards(n_shards: int) -> dg.MultiPartitionsDefinition:
    """A night's applicant shards (CREDIT_STORAGE=datasets): one partition per night and shard."""
    return dg.MultiPartitionsDefinition({"night": drop_days, "shard": dg.StaticPartitionsDefinition(datasets.shard_names(n_shards))})


def missing(instance: dg.DagsterInstance, days: Iterable[str]) -> list[str]:
    """The days not yet partitions of `drop_days` (once each, in order)."""
    return [day for day in dict.fromkeys(days) if not instance.has_dynamic_partition(drop_days.name, day)]


def register(instance: dg.DagsterInstance, days: Iterable[str]) -> list[str]:
    """Add the days not yet partitions of `drop_days`; returns those added."""
    new = missing(instance, days)
    if new:
        instance.add_dynamic_partitions(drop_days.name, new)
    return new


def create_or_extend(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str]) -> None:
    """`table` with at least `columns` (name -> type): created if missing, and given the columns a
    newer release added if it is older (they are empty for the rows it already holds)."""
    con.execute(f"create table if not exists {table} (" + ", ".join(f'"{c}" {t}' for c, t in columns.items()) + ")")
    for column, dtype in columns.items():
        con.execute(f'alter table {table} add column if not exists "{column}" {dtype}')


def replace_partition(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, day: str,
                      *, in_transaction: bool = False) -> None:
    """Make `table`'s rows for `day` exactly `frame` (which has a partition_date column).

    The table is created on first use; columns that a newer release adds are added to an
    existing table, so a warehouse from an older version keeps working."""
    name = f"frame_{abs(hash((table, day)))}"
    con.register(name, frame)
    con.execute(f"create table if not exists {table} as select * from {name} where false")
    existing = {r[0] for r in con.execute(f"describe {table}").fetchall()}
    for column, dtype, *_ in con.execute(f"describe select * from {name}").fetchall():
        if column not in existing:
            con.execute(f'alter table {table} add column "{column}" {dtype}')
    if not in_transaction:
        con.execute("begin transaction")
    con.execute(f"delete from {table} where partition_date = ?", [day])
    con.execute(f"insert into {table} by name select * from {name}")
    if not in_transaction:
        con.execute("commit")
    con.unregister(name)
