"""The review queue and the final decisions, as tables: what the fold writes to the warehouse and
publishes, and what the dashboard lists (pure pandas, no Dagster)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from credit_dagster.core import settings
from credit_dagster.review import cases as review

CASE_COLUMNS = ["SK_ID_CURR", "model_decision", "status", "final_decision", "decided_by", "reason_codes", "revision",
                "requested_by", "contested", "rescored", "sent_back", "opened", "updated_at", "decided_at", "working_days_open", "past_service_time"]
FINAL_COLUMNS = ["SK_ID_CURR", "model_decision", "final_decision", "decided_by", "reason_codes", "decided_at", "status",
                 "model_version", "partition_date"]


def _holidays() -> list[str]:
    return [d.strip() for d in settings.current().review_holidays.split(",") if d.strip()]


def working_days(since: str, today: date) -> int:
    """Working days from `since` (ISO) to `today`, by the lender's calendar: weekends and
    CREDIT_REVIEW_HOLIDAYS are not counted."""
    return int(np.busday_count(since[:10], today.isoformat(), holidays=_holidays()))


def due_by(since: str, days: int) -> date:
    """The last working day of a service time of `days` working days starting on `since` (ISO)."""
    return np.busday_offset(since[:10], days, roll="forward", holidays=_holidays()).astype(date)


def case_table(scored: pd.DataFrame, actions: list[review.Action], today: date, service_days: int) -> pd.DataFrame:
    """One row per case: every application the model referred (`scored`: SK_ID_CURR, decision,
    partition_date) and every one the journal touched, as the actions leave it. A case waits
    from its night, or from the client's contest; its age is counted in working days."""
    reviewed, _ = review.replay(actions)
    opened = {int(r.SK_ID_CURR): str(r.partition_date)[:10] for r in scored.itertuples()}
    cases = {int(r.SK_ID_CURR): review.new_case(int(r.SK_ID_CURR), r.decision) for r in scored.itertuples() if r.decision == review.REFER}
    cases.update(reviewed)
    rows = []
    for case in cases.values():
        # a contest waits from the day the client asked, whenever it was recorded
        since = case.waiting_since or opened.get(case.sk_id) or (case.updated_at or today.isoformat())[:10]
        waiting = case.status in (review.OPEN, review.WAITING)
        age = working_days(since, today) if waiting else 0
        rows.append({"SK_ID_CURR": case.sk_id, "model_decision": case.model_decision, "status": case.status,
                     "final_decision": case.final_decision, "decided_by": case.decided_by, "reason_codes": ",".join(case.reason_codes),
                     "revision": case.revision, "requested_by": case.requested_by, "contested": case.contested, "rescored": case.rescored,
                     "sent_back": case.sent_back,
                     "opened": since, "updated_at": case.updated_at, "decided_at": case.decided_at, "working_days_open": age,
                     "past_service_time": waiting and age > service_days})
    return pd.DataFrame(rows, columns=CASE_COLUMNS)


def final_decisions(scored: pd.DataFrame, cases: pd.DataFrame) -> pd.DataFrame:
    """The decision that stands per scored application (`scored`: SK_ID_CURR, decision,
    model_version, scored_at, partition_date), as each case has it (`review.cases.Case.final_decision`,
    the one source the dashboard, the letters and the API read): a person's once decided or approved,
    and still while a client's later contest is reviewed; else the model's."""
    out = scored[["SK_ID_CURR", "decision", "model_version", "scored_at", "partition_date"]].rename(
        columns={"decision": "model_decision"}).copy()
    case = cases.set_index("SK_ID_CURR").reindex(out["SK_ID_CURR"])
    by = case["decided_by"].fillna("model").to_numpy()
    person = by != "model"
    out["final_decision"] = case["final_decision"].fillna(out.set_index("SK_ID_CURR")["model_decision"]).to_numpy()
    out["decided_by"] = by
    out["reason_codes"] = np.where(person, case["reason_codes"].fillna("").to_numpy(), "")
    out["decided_at"] = np.where(person, case["decided_at"].to_numpy(), out["scored_at"].astype(str).to_numpy())
    out["status"] = case["status"].fillna(review.CLOSED).to_numpy()
    return out[FINAL_COLUMNS].reset_index(drop=True)
