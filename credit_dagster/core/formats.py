"""Which release wrote a CREDIT_HOME, in which format each of its stores is, and the migrations
between formats.

`FORMAT.json` at the home's root records, per store (the warehouse, the model registry and its
metadata, the journals, the snapshots, the datasets), the format it is written in and the release
that wrote it. Every entry point checks it before touching anything: a store newer than this code
is refused in one line naming the release that wrote it; an older one asks for `credit-dagster
migrate`, which backs the home up, then runs each store's steps in order, recording each step's
end (so a migration killed midway resumes where it stopped, and running it twice does nothing).
A home without the file but with stores was written before formats were recorded: format 0.

From now on a change to a store's format raises its number in STORES and adds its step to
MIGRATIONS, with a test that opens a home of the previous format.
"""

from __future__ import annotations

import json
import os
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
