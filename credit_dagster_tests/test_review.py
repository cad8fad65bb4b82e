"""Human review: who may decide what, four eyes on overrides, a journal that loses nothing and
applies nothing twice, and its fold into the warehouse."""

import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from datetime import date

import dagster as dg
import duckdb
import pandas as pd
import pytest

from credit_dagster.review import cases as review
from credit_dagster.review import letters
from credit_dagster.review.journal import ReviewJournal
from credit_dagster.review.queue import case_table, final_decisions
from credit_dagster_tests.conftest import reachable_or_skip

CODES = ("verified_income",)


def test_an_advisor_finishes_a_referred_case():
    case = review.new_case(7, review.REFER)
    assert case.status == review.OPEN and case.final_decision == review.REFER
    decided = review.apply(case, _action(7, review.DECIDE, "ann", review.ADVISOR, review.REFER, 0, final=review.GRANTED))
    assert (decided.status, decided.final_decision, decided.decided_by, decided.revision) == (review.DECIDED, review.GRANTED, "advisor", 1)
    with pytest.raises(review.ReviewError, match="only an open case"):
        review.apply(decided, _action(7, review.DECIDE, "bob", review.ADVISOR, review.REFER, 1, final=review.REFUSED))


def test_reversing_the_model_needs_another_supervisor():
    contested = review.apply(review.new_case(8, review.REFUSED), _action(8, review.CONTEST, "api:front-office", "", review.REFUSED, 0))
    assert contested.status == review.OPEN and contested.contested
    asked = review.apply(contested, _action(8, review.DECIDE, "sue", review.SUPERVISOR, review.REFUSED, 1, final=review.GRANTED))
    # the model's refusal stands until someone else approves
    assert (asked.status, asked.final_decision, asked.requested_by) == (review.WAITING, review.REFUSED, "sue")
    with pytest.raises(review.ReviewError, match="may not approve it"):
        review.apply(asked, _action(8, review.APPROVE, "sue", review.SUPERVISOR, review.REFUSED, 2))
    with pytest.raises(review.ReviewError, match="only a supervisor"):
        review.apply(asked, _action(8, review.APPROVE, "ann", review.ADVISOR, review.REFUSED, 2))
    approved = review.apply(asked, _action(8, review.APPROVE, "tom", review.SUPERVISOR, review.REFUSED, 2))
    assert (approved.status, approved.final_decision, approved.decided_by) == (review.DECIDED, review.GRANTED, "supervisor")
    sent_back = review.apply(asked, _action(8, review.SEND_BACK, "tom", review.SUPERVISOR, review.REFUSED, 2, note="income proof missing"))
    assert sent_back.status == review.OPEN and sent_back.final_decision == review.REFUSED and sent_back.requested_by is None
    assert sent_back.sent_back and "sent back the request to reverse it" in review.standing(sent_back, "2026-11-01")
    # confirming the model needs no approval
    confirmed = review.apply(contested, _action(8, review.DECIDE, "ann", review.ADVISOR, review.REFUSED, 1, final=review.REFUSED,
                                                codes=("affordability",)))
    assert confirmed.status == review.DECIDED and confirmed.decided_by == "advisor"


@pytest.mark.parametrize("change, words", [
    ({"revision": 3}, "changed since you opened it"), ({"final": "maybe"}, "granted or refused"),
    ({"final": None}, "choose the final decision"),
    ({"codes": ()}, "at least one reason code"), ({"codes": ("because",)}, "unknown reason code"),
    # reason codes have a direction: a refusal's reason never justifies a grant, nor the reverse
    ({"codes": ("fraud_suspicion",)}, "not a reason to have it granted: Suspicion of fraud"),
    ({"final": review.REFUSED, "codes": ("credit_history_explained",)},
     "not a reason to have it refused: Past payment problems explained"),
    ({"note": "x" * (review.MAX_NOTE + 1)}, "at most"), ({"role": "intern"}, "no reviewer role"),
])
def test_an_action_that_may_not_be_taken_says_why(change, words):
    arguments = {"revision": 0, "final": review.GRANTED, "codes": CODES, "note": "", "role": review.ADVISOR} | change
    action = _action(9, review.DECIDE, "ann", arguments["role"], review.REFER, arguments["revision"], final=arguments["final"],
                     codes=arguments["codes"], note=arguments["note"])
    with pytest.raises(review.ReviewError, match=words):
        review.apply(review.new_case(9, review.REFER), action)


