"""Human review of decisions: advisors finish what the model refers and what clients contest, and
reversing the model's decision needs a second pair of eyes.

A case is one application. Its state is never stored apart: it is derived by replaying the
review journal's actions in order (`replay`), so the dashboard, the API and the warehouse's fold
always agree on it. Each action says which revision of the case its author saw; an action on a
case that has changed since is refused (`ReviewError`), so two advisors acting at once never
both win and nothing is applied twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date

GRANTED, REFUSED, REFER = "granted", "refused", "refer to an advisor"  # as `decision.scoring` decides
ADVISOR, SUPERVISOR = "advisor", "supervisor"
ROLES = (ADVISOR, SUPERVISOR)
# what a reviewer may give as the reason of a final decision (README: "Human review"): each code is
# valid for one direction (or both), and some are internal: never printed to the client (telling a
# client of a fraud suspicion would tip them off; an exception to policy is the lender's business)
@dataclass(frozen=True)
class ReasonCode:
    text: str  # as the reviewer reads it
    directions: tuple[str, ...]  # the final decisions it may justify
    client: str | None  # as the client reads it in the letter; None: internal only


REASONS = {
    "verified_income": ReasonCode("Income verified with documents", ("granted",), "Your income was confirmed with documents."),
    "additional_collateral": ReasonCode("Additional collateral or a guarantor", ("granted",),
                                        "A guarantee or additional security was agreed."),
    "credit_history_explained": ReasonCode("Past payment problems explained and documented", ("granted",),
                                           "Your explanation of past payment problems was accepted."),
    "policy_exception": ReasonCode("An exception to policy", ("granted",), None),
    "affordability": ReasonCode("The repayment would not be affordable", ("refused",),
                                "The repayments would not be affordable with your income and commitments."),
    "credit_history_unresolved": ReasonCode("Past payment problems not resolved", ("refused",),
                                            "Past payment problems on your file are not resolved."),
    "incomplete_application": ReasonCode("The application could not be completed", ("refused",),
                                         "We could not complete your application with the information we have."),
    "fraud_suspicion": ReasonCode("Suspicion of fraud", ("refused",), None),
    "client_request": ReasonCode("At the client's request", ("granted", "refused"), "As you asked."),
}
REASON_CODES = {code: r.text for code, r in REASONS.items()}  # code -> the reviewer's words
# what the letter says when every reason a person gave is internal
NEUTRAL_REASON = "After reviewing your application in full, we are not able to offer you this loan."


def codes_for(final: str) -> dict[str, str]:
    """The reason codes valid for a final decision, code -> the reviewer's words."""
    return {code: r.text for code, r in REASONS.items() if final in r.directions}


def client_reasons(codes: Iterable[str], final: str) -> list[str]:
    """A person's reasons as the client may read them: internal codes left out, a neutral sentence
    for a refusal whose reasons are all internal (the client is never tipped off)."""
    codes = list(codes)
    said = [REASONS[c].client for c in codes if c in REASONS and REASONS[c].client]
    return said or ([NEUTRAL_REASON] if codes and final == "refused" else [])


DECIDE = "decide"  # a decision that reverses the model becomes a request for approval
APPROVE, SEND_BACK, CONTEST = "approve", "send back", "contest"
# a night scored again (a newer champion, the switch) whose new decision differs from the one that
# stood: the earlier decision keeps standing and a person decides (never a silent replacement)
RESCORE = "re-score"
RESCORER = "system:re-score"
ACTIONS = (DECIDE, APPROVE, SEND_BACK, CONTEST, RESCORE)
OPEN, WAITING, DECIDED, CLOSED = "open", "waiting for approval", "decided", "decided by the model"
MAX_NOTE = 2000  # characters: a note is the reviewer's words, bounded and never interpreted
MAX_CONTESTS = 2  # human reviews a client may ask for on one application (then: the complaints service)
CHANNELS = ("phone", "letter", "branch", "e-mail", "the lender's other systems")  # how a client asks for a review


MAX_CONTEST_AGE_DAYS = 366  # a request for review dated further back is a typing error, not a late complaint
_OLD_CONTEST_NOTE = re.compile(r"^\[[^\]]*\] ?")  # journals before 0.34 kept "[channel, date] " before the words


def check_received_on(received: date, today: date) -> None:
    """When the client asked: never in the future, never more than a year back (ReviewError says which)."""
    if received > today:
        raise ReviewError(f"the day the client asked is after today ({today.isoformat()}): give the day they asked")
    if (today - received).days > MAX_CONTEST_AGE_DAYS:
        raise ReviewError("the day the client asked is more than a year ago: give the day they asked for this review")


