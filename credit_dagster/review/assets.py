"""Review's assets: the journal folded into the warehouse once each (`review.actions`), and every
case as it stands (`review.cases`: the final decision per referred, contested or reviewed
application, its status and its age against the service time)."""

from datetime import UTC, date, datetime

import dagster as dg
import numpy as np
import pandas as pd

from credit_dagster.core import settings
from credit_dagster.core.keys import POOL, REVIEW
from credit_dagster.core.resources import Warehouse
from credit_dagster.nightly import partitions
from credit_dagster.review import cases as review
from credit_dagster.review.journal import ReviewJournal

ACTION_COLUMNS = {"action_id": "varchar", "sk_id": "bigint", "action": "varchar", "user": "varchar", "role": "varchar",
                  "at": "varchar", "model_version": "varchar", "model_decision": "varchar", "revision": "integer",
                  "final": "varchar", "reason_codes": "varchar", "note": "varchar"}


def case_table(scored: pd.DataFrame, actions: list[review.Action], today: date, service_days: int) -> pd.DataFrame:
    """One row per case: every application the model referred (`scored`: SK_ID_CURR, decision,
    partition_date) and every one the journal touched, as the actions leave it."""
    reviewed, _ = review.replay(actions)
    opened = {int(r.SK_ID_CURR): str(r.partition_date) for r in scored.itertuples()}
    cases = {int(r.SK_ID_CURR): review.new_case(int(r.SK_ID_CURR), r.decision) for r in scored.itertuples() if r.decision == review.REFER}
    cases.update(reviewed)
    contested_at = {a.sk_id: a.at[:10] for a in actions if a.action == review.CONTEST}
    rows = []
    for case in cases.values():
        since = contested_at.get(case.sk_id) or opened.get(case.sk_id) or (case.updated_at or today.isoformat())[:10]
        waiting = case.status in (review.OPEN, review.WAITING)
        age = int(np.busday_count(since, today.isoformat())) if waiting else 0
        rows.append({"SK_ID_CURR": case.sk_id, "model_decision": case.model_decision, "status": case.status,
                     "final_decision": case.final_decision, "decided_by": case.decided_by, "reason_codes": ",".join(case.reason_codes),
                     "revision": case.revision, "requested_by": case.requested_by, "contested": case.contested,
                     "opened": since, "updated_at": case.updated_at, "working_days_open": age,
                     "past_service_time": waiting and age > service_days})
    return pd.DataFrame(rows, columns=["SK_ID_CURR", "model_decision", "status", "final_decision", "decided_by", "reason_codes",
                                       "revision", "requested_by", "contested", "opened", "updated_at", "working_days_open",
                                       "past_service_time"])


@dg.asset(key=REVIEW, group_name="review", pool=POOL, kinds={"duckdb"})
def review_cases(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The review journal's new actions into review.actions (once each, by action id), and every
    case as it stands into review.cases."""
    actions = ReviewJournal().actions()
    records = pd.DataFrame([{**vars(a), "reason_codes": ",".join(a.reason_codes)} for a in actions], columns=list(ACTION_COLUMNS))
    with warehouse.connect() as con:
        con.execute("create schema if not exists review")
        partitions.create_or_extend(con, "review.actions", ACTION_COLUMNS)
        before = con.execute("select count(*) from review.actions").fetchall()[0][0]
        con.register("journal_df", records)
        con.execute("""insert into review.actions by name
                       select * from journal_df where action_id not in (select action_id from review.actions)""")
        folded = con.execute("select count(*) from review.actions").fetchall()[0][0] - before
        has_scores = con.execute("select count(*) from information_schema.tables where table_schema = 'scoring' "
                                 "and table_name = 'scored_applications'").fetchall()[0][0]
        scored = (con.execute("select SK_ID_CURR, decision, partition_date from scoring.scored_applications").df() if has_scores
                  else pd.DataFrame(columns=["SK_ID_CURR", "decision", "partition_date"]))
        table = case_table(scored, actions, datetime.now(UTC).date(), settings.current().review_service_days)
        con.register("cases_df", table)
        con.execute("create or replace table review.cases as select * from cases_df")
    counts = table["status"].value_counts().to_dict()
    return dg.MaterializeResult(metadata={
        "actions_folded": folded, "actions_in_journal": len(actions), "open_cases": int(counts.get(review.OPEN, 0)),
        "waiting_for_approval": int(counts.get(review.WAITING, 0)), "past_service_time": int(table["past_service_time"].sum()),
    })


@dg.asset_check(asset=REVIEW, description="Warns when cases wait longer than CREDIT_REVIEW_SERVICE_DAYS working days.")
def cases_within_service_time(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        late = con.execute("select SK_ID_CURR, status, working_days_open from review.cases where past_service_time "
                           "order by working_days_open desc").fetchall()
    return dg.AssetCheckResult(
        passed=not late, severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(late)} case(s) past the service time" if late else "every case within the service time",
        metadata={"late": [f"{i}: {s}, {d} working days" for i, s, d in late[:20]]})


review_job = dg.define_asset_job("review_fold", selection=dg.AssetSelection.groups("review"),
                                 description="Fold the review journal into the warehouse and derive every case (idempotent).")
# every quarter of an hour: the journal is the record meanwhile (fsync'ed before a page confirms)
review_schedule = dg.ScheduleDefinition(job=review_job, cron_schedule="*/15 * * * *", execution_timezone="Europe/Paris",
                                        default_status=dg.DefaultScheduleStatus.RUNNING)
review_assets, review_checks = [review_cases], [cases_within_service_time]
