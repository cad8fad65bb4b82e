"""Failed runs, one line each, in `monitoring.incidents`: what the supervisor and on-call read."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from credit_dagster import settings

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
    """Write (or rewrite) the incident of one failed run, and any kept for later (`keep_for_later`)."""
    rows = [{"run_id": run_id, "job": job, "partition_key": partition_key, "step": step, "reason": reason,
             "failed_at": datetime.now(UTC).replace(tzinfo=None).isoformat(), "origin": origin}]
    _write(con, _take_kept() + rows)


def fold_kept(con: duckdb.DuckDBPyConnection) -> int:
    """Write the incidents kept for later into the table; how many."""
    kept = _take_kept()
    if kept:
        _write(con, kept)
    return len(kept)


def keep_for_later(*, run_id: str, job: str, partition_key: str | None, step: str | None, reason: str, origin: str) -> Path:
    """Keep an incident in an append-only file when the warehouse is busy: a sensor must not
    wait for a night's run (the daemon could not stop meanwhile). The next writer of incidents
    and every night's snapshot step fold the file into the table."""
    path = kept_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"run_id": run_id, "job": job, "partition_key": partition_key, "step": step, "reason": reason,
                       "failed_at": datetime.now(UTC).replace(tzinfo=None).isoformat(), "origin": origin})
    with open(path, "a") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def kept_file() -> Path:
    return settings.credit_home() / "monitoring" / "incidents_kept.jsonl"


def _take_kept() -> list[dict]:
    # renamed before reading: an incident appended meanwhile goes to a new file, never lost
    path = kept_file()
    taken = path.with_name(f"{path.name}.{os.getpid()}")
    try:
        os.replace(path, taken)
    except FileNotFoundError:
        return []
    rows = [json.loads(line) for line in taken.read_text().splitlines() if line.strip()]
    taken.unlink()
    return rows


def _write(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    con.execute("create schema if not exists monitoring")
    con.execute(DDL)
    # one line per run: a run kept for later and recorded again counts once, as last said
    frame = pd.DataFrame(rows).drop_duplicates("run_id", keep="last").assign(failed_at=lambda f: pd.to_datetime(f["failed_at"]))
    con.register("incident_df", frame)
    con.execute("begin transaction")
    con.execute("delete from monitoring.incidents where run_id in (select run_id from incident_df)")
    con.execute("insert into monitoring.incidents by name select * from incident_df")
    con.execute("commit")
    con.unregister("incident_df")
