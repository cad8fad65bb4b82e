"""What each store keeps, and for how long: applied once a day by the `retention` asset.

Periods (settings, in days; 0 keeps forever):
- CREDIT_RETENTION_DROP_DAYS: a night's drop — its inbox folder, its tables and features in the
  warehouse (`drop_<day>`, `drop_<day>_features`), what the dashboard shows of its applicants
  (`DETAILS`: the application, features, contributions). A decision can be replayed until then
  (`decision replay` recomputes from the night's features); it can still be shown after.
- CREDIT_RETENTION_DECISION_DAYS: the decisions and their audit — the nights' rows of
  `scoring.decision_audit` and `scoring.scored_applications`, the on-demand decisions (the API's
  day files and `scoring.ondemand_audit`).
- CREDIT_RETENTION_ACCESS_DAYS: the access logs — the dashboard's, and the API's reads.
With CREDIT_STORAGE=datasets, the nights' Parquet partitions the same way: the decisions' and
their audit's (`scored_applications`, `decision_audit`) with the decisions, every other table's
(the drop's, the features', the details') with the drop.

Not removed by age: the night seals, the erasures and this retention's own journal (no personal
data; they prove the rest), the review journal (cases are folded from all of it), outcomes and
back-tests (they judge models for their whole life), the registry.

The chains still verify: each run is recorded first (fsync'ed) in the retention journal — the
nights whose decisions went (their seals are then not checked, and counted as retired) and, for
each journal whose oldest day files went, the hash the first remaining line names (the chain's
new start, core/audit.py). A kill between the record and the removal leaves records of more than
was removed, which verifies; the next day's run removes the rest.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb

from credit_dagster.core import audit, datasets, settings
from credit_dagster.core.seals import AUDIT

DETAILS = ("scoring.applications", "scoring.applicant_details", "scoring.applicant_features", "scoring.applicant_contributions")
DECISION_DATASETS = ("scored_applications", "decision_audit")  # kept with the decisions; every other dataset with the drop


@dataclass
class Applied:
    cutoffs: dict[str, str]  # store -> the oldest day kept
    removed: Counter[str] = field(default_factory=Counter)  # where -> rows, files or folders removed
    nights_retired: list[str] = field(default_factory=list)


def cutoffs(today: date) -> dict[str, date | None]:
    """Per store, the oldest day kept (None: kept forever)."""
    now = settings.current()
    days = {"drops": now.retention_drop_days, "decisions": now.retention_decision_days, "access": now.retention_access_days}
    return {store: today - timedelta(days=n) if n else None for store, n in days.items()}


def journals_by_store() -> dict[str, list[tuple[Path, str]]]:
    """The journals whose day files go with each store's period."""
    return {"decisions": [(audit.audit_dir(), audit.PREFIX)],
            "access": [(audit.access_dir(), audit.ACCESS_PREFIX), (audit.audit_dir(), audit.READS_PREFIX)]}


def apply(con: duckdb.DuckDBPyConnection, inbox: Path, today: date) -> Applied:
    """Remove what each store holds past its period: record it, then remove it."""
    limits = cutoffs(today)
    applied = Applied({store: day.isoformat() if day else "forever" for store, day in limits.items()})
    drops = _old_drops(con, inbox, limits["drops"])
    journals = {(folder, prefix): files for store, listed in journals_by_store().items() for folder, prefix in listed
                if (files := _old_day_files(folder, prefix, limits[store]))}
    nights = _old_nights(con, limits["decisions"])
    details = [table for table in DETAILS if limits["drops"] and _table(con, table) and con.execute(
        f"select 1 from {table} where cast(partition_date as date) < ? limit 1", [limits["drops"].isoformat()]).fetchone()]
    partitions = _old_partitions(limits)
    for night, runs in _dataset_nights(con, partitions).items():
        nights[night] = sorted({*nights.get(night, []), *runs})
    if not (drops[0] or drops[1] or journals or nights or details or partitions):
        return applied
    record = {"at": today.isoformat(), "cutoffs": applied.cutoffs,
              "nights": [{"night": night, "run_ids": runs} for night, runs in nights.items()],
              "journals": [{"journal": prefix, "removed": [f.name for f in files], "anchor": _anchor(folder, prefix, files)}
                           for (folder, prefix), files in journals.items()]}
    audit.AuditLog(audit.audit_dir(), prefix=audit.RETENTION_PREFIX).append([record])  # fsync'ed before anything goes

    schemas, folders = drops
    for schema in schemas:
        tables = con.execute("select count(*) from information_schema.tables where table_schema = ?", [schema]).fetchone()[0]
        con.execute(f'drop schema "{schema}" cascade')
        applied.removed["warehouse drop tables"] += tables
    for folder in folders:
        _remove_tree(folder)
        applied.removed["inbox drop folders"] += 1
    if nights:
        day = limits["decisions"].isoformat()
        for table in (AUDIT, "scoring.scored_applications", "scoring.ondemand_audit"):
            if _table(con, table):
                column = "cast(scored_at as date)" if table.endswith("ondemand_audit") else "cast(partition_date as date)"
                applied.removed[f"{table} rows"] += con.execute(f"delete from {table} where {column} < ?", [day]).fetchone()[0]
        for runs in nights.values():  # their rows' digests beside the seals (core/seals.py) go with them
            for run in runs:
                (audit.audit_dir() / "seal_rows" / f"{run}.bin").unlink(missing_ok=True)
        applied.nights_retired = sorted(nights)
    for table in details:
        applied.removed[f"{table} rows"] += con.execute(f"delete from {table} where cast(partition_date as date) < ?",
                                                        [limits["drops"].isoformat()]).fetchone()[0]
    for table, night in partitions:
        datasets.remove_night(datasets.root(), table, night)
        applied.removed[f"datasets {table} nights"] += 1
    for (_, prefix), files in journals.items():
        for path in files:
            path.unlink()
        applied.removed[f"{prefix}*.jsonl day files"] += len(files)
    applied.removed = +applied.removed  # what was removed, without the tables that had nothing past its period
    return applied