def test_a_contest_never_cancels_a_review_and_a_client_asks_at_most_twice():
    contested = review.apply(review.new_case(8, review.REFUSED), _action(8, review.CONTEST, "api:x", "", review.REFUSED, 0))
    with pytest.raises(review.ReviewError, match="already under review"):  # a second request while it is reviewed
        review.apply(contested, _action(8, review.CONTEST, "api:x", "", review.REFUSED, 1))
    decided = review.apply(contested, _action(8, review.DECIDE, "ann", review.ADVISOR, review.REFUSED, 1, final=review.REFUSED,
                                              codes=("affordability",)))
    again = review.apply(decided, _action(8, review.CONTEST, "api:x", "", review.REFUSED, 2))
    assert again.status == review.OPEN and again.contests == 2
    redecided = review.apply(again, _action(8, review.DECIDE, "tom", review.SUPERVISOR, review.REFUSED, 3, final=review.REFUSED,
                                            codes=("affordability",)))
    with pytest.raises(review.ReviewError, match="complaints service or the ombudsman"):
        review.apply(redecided, _action(8, review.CONTEST, "api:x", "", review.REFUSED, 4))


def test_a_contest_leaves_an_override_waiting_for_approval():
    """A night scored again opened the case; an advisor asks to keep the earlier grant against the new
    score (an override); the client's request meanwhile leaves it waiting for the supervisor."""
    rescored = review.apply(review.new_case(11, review.REFUSED),
                            dataclasses.replace(_action(11, review.RESCORE, review.RESCORER, "", review.REFUSED, 0), final=review.GRANTED))
    assert (rescored.status, rescored.final_decision, rescored.rescored) == (review.OPEN, review.GRANTED, True)
    pending = review.apply(rescored, _action(11, review.DECIDE, "ann", review.ADVISOR, review.REFUSED, 1, final=review.GRANTED))
    assert pending.status == review.WAITING
    asked = review.apply(pending, _action(11, review.CONTEST, "api:x", "", review.REFUSED, 2))
    assert (asked.status, asked.requested_by, asked.contested) == (review.WAITING, "ann", True)


