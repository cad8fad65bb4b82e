"""A night scored again never replaces a decision silently: where the new score's decision
differs from the one its applicant had (the previous scoring in the append-only audit), the
earlier decision keeps standing and a case opens for a person (`ReviewJournal.keep_earlier_decisions`).
Run once per publish of a night, whatever path scored it again (the CLI, a backfill in the UI, a sensor)."""

from __future__ import annotations

import duckdb
import pandas as pd

from credit_dagster.review.journal import ReviewJournal

REASON_TAG = "credit/rescore_reason"  # the reason the CLI's `score --rescore --reason` gives the run


def changed_decisions(con: duckdb.DuckDBPyConnection, day: str) -> pd.DataFrame:
    """The night's applicants whose latest scoring decided otherwise than their one before it
    (SK_ID_CURR, before, after, model_version, run_id); none on a night scored once."""
    return con.execute("""
        with ranked as (
            select SK_ID_CURR, decision, model_version, run_id,
                   row_number() over (partition by SK_ID_CURR order by scored_at desc, run_id desc) as n
            from scoring.decision_audit where partition_date = ?)
        select now.SK_ID_CURR, earlier.decision as before, now.decision as after, now.model_version, now.run_id
        from ranked now join ranked earlier on earlier.SK_ID_CURR = now.SK_ID_CURR and now.n = 1 and earlier.n = 2
        where earlier.decision <> now.decision order by now.SK_ID_CURR""", [day]).df()


def keep_earlier_decisions(con: duckdb.DuckDBPyConnection, day: str, reason: str | None,
                           journal: ReviewJournal | None = None) -> tuple[int, int]:
    """Open a case, with the earlier decision standing, for each applicant of the night whose decision
    the latest scoring changed: (decisions changed, cases opened now; 0 when already opened)."""
    changed = changed_decisions(con, day)
    if changed.empty:
        return 0, 0
    runs = ", ".join(sorted(set(changed["run_id"])))[:200]
    said = f"night {day} scored again ({reason or 'no reason given'}; run {runs})"
    opened = (journal or ReviewJournal()).keep_earlier_decisions(changed.to_dict("records"), run_id=runs, reason=said)
    return len(changed), opened
