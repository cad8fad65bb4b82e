"""The on-demand audit trail: one JSON line per decision, on disk before the answer leaves.

The API never opens the warehouse (its single writer is the night): decisions are appended to
day files under CREDIT_HOME/api/audit (CREDIT_API_AUDIT_DIR), written in one `write` on an
O_APPEND descriptor and fsync'ed before the response is sent, so a killed API process loses
no decision it answered. The `api_decision_audit` asset folds the files into the warehouse.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from credit_dagster import settings

PREFIX = "ondemand_"


def audit_dir() -> Path:
    return Path(os.environ.get("CREDIT_API_AUDIT_DIR") or settings.credit_home() / "api" / "audit")


class AuditLog:
    """Append-only day files `<prefix><date>.jsonl` in `folder` (also the dashboard's access log)."""

    def __init__(self, folder: Path | None = None, prefix: str = PREFIX):
        self.folder = folder or audit_dir()
        self.prefix = prefix
        self._lock = threading.Lock()

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, default=str, separators=(",", ":")) + "\n" for r in records).encode()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.prefix}{datetime.now(UTC).date().isoformat()}.jsonl"
        with self._lock:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(f"{path}: wrote {written} of {len(data)} bytes of the audit trail")
                os.fsync(fd)
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
