"""Everything the platform holds about one applicant, from every store (GDPR Art. 15).

A data-protection officer answering a client must not depend on a list of tables someone kept
up to date: the search is by the applicant's key wherever it lies. Every table of every DuckDB
file of the home (the warehouse with its drops, features, decisions, audit and outcomes; the
serving and review snapshots) whose columns include SK_ID_CURR, and the bureau months of the
applicant's bureau credits (SK_ID_BUREAU); every journal line naming the applicant (on-demand
decisions, API reads, review actions, the dashboard's access log; `sk_id` in the review's); every CSV of the inbox's drops, of the outcome files,
of the data folder the home was built from and of the registry (out-of-fold scores); every local
Parquet dataset. The key is compared as text, so applicant 1234 never brings 12345 along.
What could not be searched is said (`not_searched`), never silently left out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import duckdb

from credit_dagster.core import audit, datasets, settings, warehouse
from credit_dagster.core import pdf as pdf_file

BUREAU_KEY = "SK_ID_BUREAU"
# the applicant's key under its names: Kaggle's, and the review journal's and tables' `sk_id`
KEYS = ("SK_ID_CURR", "SK_ID")


@dataclass
class Found:
    store: str  # warehouse, snapshot, journal, drop, source data, registry, datasets
    where: str  # the file, relative to CREDIT_HOME when inside it
    table: str | None  # schema.table, a CSV's or journal's file name
    rows: list[dict]


@dataclass
class Export:
    SK_ID_CURR: int
    exported_at: str
    home: str
    found: list[Found] = field(default_factory=list)
    not_searched: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for f in self.found:
            counts[f.store] = counts.get(f.store, 0) + len(f.rows)
        return counts

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "rows_by_store": self.counts()}, default=str, indent=1, ensure_ascii=False)


def export(sk_id_curr: int) -> Export:
    """Search every store of CREDIT_HOME for `sk_id_curr` (WarehouseBusy while a night writes)."""
    home = settings.credit_home()
    result = Export(int(sk_id_curr), datetime.now(UTC).isoformat(timespec="seconds"), str(home))
    key = str(int(sk_id_curr))
    with warehouse.connect(settings.warehouse_path(), scratch=True, wait=False) as con:
        snapshots = [p for p in sorted(home.rglob("*.duckdb")) if p != settings.warehouse_path() and "duckdb_tmp" not in p.parts]
        for i, path in enumerate(snapshots):
            con.execute(f"attach {_literal(path)} as snapshot_{i} (read_only)")
        catalogs = {settings.warehouse_path().stem: ("warehouse", settings.warehouse_path())}
        catalogs |= {f"snapshot_{i}": ("snapshot", p) for i, p in enumerate(snapshots)}
        # store by store: the bureau months found are those of the bureau credits found in the same store
        gaps = result.not_searched
        for catalog, (store, path) in catalogs.items():
            result.found += _search(con, _tables(con, catalog, store, _shown(path, home)), key, gaps)
        for folder in _csv_folders(gaps):
            result.found += _search(con, _csvs(con, folder, home, gaps), key, gaps)
        result.found += _search(con, _parquet(con, result), key, gaps)
    for path in _journal_files(home):
        rows = [record for record in _records(path, key) if _names(record, key)]
        if rows:
            result.found.append(Found("journal", _shown(path, home), path.name, rows))
    return result


# each store in the words of the person who asked
STORES = {"warehouse": "Our records (the scoring warehouse)", "snapshot": "What our advisors' screens and our API show",
          "journal": "Logs of decisions, reviews and access to your file", "drop": "Files of applications as we received them",
          "source data": "The data files our system was built from", "registry": "Scores computed when our model was trained",
          "outcomes": "How your credit was repaid, as reported to us",
          "datasets": "Archives of nightly decisions"}


def write(result: Export, out: Path) -> tuple[Path, Path | str]:
    """The export as one JSON file and the same as a readable PDF beside it (`out` with .pdf),
    each readable by its owner only (a person's data); instead of the PDF's path, why it could
    not be printed (a character no font here prints: the JSON has everything)."""
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _create(out, result.to_json().encode())
    try:
        printed = pdf_file.html_to_pdf(_title(result), to_html(result))
    except pdf_file.Unprintable as unprintable:
        return out, f"no PDF: {unprintable}"
    return out, _create(out.with_suffix(".pdf"), printed)


def _create(path: Path, data: bytes) -> Path:
    path.unlink(missing_ok=True)
    # created anew, 0600 from the start: never through a link planted at that name
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
        handle.write(data)
    return path


def to_html(result: Export) -> str:
    """The export as a page a person can read: where each part is kept, then its rows, a line
    each (every value escaped: what a person wrote is shown, never interpreted)."""
    lender = settings.current().lender_name
    parts = [f"<h1>{escape(_title(result))}</h1>",
             f"<p>This is everything {escape(lender)} holds about applicant {result.SK_ID_CURR} on {escape(result.exported_at[:10])}: "
             "the application, the credit history as it reached us, the decisions our scoring model made and their reasons, "
             "what our staff did with the file, and who looked at it. Each part says where it is kept.</p>"]
    for gap in result.not_searched:
        parts.append(f"<p><b>Not searched:</b> {escape(gap)}</p>")
    for store in dict.fromkeys(f.store for f in result.found):
        parts.append(f"<h2>{escape(STORES.get(store, store))}</h2>")
        for found in (f for f in result.found if f.store == store):
            parts.append(f"<h3>{escape(found.table or found.where)} ({len(found.rows):,} {'row' if len(found.rows) == 1 else 'rows'}, "
                         f"kept in {escape(found.where)})</h3>")
            for row in found.rows:
                shown = "; ".join(f"{escape(str(k))}: {escape(str(v))}" for k, v in row.items() if v is not None and str(v) != "")
                parts.append(f"<p>{shown}</p>")
    return "\n".join(parts)


def _title(result: Export) -> str:
    return f"What we hold about applicant {result.SK_ID_CURR}"


@dataclass
class _Source:
    relation: str  # what to select from: a table, or a file read by DuckDB
    columns: list[str]
    store: str
    where: str
    table: str


def _search(con: duckdb.DuckDBPyConnection, sources: list[_Source], key: str, gaps: list[str]) -> list[Found]:
    """The rows of each source that are the applicant's (their key, as text), then the bureau
    months of their bureau credits (sources without the key, by SK_ID_BUREAU); a source DuckDB
    cannot read to its end is added to `gaps`, and the search goes on."""
    found, bureaus = [], set()
    for keyed in (True, False):
        for source in sources:
            upper = {n.upper(): n for n in source.columns}
            own = next((upper[k] for k in KEYS if k in upper), None)
            if keyed and own:
                column, values = own, [key]
            elif not keyed and not own and BUREAU_KEY in upper and bureaus:
                column, values = upper[BUREAU_KEY], sorted(bureaus)
            else:
                continue
            try:
                rows = _rows(con, f'select * from {source.relation} where trim(cast("{column}" as varchar)) in (select unnest(?))', [values])
            except duckdb.Error as unread:
                gaps.append(f"{source.where}: not readable to its end ({str(unread).splitlines()[0]})")
                continue
            if rows:
                if keyed and BUREAU_KEY in upper:
                    bureaus |= {str(r[upper[BUREAU_KEY]]).strip() for r in rows if r[upper[BUREAU_KEY]] is not None}
                found.append(Found(source.store, source.where, source.table, rows))
    return found


def _tables(con: duckdb.DuckDBPyConnection, catalog: str, store: str, where: str) -> list[_Source]:
    columns = con.execute("select table_schema, table_name, list(column_name) from information_schema.columns "
                          "where table_catalog = ? group by all order by 1, 2", [catalog]).fetchall()
    return [_Source(f'"{catalog}"."{schema}"."{table}"', names, store, where, f"{schema}.{table}") for schema, table, names in columns]


def _csvs(con: duckdb.DuckDBPyConnection, folder: tuple[str, Path], home: Path, gaps: list[str]) -> list[_Source]:
    store, path = folder
    sources = []
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith((".csv", ".csv.gz"))):
        relation = f"read_csv({_literal(file)}, all_varchar = true, header = true)"
        try:
            columns = _rows(con, f"select * from {relation} limit 0", [], names=True)
        except duckdb.Error as unread:
            gaps.append(f"{_shown(file, home)}: not readable as CSV ({str(unread).splitlines()[0]})")
            continue
        sources.append(_Source(relation, columns, store, _shown(file, home), file.name))
    return sources


def _parquet(con: duckdb.DuckDBPyConnection, result: Export) -> list[_Source]:
    root = datasets.root()
    if "://" in root and not root.startswith("file://"):
        result.not_searched.append(f"the datasets at {root} (CREDIT_DATASETS, not a local folder): search them with DuckDB")
        return []
    folder = Path(root.removeprefix("file://"))
    sources = []
    for table in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        if any(table.rglob("*.parquet")):
            relation = f"read_parquet({_literal(f'{table}/**/*.parquet')}, hive_partitioning = true, union_by_name = true)"
            sources.append(_Source(relation, _rows(con, f"select * from {relation} limit 0", [], names=True), "datasets", str(table), table.name))
    return sources


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list, names: bool = False):
    cursor = con.execute(sql, params)
    columns = [d[0] for d in cursor.description]
    if names:
        return columns
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _csv_folders(not_searched: list[str]) -> list[tuple[str, Path]]:
    """The CSV files the platform holds: the inbox's drops, the outcome files, the data it was built from, the registry's."""
    from credit_dagster.nightly import drops  # the inbox's place is the night's to say
    from credit_dagster.outcomes.assets import inbox as outcomes_inbox  # and the outcome files' the back-test's

    folders = [("drop", drops.inbox_dir()), ("outcomes", outcomes_inbox()), ("registry", settings.models_dir())]
    try:
        folders.insert(1, ("source data", settings.data_dir()))
    except LookupError as unknown:
        not_searched.append(f"the source data: {unknown}")
    seen, kept = set(), []
    for store, folder in folders:
        try:
            resolved = folder.resolve()
        except OSError:
            continue
        if resolved not in seen and folder.is_dir():
            seen.add(resolved)
            kept.append((store, folder))
    return kept


def _journal_files(home: Path) -> Iterator[Path]:
    folders = {folder.resolve() for folder, _ in audit.journals().values() if folder.is_dir()} | {home.resolve()}
    seen = set()
    for folder in sorted(folders):
        for path in sorted(folder.rglob("*.jsonl")):
            if path.resolve() not in seen and "dagster" not in path.relative_to(folder).parts:
                seen.add(path.resolve())
                yield path


def _records(path: Path, key: str) -> Iterator[dict]:
    """The journal's records whose line holds `key`'s digits (only those are parsed: a journal of
    reads holds millions of lines)."""
    for line in path.read_bytes().split(b"\n"):
        if key.encode() not in line:
            continue
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue  # a line cut by a kill: never answered, holds no decision (audit.read)
        if isinstance(record, dict):
            record.pop(audit.PREV, None)
            yield record


def _names(record: dict, key: str) -> bool:
    return any(k.upper() in KEYS and str(v).strip() == key for k, v in record.items())


def _shown(path: Path, home: Path) -> str:
    try:
        return str(path.resolve().relative_to(home.resolve()))
    except ValueError:
        return str(path)


def _literal(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"
