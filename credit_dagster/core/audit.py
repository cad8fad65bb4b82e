"""The on-demand audit trail: one JSON line per decision, on disk before the answer leaves.

The API never opens the warehouse (its single writer is the night): decisions are appended to
day files under CREDIT_HOME/api/audit (CREDIT_API_AUDIT_DIR), written in one `write` on an
O_APPEND descriptor and fsync'ed (in groups) before the response is sent, so a killed API
process loses no decision it answered. The `api_decision_audit` asset folds the files into the
warehouse.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from fsspec.implementations.local import LocalFileSystem

from credit_dagster.core import formats, settings

LOCAL = LocalFileSystem()

PREFIX = "ondemand_"  # the API's on-demand decisions
READS_PREFIX = "reads_"  # beside them: every read of a person's decision or letter through the API, with its caller
REVIEW_PREFIX = "review_"  # the review journal
SWITCH_PREFIX = "switch_"  # beside it: the "refer everything" switch
ACCESS_PREFIX = "access_"  # the dashboard's access log
SEALS_PREFIX = "seals_"  # beside the API's: each night's decisions sealed (core/seals.py)
ERASURES_PREFIX = "erasures_"  # beside them: each person's data erased, and what changed (subject/erase.py)
RETENTION_PREFIX = "retention_"  # and what each day's retention removed (retention/policy.py)


def audit_dir() -> Path:
    return settings.under_home(settings.current().api_audit_dir, "api", "audit")


def review_dir() -> Path:
    return settings.under_home(settings.current().review_journal_dir, "review", "journal")


def access_dir() -> Path:
    return settings.under_home(settings.current().dashboard_access_dir, "dashboard", "access")


def journals() -> dict[str, tuple[Path, str]]:
    """Every journal of the platform: what it is -> (its folder, its files' prefix)."""
    return {"review journal": (review_dir(), REVIEW_PREFIX), "refer-everything switch": (review_dir(), SWITCH_PREFIX),
            "on-demand decisions": (audit_dir(), PREFIX), "API reads": (audit_dir(), READS_PREFIX),
            "dashboard access log": (access_dir(), ACCESS_PREFIX), "night seals": (audit_dir(), SEALS_PREFIX),
            "erasures": (audit_dir(), ERASURES_PREFIX), "retention": (audit_dir(), RETENTION_PREFIX)}


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
        self._stamped = False
        self._syncer: threading.Thread | None = None  # syncs what was appended without waiting (durable=False)

    SYNC_EVERY = 0.1  # seconds: how long a line appended with `durable=False` may wait for its fsync

    def append(self, records: list[dict], durable: bool = True) -> None:
        """Write `records`; return once they are on disk (fsync'ed), or with `durable=False` once
        they are written to the system (a kill of this process loses nothing; a power cut may lose
        the last SYNC_EVERY seconds), a background thread syncing them: for the access records of
        reads, which would otherwise hold each read's answer for an fsync."""
        if not records:
            return
        if not self._stamped:  # a journal folder a newer release wrote is refused, once per log
            with self._write_lock:
                formats.stamp_folder(LOCAL, self.folder, "journals")
                self._stamped = True
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.prefix}{datetime.now(UTC).date().isoformat()}.jsonl"
        with self._write_lock:
            _write_chained(self.folder, self.prefix, path, records)
            self._written += 1
            mine = self._written
            self._unsynced.add(path)
            if not durable and self._syncer is None:
                self._syncer = threading.Thread(target=self._sync_in_background, name=f"sync-{self.prefix}", daemon=True)
                self._syncer.start()
        if durable:
            self.sync(mine)

    def sync(self, upto: int | None = None) -> None:
        """Return once every append up to `upto` (all so far when None) is on disk."""
        with self._sync_lock:
            if self._synced >= (self._written if upto is None else upto):  # a sync that began after that write has finished
                return
            with self._write_lock:
                written, files, self._unsynced = self._written, self._unsynced, set()
            for file in files:
                fd = os.open(file, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._synced = written

    def _sync_in_background(self) -> None:
        while True:
            time.sleep(self.SYNC_EVERY)
            self.sync()


# Tamper evidence: each line carries PREV, the SHA-256 of the line before it (across day files: a
# day's first line names the previous day's last), so an edited, deleted or reordered line breaks
# the chain at the next one; `verify` finds the first break. The head (the last line's hash) is
# published elsewhere (the nightly check `journals_untouched` keeps it in Dagster's metadata), so a
# change to the last lines shows too. A line a person's erasure rewrote (subject/erase.py) keeps in
# REDACTED the hash it had, which the chain goes on with; `verify` accepts it only if the erasures
# journal names the line as it now is. When retention removes a journal's oldest day files, the
# retention journal keeps the hash the first remaining line names: the chain's start (`anchor`).
PREV = "_prev"
REDACTED = "_redacted"
GENESIS = "0" * 64
_heads: dict[Path, tuple[int, str]] = {}  # file -> (its size, its last line's hash) as this process last wrote it


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def chained_hash(line: bytes) -> str:
    """What the next line names: the line's hash, or for a line an erasure rewrote, the hash it had."""
    if REDACTED.encode() in line:
        was = json.loads(line).get(REDACTED)
        if was:
            return was
    return line_hash(line)


def _last_line(path: Path) -> bytes | None:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 65536))
        tail = f.read()
    complete = tail[: tail.rfind(b"\n") + 1].rstrip(b"\n")
    return complete.rsplit(b"\n", 1)[-1] if complete else None


