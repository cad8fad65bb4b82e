"""The on-demand audit trail: one JSON line per decision, on disk before the answer leaves.

The API never opens the warehouse (its single writer is the night): decisions are appended to
day files under CREDIT_HOME/api/audit (CREDIT_API_AUDIT_DIR), written in one `write` on an
O_APPEND descriptor and fsync'ed (in groups) before the response is sent, so a killed API
process loses no decision it answered. The `api_decision_audit` asset folds the files into the
warehouse.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from credit_dagster.core import settings

PREFIX = "ondemand_"


def audit_dir() -> Path:
    return settings.under_home(settings.current().api_audit_dir, "api", "audit")


class AuditLog:
    """Append-only day files `<prefix><date>.jsonl` in `folder` (also the dashboard's access log).

    Appends commit as a group: each caller writes its lines at once, then waits until an fsync
    that began after its write has finished. A caller arriving while a sync runs is served by
    the next one, with everyone else who arrived meanwhile (one fsync for all of them, as a
    database commits a group), so under load the answers do not queue behind one fsync each."""

    def __init__(self, folder: Path | None = None, prefix: str = PREFIX):
        self.folder = folder or audit_dir()
        self.prefix = prefix
        self._write_lock, self._sync_lock = threading.Lock(), threading.Lock()
        self._written, self._synced = 0, 0  # appends written, appends known durable
        self._unsynced: set[Path] = set()  # files written since the last sync began

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, default=str, separators=(",", ":")) + "\n" for r in records).encode()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.prefix}{datetime.now(UTC).date().isoformat()}.jsonl"
        with self._write_lock:
            _write(path, data)
            self._written += 1
            mine = self._written
            self._unsynced.add(path)
        with self._sync_lock:
            if self._synced >= mine:  # a sync that began after this write has finished
                return
            with self._write_lock:
                upto, files, self._unsynced = self._written, self._unsynced, set()
            for file in files:
                fd = os.open(file, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._synced = upto


def _write(path: Path, data: bytes) -> None:
    # one write on an O_APPEND descriptor: lines of concurrent appends never interleave
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"{path}: wrote {written} of {len(data)} bytes of the audit trail")
    finally:
        os.close(fd)


def read(folder: Path | None = None, prefix: str = PREFIX) -> tuple[pd.DataFrame, list[str]]:
    """Every complete record of the audit files, and where an unreadable line was (a process
    killed in the middle of a write leaves at most its last line unfinished; that decision was
    never answered, since the answer waits for the write)."""
    folder = folder or audit_dir()
    records, problems = [], []
    for path in sorted(folder.glob(f"{prefix}*.jsonl")):
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                problems.append(f"{path.name} line {number}: {exc.msg}")
    return pd.DataFrame(records), problems