def contest_words(actions: Iterable[Action]) -> str:
    """What the client said in their latest contest, as they said it, for the letter answering it."""
    latest = next((a for a in reversed(list(actions)) if a.action == CONTEST), None)
    if latest is None:
        return ""
    return latest.note if latest.received_on else _OLD_CONTEST_NOTE.sub("", latest.note, count=1)


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
    channel: str | None = None  # for `contest`: how the client asked
    received_on: str | None = None  # for `contest`: the day the client asked (ISO), when its clock starts


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
    waiting_since: str | None = None  # the day the latest contest was received, or the night re-scored (it waits from then)
    rescored: bool = False  # a new score of its night would change the decision that stood
    sent_back: bool = False  # a supervisor sent an override back: an advisor decides again
    contests: int = 0  # how many times the client asked for a human review
    decided_at: str | None = None  # when a person's decision came to stand (a decision, or its approval)


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
        # a contest never cancels a review under way (an override waiting for approval stays waiting), and a
        # client asks a person at most MAX_CONTESTS times: a flood of requests cannot keep reopening a case
        if case.contested and case.status in (OPEN, WAITING):
            raise ReviewError(f"application {case.sk_id} is already under review at the client's request")
        if case.contests >= MAX_CONTESTS:
            raise ReviewError(f"application {case.sk_id} was reviewed at the client's request {case.contests} times: a further "
                              "complaint goes to the lender's complaints service or the ombudsman")
        return replace(done, status=WAITING if case.status == WAITING else OPEN, contested=True, note=action.note,
                       contests=case.contests + 1, waiting_since=action.received_on or action.at[:10])
    if action.action == RESCORE:  # `final`: the decision that stood; `model_decision`: the new score's
        rescored = replace(done, model_decision=action.model_decision)
        if case.status != CLOSED:
            return rescored  # a person decided, or one will: what stands (and waits) is left as it is
        return replace(rescored, status=OPEN, final_decision=action.final, rescored=True, note=action.note,
                       waiting_since=action.at[:10])
    if action.role not in ROLES:
        raise ReviewError(f"{action.user} has no reviewer role")
    if action.action == DECIDE:
        if case.status not in (OPEN,):
            raise ReviewError(f"application {case.sk_id} is {case.status}: only an open case is decided")
        _check_decision(action)
        done = replace(done, sent_back=False)
        if case.model_decision in (GRANTED, REFUSED) and action.final != case.model_decision:
            # reversing the model (an override) waits for a supervisor other than its author
            return replace(done, status=WAITING, requested_by=action.user, requested_final=action.final,
                           reason_codes=action.reason_codes, note=action.note)
        return replace(done, status=DECIDED, final_decision=action.final, decided_by=action.role,
                       reason_codes=action.reason_codes, note=action.note, decided_at=action.at)
    if action.role != SUPERVISOR:
        raise ReviewError(f"only a supervisor may {action.action} a case; {action.user} is an {action.role}")
    if case.status != WAITING:
        raise ReviewError(f"application {case.sk_id} is {case.status}: nothing awaits approval")
    if action.action == APPROVE:
        if action.user == case.requested_by:
            raise ReviewError(f"{action.user} asked for this override and may not approve it: another supervisor does")
        return replace(done, status=DECIDED, final_decision=case.requested_final, decided_by=SUPERVISOR,
                       requested_by=None, requested_final=None, decided_at=action.at)
    if action.action == SEND_BACK:
        return replace(done, status=OPEN, requested_by=None, requested_final=None, note=action.note, sent_back=True)
    raise ReviewError(f"unknown action {action.action!r}; one of {', '.join(ACTIONS)}")


def _check_decision(action: Action) -> None:
    if action.final not in (GRANTED, REFUSED):
        raise ReviewError(f"choose the final decision: {GRANTED} or {REFUSED}")
    if not action.reason_codes:
        raise ReviewError("give at least one reason code")
    unknown = [c for c in action.reason_codes if c not in REASON_CODES]
    if unknown:
        raise ReviewError(f"unknown reason code(s) {', '.join(unknown)}; one of {', '.join(REASON_CODES)}")
    wrong = [REASON_CODES[c] for c in action.reason_codes if action.final not in REASONS[c].directions]
    if wrong:
        raise ReviewError(f"not a reason to have it {action.final}: {'; '.join(wrong)}")


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


WORDS = {GRANTED: "granted", REFUSED: "refused", REFER: "referred to an advisor"}
BY = {"model": "the model", ADVISOR: "an advisor", SUPERVISOR: "a supervisor"}


def day_words(iso: str | None) -> str:
    """"2026-12-06..." as people say it: "6 December 2026"."""
    return f"{date.fromisoformat(iso[:10]):%-d %B %Y}" if iso else "an unknown day"


def standing(case: Case, night: str | None) -> str:
    """The decision that stands, who took it and when, and what is pending: the one sentence every
    surface (list, decision view, export, review, API) says of an application. `night`: the night
    the model scored it."""
    decided = WORDS[case.final_decision]
    if case.decided_by == "model":
        said = f"{decided[:1].upper()}{decided[1:]} by the model on the night of {day_words(night)}."
    else:
        had = WORDS[case.model_decision]
        after = "after a review the client asked for" if case.contested else "after review"
        said = (f"{decided[:1].upper()}{decided[1:]} by {BY[case.decided_by]} on {day_words(case.decided_at)} {after}; "
                + (f"the model had {had} it." if case.model_decision != case.final_decision else "as the model had.")
                ).replace("referred to an advisor it", "referred it to an advisor")
    if case.status == WAITING:
        return (f"{said} A reviewer asked to have it {WORDS[case.requested_final]}: waiting for a supervisor's approval; "
                "until then this decision stands.")
    if case.status == OPEN and case.sent_back:
        return f"{said} A supervisor sent back the request to reverse it: an advisor decides again; until then this decision stands."
    if case.status == OPEN and case.rescored:
        return (f"{said} Its night was scored again on {day_words(case.waiting_since)}, and the new score would have it "
                f"{WORDS[case.model_decision]}: a person decides; until then this decision stands.")
    if case.status == OPEN and case.contested:
        return (f"{said} The client asked for a human review on {day_words(case.waiting_since)}: a person will decide again; "
                "until then this decision stands.")
    if case.status == OPEN:
        return f"{said} An advisor decides."
    return said