def test_two_reviewers_at_once_one_wins_and_the_other_is_told(tmp_path):
    journal, outcomes, gate = ReviewJournal(tmp_path), [], threading.Barrier(8)

    def act(user: str) -> None:
        gate.wait()
        try:
            journal.record(11, review.DECIDE, user=user, role=review.ADVISOR, model_version="v1", model_decision=review.REFER,
                           revision=0, final=review.GRANTED, reason_codes=CODES, note="<script>alert(1)</script>")
            outcomes.append("won")
        except review.ReviewError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=act, args=(f"advisor{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes.count("won") == 1 and all("changed since you opened it" in o for o in outcomes if o != "won")
    actions = journal.actions()
    assert len(actions) == 1 and actions[0].note == "<script>alert(1)</script>"  # kept as text, never interpreted
    assert journal.case(11, review.REFER).status == review.DECIDED


def test_an_action_confirmed_before_a_sigkill_is_folded_once(tmp_path, scored_home):
    """A process records an action and is killed at once: the line is there, and the fold
    applies it exactly once however often it runs."""
    from credit_dagster.definitions import defs
    from credit_dagster_tests.conftest import temporary_home

    home = tmp_path / "home"
    shutil.copytree(scored_home, home)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        referred = con.execute("select SK_ID_CURR from scoring.scored_applications where decision = ? limit 1", [review.REFER]).fetchall()
    sk_id = int(referred[0][0]) if referred else 424242
    script = (f"import os, signal\nfrom credit_dagster.review.journal import ReviewJournal\n"
              f"ReviewJournal().record({sk_id}, 'decide', user='ann', role='advisor', model_version='v1', "
              f"model_decision='refer to an advisor', revision=0, final='granted', reason_codes=('verified_income',))\n"
              "print('confirmed', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "CREDIT_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL and "confirmed" in done.stdout
    with temporary_home(home):
        job = defs.resolve_job_def("review_fold")
        for _ in range(2):
            assert job.execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        folded = con.execute("select count(*), count(distinct action_id) from review.actions").fetchone()
        case = con.execute("select status, final_decision, decided_by from review.cases where SK_ID_CURR = ?", [sk_id]).fetchone()
        still_open = con.execute("select count(*) from review.cases where status = 'open'").fetchone()[0]
        referred_count = con.execute("select count(*) from scoring.scored_applications where decision = ?", [review.REFER]).fetchone()[0]
    assert folded == (1, 1) and case == (review.DECIDED, review.GRANTED, "advisor")
    assert still_open == max(referred_count - 1, 0)  # every other referred application waits in the queue


def test_the_case_table_counts_working_days_against_the_service_time():
    scored = pd.DataFrame({"SK_ID_CURR": [1, 2, 3], "decision": [review.REFER, review.REFER, review.GRANTED],
                           "partition_date": ["2026-11-20", "2026-11-30", "2026-11-20"]})
    decided = _action(2, review.DECIDE, "ann", review.ADVISOR, review.REFER, 0, final=review.REFUSED, codes=("affordability",))
    table = case_table(scored, [decided], date(2026, 12, 1), service_days=2).set_index("SK_ID_CURR")
    assert set(table.index) == {1, 2}  # the model's own decisions are no case until contested
    assert table.at[1, "working_days_open"] == 7 and table.at[1, "past_service_time"]
    assert table.at[2, "status"] == review.DECIDED and not table.at[2, "past_service_time"]


def _action(sk_id, action, user, role, model_decision, revision, final=None, codes=CODES, note="", received_on=None):
    return review.Action(action_id=f"{sk_id}-{revision}-{user}", sk_id=sk_id, action=action, user=user, role=role,
                         at="2026-12-01T10:00:00+00:00", model_version="v1", model_decision=model_decision, revision=revision,
                         final=final, reason_codes=tuple(codes) if action == review.DECIDE else (), note=note,
                         channel="phone" if received_on else None, received_on=received_on)


def test_the_journal_is_read_once_and_a_line_being_written_waits_until_whole(tmp_path):
    from credit_dagster.review import journal as journal_module

    journal = ReviewJournal(tmp_path)
    journal.record(21, review.DECIDE, user="ann", role=review.ADVISOR, model_version="v1", model_decision=review.REFER,
                   revision=0, final=review.GRANTED, reason_codes=CODES)
    assert [a.sk_id for a in journal.actions()] == [21]
    path = next(tmp_path.glob("review_*.jsonl"))
    # another process is writing a line: half of it is no action yet
    line = json.dumps(dataclasses.asdict(_action(22, review.CONTEST, "api:x", "", review.GRANTED, 0, note="[phone] hello")))
    with open(path, "ab") as handle:
        handle.write(line[:25].encode())
    assert [a.sk_id for a in journal.actions()] == [21]
    with open(path, "ab") as handle:
        handle.write((line[25:] + "\n").encode())
    assert [a.sk_id for a in ReviewJournal(tmp_path).actions()] == [21, 22]
    assert journal_module._reads[tmp_path.resolve()].offsets[path.name] == path.stat().st_size  # read up to here, once
    assert journal.case(22, review.GRANTED).contested and journal.actions_of(21)[0].user == "ann"
    # a fresh process reads the same journal whole
    script = (f"from credit_dagster.review.journal import ReviewJournal\n"
              f"print([a.sk_id for a in ReviewJournal(__import__('pathlib').Path({str(tmp_path)!r})).actions()])")
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip() == "[21, 22]"


def test_the_decision_that_stands_is_a_persons_once_decided_and_approved():
    scored = pd.DataFrame({"SK_ID_CURR": [1, 2, 3, 4], "decision": [review.REFER, review.REFUSED, review.GRANTED, review.GRANTED],
                           "model_version": "v1", "scored_at": pd.Timestamp("2026-11-30 02:00"), "partition_date": "2026-11-29"})
    actions = [
        _action(1, review.DECIDE, "ann", review.ADVISOR, review.REFER, 0, final=review.GRANTED),
        _action(2, review.CONTEST, "api:x", "", review.REFUSED, 0),
        _action(2, review.DECIDE, "ann", review.ADVISOR, review.REFUSED, 1, final=review.GRANTED),  # an override: waits
        _action(3, review.CONTEST, "api:x", "", review.GRANTED, 0),
        _action(3, review.DECIDE, "ann", review.ADVISOR, review.GRANTED, 1, final=review.REFUSED, codes=("fraud_suspicion",)),
        _action(3, review.APPROVE, "tom", review.SUPERVISOR, review.GRANTED, 2),
    ]
    cases = case_table(scored, actions, date(2026, 12, 1), service_days=2)
    final = final_decisions(scored, cases).set_index("SK_ID_CURR")
    assert tuple(final.loc[1, ["final_decision", "decided_by", "status"]]) == (review.GRANTED, "advisor", review.DECIDED)
    assert tuple(final.loc[2, ["final_decision", "decided_by", "status"]]) == (review.REFUSED, "model", review.WAITING)
    assert tuple(final.loc[3, ["final_decision", "decided_by", "reason_codes"]]) == (review.REFUSED, "supervisor", "fraud_suspicion")
    assert tuple(final.loc[4, ["final_decision", "decided_by", "status"]]) == (review.GRANTED, "model", review.CLOSED)
    assert final.loc[4, "decided_at"].startswith("2026-11-30") and final.loc[3, "decided_at"].startswith("2026-12-01")


HOSTILE = '<script>alert(1)</script> =HYPERLINK("http://x.example","click") “fair?” 5 €'


def test_a_letter_to_a_real_client_is_never_signed_by_a_placeholder(monkeypatch):
    monkeypatch.delenv("CREDIT_LENDER_NAME", raising=False)
    monkeypatch.delenv("CREDIT_REVIEW_CONTACT", raising=False)
    monkeypatch.delenv("CREDIT_DEMO", raising=False)
    real = letters.letter({"decision": review.GRANTED}, review.new_case(6, review.GRANTED))
    with pytest.raises(letters.LetterError, match="CREDIT_LENDER_NAME and CREDIT_REVIEW_CONTACT"):
        letters.to_html(real)
    with pytest.raises(letters.LetterError):
        letters.to_pdf(real)
    assert "Your lender" in letters.to_html(dataclasses.replace(real, synthetic=True))  # SYNTHETIC data: a demonstration anyway
    monkeypatch.setenv("CREDIT_DEMO", "true")
    assert "Your lender" in letters.to_html(real)
    monkeypatch.delenv("CREDIT_DEMO")
    monkeypatch.setenv("CREDIT_LENDER_NAME", "Banque Exemple")
    with pytest.raises(letters.LetterError, match="CREDIT_REVIEW_CONTACT"):  # both, not one
        letters.to_html(real)
    monkeypatch.setenv("CREDIT_REVIEW_CONTACT", "your branch at 1 rue de la Paix, or 01 23 45 67 89")
    page = letters.to_html(real)
    assert "Banque Exemple" in page and "01 23 45 67 89" in page and "Your lender" not in page


def test_letters_say_the_decision_in_plain_words_and_answer_a_contest(monkeypatch):
    import pypdf

    monkeypatch.setenv("CREDIT_LENDER_NAME", "Banque Exemple")
    monkeypatch.setenv("CREDIT_REVIEW_CONTACT", "your branch")

    row = {"decision": review.REFUSED, "reason_1": "Your repayments would take a large share of your income",
           "reason_2": "Two late payments on past loans", "counterfactual": "Asking for 20% less would have it granted.",
           "history_note": "no credit card history"}
    contested = review.apply(review.new_case(5, review.REFUSED),
                             _action(5, review.CONTEST, "api:x", "", review.REFUSED, 0, note=HOSTILE, received_on="2026-11-27"))
    first = letters.letter(row, contested, review.contest_words([_action(5, review.CONTEST, "api:x", "", review.REFUSED, 0, note=HOSTILE,
                                                                         received_on="2026-11-27")]))
    page = letters.to_html(first)
    # the acknowledgement: what happens next and by when (2 working days from Friday 27 November), not how to ask again
    assert first.kind == "acknowledgement" and first.answer_by == "1 December 2026" and first.received_on == "27 November 2026"
    for said in ("cannot grant your loan", "received your request of 27 November 2026", "What happens next", "by 1 December 2026",
                 "automated assessment", "large share of your income", "Asking for 20% less", "application number 5"):
        assert said in page, said
    assert "Your right to a human review" not in page and "[phone" not in page  # only the client's own words are quoted
    decided = review.apply(contested, _action(5, review.DECIDE, "ann", review.ADVISOR, review.REFUSED, 1, final=review.REFUSED,
                                              codes=("affordability",)))
    second = letters.letter(row, decided, HOSTILE, synthetic=True)
    page = letters.to_html(second)
    assert second.kind == "review" and "An advisor reviewed your application in person on 1 December 2026" in page
    assert review.REASONS["affordability"].client in page and "SYNTHETIC" in page and "Your right to a human review" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the client's words, as text
    text = " ".join(pypdf.PdfReader(io.BytesIO(letters.to_pdf(second))).pages[0].extract_text().split())
    assert "An advisor reviewed your application in person" in text and review.REASONS["affordability"].client in text
    assert '<script>alert(1)</script> =HYPERLINK("http://x.example","click") “fair?” 5 €' in text  # printed, never run
    granted = letters.letter({"decision": review.GRANTED}, review.new_case(6, review.GRANTED))
    assert "We have granted your loan" in letters.to_html(granted) and granted.change is None
    # a suspicion of fraud is never told to the client: a neutral sentence instead
    fraud = review.apply(review.new_case(7, review.REFER), _action(7, review.DECIDE, "ann", review.ADVISOR, review.REFER, 0,
                                                                   final=review.REFUSED, codes=("fraud_suspicion",)))
    page = letters.to_html(letters.letter(row, fraud))
    assert "fraud" not in page.lower() and review.NEUTRAL_REASON in page and "cannot grant your loan" in page
    # a journal written before the contest's day had its own field: the client's words without the "[channel, date]" prefix
    old = dataclasses.replace(_action(8, review.CONTEST, "api:x", "", review.REFUSED, 0), note="[phone, 2026-12-05] I can repay")
    assert review.contest_words([old]) == "I can repay"


SCRIPTS = "我可以还款 मैं भुगतान कर सकता हूँ أستطيع السداد אני יכול לשלם 🙂 Ünïcödé"


def _no_client_text_logged(words: str, caplog, capfd, caught) -> None:
    """Nothing a client wrote in a log record, a warning, or the process's output."""
    out, err = capfd.readouterr()
    said = "\n".join([r.getMessage() for r in caplog.records] + [str(w.message) for w in caught] + [out, err])
    assert not [w for w in words.split() if w in said], said[-500:]


def test_the_pdf_letter_prints_every_script_a_client_writes_in(caplog, capfd):
    """Chinese, Devanagari, Arabic, Hebrew and an emoji in the client's words: each in the PDF's text
    layer, in reading order (Arabic and Hebrew shaped right to left), none dropped, and none in a log."""
    import logging
    import warnings

    import pypdf

    from credit_dagster.core import pdf as pdf_module

    if len(pdf_module._fonts()) < len(pdf_module.FALLBACK_FONTS) + 1:
        reachable_or_skip("the Noto fonts (Debian fonts-noto-core fonts-noto-cjk fonts-symbola; .ci/run installs them)",
                          RuntimeError(f"{len(pdf_module._fonts()) - 1} of {len(pdf_module.FALLBACK_FONTS)} found"))
    contested = review.apply(review.new_case(5, review.REFUSED),
                             _action(5, review.CONTEST, "api:x", "", review.REFUSED, 0, note=SCRIPTS, received_on="2026-11-27"))
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdf = letters.to_pdf(letters.letter({"decision": review.REFUSED}, contested, SCRIPTS, synthetic=True))
    _no_client_text_logged(SCRIPTS, caplog, capfd, caught)
    text = pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text().replace("\x00", "")
    for word in SCRIPTS.split():
        assert word in text, word
    fonts = {str(f.get_object()["/BaseFont"]) for f in pypdf.PdfReader(io.BytesIO(pdf)).pages[0]["/Resources"]["/Font"].values()}
    assert {"CJK", "Devanagari", "Symbola"} <= {n for n in ("CJK", "Devanagari", "Symbola") for f in fonts if n in f}


def test_a_character_no_font_prints_refuses_the_pdf_instead_of_dropping_it(monkeypatch, caplog, capfd):
    import logging
    import warnings

    from credit_dagster.core import pdf as pdf_module

    monkeypatch.setattr(pdf_module, "FALLBACK_FONTS", ())
    pdf_module._fonts.cache_clear()
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(letters.LetterError, match="no font on this system prints"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            contested = review.apply(review.new_case(6, review.GRANTED), _action(6, review.CONTEST, "api:x", "", review.GRANTED, 0))
            letters.to_pdf(letters.letter({"decision": review.GRANTED}, contested, "还款 ok", synthetic=True))
    finally:
        pdf_module._fonts.cache_clear()
    _no_client_text_logged("还款", caplog, capfd, caught)


def test_the_clock_starts_when_the_client_asked_never_in_the_future():
    today = date(2026, 12, 6)
    with pytest.raises(review.ReviewError, match="after today"):
        review.check_received_on(date(2027, 1, 15), today)
    with pytest.raises(review.ReviewError, match="more than a year ago"):
        review.check_received_on(date(2025, 11, 1), today)
    review.check_received_on(date(2026, 11, 20), today)
    scored = pd.DataFrame({"SK_ID_CURR": [1], "decision": [review.GRANTED], "partition_date": ["2026-11-02"]})
    late = _action(1, review.CONTEST, "api:x", "", review.GRANTED, 0, received_on="2026-11-20")  # recorded on 1 December
    table = case_table(scored, [late], date(2026, 12, 4), service_days=2).set_index("SK_ID_CURR")
    assert table.at[1, "opened"] == "2026-11-20" and table.at[1, "working_days_open"] == 10 and table.at[1, "past_service_time"]


def test_the_lenders_days_off_are_not_working_days(monkeypatch):
    from credit_dagster.review import queue

    assert queue.working_days("2026-12-21", date(2026, 12, 28)) == 5
    monkeypatch.setenv("CREDIT_REVIEW_HOLIDAYS", "2026-12-24, 2026-12-25")
    assert queue.working_days("2026-12-21", date(2026, 12, 28)) == 3
    assert queue.due_by("2026-12-23", 2) == date(2026, 12, 29)


def test_refer_everything_is_journaled_by_a_supervisor_only(tmp_path):
    from credit_dagster.core import refer_all

    assert refer_all.state(tmp_path) == refer_all.OFF
    with pytest.raises(PermissionError, match="only a supervisor"):
        refer_all.set_switch(True, by="ann", role=review.ADVISOR, why="test", folder=tmp_path)
    with pytest.raises(ValueError, match="say why"):
        refer_all.set_switch(True, by="sue", role=review.SUPERVISOR, why=" ", folder=tmp_path)
    refer_all.set_switch(True, by="sue", role=review.SUPERVISOR, why="income feed broken", folder=tmp_path)
    now = refer_all.state(tmp_path)
    assert now.on and now.by == "sue" and "income feed broken" in now.sentence()
    refer_all.set_switch(False, by="tom", role=review.SUPERVISOR, why="feed repaired", folder=tmp_path)
    assert not refer_all.state(tmp_path).on and refer_all.state(tmp_path).by == "tom"
    lines = [json.loads(line) for f in tmp_path.glob("switch_*.jsonl") for line in f.read_text().splitlines()]
    assert [(r["on"], r["by"]) for r in lines] == [(True, "sue"), (False, "tom")]  # both kept, in order


def test_the_command_line_switch_takes_no_name_on_trust(tmp_path, monkeypatch, capsys):
    """`--by` must be a supervisor of the users file, and the account that ran the command is kept beside it."""
    import getpass

    from credit_dagster import cli
    from credit_dagster.core import refer_all
    from panel_app import auth

    monkeypatch.setenv("CREDIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CREDIT_REVIEW_JOURNAL_DIR", str(tmp_path / "journal"))
    monkeypatch.setenv("CREDIT_DASHBOARD_USERS", str(tmp_path / "users.json"))
    auth.set_user("ann", "a long enough passphrase", tmp_path / "users.json", role=auth.ADVISOR)
    auth.set_user("sue", "a long enough passphrase", tmp_path / "users.json", role=auth.SUPERVISOR)
    for name in ("ann", "mallory"):  # an advisor, and a name nobody has
        assert cli.main(["refer-everything", "on", "--by", name, "--why", "test"]) == 1
        assert "only a supervisor" in capsys.readouterr().err
    assert not refer_all.state().on
    assert cli.main(["refer-everything", "on", "--by", "sue", "--why", "feed broken"]) == 0
    assert refer_all.state().on and refer_all.state().operator == getpass.getuser()


@pytest.mark.slow
def test_refer_everything_refers_a_night_while_the_fold_runs_beside_it(tmp_path, scored_home):
    """Switched on, a night refers every application, with the first reason and a line in its
    log; the review fold runs meanwhile in another process and neither fails on the other.
    Switched off, the same night decides again."""
    from credit_dagster.core import refer_all
    from credit_dagster.definitions import defs
    from credit_dagster_tests.conftest import SCORED_DAYS, score_night, temporary_home

    home = tmp_path / "home"
    shutil.copytree(scored_home, home)
    journal = home / "review" / "journal"
    refer_all.set_switch(True, by="sue", role=review.SUPERVISOR, why="income data feed broken", folder=journal)
    env = {**os.environ, "CREDIT_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    night = subprocess.Popen([sys.executable, "-c", "from credit_dagster_tests.conftest import score_night\n"
                              f"print('night succeeded:', score_night({SCORED_DAYS[1]!r}, raise_on_error=False).success)"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    folds = 0
    with temporary_home(home):
        ReviewJournal(journal).record(1, review.CONTEST, user="api:x", role="", model_version="v1", model_decision=review.GRANTED,
                                      revision=None, note="[phone, 2026-12-01] please look again")
        while night.poll() is None or folds == 0:  # the fold, again and again, while the night runs
            assert defs.resolve_job_def("review_fold").execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
            folds += 1
    log = night.communicate(timeout=600)[0]
    assert "night succeeded: True" in log, log[-3000:]
    assert "Refer everything is ON" in log and "income data feed broken" in log  # the night's log says so
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        night_two = con.execute("select decision, reason_1 from scoring.scored_applications where partition_date = ?",
                                [SCORED_DAYS[1]]).df()
        folded = con.execute("select count(*) from review.actions").fetchone()[0]
    assert len(night_two) and set(night_two["decision"]) == {review.REFER}
    assert (night_two["reason_1"] == refer_all.REASON).mean() > 0.9  # first reason, unless incomplete or implausible
    assert folded == 1
    refer_all.set_switch(False, by="tom", role=review.SUPERVISOR, why="feed repaired", folder=journal)
    with temporary_home(home):
        assert score_night(SCORED_DAYS[1]).success
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        again = con.execute("select SK_ID_CURR, decision from scoring.scored_applications where partition_date = ?",
                            [SCORED_DAYS[1]]).df()
    assert len(again) == len(night_two) and {review.GRANTED, review.REFUSED} <= set(again["decision"])
    # scored again, the night's decisions were not silently replaced: each that changed keeps the referral that
    # stood, and waits for a person, in the journal every surface reads
    changed = again[again["decision"] != review.REFER]
    kept = ReviewJournal(journal)
    for sk_id, decision in changed.itertuples(index=False):
        case = kept.case(sk_id, decision)
        assert (case.final_decision, case.model_decision, case.status, case.rescored) == (review.REFER, decision, review.OPEN, True)
        assert "scored again" in review.standing(case, SCORED_DAYS[1])
    assert sum(a.action == review.RESCORE for a in kept.actions()) == len(changed)
    # the publish retried (a step run again after a crash): no case opens twice
    from credit_dagster.review import rescore

    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        assert rescore.keep_earlier_decisions(con, SCORED_DAYS[1], "retried", ReviewJournal(journal)) == (len(changed), 0)
    assert sum(a.action == review.RESCORE for a in ReviewJournal(journal).actions()) == len(changed)


@pytest.mark.slow
def test_a_night_is_scored_once_and_again_only_with_a_reason(tmp_path, scored_home, synthetic_dir, capsys):
    """`score` leaves a scored night's decisions as they stand; `--rescore` needs a reason, and
    `--dry-run` first says how many decisions would change, scoring nothing."""
    from credit_dagster import cli
    from credit_dagster.core import refer_all
    from credit_dagster_tests.conftest import SCORED_DAYS, temporary_home

    home = tmp_path / "home"
    shutil.copytree(scored_home, home)
    day, data = SCORED_DAYS[1], ["--data-dir", str(synthetic_dir)]

    def audited() -> int:
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            return con.execute("select count(*) from scoring.decision_audit where partition_date = ?", [day]).fetchone()[0]

    with temporary_home(home):
        assert cli.main(["score", "--start", day, *data]) == 0
        scored = audited()
        assert scored > 0
        capsys.readouterr()
        assert cli.main(["score", "--start", day, *data]) == 0  # already scored: left as decided
        assert "already scored: its decisions stand" in capsys.readouterr().out and audited() == scored
        assert cli.main(["score", "--start", day, "--rescore", *data]) == 1  # no reason, nothing done
        assert "--rescore needs --reason" in capsys.readouterr().err
        refer_all.set_switch(True, by="sue", role=review.SUPERVISOR, why="income data feed broken")
        assert cli.main(["score", "--start", day, "--rescore", "--reason", "feed check", "--dry-run", *data]) == 0
        said = capsys.readouterr().out
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            would = con.execute("select count(*) from scoring.scored_applications where partition_date = ? and decision <> ?",
                                [day, review.REFER]).fetchone()[0]
        assert f"{would:,} of {scored:,} decisions would change" in said and audited() == scored  # said, nothing scored



def test_an_edited_deleted_or_moved_journal_line_is_found_in_every_journal(tmp_path, monkeypatch, capsys):
    """Each journal (review, switch, API decisions and reads, dashboard access) is a hash chain across
    its day files: editing, deleting or moving any line, or removing its first day file, is reported
    by `credit-dagster audit verify` and the night's asset check, naming the file and the line; a
    change to the last lines shows against the head the check published."""
    import dagster as dg

    from credit_dagster import cli
    from credit_dagster.core import audit
    from credit_dagster.serving.assets import journals_untouched

    monkeypatch.setenv("CREDIT_HOME", str(tmp_path))
    for variable in ("CREDIT_REVIEW_JOURNAL_DIR", "CREDIT_API_AUDIT_DIR", "CREDIT_DASHBOARD_ACCESS_DIR"):
        monkeypatch.delenv(variable, raising=False)
    stores = audit.journals()
    for name, (folder, prefix) in stores.items():
        folder.mkdir(parents=True, exist_ok=True)
        # an older day file, then today's, written by two logs as two processes would
        audit.AuditLog(folder, prefix=prefix).append([{"store": name, "n": i} for i in range(3)])
        today = next(folder.glob(f"{prefix}*.jsonl"))
        today.rename(folder / f"{prefix}2026-01-01.jsonl")
        audit._heads.clear()
        for i in range(3, 6):
            audit.AuditLog(folder, prefix=prefix).append([{"store": name, "n": i}])
    assert cli.main(["audit", "verify"]) == 0
    assert all(lines == 6 and not breaks for lines, _, breaks in (audit.verify(f, p) for f, p in stores.values()))
    heads = {name: audit.verify(f, p)[1] for name, (f, p) in stores.items()}

    def tampered(name: str, change) -> list[str]:
        folder, prefix = stores[name]
        files = sorted(folder.glob(f"{prefix}*.jsonl"))
        saved = {f: f.read_bytes() for f in files}
        change(files)
        try:
            return audit.verify(folder, prefix)[2]
        finally:
            for f, data in saved.items():
                f.write_bytes(data)

    def rewrite(path, change) -> None:  # the file's lines, changed by `change`
        path.write_bytes(b"".join(change(path.read_bytes().splitlines(keepends=True))))

    for name in stores:
        edited = tampered(name, lambda files: rewrite(files[1], lambda ls: [ls[0].replace(b'"n":3', b'"n":9'), *ls[1:]]))
        deleted = tampered(name, lambda files: rewrite(files[1], lambda ls: [ls[0], *ls[2:]]))
        moved = tampered(name, lambda files: rewrite(files[0], lambda ls: [ls[1], ls[0], ls[2]]))
        first_day_gone = tampered(name, lambda files: files[0].unlink())
        assert edited and "line 2" in edited[0], (name, edited)
        assert deleted and "line 2" in deleted[0], (name, deleted)
        assert moved and "2026-01-01.jsonl line 1" in moved[0], (name, moved)
        assert first_day_gone and "line 1" in first_day_gone[0], (name, first_day_gone)
    # the last line changed: the chain is whole, but its head is not the one published
    folder, prefix = stores["review journal"]
    last = sorted(folder.glob(f"{prefix}*.jsonl"))[-1]
    last.write_bytes(last.read_bytes().replace(b'"n":5', b'"n":7'))
    assert not audit.verify(folder, prefix)[2]
    capsys.readouterr()
    assert cli.main(["audit", "verify", "--head", f"review journal={heads['review journal']}"]) == 1
    assert "not the head published" in capsys.readouterr().out
    # the night's check: passes on whole chains, fails naming the first break
    assert journals_untouched().passed
    access_folder, access_prefix = stores["dashboard access log"]
    older = sorted(access_folder.glob(f"{access_prefix}*.jsonl"))[0]
    older.write_bytes(older.read_bytes().replace(b'"n":1', b'"n":8'))
    result = journals_untouched()
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR and "dashboard access log" in result.description
