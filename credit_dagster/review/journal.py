"""The review journal: every review action, one fsync'ed JSON line, written before the page
confirms it; the dashboard and the API never write the warehouse (the `review_actions` asset
folds the journal in, once each).

Recording an action takes the journal's lock (an `flock`, released by the kernel if the process
dies), replays the journal to the case's current revision, refuses an action on a case that
changed since its author saw it, and appends the action: two reviewers acting on one case at
once never both win, and a line on disk is an action that was accepted.

Each process reads the journal once: it remembers how far it read each day file and reads only
what was appended since (`_Read`), so a refresh costs the new lines, not the whole journal.
"""

from __future__ import annotations

import fcntl
import json
import threading
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from credit_dagster.core import audit
from credit_dagster.review.cases import MAX_NOTE, RESCORE, RESCORER, Action, Case, apply, new_case, replay

PREFIX = audit.REVIEW_PREFIX
journal_dir = audit.review_dir


@dataclass
class _Read:
    """What this process has read of one journal folder: how far into each day file, and the actions."""

    offsets: dict[str, int] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    by_application: dict[int, list[Action]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


_reads: dict[Path, _Read] = {}
_reads_lock = threading.Lock()
_NAMES = [f.name for f in fields(Action)]


def _action(record: dict) -> Action:
    return Action(**{**{k: record[k] for k in _NAMES if k in record}, "reason_codes": tuple(record.get("reason_codes") or ())})


class ReviewJournal:
    def __init__(self, folder: Path | None = None):
        self.folder = folder or journal_dir()
        self.log = audit.AuditLog(self.folder, prefix=PREFIX)

    @contextmanager
    def _locked(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> _Read:
        """The journal as far as it is written, reading only the lines appended since this process last looked."""
        with _reads_lock:
            read = _reads.setdefault(self.folder.resolve(), _Read())
            for path in sorted(self.folder.glob(f"{PREFIX}*.jsonl")):
                start = read.offsets.get(path.name, 0)
                if path.stat().st_size <= start:
                    continue
                with open(path, "rb") as handle:
                    handle.seek(start)
                    data = handle.read()
                complete = data.rfind(b"\n") + 1  # a line still being written is read when it is whole
                for number, line in enumerate(data[:complete].split(b"\n")):
                    if not line.strip():
                        continue
                    try:
                        action = _action(audit.record_of(line))
                    except (json.JSONDecodeError, TypeError) as exc:  # a write cut short: that action was never confirmed
                        read.unreadable.append(f"{path.name} after byte {start}, line {number + 1}: {exc}")
                        continue
                    read.actions.append(action)
                    read.by_application.setdefault(action.sk_id, []).append(action)
                read.offsets[path.name] = start + complete
            return read

    def actions(self) -> list[Action]:
        """Every action recorded, in the order written (an unfinished last line is no action)."""
        return list(self._read().actions)

    def unreadable(self) -> list[str]:
        """Where a line could not be read (a write cut short by a crash), to be said, not hidden."""
        return list(self._read().unreadable)

    def actions_of(self, sk_id: int) -> list[Action]:
        return list(self._read().by_application.get(int(sk_id), ()))

    def case(self, sk_id: int, model_decision: str) -> Case:
        """The case now, as the journal has it (a case never reviewed is as the night left it)."""
        return replay(self.actions_of(sk_id))[0].get(sk_id) or new_case(sk_id, model_decision)

    def record(self, sk_id: int, action: str, *, user: str, role: str, model_version: str, model_decision: str,
               revision: int | None, final: str | None = None, reason_codes: tuple[str, ...] = (), note: str = "",
               channel: str | None = None, received_on: str | None = None) -> Case:
        """Check and write one action; the case after it. ReviewError (nothing written) if it may not be taken.
        `revision`: the case as its author saw it; None for a client's contest, taken whatever happened since."""
        with self._locked():
            now = self.case(sk_id, model_decision)
            taken = Action(action_id=uuid.uuid4().hex, sk_id=int(sk_id), action=action, user=user, role=role,
                           at=datetime.now(UTC).isoformat(), model_version=model_version, model_decision=model_decision,
                           revision=now.revision if revision is None else revision, final=final,
                           reason_codes=tuple(reason_codes), note=note, channel=channel, received_on=received_on)
            after = apply(now, taken)
            self.log.append([{**asdict(taken), "reason_codes": list(taken.reason_codes)}])  # fsync'ed before we answer
        return after

    def keep_earlier_decisions(self, changes: list[dict], *, run_id: str, reason: str) -> int:
        """A night scored again: for each applicant whose new decision (`changes`: SK_ID_CURR,
        before, after, model_version) differs from the one that stood, a re-score action keeps the
        earlier decision standing and opens a case (a person's own decision is kept as it is). Once
        per run and applicant, whatever retries: the cases opened."""
        with self._locked():
            read = self._read()  # once: a night scored again can change every one of its decisions
            seen = {a.action_id for a in read.actions}
            now = datetime.now(UTC).isoformat()
            taken = []
            for change in changes:
                sk_id = int(change["SK_ID_CURR"])
                action_id = f"re-score-{run_id}-{sk_id}"
                if action_id in seen:
                    continue
                case = replay(read.by_application.get(sk_id, []))[0].get(sk_id) or new_case(sk_id, str(change["after"]))
                taken.append(Action(action_id=action_id, sk_id=sk_id, action=RESCORE, user=RESCORER, role="",
                                    at=now, model_version=str(change["model_version"]), model_decision=str(change["after"]),
                                    revision=case.revision, final=str(change["before"]), note=reason[:MAX_NOTE]))
            if taken:
                self.log.append([{**asdict(a), "reason_codes": []} for a in taken])  # fsync'ed
        return len(taken)
