"""Parquet datasets partitioned by night and applicant shard, the storage many workers can write
(CREDIT_STORAGE=datasets): `<root>/<table>/night=YYYY-MM-DD/shard=NN/part_<uuid>.parquet`.

The root is an fsspec URL (a folder, `memory://…` in tests, or a bucket such as `s3://…` with
its fsspec package installed), so DuckDB reads and writes a bucket the same way as a folder: a
connection is given the root's filesystem (`attach`), writes go through `COPY … (FORMAT
parquet, PARTITION_BY (night, shard))` and reads through `read_parquet` with hive partitioning,
so a filter on night or shard opens only that partition's files (partition pruning).

Each worker writes only its own partition, so workers never wait for each other, unlike the
warehouse file which admits one writer. Files are written in a staging folder and moved into
place whole, so a reader of the table (another night's drift, a landing looking for applicants
scored before) never meets a half-written file.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import duckdb
import fsspec
from fsspec.implementations.local import LocalFileSystem

from credit_dagster.core import formats, settings

HIVE_TYPES = "{'night': 'varchar', 'shard': 'varchar'}"  # kept as written ("03", not 3)
STAGING = "_staging"  # beside the tables, outside every table's files: <root>/_staging/<UTC time>_<uuid>/night=…/shard=…
STAGED_AT = "%Y%m%dT%H%M%S"


def root() -> str:
    """CREDIT_DATASETS, or the folder CREDIT_HOME/datasets."""
    configured = settings.current().datasets
    return (configured or str((settings.credit_home() / "datasets").resolve())).rstrip("/")


def shard_name(shard: int) -> str:
    return f"{shard:02d}"


def shard_names(n_shards: int) -> list[str]:
    return [shard_name(i) for i in range(n_shards)]


def shard_of_sql(column: str, n_shards: int) -> str:
    """The shard of an applicant: SK_ID_CURR mod N, written as in the folder names."""
    return f"lpad(({column} % {n_shards})::varchar, 2, '0')"


def filesystem(location: str) -> fsspec.AbstractFileSystem:
    return fsspec.core.url_to_fs(location)[0]


def attach(con: duckdb.DuckDBPyConnection, location: str) -> None:
    """Let `con` read and write `location`: DuckDB reads folders itself; any other fsspec
    filesystem (memory, buckets) is registered with the connection."""
    fs, root_path = fsspec.core.url_to_fs(location)
    formats.stamp_folder(fs, root_path, "datasets", write=False)  # datasets a newer release wrote are refused
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if not isinstance(fs, LocalFileSystem) and not con.filesystem_is_registered(protocol):
        con.register_filesystem(fs)


def _path(location: str, *parts: str) -> str:
    return "/".join([location, *parts])


def partition_path(location: str, table: str, night: str, shard: str | None = None) -> str:
    return _path(location, table, f"night={night}", *([f"shard={shard}"] if shard is not None else []))


def exists(location: str, table: str, night: str | None = None) -> bool:
    """Some file of the dataset (of that night) exists."""
    fs = filesystem(location)
    folder = partition_path(location, table, night) if night else _path(location, table)
    return bool(fs.exists(folder) and fs.find(folder))


def remove(location: str, table: str, night: str, shard: str) -> None:
    """Delete one partition of `table` (nothing if it has none)."""
    fs, folder = filesystem(location), partition_path(location, table, night, shard)
    if fs.exists(folder):
        fs.rm(folder, recursive=True)


def write(con: duckdb.DuckDBPyConnection, sql: str, location: str, table: str, night: str, shards: list[str],
          *, append: bool = False) -> None:
    """Write the rows of `sql` (which has a `shard` column, each value one of `shards`) as
    `table`'s partitions of `night`. Unless `append` (the audit trail), the partitions of
    `shards` are replaced whole, so a re-run never duplicates a row: the new files are moved in
    before the old ones are removed, so a reader never finds the partition empty."""
    fs, root_path = fsspec.core.url_to_fs(location)
    formats.stamp_folder(fs, root_path, "datasets")
    batch = f"{datetime.now(UTC):{STAGED_AT}}_{uuid.uuid4().hex}"
    staging, staged = _path(location, STAGING, batch), _path(root_path, STAGING, batch)  # as DuckDB writes it, as fs lists it
    fs.makedirs(_path(location, STAGING), exist_ok=True)
    if con.execute(f"select count(*) from ({sql})").fetchall()[0][0]:
        con.execute(f"""copy (select * exclude (shard), '{night}' as night, shard from ({sql}))
                        to '{staging}' (format parquet, partition_by (night, shard), filename_pattern 'part_{{uuid}}')""")
    elif not append:  # no row: a file with the columns alone, so readers know the table's shape
        for name in shards:
            folder = _path(staging, f"night={night}", f"shard={name}")
            fs.makedirs(folder, exist_ok=True)
            # a name of its own, as every file has: the replaced files are removed by name after the move
            con.execute(f"copy (select * exclude (shard) from ({sql})) to '{folder}/part_{uuid.uuid4()}_empty.parquet' (format parquet)")
    old = [] if append else [f for name in shards for f in _files(fs, partition_path(location, table, night, name))]
    for file in _files(fs, staging):
        target = _path(root_path, table, file[len(staged):].lstrip("/"))
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.mv(file, target)
    for file in old:
        fs.rm(file)
    if fs.exists(staging):
        fs.rm(staging, recursive=True)


def sweep_staging(location: str, older_than: timedelta = timedelta(days=1), now: datetime | None = None) -> list[str]:
    """Remove what writes killed half-way left in the staging folder (never read by anyone),
    once it is older than any write still under way; returns the folders removed."""
    fs, now = filesystem(location), now or datetime.now(UTC)
    removed = []
    for folder in fs.ls(_path(location, STAGING), detail=False) if fs.exists(_path(location, STAGING)) else []:
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        try:
            staged = datetime.strptime(name.split("_", 1)[0], STAGED_AT).replace(tzinfo=UTC)
        except ValueError:
            continue  # not ours
        if now - staged > older_than:
            fs.rm(folder, recursive=True)
            removed.append(name)
    return removed


def nights(location: str) -> dict[str, list[str]]:
    """Each table's nights (its `night=` partitions), in order."""
    fs, found = filesystem(location), {}
    for table in (p.rstrip("/").rsplit("/", 1)[-1] for p in (fs.ls(_path(location), detail=False) if fs.exists(_path(location)) else [])):
        if table != STAGING and fs.isdir(_path(location, table)):
            names = (p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(_path(location, table), detail=False))
            found[table] = sorted(name.removeprefix("night=") for name in names if name.startswith("night="))
    return found


def remove_night(location: str, table: str, night: str) -> None:
    """Delete every partition of `table` for `night`."""
    fs, folder = filesystem(location), partition_path(location, table, night)
    if fs.exists(folder):
        fs.rm(folder, recursive=True)


def _files(fs: fsspec.AbstractFileSystem, folder: str) -> list[str]:
    return fs.find(folder) if fs.exists(folder) else []


def scan(location: str, table: str, night: str | None = None, shard: str | None = None) -> str:
    """SQL reading `table` (all nights, or one night, or one shard of it), with the night and
    shard columns the folder names give."""
    where = " and ".join([*([f"night = '{night}'"] if night else []), *([f"shard = '{shard}'"] if shard else [])])
    return (f"select * from read_parquet('{_path(location, table)}/*/*/*.parquet', hive_partitioning = true, "
            f"hive_types = {HIVE_TYPES}, union_by_name = true)" + (f" where {where}" if where else ""))
