"""Review's assets: the journal folded into the warehouse once each (`review.actions`), every case
as it stands (`review.cases`: status and age against the service time) and the decision that
stands per application (`review.final_decisions`), published in a small review snapshot of
its own (`serving/review.duckdb`) so that other systems read them without the warehouse."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from credit_dagster.core import settings, snapshot
from credit_dagster.core.keys import POOL, REVIEW
from credit_dagster.core.resources import Warehouse
from credit_dagster.nightly import partitions
from credit_dagster.review import cases as review
from credit_dagster.review.journal import ReviewJournal
from credit_dagster.review.queue import case_table, final_decisions

ACTION_COLUMNS = {"action_id": "varchar", "sk_id": "bigint", "action": "varchar", "user": "varchar", "role": "varchar",
                  "at": "varchar", "model_version": "varchar", "model_decision": "varchar", "revision": "integer",
                  "final": "varchar", "reason_codes": "varchar", "note": "varchar", "channel": "varchar", "received_on": "varchar"}


@dg.asset(key=REVIEW, group_name="review", pool=POOL, kinds={"duckdb"})
def review_cases(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The review journal's new actions into review.actions (once each, by action id), every case
    as it stands into review.cases, the decision that stands per application into
    review.final_decisions; the last two published in the review snapshot."""
    journal = ReviewJournal()
    actions = journal.actions()
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
        scored = (con.execute("select SK_ID_CURR, decision, model_version, scored_at, partition_date "
                              "from scoring.scored_applications").df() if has_scores
                  else pd.DataFrame(columns=["SK_ID_CURR", "decision", "model_version", "scored_at", "partition_date"]))
        table = case_table(scored, actions, datetime.now(UTC).date(), settings.current().review_service_days)
        final = final_decisions(scored, table)
        con.register("cases_df", table)
        con.register("final_df", final)
        con.execute("create or replace table review.cases as select * from cases_df")
        con.execute("create or replace table review.final_decisions as select * from final_df")
        published = snapshot.publish(con, {"cases": "select * from review.cases", "final_decisions": "select * from review.final_decisions"},
                                     snapshot.beside(snapshot.REVIEW_SNAPSHOT), indexed={"final_decisions": "SK_ID_CURR"})
    counts = table["status"].value_counts().to_dict()
    overridden = int(((final["decided_by"] != "model") & (final["final_decision"] != final["model_decision"])
                      & (final["model_decision"] != review.REFER)).sum())
    return dg.MaterializeResult(metadata={
        "actions_folded": folded, "actions_in_journal": len(actions), "open_cases": int(counts.get(review.OPEN, 0)),
        "waiting_for_approval": int(counts.get(review.WAITING, 0)), "past_service_time": int(table["past_service_time"].sum()),
        "decided_by_people": int((final["decided_by"] != "model").sum()), "overrides": overridden,
        "unreadable_journal_lines": journal.unreadable()[:20],
        "review_snapshot": dg.MetadataValue.path(str(snapshot.beside(snapshot.REVIEW_SNAPSHOT))), "published": published,
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


review_job = dg.define_asset_job("review_fold", selection=dg.AssetSelection.groups("review"), executor_def=dg.in_process_executor,
                                 description="Fold the review journal into the warehouse and derive every case (idempotent).")
# every quarter of an hour: the journal is the record meanwhile (fsync'ed before a page confirms)
review_schedule = dg.ScheduleDefinition(job=review_job, cron_schedule="*/15 * * * *", execution_timezone="Europe/Paris",
                                        default_status=dg.DefaultScheduleStatus.RUNNING)
review_assets, review_checks = [review_cases], [cases_within_service_time]
