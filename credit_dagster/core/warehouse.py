"""The DuckDB warehouse file's connections, taken in turns by every process (`warehouse_lock`);
pure, so the API can read it as the runs do."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from credit_dagster.core import datasets, formats, settings


class WarehouseBusy(Exception):
    """The warehouse is held by another process and the caller chose not to wait."""


_held = threading.local()


@contextmanager
def warehouse_lock(path: Path, say=print, wait: bool = True) -> Iterator[None]:
    """An exclusive lock on `path`.lock across processes, re-entrant within a thread.

    DuckDB lets one process open a file for writing and no other process read it meanwhile, so
    two runs (a CLI backfill beside a sensor's run, a check beside a step) would fail on its
    lock. Every connection waits here instead, and says who it waits for. The kernel releases
    a flock when its process dies, even by SIGKILL: a crashed run never leaves it held."""
    depth = getattr(_held, "depth", 0)
    if depth:
        _held.depth = depth + 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    lock_file = path.with_name(path.name + ".lock")
    with open(lock_file, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if not wait:
                raise WarehouseBusy(f"warehouse {path} is in use by {holder}") from None
            say(f"warehouse {path} is in use by {holder}: waiting for it")
            started = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            say(f"warehouse free after {time.monotonic() - started:.0f}s")
        handle.seek(0)
        handle.truncate()
        handle.write(f"PID {os.getpid()}")
        handle.flush()
        _held.depth = 1
        try:
            yield
        finally:
            _held.depth = 0
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def connect(path: Path, read_only: bool = False, wait: bool = True, scratch: bool = False, say: Callable[[str], None] = print,
            memory_limit: str = "", threads: int = 0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse at `path` once it is free; without `wait`, WarehouseBusy if it
    is not. `scratch`: the warehouse attached read-only to an in-memory database, where work tables
    may be written (a replayed decision's counterfactual search) and nothing reaches the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path == settings.warehouse_path():  # the home's own: written in this release's formats, or refused
        formats.check(settings.credit_home())
    config = {"memory_limit": memory_limit or settings.current().duckdb_memory_limit, "temp_directory": str(path.parent / "duckdb_tmp"),
              "threads": threads or settings.threads()}
    with warehouse_lock(path, say=say, wait=wait):
        if scratch:
            con = duckdb.connect(":memory:", config=config)
            con.execute(f"attach '{path}' as {path.stem} (read_only)")
            con.execute(f"use {path.stem}")
        else:
            con = duckdb.connect(str(path), read_only=read_only, config=config)
        try:
            if read_only or scratch:
                formats.check_duckdb(con, "warehouse", path)
            else:
                formats.stamp_duckdb(con, "warehouse")
            if settings.current().storage == "datasets":  # its scoring views read the datasets
                datasets.attach(con, datasets.root())
        except BaseException:
            con.close()
            raise
        try:
            yield con
        finally:
            con.close()