def _head(folder: Path, prefix: str, path: Path) -> str:
    """The hash the next line of `path` must name: its last line's, else the latest earlier day's."""
    size = path.stat().st_size if path.exists() else 0
    cached = _heads.get(path)
    if cached and cached[0] == size:
        return cached[1]
    last = _last_line(path) if size else None
    return chained_hash(last) if last else head(folder, prefix, before=path.name)


def head(folder: Path, prefix: str, before: str | None = None) -> str:
    """The journal's head: what its next line names (of its day files named before `before`)."""
    for candidate in sorted((p for p in folder.glob(f"{prefix}*.jsonl") if before is None or p.name < before), reverse=True):
        last = _last_line(candidate)
        if last:
            return chained_hash(last)
    return anchor(prefix)


def anchor(prefix: str) -> str:
    """Where the journal's chain starts: GENESIS, or after the day files retention removed."""
    start = GENESIS
    if prefix != RETENTION_PREFIX:
        for record in records(audit_dir(), RETENTION_PREFIX)[0]:
            start = next((j["anchor"] for j in record.get("journals") or [] if j["journal"] == prefix), start)
    return start


def _write_chained(folder: Path, prefix: str, path: Path, records: list[dict]) -> None:
    """The records as chained lines, under an exclusive lock on the folder (the API, the dashboard
    and the command line may append to one journal), in one write on an O_APPEND descriptor."""
    with open(folder / f".{prefix}chain.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        prev, lines = _head(folder, prefix, path), []
        for record in records:
            line = json.dumps({**record, PREV: prev}, default=str, separators=(",", ":")).encode()
            prev = line_hash(line)
            lines.append(line + b"\n")
        data = b"".join(lines)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"{path}: wrote {written} of {len(data)} bytes of the audit trail")
            _heads[path] = (os.fstat(fd).st_size, prev)
        finally:
            os.close(fd)


def record_of(line: bytes) -> dict:
    """A journal line's record, without its chain link."""
    record = json.loads(line)
    record.pop(PREV, None)
    record.pop(REDACTED, None)
    return record


def verify(folder: Path, prefix: str, erased: set[str] | None = None) -> tuple[int, str, list[str]]:
    """Walk the chain of `folder`'s `prefix` files: (lines checked, the head, where it breaks).
    Lines written before the chain existed (no link) are counted but cannot be checked. `erased`:
    the hashes of the lines erasures rewrote, as the erasures journal names them (read when None)."""
    if erased is None:
        erased = {line["hash"] for record in records(audit_dir(), ERASURES_PREFIX)[0] for line in record.get("lines") or []}
    prev, checked, broken = anchor(prefix), 0, []
    for path in sorted(folder.glob(f"{prefix}*.jsonl")):
        data = path.read_bytes()
        for number, line in enumerate(data[: data.rfind(b"\n") + 1].split(b"\n")[:-1], start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                broken.append(f"{path.name} line {number}: not a complete record")
                continue
            link = record.get(PREV)
            if link is not None and link != prev:
                broken.append(f"{path.name} line {number}: does not follow the line before it (edited, deleted or moved)")
            if record.get(REDACTED) and line_hash(line) not in erased:
                broken.append(f"{path.name} line {number}: marked as rewritten by an erasure that the erasures journal does not name")
            prev, checked = record.get(REDACTED) or line_hash(line), checked + 1
    return checked, prev, broken


def read(folder: Path | None = None, prefix: str = PREFIX) -> tuple[pd.DataFrame, list[str]]:
    """Every complete record of the audit files as a frame, and where an unreadable line was."""
    found, problems = records(folder or audit_dir(), prefix)
    return pd.DataFrame(found), problems


def records(folder: Path, prefix: str) -> tuple[list[dict], list[str]]:
    """Every complete record of the journal, and where an unreadable line was (a process killed
    in the middle of a write leaves at most its last line unfinished; that decision was never
    answered, since the answer waits for the write)."""
    records, problems = [], []
    for path in sorted(folder.glob(f"{prefix}*.jsonl")):
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(record_of(line))
            except json.JSONDecodeError as exc:
                problems.append(f"{path.name} line {number}: {exc.msg}")
    return records, problems
