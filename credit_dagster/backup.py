"""A consistent copy of a CREDIT_HOME taken while nights, the API and the dashboard run, and its
restore after every file is checked against the copy's manifest.

Each kind of file is copied the way its writers allow:
- the warehouse under its writer lock (`warehouse_lock`: no process has the file open meanwhile,
  so the copy is the state between two steps of a night; a night caught in the middle is
  completed by its next run, as after a crash);
- journals (`*.jsonl`: review, refer-everything, API audit, access log) up to their last complete
  line: a line being appended is the next backup's;
- SQLite files (the Dagster instance's runs, events and schedules) through SQLite's backup API;
- everything else (snapshots, models, keys, users, reports, drops) as it is: those are replaced
  whole by a rename, never written in place.
Not copied: locks, DuckDB's spill folder, and the dashboard's open sessions (a restored home
signs everybody in afresh).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from credit_dagster.core import formats, settings
from credit_dagster.core.warehouse import warehouse_lock

MANIFEST = "manifest.json"
FORMAT = 1  # the layout of a backup folder and its manifest
SKIPPED_NAMES = {"sessions.json"}
SKIPPED_SUFFIXES = (".lock", ".tmp")
SKIPPED_FOLDERS = {"duckdb_tmp"}
NOT_STATE = {"home", "data_dir", "tls_cert", "tls_key"}  # path settings that name no state of the platform


class BackupError(Exception):
    """A backup or a restore that cannot be done as asked: said in one line."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _empty_folder(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupError(f"{folder} exists and is not an empty folder")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)


def _copy_journal(source: Path, target: Path) -> None:
    """Up to the last complete line: a line being appended now belongs to the next backup."""
    data = source.read_bytes()
    target.write_bytes(data[: data.rfind(b"\n") + 1])


def _copy_sqlite(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(target)
    try:
        src.backup(dst)  # a consistent copy while Dagster's processes write
    finally:
        dst.close()
        src.close()


def _is_sqlite(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def _skipped(relative: Path) -> bool:
    return (relative.name in SKIPPED_NAMES or relative.name.endswith(SKIPPED_SUFFIXES)
            or bool(SKIPPED_FOLDERS & set(relative.parts[:-1])) or relative.name.endswith(("-wal", "-shm", "-journal")))


def backup(dest: Path, say=print) -> dict:
    """Copy this CREDIT_HOME into `dest` (a new or empty folder) with a manifest of checksums."""
    home = settings.credit_home()
    if not home.is_dir():
        raise BackupError(f"no CREDIT_HOME at {home}")
    dest = dest.expanduser().resolve()
    if dest == home or home in dest.parents:
        raise BackupError(f"{dest} is inside the home it would copy ({home})")
    _empty_folder(dest)
    files: dict[str, dict] = {}

    def keep(relative: Path, copy) -> None:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        copy(home / relative, target)
        os.chmod(target, 0o600)
        files[relative.as_posix()] = {"sha256": _sha256(target), "bytes": target.stat().st_size}

    warehouse = settings.warehouse_path()
    if warehouse.exists():
        with warehouse_lock(warehouse, say=say):  # between two steps of whatever runs
            for part in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
                if part.exists():
                    keep(part.relative_to(home), shutil.copyfile)
    for path in sorted(home.rglob("*")):
        relative = path.relative_to(home)
        if relative.as_posix() in files or not path.is_file() or _skipped(relative):
            continue
        try:
            if path.suffix == ".jsonl":
                keep(relative, _copy_journal)
            elif _is_sqlite(path):
                keep(relative, _copy_sqlite)
            else:
                keep(relative, shutil.copyfile)
        except FileNotFoundError:  # replaced or removed since the listing (a drop folded, a temporary file)
            continue
    notes = []
    if home not in settings.dagster_home().resolve().parents:
        notes.append(f"DAGSTER_HOME ({settings.dagster_home()}) is outside the home and not in this copy: back it up beside it")
    dagster_yaml = settings.dagster_home() / "dagster.yaml"
    if dagster_yaml.exists() and "DAGSTER_PG_URL" in dagster_yaml.read_text():
        notes.append("Dagster's runs and events are on PostgreSQL, not in this copy: back them up with "
                     "`pg_dump --format=custom --file dagster.dump \"$DAGSTER_PG_URL\"` at the same time")
    root = settings.current().datasets
    if settings.current().storage == "datasets" and root and ("://" in root or home not in Path(root).expanduser().resolve().parents):
        notes.append(f"the nights' datasets ({root}) are outside the home: back them up with their store's own tools")
    configured = settings.current()
    for name in type(configured).model_fields:  # a journal, an inbox or a users file moved out of the home
        value = getattr(configured, name)
        if isinstance(value, Path) and name not in NOT_STATE and home not in value.expanduser().resolve().parents:
            notes.append(f"{settings.env_name(name)} ({value}) is outside the home and not in this copy: back it up beside it")
    remembered = settings.remembered_data_dir()
    if remembered.exists():
        notes.append(f"the source data folder ({remembered.read_text().strip()}) is not in this copy")
    manifest = {"format": FORMAT, "release": formats.release(), "home": str(home), "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "files": files, "notes": notes}
    path = dest / MANIFEST
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o600)
    return manifest


def verify(source: Path) -> dict:
    """The manifest of the backup at `source`, once every file it lists is there, unchanged."""
    path = source / MANIFEST
    if not path.exists():
        raise BackupError(f"{source} holds no {MANIFEST}: not a backup of credit-dagster")
    manifest = json.loads(path.read_text())
    if manifest.get("format", 0) > FORMAT:
        raise BackupError(f"{source} was written by credit-dagster {manifest.get('release')} in backup format {manifest['format']}; "
                          f"this release ({formats.release()}) reads format {FORMAT} and older")
    wrong = [name for name, entry in manifest["files"].items()
             if not (source / name).is_file() or _sha256(source / name) != entry["sha256"]]
    if wrong:
        raise BackupError(f"{len(wrong)} file(s) of the backup are missing or changed since it was taken: {', '.join(wrong[:5])}")
    return manifest


def restore(source: Path, to: Path) -> dict:
    """Check the backup at `source`, then copy it into `to` (a new or empty folder), private."""
    source, to = source.expanduser().resolve(), to.expanduser().resolve()
    manifest = verify(source)
    _empty_folder(to)
    os.chmod(to, 0o700)
    for name in manifest["files"]:
        target = to / name
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copyfile(source / name, target)
        os.chmod(target, 0o600)
    return manifest
