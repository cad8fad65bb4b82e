"""A person's data erased on request (GDPR Art. 17), and what the law makes the lender keep, kept.

What goes: every row about the applicant that is not a decision or its evidence (the application
as received and ingested, the bureau and payment history, features, contributions, what the
dashboard shows, their place among other clients' neighbours), from every DuckDB file of the
home, the inbox's drops and the data folder when it is inside the home, local Parquet datasets,
and the exports made for them.

What stays (Art. 17(3)(b) and (e): the lender must be able to show each credit decision and why
for years): the decisions, their reasons, counterfactuals and model versions, the review actions
and final decisions, the outcomes, the out-of-fold scores that validated the model, and every
journal line, with the applicant's number replaced by a pseudonym and what people wrote about them
(notes, the client's own words) by "[erased]" (core/pseudonyms.py: negative, keyed; `credit-dagster
decision show ID` finds the retained decision from the person's number). Pseudonymised data is still personal data for whoever holds the
key and the warehouse: it stays under the access rules and goes when its retention ends.

The audit chains still verify: the erasures journal (chained itself) keeps, before anything is
changed, each sealed decision row's place and digest (core/seals.py) and each rewritten journal
line's new hash (the line keeps its old one: core/audit.py), and no personal data. A kill at any
point leaves a plan recorded and some stores done: `subject erase` again finishes the rest (what
was erased is no longer found) and the second record says so.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from credit_dagster.core import audit, datasets, pseudonyms, seals, settings, warehouse
from credit_dagster.subject.export import KEYS, _csv_folders, _literal, _shown

ERASED = "[erased]"
# tables holding a decision or its evidence, kept pseudonymised (by table name, in any schema or store)
RETAINED = {"decision_audit", "scored_applications", "ondemand_audit", "actions", "cases", "final_decisions",
            "loan_outcomes", "received", "deliveries", "loan_reports", "oof_predictions", "oof"}
FREE_TEXT = {"note", "notes", "client_words", "comment"}  # what people wrote about the applicant
MENTIONS = ("neighbour_id",)  # another applicant's row naming this one (their nearest past clients): deleted
BUREAU_KEY = "SK_ID_BUREAU"


@dataclass
class Erasure:
    pseudonym: int
    deleted: Counter[str] = field(default_factory=Counter)  # where -> rows deleted
    pseudonymised: Counter[str] = field(default_factory=Counter)  # where -> rows kept under the pseudonym
    files: list[str] = field(default_factory=list)  # files removed (the person's exports)
    left: list[str] = field(default_factory=list)  # what holds their data and was not changed here, and why


def erase(sk_id_curr: int, reason: str, by: str) -> Erasure:
    """Erase applicant `sk_id_curr` from every store of CREDIT_HOME (WarehouseBusy while a night writes)."""
    home, key = settings.credit_home(), str(int(sk_id_curr))
    done = Erasure(pseudonyms.pseudonym(sk_id_curr))
    log = audit.AuditLog(audit.audit_dir(), prefix=audit.ERASURES_PREFIX)
    with ExitStack() as locks:
        # held until the warehouse is written anew below, its connection closed by then
        locks.enter_context(warehouse.warehouse_lock(settings.warehouse_path(), wait=False))
        con = locks.enter_context(warehouse.connect(settings.warehouse_path(), wait=False))
        for folder in {home, *(folder for folder, _ in audit.journals().values())}:  # a killed erasure's work files (one erasure at a time)
            for leftover in folder.rglob(".*.erasing") if folder.is_dir() else []:
                leftover.unlink()
        snapshots = _snapshot_copies(con, home)
        # each DuckDB file as the erasure changes it -> where it is reported (the file it replaces)
        catalogs = {settings.warehouse_path().stem: settings.warehouse_path()} | {c: target for c, (_, target) in snapshots.items()}
        journals = _journal_rewrites(locks, key, done.pseudonym)
        plan = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "by": by, "reason": reason[:500],
                "pseudonym": done.pseudonym, "sealed_rows": _sealed_rows(con, key, done.pseudonym),
                "lines": [{"journal": path.name, "hash": audit.line_hash(line)} for path, lines in journals.items() for line in lines[1]]}
        log.append([plan])  # fsync'ed before anything changes: the chains' allowance, and what an interrupted erasure was doing
        for path, (content, _) in journals.items():
            _replace(path, content)
            done.pseudonymised[_shown(path, home)] = len(journals[path][1])
        for catalog, path in catalogs.items():
            _erase_tables(con, catalog, key, done, _shown(path, home))
        for catalog, (copy, target) in snapshots.items():
            con.execute(f'detach "{catalog}"')
            _write_anew(copy, target)  # readers see the old snapshot or the new, never half of one
        con.close()
        _write_anew(settings.warehouse_path(), settings.warehouse_path())
    _erase_files(key, done, home)
    done.deleted, done.pseudonymised = +done.deleted, +done.pseudonymised  # the places that held them only
    log.append([{"at": datetime.now(UTC).isoformat(timespec="seconds"), "by": by, "pseudonym": done.pseudonym, "completed": True,
                 "deleted": done.deleted, "pseudonymised": done.pseudonymised, "exports_removed": len(done.files),
                 "left": done.left}])  # no file name: an export's names the person
    return done


def _snapshot_copies(con: duckdb.DuckDBPyConnection, home: Path) -> dict[str, tuple[Path, Path]]:
    """Each other DuckDB file of the home copied beside itself and attached: changed there, then renamed over it."""
    copies = {}
    for i, path in enumerate(p for p in sorted(home.rglob("*.duckdb")) if p != settings.warehouse_path() and "duckdb_tmp" not in p.parts):
        copy = path.with_name(f".{path.name}.erasing")
        copy.write_bytes(path.read_bytes())
        os.chmod(copy, 0o600)
        con.execute(f"attach {_literal(copy)} as snapshot_{i}")
        copies[f"snapshot_{i}"] = (copy, path)
    return copies


def _write_anew(source: Path, target: Path) -> None:
    """`source`'s database copied into a new file renamed over `target` (and `source` removed if it
    is another file). DuckDB frees a deleted row's blocks without overwriting them: until the space
    is reused, the erased client's words and numbers stay readable in the file's bytes; the copy
    holds only the rows that remain. Under the warehouse lock; a kill leaves the old file, erased."""
    fresh = target.with_name(f".{target.name}.anew.erasing")
    fresh.unlink(missing_ok=True)
    config = {"memory_limit": settings.current().duckdb_memory_limit, "threads": settings.threads(),
              "temp_directory": str(settings.warehouse_path().parent / "duckdb_tmp")}
    with duckdb.connect(config=config) as con:
        con.execute(f"attach {_literal(source)} as old")
        con.execute(f"attach {_literal(fresh)} as new")
        con.execute("copy from database old to new")
        con.execute("detach new")
        con.execute("detach old")  # checkpointed: no write-ahead log of the old file is left to apply to the new
    os.chmod(fresh, 0o600)
    with open(fresh, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(fresh, target)
    _sync_folder(target.parent)
    if source != target:
        source.unlink()


def _sealed_rows(con: duckdb.DuckDBPyConnection, key: str, alias: int) -> list[dict]:
    """For each of the applicant's sealed decision rows: its run, its place in the run's chain, its
    digest as sealed and as it will be once pseudonymised (core/seals.py checks both)."""
    if not seals.exists(con):
        return []
    found = []
    runs = con.execute(f"select distinct run_id from {seals.AUDIT} where cast(SK_ID_CURR as varchar) = ?", [key]).fetchall()
    for (run_id,) in runs:
        columns, rows = seals.ordered(con, run_id)
        at = columns.index(seals.ORDER)
        for index, row in enumerate(rows):
            if str(row[at]) == key:
                now = tuple(_pseudonymised(c, v, alias) for c, v in zip(columns, row, strict=True))
                found.append({"run_id": run_id, "pseudonym": alias, "index": index, "digest": seals.digest(row), "now": seals.digest(now)})
    return found


def _pseudonymised(column: str, value, alias: int):
    if column.upper() in KEYS:
        return alias
    if column.lower() in FREE_TEXT and value is not None:
        return ERASED
    return value


def _erase_tables(con: duckdb.DuckDBPyConnection, catalog: str, key: str, done: Erasure, where: str) -> None:
    """In one DuckDB file: the applicant's retained rows pseudonymised, the rest deleted (their
    bureau credits' months with them), their mentions in other applicants' rows deleted."""
    # tables only: the scoring views of CREDIT_STORAGE=datasets read the Parquet files, erased as files
    tables = con.execute("""select c.table_schema, c.table_name, list(c.column_name order by c.ordinal_position)
                            from information_schema.columns c join information_schema.tables t using (table_catalog, table_schema, table_name)
                            where c.table_catalog = ? and t.table_type = 'BASE TABLE' group by all order by 1, 2""", [catalog]).fetchall()
    con.execute("begin")
    bureaus: list[str] = []
    for keyed in (True, False):
        for schema, table, columns in tables:
            upper = {c.upper(): c for c in columns}
            own = next((upper[k] for k in KEYS if k in upper), None)
            relation, name = f'"{catalog}"."{schema}"."{table}"', f"{where}: {schema}.{table}"
            if keyed and own:
                match = f'trim(cast("{own}" as varchar)) = ?'
                if BUREAU_KEY in upper:
                    found = con.execute(f'select distinct "{upper[BUREAU_KEY]}" from {relation} where {match}', [key]).fetchall()
                    bureaus += [str(b) for (b,) in found]
                if table in RETAINED:
                    sets = [f'"{own}" = {done.pseudonym}'] + [f'"{c}" = case when "{c}" is null then null else \'{ERASED}\' end'
                                                             for c in columns if c.lower() in FREE_TEXT]
                    done.pseudonymised[name] += con.execute(f"update {relation} set {', '.join(sets)} where {match}", [key]).fetchone()[0]
                else:
                    done.deleted[name] += con.execute(f"delete from {relation} where {match}", [key]).fetchone()[0]
                for mention in (upper[m.upper()] for m in MENTIONS if m.upper() in upper):
                    done.deleted[name] += con.execute(f'delete from {relation} where cast("{mention}" as varchar) = ?', [key]).fetchone()[0]
            elif not keyed and not own and BUREAU_KEY in upper and bureaus:
                deleted = con.execute(f'delete from {relation} where cast("{upper[BUREAU_KEY]}" as varchar) in (select unnest(?))', [bureaus])
                done.deleted[name] += deleted.fetchone()[0]
    con.execute("commit")


def _journal_rewrites(locks: ExitStack, key: str, alias: int) -> dict[Path, tuple[bytes, list[bytes]]]:
    """Each journal file naming the applicant: (its content rewritten, the rewritten lines). Each
    journal's chain lock is held from here until the erasure ends, so no line is appended between
    the plan and the rewrite; a rewritten line keeps its link and, in REDACTED, the hash it had."""
    rewrites = {}
    for folder, prefix in sorted(set(audit.journals().values())):
        if prefix == audit.ERASURES_PREFIX or not folder.is_dir():
            continue
        lock = locks.enter_context(open(folder / f".{prefix}chain.lock", "a"))
        fcntl.flock(lock, fcntl.LOCK_EX)
        for path in sorted(folder.glob(f"{prefix}*.jsonl")):
            lines, changed = path.read_bytes().split(b"\n"), []
            for i, line in enumerate(lines):
                record = _record(line) if key.encode() in line else None  # only lines holding its digits are parsed
                if record is None or not any(k.upper() in KEYS and str(v).strip() == key for k, v in record.items()):
                    continue
                was = audit.chained_hash(line)
                record = {k: _pseudonymised(k, v, alias) for k, v in record.items()} | {audit.REDACTED: was}
                lines[i] = json.dumps(record, default=str, separators=(",", ":")).encode()
                changed.append(lines[i])
            if changed:
                rewrites[path] = (b"\n".join(lines), changed)
    return rewrites


def _record(line: bytes) -> dict | None:
    try:
        record = json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        return None  # a line cut by a kill: never answered
    return record if isinstance(record, dict) else None


def _replace(path: Path, content: bytes) -> None:
    """`path` holds `content` after one rename, on disk before it (a kill leaves the old file or the new)."""
    temporary = path.with_name(f".{path.name}.erasing")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """A rename in `folder` on disk."""
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _erase_files(key: str, done: Erasure, home: Path) -> None:
    """The CSVs and Parquet files holding the applicant, rewritten without them (retained tables
    pseudonymised); their exports removed; what lies outside the home listed, not changed."""
    con = duckdb.connect()
    for store, folder in _csv_folders(done.left):
        inside = folder.resolve().is_relative_to(home.resolve())
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith((".csv", ".csv.gz"))):
            relation = f"read_csv({_literal(path)}, all_varchar = true, header = true)"
            gzip = ", compression gzip" if path.name.endswith(".gz") else ""
            _rewrite(con, path, relation, key, done, home, inside, f"(format csv, header{gzip})", store,
                     path.name.lower().removesuffix(".gz").removesuffix(".csv"))
    root = datasets.root()
    if "://" in root and not root.startswith("file://"):
        done.left.append(f"the datasets at {root} (not a local folder): erase with the store's tools, as this does locally")
    else:
        folder = Path(root.removeprefix("file://"))
        for path in sorted(folder.rglob("*.parquet")):  # <root>/<table>/<partitions>/<file>
            _rewrite(con, path, f"read_parquet({_literal(path)})", key, done, home, True, "(format parquet)", "datasets",
                     path.relative_to(folder).parts[0])
    for path in sorted((home / "exports").glob(f"subject_{key}_*")):
        path.unlink()
        done.files.append(_shown(path, home))


def _rewrite(con: duckdb.DuckDBPyConnection, path: Path, relation: str, key: str, done: Erasure, home: Path, inside: bool, options: str,
             store: str, table: str) -> None:
    """One file without the applicant's rows, or with them pseudonymised if `table` is retained."""
    try:
        types = dict(con.execute(f"select column_name, column_type from (describe select * from {relation})").fetchall())
    except duckdb.Error as unread:
        done.left.append(f"{_shown(path, home)}: not readable ({str(unread).splitlines()[0]})")
        return
    upper = {c.upper(): c for c in types}
    own = next((upper[k] for k in KEYS if k in upper), None)
    if own is None:
        return
    match = f'trim(cast("{own}" as varchar)) = {_literal(key)}'
    n = con.execute(f"select count(*) from {relation} where {match}").fetchone()[0]
    if not n:
        return
    where = _shown(path, home)
    if not inside:
        done.left.append(f"{where} ({store}, outside the home: the source system's copy): {n:,} rows; erase them there, "
                         "or a rebuild from it brings them back")
        return
    temporary = path.with_name(f".{path.name}.erasing")
    if table in RETAINED:
        shown = ", ".join(_pseudonymised_sql(c, t, match, done.pseudonym) for c, t in types.items())
        con.execute(f"copy (select {shown} from {relation}) to {_literal(temporary)} {options}")
        done.pseudonymised[where] += n
    else:
        con.execute(f"copy (select * from {relation} where not ({match})) to {_literal(temporary)} {options}")
        done.deleted[where] += n
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def _pseudonymised_sql(column: str, kind: str, match: str, alias: int) -> str:
    """The column, with the applicant's rows (`match`) pseudonymised: each value of the column's
    type (a CSV is read as text); a key in a narrower integer column widened to BIGINT, the
    pseudonym's type (the platform's own are BIGINT already)."""
    if column.upper() in KEYS:
        kind = "VARCHAR" if kind == "VARCHAR" else "BIGINT"
        return f'case when {match} then cast({alias} as {kind}) else cast("{column}" as {kind}) end as "{column}"'
    if column.lower() in FREE_TEXT:
        text = f"cast('{ERASED}' as {kind})"
        return f'case when {match} and "{column}" is not null then {text} else "{column}" end as "{column}"'
    return f'"{column}"'


