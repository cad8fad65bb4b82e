"""Load one source CSV into DuckDB: declared schema, quarantine for bad rows, atomic swap.

The load never leaves a half-written table: rows go to a staging table first, and the swap
(drop old table, rename staging, replace this table's quarantine rows) is one transaction.
If anything fails before the swap, the previous good table is untouched.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path

import duckdb

from credit_dagster.core.sources import SourceTable

QUARANTINE_DDL = """
create table if not exists {schema}.quarantine (
    load_id varchar, table_name varchar, source_file varchar, line bigint,
    column_name varchar, reason varchar, record varchar, quarantined_at timestamp
)"""
LOAD_LOG_DDL = """
create table if not exists {schema}.load_log (
    load_id varchar, table_name varchar, source_file varchar, sha256 varchar, status varchar,
    rows_loaded bigint, rows_quarantined bigint, seconds double, message varchar, loaded_at timestamp
)"""


class SourceFileError(ValueError):
    """A source file that cannot be loaded as it is; the message names the file and what is wrong."""


@dataclass
class LoadReport:
    table: str
    path: Path
    rows: int
    quarantined: int
    seconds: float
    sha256: str
    columns: list[str]
    extra_columns: list[str] = field(default_factory=list)
    null_shares: dict[str, float] = field(default_factory=dict)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)


def find_source_file(data_dir: Path | str, spec: SourceTable) -> Path:
    """The table's file in `data_dir`: `<Kaggle name>.csv` or `.csv.gz`."""
    folder = Path(data_dir)
    for suffix in (".csv", ".csv.gz"):
        path = folder / f"{spec.file_stem}{suffix}"
        if path.exists():
            return path
    present = sorted(p.name for p in folder.glob("*.csv*")) if folder.is_dir() else []
    raise SourceFileError(
        f"{spec.name}: no file {spec.file_stem}.csv or {spec.file_stem}.csv.gz in {folder}"
        + (f" (found: {', '.join(present)})" if present else " (folder is empty or missing)")
    )


def read_header(path: Path, encoding: str = "utf-8") -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            first = fh.readline()
    except (OSError, EOFError) as exc:
        raise SourceFileError(f"{path}: cannot be read ({exc}); is it a valid{' gzip' if path.suffix == '.gz' else ''} file?") from exc
    if not first.strip():
        raise SourceFileError(f"{path}: file is empty (no header line)")
    try:
        text = first.decode(encoding).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise SourceFileError(f"{path}: header line is not {encoding} text (byte {exc.start}); re-export the file as {encoding}") from exc
    header = next(csv.reader(io.StringIO(text)))
    # Kaggle's description file has an unnamed index column: name unnamed columns by position.
    return [name.strip() or f"column_{i}" for i, name in enumerate(header)]


