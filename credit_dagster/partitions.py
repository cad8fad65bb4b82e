"""Idempotent daily partitions in DuckDB tables: delete the day, insert it, in one transaction."""

from __future__ import annotations

import duckdb
import pandas as pd


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