def erasures() -> tuple[bytes | None, list[dict]]:
    """This home's pseudonym key and the plans of its erasures: what a restore of an older backup
    must apply again (`reapply`)."""
    path = pseudonyms.key_path()
    plans = [r for r in audit.records(audit.audit_dir(), audit.ERASURES_PREFIX)[0] if "sealed_rows" in r]
    return (path.read_bytes() if path.exists() else None), plans


def reapply(key: bytes, plans: list[dict], by: str) -> list[Erasure]:
    """Erase again, in CREDIT_HOME (a restored backup taken before them), everyone `plans` erased:
    their numbers are not kept, so every number the home holds is keyed again and matched with the
    plans' pseudonyms (with the key they were made with, installed here if the backup had none)."""
    path = pseudonyms.key_path()
    if path.exists() and path.read_bytes() != key:
        raise ValueError(f"{path} is not the key the erasures were made with: the backup is of another home")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
    wanted = {int(p["pseudonym"]): p for p in plans}
    found = {n: alias for n in _numbers() if (alias := pseudonyms.of(key, n)) in wanted}
    return [erase(n, f"{wanted[found[n]]['reason']} (again, after a restore)", by) for n in sorted(found)]


def _numbers() -> set[int]:
    """Every applicant number the home's DuckDB files and journals hold."""
    home, numbers = settings.credit_home(), set()
    with warehouse.connect(settings.warehouse_path(), scratch=True, wait=False) as con:
        files = [p for p in sorted(home.rglob("*.duckdb")) if p != settings.warehouse_path() and "duckdb_tmp" not in p.parts]
        for i, path in enumerate(files):
            con.execute(f"attach {_literal(path)} as snapshot_{i} (read_only)")
        for catalog in [settings.warehouse_path().stem] + [f"snapshot_{i}" for i in range(len(files))]:
            for schema, table, column in con.execute("""select table_schema, table_name, column_name from information_schema.columns
                                                        where table_catalog = ? and upper(column_name) in (select unnest(?))""",
                                                     [catalog, list(KEYS)]).fetchall():
                numbers |= {n for (n,) in con.execute(f'select distinct try_cast("{column}" as bigint) from "{catalog}"."{schema}"."{table}"')
                            .fetchall() if n is not None and n >= 0}
    for folder, prefix in set(audit.journals().values()):
        for record in audit.records(folder, prefix)[0] if folder.is_dir() else []:
            numbers |= {int(v) for k, v in record.items() if k.upper() in KEYS and isinstance(v, int) and v >= 0}
    return numbers