def _old_drops(con: duckdb.DuckDBPyConnection, inbox: Path, before: date | None) -> tuple[list[str], list[Path]]:
    if before is None:
        return [], []
    schemas = [s for (s,) in con.execute("select schema_name from information_schema.schemata where schema_name like 'drop\\_%' escape '\\' "
                                         "and catalog_name = current_database()").fetchall()
               if (day := _day(s.removeprefix("drop_").removesuffix("_features"), compact=True)) and day < before]
    folders = [p for p in sorted(inbox.iterdir()) if p.is_dir() and (day := _day(p.name)) and day < before] if inbox.is_dir() else []
    return sorted(schemas), folders


def _old_nights(con: duckdb.DuckDBPyConnection, before: date | None) -> dict[str, list[str]]:
    if before is None or not _table(con, AUDIT):  # (a view over the datasets when CREDIT_STORAGE=datasets: not here)
        return {}
    rows = con.execute(f"select partition_date, list(distinct run_id order by run_id) from {AUDIT} "
                       "where cast(partition_date as date) < ? group by 1 order by 1", [before.isoformat()]).fetchall()
    return {str(night): runs for night, runs in rows}


def _old_partitions(limits: dict[str, date | None]) -> list[tuple[str, str]]:
    """The (table, night) partitions of the Parquet datasets past their period (CREDIT_STORAGE=datasets)."""
    if settings.current().storage != "datasets":
        return []
    return [(table, night) for table, listed in sorted(datasets.nights(datasets.root()).items()) for night in listed
            if (before := limits["decisions" if table in DECISION_DATASETS else "drops"]) and (day := _day(night)) and day < before]


def _dataset_nights(con: duckdb.DuckDBPyConnection, partitions: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The runs whose sealed decisions go with the audit dataset's partitions in `partitions`."""
    root, audit_table = datasets.root(), AUDIT.split(".")[1]
    return {night: [r for (r,) in con.execute(f"select distinct run_id from ({datasets.scan(root, audit_table, night)}) order by 1").fetchall()]
            for table, night in partitions if table == audit_table}


def _old_day_files(folder: Path, prefix: str, before: date | None) -> list[Path]:
    """The journal's day files older than `before`, oldest first: the chain's oldest part only."""
    if before is None:
        return []
    files = sorted(folder.glob(f"{prefix}*.jsonl"))
    return [p for p in files if (day := _day(p.stem.removeprefix(prefix))) and day < before]


def _anchor(folder: Path, prefix: str, removed: list[Path]) -> str:
    """What the first day file kept names: the head of the files removed, where the chain goes on."""
    kept = [p.name for p in sorted(folder.glob(f"{prefix}*.jsonl")) if p.name > removed[-1].name]
    return audit.head(folder, prefix, before=kept[0] if kept else None)


def _day(text: str, compact: bool = False) -> date | None:
    try:
        return date.fromisoformat(f"{text[:4]}-{text[4:6]}-{text[6:8]}" if compact else text)
    except ValueError:
        return None


def _table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    schema, table = name.split(".")
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = ? and table_name = ? "
                            "and table_catalog = current_database() and table_type = 'BASE TABLE'", [schema, table]).fetchone()[0])


def _remove_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()