def check_header(spec: SourceTable, header: list[str], path: Path) -> list[str]:
    """Raise on missing columns (suggesting renames); return the extra columns, which are ignored."""
    expected = [name or f"column_{i}" for i, name in enumerate(spec.columns)]
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    if missing:
        hints = []
        for col in missing:
            close = get_close_matches(col, extra, n=1, cutoff=0.6)
            hints.append(f"{col} (renamed to {close[0]}?)" if close else col)
        raise SourceFileError(f"{path}: missing column(s) {', '.join(hints)}; the file has {len(header)} columns, {spec.name} needs {len(expected)}")
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise SourceFileError(f"{path}: column(s) {', '.join(dupes)} appear more than once in the header")
    return extra


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 23):
            digest.update(chunk)
    return digest.hexdigest()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def load_table(
    con: duckdb.DuckDBPyConnection,
    spec: SourceTable,
    path: Path,
    *,
    schema: str = "raw",
    max_reject_share: float = 0.01,
    allow_empty: bool = False,
) -> LoadReport:
    """Load `path` into `schema.<spec.name>`; bad rows go to `schema.quarantine` with the reason.

    Staged, held back, judged, swapped: the file is read with its declared schema into a staging
    table; unparsable rows and missing or duplicate keys are held back with their reason; the load
    fails if too many were; only then does the staging table replace the old one, in one
    transaction with its quarantine rows and its load-log line. A failed load leaves the previous
    table as it was and says so in the log."""
    started = time.perf_counter()
    load_id = uuid.uuid4().hex[:12]
    checksum: dict[str, str] = {}
    # Hash in a thread while DuckDB parses (DuckDB releases the GIL), so the checksum is free.
    hasher = threading.Thread(target=lambda: checksum.update(sha=sha256_of(path)))
    hasher.start()
    target, staging = f"{schema}.{_ident(spec.name)}", f"{schema}.{_ident('_staging_' + spec.name)}"
    con.execute(f"create schema if not exists {schema}")
    con.execute(QUARANTINE_DDL.format(schema=schema))
    con.execute(LOAD_LOG_DDL.format(schema=schema))
    swapping = False
    scratch = tempfile.TemporaryDirectory(prefix="credit_ingest_")  # re-encoded copies, removed at the end
    try:
        declared, extra = _stage(con, spec, path, staging, load_id, Path(scratch.name))
        rows, held = _hold_back(con, spec, path, staging, load_id)
        _judge(con, spec, path, schema, load_id, rows, held, max_reject_share, allow_empty)
        null_shares = _null_shares(con, staging, list(declared), rows)
        reasons = dict(con.execute(f"""
            select case when reason like 'duplicate %' then 'duplicate ' || split_part(reason, ' ', 2)
                        else split_part(reason, ':', 1) end, count(*)
            from held_{load_id} group by 1""").fetchall())
        hasher.join()
        con.execute("begin transaction")
        swapping = True
        con.execute(f"drop table if exists {target}")
        con.execute(f"alter table {staging} rename to {_ident(spec.name)}")
        _write_quarantine(con, schema, spec.name, load_id, in_transaction=True)
        seconds = time.perf_counter() - started
        _log(con, schema, load_id, spec.name, path, checksum["sha"], "loaded", rows, held, seconds, "")
        con.execute("commit")
    except Exception as exc:
        if swapping:
            con.execute("rollback")
        con.execute(f"drop table if exists {staging}")
        hasher.join()
        _log(con, schema, load_id, spec.name, path, checksum.get("sha", ""), "failed", 0, 0, time.perf_counter() - started, str(exc))
        if isinstance(exc, duckdb.Error):
            raise SourceFileError(f"{path}: DuckDB could not read the file: {exc}") from exc
        raise
    finally:
        scratch.cleanup()
    return LoadReport(
        table=spec.name, path=path, rows=rows, quarantined=held, seconds=seconds, sha256=checksum["sha"],
        columns=list(declared), extra_columns=extra, null_shares=null_shares, quarantine_reasons=reasons,
    )


def _stage(con: duckdb.DuckDBPyConnection, spec: SourceTable, path: Path, staging: str, load_id: str,
           scratch: Path) -> tuple[dict[str, str], list[str]]:
    """Read the file with its declared columns and types into `staging`; rows DuckDB cannot parse
    go to its rejects table `rejects_<load_id>`. Returns the declared columns and the file's extra ones."""
    header = read_header(path, spec.encoding)
    extra = check_header(spec, header, path)
    declared = {name or f"column_{i}": t for i, (name, t) in enumerate(spec.columns.items())}
    # Extra columns are read as text and left out, so they can never break the parse.
    file_types = {c: declared.get(c, "VARCHAR") for c in header}
    columns_sql = "{" + ", ".join(f"{_sql_str(c)}: {_sql_str(t)}" for c, t in file_types.items()) + "}"
    source = path if spec.encoding == "utf-8" else _utf8_copy(path, spec.encoding, scratch)
    select = ", ".join(_ident(c) for c in declared)
    con.execute(f"drop table if exists {staging}")
    con.execute(
        f"""create table {staging} as select {select} from read_csv({_sql_str(str(source))},
            header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
            columns = {columns_sql},
            store_rejects = true, rejects_table = 'rejects_{load_id}', rejects_scan = 'scan_{load_id}')"""
    )
    return declared, extra


