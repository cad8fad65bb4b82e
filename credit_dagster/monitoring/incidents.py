"""Failed runs, one line each, in `monitoring.incidents`: what the supervisor and on-call read."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from credit_dagster.core import settings

DDL = """create table if not exists monitoring.incidents (
    run_id varchar, job varchar, partition_key varchar, step varchar, reason varchar, failed_at timestamp, origin varchar)"""


def root_cause(error) -> str:
    """The innermost message of a Dagster error (its wrapper text says little), on one line."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    if error is None:
        return "unknown error"
    return f"{error.cls_name}: {error.message.strip().splitlines()[0] if error.message.strip() else ''}"


def record(con: duckdb.DuckDBPyConnection, **incident: str | None) -> None:
    """Write (or rewrite) the incident of one failed run (`_row`'s fields), and any kept for later."""
    _write_with_kept(con, [_row(**incident)])


def fold_kept(con: duckdb.DuckDBPyConnection) -> int:
    """Write the incidents kept for later into the table; how many."""
    return _write_with_kept(con, [])


def keep_for_later(**incident: str | None) -> Path:
    """Keep an incident in an append-only file when the warehouse is busy: a sensor must not
    wait for a night's run (the daemon could not stop meanwhile). The next writer of incidents
    and every night's snapshot step fold the file into the table."""
    path = kept_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(_row(**incident)) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def kept_file() -> Path:
    return settings.credit_home() / "monitoring" / "incidents_kept.jsonl"


def _row(*, run_id: str, job: str, partition_key: str | None, step: str | None, reason: str, origin: str) -> dict:
    return {"run_id": run_id, "job": job, "partition_key": partition_key, "step": step, "reason": reason,
            "failed_at": datetime.now(UTC).replace(tzinfo=None).isoformat(), "origin": origin}


def _write_with_kept(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> int:
    # The kept file is renamed before it is read, so a line appended meanwhile goes to a new file;
    # the taken files are deleted only once their rows are committed (a writer killed in between
    # leaves them for the next one: rewriting a run's incident is idempotent).
    path = kept_file()
    try:
        os.replace(path, path.with_name(f"{path.name}.{os.getpid()}"))
    except FileNotFoundError:
        pass
    taken = sorted(path.parent.glob(f"{path.name}.*")) if path.parent.exists() else []
    kept = [json.loads(line) for file in taken for line in file.read_text().splitlines() if line.strip()]
    if kept or rows:
        _write(con, kept + rows)
    for file in taken:
        file.unlink()
    return len(kept)


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
