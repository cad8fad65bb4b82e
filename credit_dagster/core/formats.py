"""Which release wrote a CREDIT_HOME, in which format each of its stores is, and the migrations
between formats.

`FORMAT.json` at the home's root records, per store (the warehouse, the model registry and its
metadata, the journals, the snapshots, the datasets), the format it is written in and the release
that wrote it. Every entry point checks it before touching anything: a store newer than this code
is refused in one line naming the release that wrote it; an older one asks for `credit-dagster
migrate`, which backs the home up, then runs each store's steps in order, recording each step's
end (so a migration killed midway resumes where it stopped, and running it twice does nothing).
A home without the file but with stores was written before formats were recorded: format 0.

Each store also carries its own stamp, so a store that travels without its home (a snapshot
copied to the API's machine, a journal folder or datasets elsewhere, a registry restored alone)
still says which release wrote it: a `meta_format` table in the DuckDB files (the warehouse and
every snapshot), `format` in the registry's index and each model's metadata, a FORMAT.json in each
journal folder and at the datasets' root. A store written by a newer release is refused where it
is opened (`check_stamp`); one without a stamp of its own is as old as its home's.

From now on a change to a store's format raises its number in STORES and adds its step to
MIGRATIONS, with a test that opens a home of the previous format (scripts/format_fixture.py
writes it with that release's own code).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

STAMP = "FORMAT.json"
# the format this release writes and reads, per store
STORES = {"warehouse": 1, "registry": 1, "journals": 1, "snapshots": 1, "datasets": 1}
# (store, from format) -> the step that brings a home's store to the next format; format 0 -> 1
# changed nothing but the stamp
MIGRATIONS: dict[tuple[str, int], Callable[[Path], None]] = {}


class FormatError(RuntimeError):
    """A home this release cannot use as it is: written by a newer release, or due a migration."""


class MigrationDue(FormatError):
    """A home written in an older format: `credit-dagster migrate` brings it to this release's."""


def release() -> str:
    try:
        return version("credit-dagster")
    except PackageNotFoundError:  # a checkout that was never installed
        return "unknown"


def _has_stores(home: Path) -> bool:
    return (home / "warehouse.duckdb").exists() or (home / "models" / "registry.json").exists()


def read(home: Path) -> dict | None:
    path = home / STAMP
    return json.loads(path.read_text()) if path.exists() else None


def write(home: Path, stores: dict[str, int]) -> None:
    """The stamp, replaced whole (a crash leaves the old one or the new one)."""
    stamp = {"stores": stores, "release": release(), "written_at": datetime.now(UTC).isoformat(timespec="seconds")}
    tmp = home / f".{STAMP}.{os.getpid()}.tmp"  # processes stamping a new home at once never share one
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(stamp, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, home / STAMP)


def check(home: Path) -> None:
    """Refuse a home this release cannot use as it is (FormatError, one line); stamp a new one."""
    stamp = read(home)
    if stamp is None:
        if _has_stores(home):
            raise MigrationDue(f"{home} was written before store formats were recorded (format 0): run `credit-dagster migrate` "
                               "(it backs the home up first)")
        if home.is_dir():
            write(home, dict(STORES))
        return
    newer = {s: v for s, v in stamp["stores"].items() if v > STORES.get(s, 0)}
    if newer:
        said = ", ".join(f"{s} format {v}" for s, v in newer.items())
        raise FormatError(f"{home} was written by credit-dagster {stamp.get('release', '?')} ({said}); this release ({release()}) "
                          f"reads {', '.join(f'{s} {STORES.get(s, 0)}' for s in newer)}: install that release or a newer one")
    older = {s: v for s, v in stamp["stores"].items() if v < STORES.get(s, 0)} | {s: 0 for s in STORES if s not in stamp["stores"]}
    if older:
        raise MigrationDue(f"{home} holds {', '.join(f'{s} format {v}' for s, v in older.items())}, older than this release's: "
                           "run `credit-dagster migrate` (it backs the home up first)")