def _hold_back(con: duckdb.DuckDBPyConnection, spec: SourceTable, path: Path, staging: str, load_id: str) -> tuple[int, int]:
    """Gather what cannot be loaded in `held_<load_id>`: the rows DuckDB rejected, and every copy of
    a missing or duplicate key (taken out of `staging`). Returns the rows kept and held back."""
    quarantine_sql = [
        f"""select '{load_id}' as load_id, {_sql_str(spec.name)} as table_name, {_sql_str(str(path))} as source_file,
               line::bigint as line, column_name, error_type || ': ' || error_message as reason,
               csv_line as record, now() as quarantined_at
            from rejects_{load_id}"""
    ]
    if spec.key:
        key = _ident(spec.key)
        quarantine_sql.append(
            f"""select '{load_id}', {_sql_str(spec.name)}, {_sql_str(str(path))}, null, {_sql_str(spec.key)},
                   case when s.{key} is null then 'missing {spec.key}'
                        else 'duplicate {spec.key} ' || s.{key} || ' (appears ' || d.n || ' times; all copies held back)' end,
                   to_json(s)::varchar, now()
                from {staging} s
                left join (select {key}, count(*) n from {staging} group by all) d using ({spec.key})
                where s.{key} is null or d.n > 1"""
        )
    con.execute(f"create temp table held_{load_id} as " + " union all ".join(quarantine_sql))
    if spec.key:
        con.execute(f"""delete from {staging} where {_ident(spec.key)} is null or {_ident(spec.key)} in
                        (select {_ident(spec.key)} from {staging} group by all having count(*) > 1)""")
    rows = con.execute(f"select count(*) from {staging}").fetchone()[0]
    return rows, con.execute(f"select count(*) from held_{load_id}").fetchone()[0]


def _judge(con: duckdb.DuckDBPyConnection, spec: SourceTable, path: Path, schema: str, load_id: str, rows: int, held: int,
           max_reject_share: float, allow_empty: bool) -> None:
    """Fail the load, naming the first bad rows, when nothing is left or too much was held back
    (those rows are still written to the quarantine, for whoever fixes the file)."""
    examples = con.execute(
        f"select coalesce('line ' || line, 'row'), column_name, reason from held_{load_id} order by line nulls last limit 3"
    ).fetchall()
    where = "; ".join(f"{w}, column {c}: {r}" for w, c, r in examples)
    if rows == 0 and not allow_empty:
        raise SourceFileError(f"{path}: no loadable data rows" + (f" ({held} rows rejected, e.g. {where})" if held else " (header only)"))
    if held and held / (rows + held) > max_reject_share:
        _write_quarantine(con, schema, spec.name, load_id)
        raise SourceFileError(
            f"{path}: {held} of {rows + held} rows ({held / (rows + held):.1%}) cannot be loaded, more than the "
            f"{max_reject_share:.1%} allowed; they are in {schema}.quarantine (load_id {load_id}). First: {where}"
        )


def _utf8_copy(path: Path, encoding: str, folder: Path) -> Path:
    """DuckDB reads UTF-8 only; small files in another encoding (Kaggle's cp1252 column
    descriptions) are decoded strictly and re-encoded, so a wrong encoding still fails loudly."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SourceFileError(f"{path}: line {line} is not {encoding} text (byte {exc.start})") from exc
    out = folder / (path.name.removesuffix(".gz"))
    out.write_text(text, encoding="utf-8")
    return out


def _write_quarantine(con: duckdb.DuckDBPyConnection, schema: str, table: str, load_id: str, in_transaction: bool = False) -> None:
    """Replace this table's quarantine rows with those of this load (the rows now held back)."""
    if not in_transaction:
        con.execute("begin transaction")
    con.execute(f"delete from {schema}.quarantine where table_name = ?", [table])
    con.execute(f"insert into {schema}.quarantine select * from held_{load_id}")
    if not in_transaction:
        con.execute("commit")


def _log(con, schema, load_id, table, path, sha, status, rows, held, seconds, message) -> None:
    con.execute(
        f"insert into {schema}.load_log values (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [load_id, table, str(path), sha, status, rows, held, seconds, message[:2000]],
    )


def _null_shares(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], rows: int) -> dict[str, float]:
    if rows == 0:
        return dict.fromkeys(columns, 0.0)
    counts = con.execute(f"select {', '.join(f'count({_ident(c)})' for c in columns)} from {table}").fetchone()
    return {c: round(1 - n / rows, 4) for c, n in zip(columns, counts, strict=True)}
