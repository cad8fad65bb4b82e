"""Daily drops of new applications: the inbox layout, replaying Kaggle's test set as drops, loading one.

A drop is a folder `<inbox>/<YYYY-MM-DD>/` with that day's applications in the Kaggle
application_test format plus the side-table rows of those applicants, file names as in Kaggle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from credit_dagster.core import settings
from credit_dagster.core.sources import SOURCE_TABLES
from credit_dagster.ingest.loaders import LoadReport, SourceFileError, find_source_file, load_table

DROP_TABLES = [name for name in SOURCE_TABLES if name != "application_train"]


def inbox_dir() -> Path:
    return settings.under_home(settings.current().inbox, "inbox").resolve()


TIMEZONE = ZoneInfo("Europe/Paris")
NIGHT = time(2, 0)  # the default nightly tick (CREDIT_NIGHTLY_CRON); the late-drop sensor counts an hour from it


def today() -> date:
    return datetime.now(TIMEZONE).date()


def has_drop(inbox: Path, day: str) -> bool:
    """The day's folder holds an application file (side-table files alone are no drop)."""
    return any((inbox / day).glob("application_test.csv*"))


def days_in_inbox(inbox: Path) -> tuple[list[str], list[str]]:
    """The days (folders named YYYY-MM-DD) holding a drop, oldest first, and the other entries
    of the inbox, which are not drops and are never scored."""
    days, strays = [], []
    for entry in sorted(inbox.iterdir()) if inbox.is_dir() else []:
        try:
            valid = entry.is_dir() and date.fromisoformat(entry.name).isoformat() == entry.name
        except ValueError:
            valid = False
        if valid and has_drop(inbox, entry.name):
            days.append(entry.name)
        elif not valid:
            strays.append(entry.name)
    return days, strays


def drop_schema(day: str) -> str:
    return "drop_" + day.replace("-", "")


LABELLED = "extra_labelled"  # labelled applicants the model never trained on, beside the Kaggle files (real sample)


def replay(data_dir: Path, inbox: Path, days: int, start: date, labelled: bool = False) -> dict[str, int]:
    """Split application_test (and the applicants' side-table rows) into `days` daily drops,
    deterministically: applicant SK_ID_CURR goes to day SK_ID_CURR mod days. `labelled`: the
    applications of `<data_dir>/extra_labelled/application_train` instead, their TARGET left out
    (it comes back later as their outcome: `labelled_outcomes`)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    con = duckdb.connect()
    for name in DROP_TABLES:
        spec = SOURCE_TABLES[name]
        if labelled and name == "application_test":
            train = SOURCE_TABLES["application_train"]
            load_table(con, train, find_source_file(data_dir / LABELLED, train), max_reject_share=1.0)
            con.execute("create table raw.application_test as select * exclude (TARGET) from raw.application_train")
            continue
        load_table(con, spec, find_source_file(data_dir, spec), max_reject_share=1.0, allow_empty=True)
    counts = {}
    for i in range(days):
        day = (start + timedelta(days=i)).isoformat()
        folder = inbox / day
        folder.mkdir(parents=True, exist_ok=True)
        con.execute(f"create or replace temp table ids as select SK_ID_CURR from raw.application_test where SK_ID_CURR % {days} = {i}")
        for name in DROP_TABLES:
            if name == "bureau_balance":
                where = "SK_ID_BUREAU in (select SK_ID_BUREAU from raw.bureau where SK_ID_CURR in (select SK_ID_CURR from ids))"
            else:
                where = "SK_ID_CURR in (select SK_ID_CURR from ids)"
            path = folder / f"{SOURCE_TABLES[name].file_stem}.csv"
            con.execute(f"copy (select * from raw.{name} where {where}) to '{path}' (header, delimiter ',')")
        counts[day] = con.execute("select count(*) from ids").fetchall()[0][0]
    con.close()
    return counts


def labelled_outcomes(data_dir: Path, granted: pd.DataFrame, months: int = 12) -> pd.DataFrame:
    """The outcome reports of replayed labelled applicants that were granted (`granted`:
    SK_ID_CURR, partition_date): their Kaggle TARGET, `months` after their night. Kaggle gives
    the flag alone: the worst days past due is stated as 30 for payment difficulties, else 0."""
    import pandas as pd

    spec = SOURCE_TABLES["application_train"]
    labels = pd.read_csv(find_source_file(data_dir / LABELLED, spec), usecols=["SK_ID_CURR", "TARGET"])
    rows = granted.merge(labels, on="SK_ID_CURR")
    nights = pd.to_datetime(rows["partition_date"].astype(str).str[:10])
    return pd.DataFrame({"SK_ID_CURR": rows["SK_ID_CURR"], "REPORTING_DATE": (nights + pd.DateOffset(months=months)).dt.strftime("%Y-%m-%d"),
                         "MONTHS_ON_BOOK": months, "WORST_DPD": rows["TARGET"] * 30, "TARGET": rows["TARGET"]})


@dataclass
class DropLoad:
    schema: str
    reports: dict[str, LoadReport]
    already_scored: list[int]
    missing_files: list[str]


def load_drop(con: duckdb.DuckDBPyConnection, inbox: Path, day: str, max_reject_share: float) -> DropLoad:
    """Load one day's drop into schema drop_<YYYYMMDD>, with the same gates as raw ingestion.

    A missing side-table file means no history rows that day (an empty table, said in the
    result); a missing or empty application file is an error. Applicants already scored on
    another day are quarantined, never scored twice."""
    folder = inbox / day
    if not folder.is_dir():
        raise SourceFileError(f"no drop for {day}: {folder} does not exist")
    schema = drop_schema(day)
    reports, missing = {}, []
    for name in DROP_TABLES:
        spec = SOURCE_TABLES[name]
        try:
            path = find_source_file(folder, spec)
        except SourceFileError:
            if name == "application_test":
                raise
            missing.append(spec.file_stem)
            con.execute(f"create schema if not exists {schema}")
            con.execute(f"create or replace table {schema}.{name} ({spec.columns_sql()})")
            continue
        reports[name] = load_table(con, spec, path, schema=schema, max_reject_share=max_reject_share,
                                   allow_empty=name != "application_test")
    # an empty application_train lets the same SQL models run on the drop
    con.execute(f"create or replace table {schema}.application_train ({SOURCE_TABLES['application_train'].columns_sql()})")
    already = _quarantine_already_scored(con, schema, day)
    return DropLoad(schema, reports, already, missing)


def _quarantine_already_scored(con: duckdb.DuckDBPyConnection, schema: str, day: str) -> list[int]:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'scoring' and table_name = 'scored_applications'"
    ).fetchall()[0][0]
    if not exists:
        return []
    rows = con.execute(f"""
        select a.SK_ID_CURR, min(s.partition_date) from {schema}.application_test a
        join scoring.scored_applications s on s.SK_ID_CURR = a.SK_ID_CURR and s.partition_date <> ?
        group by 1""", [day]).fetchall()
    if rows:
        con.execute("begin transaction")
        for sk_id, other_day in rows:
            con.execute(f"""insert into {schema}.quarantine
                select 'scoring', 'application_test', null, null, 'SK_ID_CURR',
                       'already scored on {other_day}: not scored again', to_json(a)::varchar, now()
                from {schema}.application_test a where SK_ID_CURR = ?""", [sk_id])
        con.execute(f"delete from {schema}.application_test where SK_ID_CURR in (select unnest(?))", [[r[0] for r in rows]])
        con.execute("commit")
    return [r[0] for r in rows]
