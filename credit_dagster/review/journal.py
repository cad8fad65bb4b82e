"""The review journal: every review action, one fsync'ed JSON line, written before the page
confirms it; the dashboard and the API never write the warehouse (the `review_actions` asset
folds the journal in, once each).

Recording an action takes the journal's lock (an `flock`, released by the kernel if the process
dies), replays the journal to the case's current revision, refuses an action on a case that
changed since its author saw it, and appends the action: two reviewers acting on one case at
once never both win, and a line on disk is an action that was accepted.
"""

from __future__ import annotations

import fcntl
import uuid
from contextlib import contextmanager
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path

from credit_dagster.core import audit, settings
from credit_dagster.review.cases import Action, Case, apply, new_case, replay

PREFIX = "review_"


def journal_dir() -> Path:
    return settings.under_home(settings.current().review_journal_dir, "review", "journal")


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

    def actions(self) -> list[Action]:
        """Every action recorded, in the order written (an unfinished last line is no action)."""
        frame, _ = audit.read(self.folder, prefix=PREFIX)
        names = [f.name for f in fields(Action)]
        return [Action(**{**{k: r[k] for k in names if k in r}, "reason_codes": tuple(r.get("reason_codes") or ())})
                for r in frame.to_dict("records")] if len(frame) else []

    def case(self, sk_id: int, model_decision: str) -> Case:
        """The case now, as the journal has it (a case never reviewed is as the night left it)."""
        return replay(a for a in self.actions() if a.sk_id == sk_id)[0].get(sk_id) or new_case(sk_id, model_decision)

    def record(self, sk_id: int, action: str, *, user: str, role: str, model_version: str, model_decision: str,
               revision: int, final: str | None = None, reason_codes: tuple[str, ...] = (), note: str = "") -> Case:
        """Check and write one action; the case after it. ReviewError (nothing written) if it may not be taken."""
        taken = Action(action_id=uuid.uuid4().hex, sk_id=int(sk_id), action=action, user=user, role=role,
                       at=datetime.now(UTC).isoformat(), model_version=model_version, model_decision=model_decision,
                       revision=revision, final=final, reason_codes=tuple(reason_codes), note=note)
        with self._locked():
            after = apply(self.case(sk_id, model_decision), taken)
            self.log.append([{**asdict(taken), "reason_codes": list(taken.reason_codes)}])  # fsync'ed before we answer
        return after
