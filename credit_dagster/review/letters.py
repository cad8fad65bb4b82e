"""The letters to a client (Consumer Credit Directive 2023/2225 Art. 18, GDPR Art. 22): the
decision, the main reasons in the client's words, what would change it, that an automated
assessment was used and how to ask for a person; after a review the client asked for, a second
letter with its outcome. HTML (one template, escaped) and PDF (fpdf2, offline: the same text)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import jinja2

from credit_dagster.core import pdf, settings
from credit_dagster.decision import scoring
from credit_dagster.review import cases as review
from credit_dagster.review import queue
from credit_dagster.review.journal import ReviewJournal

_TEMPLATE = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True,
                               undefined=jinja2.StrictUndefined).get_template("letter.html.j2")
# a Unicode font that ships with a pinned dependency: a client's words may hold any character
OUTCOMES = {
    review.GRANTED: "We have granted your loan.",
    review.REFUSED: "We are sorry: we cannot grant your loan.",
    review.REFER: "An advisor is looking at your application and will contact you within {days} working days.",
}
REVIEWER = {"advisor": "An advisor", "supervisor": "An advisor and a supervisor", "model": "Nobody"}


@dataclass(frozen=True)
class Letter:
    kind: str  # "decision"; "acknowledgement" of a request for review; "review", its outcome
    sk_id: int
    title: str
    outcome: str
    decided_by_person: bool
    reasons: list[str]
    history_note: str | None
    change: str | None
    human_reasons: list[str] = field(default_factory=list)
    reviewer: str = ""
    decided_on: str = ""
    contest_words: str = ""
    synthetic: bool = False
    received_on: str = ""  # the day the client asked for the review (acknowledgement)
    answer_by: str = ""  # the day by which they will have the answer (acknowledgement)


def letter(row: dict, case: review.Case, contest_words: str = "", synthetic: bool = False) -> Letter:
    """The letter due now on one application: `row` is its stored decision (the serving
    snapshot's scored_applications), `case` its review as the journal has it. It says the decision
    that stands (`case.final_decision`: a person's once decided, else the model's), never one pending."""
    days = settings.current().review_service_days
    final = case.final_decision
    by_person = case.decided_by in (review.ADVISOR, review.SUPERVISOR)
    change = row.get("counterfactual") if final != review.GRANTED and isinstance(row.get("counterfactual"), str) else None
    common = {"sk_id": int(case.sk_id), "outcome": OUTCOMES[final].format(days=days), "decided_by_person": by_person,
              "reasons": scoring.reasons_of(row), "change": change, "synthetic": synthetic,
              "history_note": row["history_note"] if isinstance(row.get("history_note"), str) else None,
              "human_reasons": review.client_reasons(case.reason_codes, final) if by_person else []}
    if case.contested and case.status == review.DECIDED:
        return Letter(kind="review", title=f"The review you asked for: application {case.sk_id}", reviewer=REVIEWER[case.decided_by],
                      decided_on=review.day_words(case.decided_at), contest_words=contest_words, **common)
    if case.contested:  # received, not yet decided: what happens next and by when; the decision stands meanwhile
        since = case.waiting_since or (case.updated_at or "")[:10] or datetime.now(UTC).date().isoformat()
        return Letter(kind="acknowledgement", title=f"We have received your request for a review: application {case.sk_id}",
                      received_on=review.day_words(since), answer_by=review.day_words(queue.due_by(since, days).isoformat()),
                      contest_words=contest_words, **common)
    return Letter(kind="decision", title=f"Our decision on your application {case.sk_id}", **common)


def due(row: dict, journal: ReviewJournal, synthetic: bool) -> Letter:
    """The letter due now on a stored decision (`row`), its case and its client's latest words
    as the review journal has them: what the dashboard and the API both hand out."""
    sk_id = int(row["SK_ID_CURR"])
    return letter(row, journal.case(sk_id, str(row["decision"])), review.contest_words(journal.actions_of(sk_id)), synthetic)


class LetterError(ValueError):
    """A letter that may not go to a client as configured, said so an operator can fix it."""


def to_html(letter: Letter, styled: bool = True) -> str:
    """The letter as a page (every value escaped: a client's words are shown, never interpreted).
    A letter to a real client is never signed "Your lender": LetterError until the deployment
    names itself (CREDIT_LENDER_NAME, CREDIT_REVIEW_CONTACT) or says it is a demonstration (CREDIT_DEMO)."""
    unset = [] if letter.synthetic else settings.unsigned_letters()
    if unset:
        raise LetterError(f"no letter to a real client until {' and '.join(unset)} say who the lender is and how a client "
                          "reaches it (or CREDIT_DEMO=true for a demonstration)")
    current = settings.current()
    return _TEMPLATE.render(**asdict(letter), styled=styled, lender=current.lender_name, contact=current.review_contact,
                            written_on=review.day_words(datetime.now(UTC).date().isoformat()))


def to_pdf(letter: Letter) -> bytes:
    """The same letter as a PDF, rendered here (no browser, no network): every script the system
    has a font for, Arabic and Hebrew shaped right to left (HarfBuzz). LetterError names the
    characters no font here can print, instead of dropping them silently."""
    body = to_html(letter, styled=False)
    try:
        return pdf.html_to_pdf(letter.title, body[body.index("<body>") + 6 : body.index("</body>")])
    except pdf.Unprintable as missing:
        raise LetterError(f"{missing}, or send the HTML letter") from None
