"""Repayment outcomes of scored applications (`loan_outcomes.csv`), read and settled.

One row a report: `SK_ID_CURR`, `REPORTING_DATE` (YYYY-MM-DD), `MONTHS_ON_BOOK`, `WORST_DPD`
(the worst days past due so far) and `TARGET` (1: payment difficulties so far, Home Credit's own
definition). Reports arrive in any order, repeated or not; every report ever received is kept,
and what stands is settled from all of them at once (`settle`), so the order of delivery never
changes the result:

- a row whose value cannot be read is quarantined with the column and the value;
- an applicant never scored, or never granted (refused, or still referred: no loan, no
  outcome), is quarantined with why;
- the same report delivered twice counts once; two reports of one applicant and one date that
  disagree are both quarantined;
- a report that goes back on an earlier one (a default withdrawn, worst days past due or months
  on book going down) or is dated before the decision is quarantined, naming the report it
  contradicts;
- per applicant, the latest report that stands wins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FILE = "loan_outcomes.csv"
COLUMNS = ["SK_ID_CURR", "REPORTING_DATE", "MONTHS_ON_BOOK", "WORST_DPD", "TARGET"]
GRANTED = "granted"  # as `decision.scoring` and `review` decide
QUARANTINE_COLUMNS = ["file", "line", "SK_ID_CURR", "REPORTING_DATE", "reason"]


class OutcomeFileError(ValueError):
    """A file that cannot be read as outcomes at all (not a CSV, a column missing): nothing of it is taken."""


def read(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The typed reports of one file (with file and line), and the rows that could not be read,
    each with its reason."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise OutcomeFileError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise OutcomeFileError(f"{path}: missing column(s) {', '.join(missing)}; an outcome file has {', '.join(COLUMNS)}")
    raw = raw[COLUMNS].assign(file=path.name, line=np.arange(2, len(raw) + 2))  # line 1 is the header
    reasons = pd.Series("", index=raw.index)
    parsed = {}
    for column in ("SK_ID_CURR", "MONTHS_ON_BOOK", "WORST_DPD", "TARGET"):
        values = pd.to_numeric(raw[column].str.strip(), errors="coerce")
        whole = values.notna() & (values == values.round()) & (values >= 0)
        reasons = reasons.where(whole, reasons + raw[column].map(lambda v, c=column: f"{c} {v!r} is not a whole number >= 0; "))
        parsed[column] = values
    target_ok = parsed["TARGET"].isin([0, 1])
    reasons = reasons.where(target_ok | parsed["TARGET"].isna() | (parsed["TARGET"] < 0),
                            reasons + raw["TARGET"].map(lambda v: f"TARGET {v!r} is not 0 or 1; "))
    dates = pd.to_datetime(raw["REPORTING_DATE"].str.strip(), format="%Y-%m-%d", errors="coerce")
    reasons = reasons.where(dates.notna(), reasons + raw["REPORTING_DATE"].map(lambda v: f"REPORTING_DATE {v!r} is not a date YYYY-MM-DD; "))
    bad = reasons != ""
    good = pd.DataFrame({"SK_ID_CURR": parsed["SK_ID_CURR"], "REPORTING_DATE": dates.dt.date.astype(str),
                         "MONTHS_ON_BOOK": parsed["MONTHS_ON_BOOK"], "WORST_DPD": parsed["WORST_DPD"], "TARGET": parsed["TARGET"],
                         "file": raw["file"], "line": raw["line"]})[~bad]
    for column in ("SK_ID_CURR", "MONTHS_ON_BOOK", "WORST_DPD", "TARGET"):
        good[column] = good[column].astype("int64")
    quarantined = raw.loc[bad, ["file", "line", "SK_ID_CURR", "REPORTING_DATE"]].assign(reason=reasons[bad].str.rstrip("; "))
    return good.reset_index(drop=True), quarantined.reset_index(drop=True)


def settle(received: pd.DataFrame, decisions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """What stands of every report received (`read`'s rows, from every delivery), against the
    decisions (`SK_ID_CURR`, `final_decision`, `partition_date`): one outcome per applicant (its
    latest report that stands, with how many reports stood), the reports quarantined with why,
    and every report that stands (once each: the vintage curves read them)."""
    reports = received[COLUMNS + ["file", "line"]].copy()
    final = decisions.drop_duplicates("SK_ID_CURR").set_index("SK_ID_CURR")
    reasons = pd.Series("", index=reports.index)

    def hold(mask: pd.Series, why: pd.Series | str) -> None:
        nonlocal reasons
        reasons = reasons.where(~mask | (reasons != ""), why if isinstance(why, str) else why.where(mask, ""))

    known = reports["SK_ID_CURR"].isin(final.index)
    hold(~known, "unknown applicant: never scored by the platform")
    decided = reports["SK_ID_CURR"].map(final["final_decision"]).fillna("")
    hold(known & (decided != GRANTED), "never granted (" + decided + "): a refused or referred application has no loan")
    night = reports["SK_ID_CURR"].map(final["partition_date"]).astype(str).str[:10]
    hold(known & (reports["REPORTING_DATE"] < night), "reported on " + reports["REPORTING_DATE"] + ", before the decision of " + night)
    # the same report twice counts once; two different reports of one date are both doubtful
    values = ["MONTHS_ON_BOOK", "WORST_DPD", "TARGET"]
    same_day = reports.groupby(["SK_ID_CURR", "REPORTING_DATE"])[values].transform("nunique").max(axis=1) > 1
    hold(same_day, "two reports of this applicant and this date disagree")
    # a report that goes back on an earlier one (in reporting order, whatever the delivery order)
    standing = reports[reasons == ""].drop_duplicates(COLUMNS).sort_values(["SK_ID_CURR", "REPORTING_DATE"])
    running = standing.groupby("SK_ID_CURR")[values].cummax()
    earlier = running.groupby(standing["SK_ID_CURR"]).shift()  # the most any earlier report said
    key = reports["SK_ID_CURR"].astype(str) + "/" + reports["REPORTING_DATE"]
    standing_key = standing["SK_ID_CURR"].astype(str) + "/" + standing["REPORTING_DATE"]
    for column, words in (("TARGET", "withdraws a default reported before"), ("WORST_DPD", "lowers the worst days past due reported before"),
                          ("MONTHS_ON_BOOK", "lowers the months on book reported before")):
        # every copy of a report that goes back, whichever delivery brought it
        hold(key.isin(standing_key[standing[column] < earlier[column]]), f"contradicts an earlier report: {words}")
    quarantine = reports.loc[reasons != "", ["file", "line", "SK_ID_CURR", "REPORTING_DATE"]].assign(reason=reasons[reasons != ""])
    stood = reports[reasons == ""].drop_duplicates(COLUMNS)
    latest = stood.sort_values(["SK_ID_CURR", "REPORTING_DATE"]).groupby("SK_ID_CURR").tail(1)
    outcomes = latest[COLUMNS].merge(stood.groupby("SK_ID_CURR").size().rename("reports").reset_index(), on="SK_ID_CURR")
    return (outcomes.sort_values("SK_ID_CURR").reset_index(drop=True),
            quarantine.sort_values(["file", "line"]).reset_index(drop=True)[QUARANTINE_COLUMNS],
            stood[COLUMNS].sort_values(["SK_ID_CURR", "REPORTING_DATE"]).reset_index(drop=True))
