"""Each night's decisions sealed: their audit rows hash-chained, the chain recorded outside the warehouse.

`scoring.decision_audit` only grows, but a file can be edited. When a night's run has written its
rows, they are chained in SK_ID_CURR order (each row's link is the SHA-256 of the previous link and
the row, every column as it was written) and the run's seal — its row count, the columns read,
the link after every `BLOCK` rows and the head — is appended to the night-seals journal (itself
a hash chain, fsync'ed, walked by `credit-dagster audit verify`), and the head goes to the run's
Dagster metadata: two copies outside the warehouse. `verify` chains the rows again: an edited,
deleted or inserted row changes every link after it, so the first block whose link differs says
where (its SK_ID_CURR range), and rows of a run that has no seal are named too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from credit_dagster.core import audit

AUDIT = "scoring.decision_audit"
BLOCK = 100  # rows between two links kept in the seal: where a change is located to
ORDER = "SK_ID_CURR"


@dataclass
class Checked:
    runs: int
    rows: int
    problems: list[str]
    unsealed_before: int  # rows of runs written before seals existed: counted, not checked


def seal(con: duckdb.DuckDBPyConnection, night: str, run_id: str, folder: Path | None = None) -> dict:
    """Chain the rows run `run_id` wrote and append its seal (fsync'ed); the seal."""
    columns = sorted(r[0] for r in con.execute(f"describe {AUDIT}").fetchall())
    links = _links(_rows(con, columns, run_id))
    record = {"night": night, "run_id": run_id, "rows": len(links), "columns": columns, "block": BLOCK,
              "blocks": links[BLOCK - 1 :: BLOCK], "head": links[-1] if links else audit.GENESIS,
              "at": datetime.now(UTC).isoformat(timespec="seconds")}
    audit.AuditLog(folder or audit.audit_dir(), prefix=audit.SEALS_PREFIX).append([record])
    return record


def verify(con: duckdb.DuckDBPyConnection, folder: Path | None = None) -> Checked:
    """Every sealed run's rows chained again and compared with its seal; runs without one named."""
    folder = folder or audit.audit_dir()
    seals = [audit.record_of(line) for path in sorted(folder.glob(f"{audit.SEALS_PREFIX}*.jsonl"))
             for line in path.read_bytes().splitlines() if line.strip()]
    problems, rows = [], 0
    for found in seals:
        problem = _check(con, found)
        rows += found["rows"]
        if problem:
            problems.append(f"night {found['night']} (run {found['run_id']}): {problem}")
    first = min((datetime.fromisoformat(s["at"]).replace(tzinfo=None) for s in seals), default=None)
    sealed = {s["run_id"] for s in seals}
    runs = con.execute(f"select partition_date, run_id, count(*), min(scored_at) from {AUDIT} group by all order by 4").fetchall() \
        if _exists(con) else []
    before = 0
    for night, run_id, n, scored_at in runs:
        if run_id in sealed:
            continue
        if first is None or scored_at < first.replace(microsecond=0):
            before += n  # written before this release sealed nights
        else:
            problems.append(f"night {night} (run {run_id}): {n:,} rows that no seal names (inserted into the audit table, "
                            "or the night was stopped between writing and sealing: its run's log says which)")
    return Checked(len(seals), rows, problems, before)


def _check(con: duckdb.DuckDBPyConnection, found: dict) -> str | None:
    rows = _rows(con, found["columns"], found["run_id"])
    links, block = _links(rows), found["block"]
    for i, kept in enumerate(found["blocks"]):
        end = (i + 1) * block
        if len(links) < end or links[end - 1] != kept:
            ids = [r[found["columns"].index(ORDER)] for r in rows[i * block : end]]
            where = f"SK_ID_CURR {ids[0]} to {ids[-1]}" if ids else "its end"
            return f"a row among rows {i * block + 1:,} to {end:,} ({where}) was edited, deleted or inserted"
    if len(links) != found["rows"]:
        return f"{found['rows']:,} rows sealed, {len(links):,} found (rows deleted or inserted after row {len(found['blocks']) * block:,})"
    if (links[-1] if links else audit.GENESIS) != found["head"]:
        start = len(found["blocks"]) * block
        return f"a row among its last rows (from row {start + 1:,}) was edited"
    return None


def _rows(con: duckdb.DuckDBPyConnection, columns: list[str], run_id: str) -> list[tuple]:
    listed = ", ".join(f'"{c}"' for c in columns)
    return con.execute(f"select {listed} from {AUDIT} where run_id = ? order by {ORDER}", [run_id]).fetchall()


def _links(rows: list[tuple]) -> list[str]:
    """The chain over `rows`: each link the SHA-256 of the previous link and the row as JSON
    (Python's float repr and ISO dates: the same text from any release reading the same values)."""
    link, links = audit.GENESIS, []
    for row in rows:
        link = hashlib.sha256(link.encode() + json.dumps(row, default=str, separators=(",", ":")).encode()).hexdigest()
        links.append(link)
    return links


def _exists(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = 'scoring' "
                            "and table_name = 'decision_audit'").fetchone()[0])
