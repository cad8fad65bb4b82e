"""Human review of decisions: advisors finish what the model refers and what clients contest, and
reversing the model's decision needs a second pair of eyes.

A case is one application. Its state is never stored apart: it is derived by replaying the
review journal's actions in order (`replay`), so the dashboard, the API and the warehouse's fold
always agree on it. Each action says which revision of the case its author saw; an action on a
case that has changed since is refused (`ReviewError`), so two advisors acting at once never
both win and nothing is applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

GRANTED, REFUSED, REFER = "granted", "refused", "refer to an advisor"  # as `nightly.scoring` decides
ADVISOR, SUPERVISOR = "advisor", "supervisor"
ROLES = (ADVISOR, SUPERVISOR)
# what a reviewer may give as the reason of a final decision (README: "Human review")
REASON_CODES = {
    "verified_income": "Income verified with documents",
    "additional_collateral": "Additional collateral or a guarantor",
    "credit_history_explained": "Past payment problems explained and documented",
    "affordability": "The repayment would not be affordable",
    "fraud_suspicion": "Suspicion of fraud",
    "incomplete_application": "The application could not be completed",
    "policy_exception": "An exception to policy",
    "client_request": "At the client's request",
}
DECIDE = "decide"  # a decision that reverses the model becomes a request for approval
APPROVE, SEND_BACK, CONTEST = "approve", "send back", "contest"
ACTIONS = (DECIDE, APPROVE, SEND_BACK, CONTEST)
OPEN, WAITING, DECIDED, CLOSED = "open", "waiting for approval", "decided", "decided by the model"
MAX_NOTE = 2000  # characters: a note is the reviewer's words, bounded and never interpreted
CHANNELS = ("phone", "letter", "branch", "e-mail", "the lender's other systems")  # how a client asks for a review


def contest_note(channel: str, received_on: str, words: str) -> str:
    """A contest's note: how and when the client asked, then their own words as they gave them."""
    return f"[{channel}, {received_on}] {words}"


def contest_words(actions: Iterable[Action]) -> str:
    """What the client said in their latest contest (its note), for the letter answering it."""
    return next((a.note for a in reversed(list(actions)) if a.action == CONTEST), "")


class ReviewError(ValueError):
    """An action that may not be taken, said so its author can act on it."""


@dataclass(frozen=True)
class Action:
    action_id: str
    sk_id: int
    action: str
    user: str
    role: str
    at: str  # ISO time, UTC
    model_version: str
    model_decision: str  # the model's decision the reviewer saw
    revision: int  # how many actions the case had when its author saw it
    final: str | None = None  # granted or refused, for `decide`
    reason_codes: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Case:
    sk_id: int
    model_decision: str
    status: str
    final_decision: str  # the decision that stands now
    decided_by: str  # model, advisor or supervisor
    revision: int = 0
    reason_codes: tuple[str, ...] = ()
    requested_by: str | None = None  # who asked to reverse the model, awaiting approval
    requested_final: str | None = None
    contested: bool = False
    updated_at: str | None = None
    note: str = ""


def new_case(sk_id: int, model_decision: str) -> Case:
    """A case as the night left it: open when the model referred it, else decided by the model."""
    return Case(sk_id=sk_id, model_decision=model_decision, status=OPEN if model_decision == REFER else CLOSED,
                final_decision=model_decision, decided_by="model")


def apply(case: Case, action: Action) -> Case:
    """The case after `action`, or ReviewError saying why it may not be taken."""
    if action.revision != case.revision:
        raise ReviewError(f"application {case.sk_id} changed since you opened it ({case.revision - action.revision} "
                          "action(s) since): look at it again before acting")
    if len(action.note) > MAX_NOTE:
        raise ReviewError(f"the note has {len(action.note)} characters; at most {MAX_NOTE}")
    done = replace(case, revision=case.revision + 1, updated_at=action.at)
    if action.action == CONTEST:
        return replace(done, status=OPEN, contested=True, note=action.note)
    if action.role not in ROLES:
        raise ReviewError(f"{action.user} has no reviewer role")
    if action.action == DECIDE:
        _check_decision(action)
        if case.status not in (OPEN,):
            raise ReviewError(f"application {case.sk_id} is {case.status}: only an open case is decided")
        if case.model_decision in (GRANTED, REFUSED) and action.final != case.model_decision:
            # reversing the model (an override) waits for a supervisor other than its author
            return replace(done, status=WAITING, requested_by=action.user, requested_final=action.final,
                           reason_codes=action.reason_codes, note=action.note)
        return replace(done, status=DECIDED, final_decision=action.final, decided_by=action.role,
                       reason_codes=action.reason_codes, note=action.note)
    if action.role != SUPERVISOR:
        raise ReviewError(f"only a supervisor may {action.action} a case; {action.user} is an {action.role}")
    if case.status != WAITING:
        raise ReviewError(f"application {case.sk_id} is {case.status}: nothing awaits approval")
    if action.action == APPROVE:
        if action.user == case.requested_by:
            raise ReviewError(f"{action.user} asked for this override and may not approve it: another supervisor does")
        return replace(done, status=DECIDED, final_decision=case.requested_final, decided_by=SUPERVISOR,
                       requested_by=None, requested_final=None)
    if action.action == SEND_BACK:
        return replace(done, status=OPEN, requested_by=None, requested_final=None, note=action.note)
    raise ReviewError(f"unknown action {action.action!r}; one of {', '.join(ACTIONS)}")


def _check_decision(action: Action) -> None:
    if action.final not in (GRANTED, REFUSED):
        raise ReviewError(f"a final decision is {GRANTED} or {REFUSED}, not {action.final!r}")
    if not action.reason_codes:
        raise ReviewError("give at least one reason code")
    unknown = [c for c in action.reason_codes if c not in REASON_CODES]
    if unknown:
        raise ReviewError(f"unknown reason code(s) {', '.join(unknown)}; one of {', '.join(REASON_CODES)}")


def replay(actions: Iterable[Action]) -> tuple[dict[int, Case], list[tuple[Action, str]]]:
    """Every case the journal's actions touched, in journal order, and the actions that could not
    be applied with why (written by a process that had not seen an earlier line: they are kept in
    the journal as attempts, and change nothing)."""
    cases: dict[int, Case] = {}
    refused: list[tuple[Action, str]] = []
    for action in actions:
        case = cases.get(action.sk_id) or new_case(action.sk_id, action.model_decision)
        try:
            cases[action.sk_id] = apply(case, action)
        except ReviewError as error:
            refused.append((action, str(error)))
    return cases, refused