def due(home: Path) -> dict[str, tuple[int, int]]:
    """store -> (its format, this release's), for every store a migration would change."""
    stamp = read(home)
    stores = stamp["stores"] if stamp else {}
    return {s: (stores.get(s, 0), v) for s, v in STORES.items() if stores.get(s, 0) < v}


def migrate(home: Path, say=print) -> list[str]:
    """Bring every store of `home` to this release's format, step by step, each step's end recorded
    before the next begins: resumable after a kill, and a no-op on a home already current."""
    stamp = read(home)
    stores = dict(stamp["stores"]) if stamp else {}
    done = []
    for store, target in STORES.items():
        while stores.get(store, 0) < target:
            start = stores.get(store, 0)
            step = MIGRATIONS.get((store, start))
            if step is not None:
                step(home)
            stores[store] = start + 1
            write(home, {**dict.fromkeys(STORES, 0), **stores})
            done.append(f"{store}: format {start} -> {start + 1}")
            say(f"migrated {done[-1]}")
    return done


def stamp(store: str) -> dict:
    """What a store carries of its own format."""
    return {"store": store, "format": STORES[store], "release": release(), "written_at": datetime.now(UTC).isoformat(timespec="seconds")}


def check_stamp(found: dict | None, store: str, where: object) -> None:
    """Refuse a store whose own stamp says a newer release wrote it (FormatError, one line)."""
    if found and int(found.get("format", 0)) > STORES[store]:
        raise FormatError(f"{where} was written by credit-dagster {found.get('release', '?')} ({store} format {found['format']}); "
                          f"this release ({release()}) reads {store} format {STORES[store]}: install that release or a newer one")


FOLDER_STAMP = "FORMAT.json"  # in a journal folder or at the datasets' root


def stamp_folder(fs, folder: str, store: str, write: bool = True) -> None:
    """Check a folder store's stamp (on the local disk or an fsspec filesystem `fs`), writing it
    when the folder has none yet (unless only reading: `write=False`)."""
    path = f"{str(folder).rstrip('/')}/{FOLDER_STAMP}"
    if fs.exists(path):
        with fs.open(path, "r") as f:
            check_stamp(json.load(f), store, folder)
        return
    if not write:
        return
    fs.makedirs(str(folder), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"  # whole or not at all: a reader never sees half a stamp
    fs.pipe(tmp, json.dumps(stamp(store)).encode())
    fs.mv(tmp, path)


DUCKDB_STAMP = "meta_format"  # the table of a DuckDB store's stamp


def stamp_duckdb(con, store: str, catalog: str = "") -> None:
    """Check the stamp of the DuckDB database `catalog` (the connection's own when empty), writing
    it into a new one; `con` is a DuckDB connection (imported by the caller: this module stays light)."""
    table = f"{catalog}.{DUCKDB_STAMP}" if catalog else DUCKDB_STAMP
    found = check_duckdb(con, store, catalog or "the warehouse", catalog)
    if found is None:
        s = stamp(store)
        con.execute(f"create table if not exists {table} (store varchar, format integer, release varchar, written_at varchar)")
        con.execute(f"insert into {table} values (?, ?, ?, ?)", [s["store"], s["format"], s["release"], s["written_at"]])


def check_duckdb(con, store: str, where: object, catalog: str = "") -> dict | None:
    """The stamp of a DuckDB store (None when it has none), refused when a newer release wrote it."""
    schema = f"{catalog}.main" if catalog else "main"
    # fetchall, not fetchone: a result left half-read blocks the connection's next statement
    present = con.execute("select count(*) from duckdb_tables() where database_name = coalesce(nullif(?, ''), current_database()) "
                          "and schema_name = 'main' and table_name = ?", [catalog, DUCKDB_STAMP]).fetchall()[0][0]
    if not present:
        return None
    row = con.execute(f"select store, format, release from {schema}.{DUCKDB_STAMP} order by format desc limit 1").fetchall()[0]
    found = {"store": row[0], "format": row[1], "release": row[2]}
    check_stamp(found, store, where)
    return found

