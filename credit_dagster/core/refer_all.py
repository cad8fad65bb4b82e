"""Refer everything: a supervisor's switch that sends every new decision, nightly or on demand,
to an advisor until switched off (the human oversight that can set the model aside, AI Act
Art. 14).

The switch is a journal like the review's: each setting one fsync'ed JSON line (who, when, on
or off, why) beside the review journal; the last line says where it stands. Scoring reads it
for every night and every on-demand round (a directory listing and a stat while it is
unchanged), so it takes effect on the next API request and the next night.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from credit_dagster.core import audit

PREFIX = audit.SWITCH_PREFIX
MAX_WHY = 500
# the first reason of a decision the switch referred, in the client's words
REASON = "All applications are decided by an advisor for the time being, not by the automated assessment alone."


@dataclass(frozen=True)
class Switch:
    on: bool
    by: str | None = None
    at: str | None = None
    why: str = ""
    operator: str | None = None  # the operating-system account that ran the command (the command line's switches)

    def sentence(self) -> str:
        if not self.on:
            return "Refer everything is off: the model decides."
        return f"Refer everything is ON since {self.at[:16].replace('T', ' ')} UTC, set by {self.by}: {self.why}"


OFF = Switch(on=False)


def switch_dir() -> Path:
    # beside the review journal: the same people set it, the same backups keep it
    return audit.review_dir()


_seen: dict[Path, tuple[tuple, Switch]] = {}
_seen_lock = threading.Lock()


def state(folder: Path | None = None) -> Switch:
    """Where the switch stands: its last complete line, or off if it was never set."""
    folder = folder or switch_dir()
    files = sorted(folder.glob(f"{PREFIX}*.jsonl"))
    stamp = tuple((f.name, f.stat().st_size) for f in files)
    with _seen_lock:
        if folder in _seen and _seen[folder][0] == stamp:
            return _seen[folder][1]
    found = OFF
    for path in reversed(files):
        lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
        for line in reversed(lines):
            try:
                found = Switch(**audit.record_of(line))
                break
            except (json.JSONDecodeError, TypeError):  # a write cut short: that setting was never confirmed
                continue
        if found is not OFF:
            break
    with _seen_lock:
        _seen[folder] = (stamp, found)
    return found


def set_switch(on: bool, *, by: str, role: str, why: str, folder: Path | None = None, operator: str | None = None) -> Switch:
    """Switch on or off, journaled before it is confirmed. Only a supervisor may; a reason is required."""
    if role != "supervisor":
        raise PermissionError(f"only a supervisor may switch refer everything {'on' if on else 'off'}; {by} is {role or 'no reviewer'}")
    why = (why or "").strip()
    if not why:
        raise ValueError("say why refer everything is switched " + ("on" if on else "off"))
    if len(why) > MAX_WHY:
        raise ValueError(f"the reason has {len(why)} characters; at most {MAX_WHY}")
    switch = Switch(on=on, by=by, at=datetime.now(UTC).isoformat(), why=why, operator=operator)
    audit.AuditLog(folder or switch_dir(), prefix=PREFIX).append([asdict(switch)])
    return switch
