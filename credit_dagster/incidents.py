"""Failed runs, one line each, in `monitoring.incidents`: what the supervisor and on-call read."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pandas as pd

DDL = """create table if not exists monitoring.incidents (
    run_id varchar, job varchar, partition_key varchar, step varchar, reason varchar, failed_at timestamp, origin varchar)"""


def root_cause(error) -> str:
    """The innermost message of a Dagster error (its wrapper text says little), on one line."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    if error is None:
        return "unknown error"
    return f"{error.cls_name}: {error.message.strip().splitlines()[0] if error.message.strip() else ''}"


def record(con: duckdb.DuckDBPyConnection, *, run_id: str, job: str, partition_key: str | None, step: str | None,
           reason: str, origin: str) -> None:
    """Write (or rewrite) the incident of one failed run."""
    con.execute("create schema if not exists monitoring")
    con.execute(DDL)
    row = pd.DataFrame([{"run_id": run_id, "job": job, "partition_key": partition_key, "step": step, "reason": reason,
                         "failed_at": datetime.now(UTC).replace(tzinfo=None), "origin": origin}])
    con.register("incident_df", row)
    con.execute("begin transaction")
    con.execute("delete from monitoring.incidents where run_id = ?", [run_id])
    con.execute("insert into monitoring.incidents by name select * from incident_df")
    con.execute("commit")
    con.unregister("incident_df")
