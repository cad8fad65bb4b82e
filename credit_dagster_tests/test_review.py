"""Human review: who may decide what, four eyes on overrides, a journal that loses nothing and
applies nothing twice, and its fold into the warehouse."""

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
from credit_dagster.review.journal import ReviewJournal
from credit_dagster.review.queue import case_table

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
    # confirming the model needs no approval
    confirmed = review.apply(contested, _action(8, review.DECIDE, "ann", review.ADVISOR, review.REFUSED, 1, final=review.REFUSED,
                                                codes=("affordability",)))
    assert confirmed.status == review.DECIDED and confirmed.decided_by == "advisor"


@pytest.mark.parametrize("change, words", [
    ({"revision": 3}, "changed since you opened it"), ({"final": "maybe"}, "granted or refused"),
    ({"codes": ()}, "at least one reason code"), ({"codes": ("because",)}, "unknown reason code"),
    ({"note": "x" * (review.MAX_NOTE + 1)}, "at most"), ({"role": "intern"}, "no reviewer role"),
])
def test_an_action_that_may_not_be_taken_says_why(change, words):
    arguments = {"revision": 0, "final": review.GRANTED, "codes": CODES, "note": "", "role": review.ADVISOR} | change
    action = _action(9, review.DECIDE, "ann", arguments["role"], review.REFER, arguments["revision"], final=arguments["final"],
                     codes=arguments["codes"], note=arguments["note"])
    with pytest.raises(review.ReviewError, match=words):
        review.apply(review.new_case(9, review.REFER), action)


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


def _action(sk_id, action, user, role, model_decision, revision, final=None, codes=CODES, note=""):
    return review.Action(action_id=f"{sk_id}-{revision}-{user}", sk_id=sk_id, action=action, user=user, role=role,
                         at="2026-12-01T10:00:00+00:00", model_version="v1", model_decision=model_decision, revision=revision,
                         final=final, reason_codes=tuple(codes) if action == review.DECIDE else (), note=note)
