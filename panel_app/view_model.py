"""What the dashboard shows, as plain data: no Panel, no Bokeh, testable without a server.

Every view is built from the serving snapshot (`SnapshotStore`) and, for the what-if, from
the same on-demand scoring the API uses (`credit_dagster.decision.ondemand.score`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from credit_dagster.core import plausibility, settings, snapshot, wording
from credit_dagster.core.snapshot import Table
from credit_dagster.decision import ondemand, reasons, scoring
from credit_dagster.model import fairness as ml_fairness
from credit_dagster.model.scorecard import Scorecard
from credit_dagster.review import cases as review
from credit_dagster.review import letters
from credit_dagster.review.journal import ReviewJournal
from credit_dagster.review.queue import case_table
from panel_app.data_store import SnapshotStore

LIST_LIMIT = 300  # rows offered in the list at once; the search narrows the rest
DECISIONS = {  # icon, words, text colour (contrast >= 7:1 on white)
    scoring.GRANTED: ("✔", "Granted", "#1b5e20"),
    scoring.REFER: ("⚠", "Referred to an advisor", "#7a3e00"),
    scoring.REFUSED: ("✖", "Refused", "#b71c1c"),
}
DECIDED_WORDS = {d: words for d, (_, words, _) in DECISIONS.items()}
GRADE_MEANING = {"A": "very low risk", "B": "low risk", "C": "moderate risk", "D": "high risk", "E": "very high risk"}


_missing = wording.missing


def currency() -> str:
    """The currency amounts are shown in (CREDIT_CURRENCY)."""
    return settings.current().currency


def money(value) -> str:
    return wording.money(value, currency())


percents = wording.percents


# --- the list and the one selection ----------------------------------------------------------

@dataclass(frozen=True)
class Listing:
    options: dict[str, int]  # label shown in the list -> application number
    message: str  # what the list holds, or why it is empty


def parse_search(text: str) -> tuple[str, str | None]:
    """The digits to search for and, for anything else, a friendly message (never SQL)."""
    text = (text or "").strip()
    if text and not text.isdigit():
        return "", f"“{text[:20]}” is not an application number: type its digits, e.g. 100042."
    return text, None


def queue(store: SnapshotStore, journal: ReviewJournal) -> pd.DataFrame:
    """Every case now (`review.queue.case_table`): each application the model referred, and every one
    the journal touched, with its status and its age in working days against the service time."""
    scored = store.table(Table.SCORED)[["SK_ID_CURR", "decision", "partition_date"]]
    return case_table(scored, journal.actions(), datetime.now(UTC).date(), settings.current().review_service_days)


# the review filter: a status of the case, or a work list across statuses
CONTESTED, LATE, WAITING_FOR_PEOPLE = "contested", "past the service time", "every case that waits"
QUEUE_FILTERS = [WAITING_FOR_PEOPLE, review.OPEN, CONTESTED, review.WAITING, LATE, review.DECIDED]


def _in_filter(cases: pd.DataFrame, wanted: str) -> pd.Series:
    waiting = cases["status"].isin([review.OPEN, review.WAITING])
    return {WAITING_FOR_PEOPLE: waiting, CONTESTED: waiting & cases["contested"].astype(bool),
            LATE: waiting & cases["past_service_time"].astype(bool)}.get(wanted, cases["status"] == wanted)


def workload_sentence(cases: pd.DataFrame) -> str:
    """The queue's counts per state, from the same case table the list shows."""
    count = {f: int(_in_filter(cases, f).sum()) for f in QUEUE_FILTERS}
    return (f"{count[WAITING_FOR_PEOPLE]:,} waiting for a person: {count[review.OPEN]:,} open, {count[review.WAITING]:,} waiting "
            f"for approval; {count[CONTESTED]:,} contested, {count[LATE]:,} past the service "
            f"time of {wording.plural(settings.current().review_service_days, 'working day')}")


def standing_decisions(rows: pd.DataFrame, cases: pd.DataFrame) -> pd.DataFrame:
    """`rows` (stored decisions) with the decision that stands now and its case: a person's once
    decided, else the model's; the same replay of the journal as the API's and the letters'."""
    merged = rows.merge(cases.drop(columns=["model_decision"]), on="SK_ID_CURR", how="left")
    merged["final_decision"] = merged["final_decision"].fillna(merged["decision"])
    merged["decided_by"] = merged["decided_by"].fillna("model")
    merged["status"] = merged["status"].fillna(review.CLOSED)
    for flag in ("contested", "rescored", "sent_back", "past_service_time"):
        merged[flag] = merged[flag].eq(True)  # no case: False
    merged["working_days_open"] = merged["working_days_open"].fillna(0).astype(int)
    return merged


def listing(store: SnapshotStore, night: str | None, decision: str | None, search: str,
            status: str | None = None, journal: ReviewJournal | None = None) -> Listing:
    """The list box's rows, each with the decision that stands now (`decision` filters on it). With a
    review `status` (one of QUEUE_FILTERS), the work list: every case in it, none cut, the late first,
    then the contested, then the longest waiting, and the counts per state."""
    digits, problem = parse_search(search)
    if problem:
        return Listing({}, problem)
    cases = queue(store, journal or ReviewJournal())
    rows = standing_decisions(store.decisions(night, None, digits), cases)
    if decision:
        rows = rows[rows["final_decision"] == decision]
    counts = ""
    if status:
        rows = rows[_in_filter(rows, status)]
        rows = rows.assign(on_time=~rows["past_service_time"], uncontested=~rows["contested"]).sort_values(
            ["on_time", "uncontested", "opened", "SK_ID_CURR"])
        counts = f". {workload_sentence(cases)}"
    if rows.empty:
        wanted = f" starting with {digits}" if digits else ""
        return Listing({}, f"No applications match{wanted}: change the night, the decision or the search{counts}.")
    # a work list is never cut: every case that waits must be reachable without typing its number
    shown = rows if status else rows.head(LIST_LIMIT)
    options = {list_label(r): int(r["SK_ID_CURR"]) for r in shown.to_dict("records")}
    more = f" (the first {LIST_LIMIT} of {len(rows):,}; type more digits to narrow)" if len(shown) < len(rows) else ""
    return Listing(options, f"{wording.plural(len(shown), 'application')}{more}{counts}")


SHORT = {scoring.GRANTED: "Granted", scoring.REFER: "Referred", scoring.REFUSED: "Refused"}


def list_label(row: dict) -> str:
    """Short enough to fit the list box, what matters first: the number; for a case that waits, its
    marks (late first, then contested, re-scored, sent back, for approval), how long it has waited and the
    decision that stands meanwhile; else the decision that stands (marked when a person took it),
    probability, grade and night (e.g. "1 Nov")."""
    final = row.get("final_decision") or row["decision"]
    night = pd.Timestamp(row["partition_date"])
    decided = f"{DECISIONS[final][0]} {SHORT[final]}"
    if row.get("status") in (review.OPEN, review.WAITING):
        days = wording.plural(int(row.get("working_days_open") or 0), "working day")
        marks = [f"LATE, {days}" if row.get("past_service_time") else days,
                 *(["contested"] if row.get("contested") else []), *(["scored again"] if row.get("rescored") else []),
                 *(["sent back"] if row.get("sent_back") else []),
                 *(["for approval"] if row["status"] == review.WAITING else [])]
        return " · ".join([str(int(row["SK_ID_CURR"])), *marks, decided, f"{night.day} {night:%b}"])
    by_person = row.get("decided_by") not in (None, "model")
    bounds = [float(row[b]) for b in ("refer_low", "refer_high") if b in row and not _missing(row[b])]
    return " · ".join([str(int(row["SK_ID_CURR"])), decided + (" by a person" if by_person else ""),
                       percents(float(row["probability_of_default"]), *bounds)[0], str(row["grade"]), f"{night.day} {night:%b}"])


def follow(options: dict[str, int], current: int | None) -> int | None:
    """The application to show once the list changed: the one on screen if it is still listed,
    else the first listed, else none (and the detail says that nothing matches)."""
    ids = list(options.values())
    if current in ids:
        return current
    return ids[0] if ids else None


# --- one client ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bar:
    label: str  # client wording, with the client's value
    points: float  # effect on the score in points: negative = raised the risk


@dataclass(frozen=True)
class ClientView:
    sk_id: int
    night: str
    icon: str  # the decision that stands now: a person's once decided, else the model's
    decision: str
    colour: str
    standing: str  # who decided it and when, and what is pending (`review.cases.standing`)
    by_person: bool
    model_decision: str  # the model's own decision, in words: the assessment below the decision
    probability: float
    points: int
    grade: str
    threshold: float
    refer_low: float
    refer_high: float
    probability_text: str
    band_sentence: str
    grade_legend: list[tuple[str, str]]
    points_sentence: str
    reasons_heading: str
    reasons: list[str]
    history_note: str | None
    counterfactual: str | None
    contributions: list[Bar]
    contributions_sentence: str
    application: dict[str, list[tuple[str, str]]]  # section -> (label, value)
    every_field: list[tuple[str, str]]
    model_version: str
    scored_at: str
    synthetic: bool


def band_sentence(pd_: float, low: float, high: float) -> str:
    p, lo, hi = percents(pd_, low, high)
    return (f"Under {lo} an application is granted, from {lo} to {hi} an advisor decides, "
            f"and from {hi} it is refused; this client's probability of default is {p}.")


def scorecard(summary: pd.Series) -> Scorecard:
    """The champion's scorecard as the snapshot publishes it (scorecard_* columns)."""
    values = {k.removeprefix("scorecard_"): v for k, v in summary.items() if k.startswith("scorecard_")}
    if "grade_bounds" in values:
        values["grade_bounds"] = tuple(float(b) for b in str(values["grade_bounds"]).split(","))
    return Scorecard(**{k: v for k, v in values.items() if k in {f.name for f in fields(Scorecard)}})


def grade_legend(summary: pd.Series) -> list[tuple[str, str]]:
    bounds = scorecard(summary).grade_bounds
    legend = []
    for i, grade in enumerate("ABCDE"):
        if i == 0:
            span = f"under {bounds[0]:.0%}"
        elif i < len(bounds):
            span = f"from {bounds[i - 1]:.0%} to {bounds[i]:.0%}"
        else:
            span = f"{bounds[-1]:.0%} or more"
        legend.append((grade, f"{GRADE_MEANING[grade]}: probability of default {span}"))
    return legend


def points_sentence(summary: pd.Series) -> str:
    card = scorecard(summary)
    base, odds, double = card.base_points, card.base_odds, card.points_to_double
    return (f"More points means less risk: {base:.0f} points means {odds:.0f} clients repay for every one who does not, "
            f"and every {double:.0f} points more doubles those odds.")


def client_view(store: SnapshotStore, sk_id: int, journal: ReviewJournal | None = None) -> ClientView:
    """One application as every view shows it: the decision that stands now, read live from the
    review journal (as the API and the letters read it), with the model's assessment below it."""
    a = store.applicant(sk_id)
    row, summary = a.row, store.model_summary()
    case = (journal or ReviewJournal()).case(sk_id, str(row["decision"]))
    icon, words, colour = DECISIONS[case.final_decision]
    granted = row["decision"] == scoring.GRANTED
    change, note = row.get("counterfactual"), row.get("history_note")
    dictionary = store.dictionary().drop_duplicates("feature").set_index("feature")
    return ClientView(
        sk_id=sk_id, night=str(row["partition_date"]), icon=icon, decision=words, colour=colour,
        standing=review.standing(case, str(row["partition_date"])), by_person=case.decided_by != "model",
        model_decision=DECISIONS[row["decision"]][1],
        probability=float(row["probability_of_default"]), points=int(row["points"]), grade=str(row["grade"]),
        probability_text=percents(float(row["probability_of_default"]), float(row["refer_low"]), float(row["refer_high"]))[0],
        threshold=float(row["threshold"]), refer_low=float(row["refer_low"]), refer_high=float(row["refer_high"]),
        band_sentence=band_sentence(float(row["probability_of_default"]), float(row["refer_low"]), float(row["refer_high"])),
        grade_legend=grade_legend(summary), points_sentence=points_sentence(summary),
        reasons_heading=("What weighed most on this decision, although it was granted" if granted
                         else "What weighed most against this application"),
        reasons=a.reasons, history_note=note if isinstance(note, str) else None,
        counterfactual=change if isinstance(change, str) else None,
        contributions=contribution_bars(a.contributions, summary),
        contributions_sentence=("Each bar is how much one piece of information moved the score, in points: to the right it "
                                "lowered the risk, to the left it raised it. The score is shown before the final "
                                "calibration, so its end can differ from the client's points by a few."),
        application=application_sections(a.application),
        every_field=every_field(a.application, dictionary),
        model_version=str(row["model_version"]), scored_at=str(row["scored_at"])[:16], synthetic=bool(summary["synthetic"]),
    )


def contribution_bars(rows: pd.DataFrame, summary: pd.Series) -> list[Bar]:
    """The stored contributions (log-odds, one per group of features) as points: a higher
    log-odds of default is fewer points, at `points_to_double / ln 2` points per unit."""
    card = scorecard(summary)
    per_unit = card.points_to_double / math.log(2)
    bars = []
    for r in rows.sort_values("rank").to_dict("records"):
        if r["feature"] == reasons.BASE:  # where the chart starts: a typical applicant's points
            start = float(card.points(1 / (1 + math.exp(-float(r["contribution"])))))
            bars.append(Bar(label="A typical applicant", points=start))
            continue
        label = "Everything else on file" if r["feature"] == reasons.OTHER else r["label"]
        bars.append(Bar(label=label, points=-float(r["contribution"]) * per_unit))
    return bars


def every_field(application: pd.Series, dictionary: pd.DataFrame) -> list[tuple[str, str]]:
    """Each field of the application as submitted, named and written as the client would say it."""
    out = [("Application number", str(int(application["SK_ID_CURR"])))]
    for column, value in application.items():
        if column in ("SK_ID_CURR", "partition_date"):
            continue
        if column == "DAYS_EMPLOYED" and value == plausibility.NOT_EMPLOYED:
            out.append(("Time in your current job", "not in employment"))
            continue
        if column in dictionary.index and isinstance(dictionary.at[column, "meaning"], str):
            unit = dictionary.at[column, "unit"]
            label = dictionary.at[column, "meaning"]
        else:
            unit, label = "number", humanize(column)
        shown = wording.value_text(value, unit if unit != "none" else "number", currency())
        out.append((label, "not given" if shown is None else shown))
    return out


SECTIONS = {
    "The loan asked for": {
        "NAME_CONTRACT_TYPE": "Type of loan", "AMT_CREDIT": "Amount of the loan", "AMT_ANNUITY": "Repayment each period",
        "AMT_GOODS_PRICE": "Price of the goods it pays for", "TERM": "Number of repayments",
    },
    "The client": {
        "AMT_INCOME_TOTAL": "Declared income per year", "NAME_INCOME_TYPE": "Type of income", "OCCUPATION_TYPE": "Occupation",
        "YEARS_EMPLOYED": "Years in current employment", "NAME_EDUCATION_TYPE": "Education",
    },
    "Household": {
        "NAME_FAMILY_STATUS": "Family status", "CNT_CHILDREN": "Children", "CNT_FAM_MEMBERS": "People in the household",
        "NAME_HOUSING_TYPE": "Housing", "FLAG_OWN_REALTY": "Owns a home", "FLAG_OWN_CAR": "Owns a car",
    },
}
AMOUNTS = {"AMT_CREDIT", "AMT_ANNUITY", "AMT_GOODS_PRICE", "AMT_INCOME_TOTAL"}


def application_sections(app: pd.Series) -> dict[str, list[tuple[str, str]]]:
    values = dict(app)
    credit, annuity = values.get("AMT_CREDIT"), values.get("AMT_ANNUITY")
    values["TERM"] = None if _missing(credit) or _missing(annuity) or not annuity else f"about {credit / annuity:.0f}"
    employed = values.get("DAYS_EMPLOYED")
    # 365243 is Kaggle's code for "not employed" (mostly pensioners)
    values["YEARS_EMPLOYED"] = (None if _missing(employed) else "not in employment" if employed == 365243
                                else f"{-employed / 365.25:.1f}")
    out = {}
    for section, labels in SECTIONS.items():
        out[section] = [(label, money(values.get(col)) if col in AMOUNTS else _display(values.get(col)))
                        for col, label in labels.items()]
    return out


def _display(value) -> str:
    if _missing(value):
        return "not given"
    if value in ("Y", "N"):
        return "yes" if value == "Y" else "no"
    if isinstance(value, float | np.floating):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return wording.category_text(value)


def humanize(column: str) -> str:
    """FLAG_DOCUMENT_3 -> 'Flag document 3': readable where no better label is known."""
    words = re.sub(r"^(AMT|CNT|NAME|FLAG|DAYS|REG|OBS|DEF|APP)_", lambda m: {"AMT": "Amount ", "CNT": "Number of ", "NAME": "",
                   "FLAG": "Flag ", "DAYS": "Days ", "REG": "Region ", "OBS": "Observed ", "DEF": "Defaulted ", "APP": ""}[m.group(1)],
                   column)
    words = words.replace("_", " ").strip().lower()
    return words[:1].upper() + words[1:]


# --- comparison ------------------------------------------------------------------------------

GROUPS = {  # what the user may ask "similar" to mean
    "type of loan": "NAME_CONTRACT_TYPE", "type of income": "NAME_INCOME_TYPE", "education": "NAME_EDUCATION_TYPE",
    "housing": "NAME_HOUSING_TYPE", "age band": "AGE_BAND", "income band": "INCOME_BAND",
}
AGE_EDGES = [0, 25, 35, 45, 55, 65, 200]


@dataclass(frozen=True)
class Comparison:
    feature: str
    meaning: str
    client_value: float | None
    all_values: np.ndarray
    group_values: np.ndarray
    group_words: str  # "clients with the same type of income (Working) and age band (35-44)"
    sentence: str
    neighbours: pd.DataFrame = field(default_factory=pd.DataFrame)
    neighbours_sentence: str = ""


@lru_cache(maxsize=2)
def _banded_reference(path: str, version: float) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The past clients with their age and income band, and the income fifths' edges (None
    when incomes are too few to cut in fifths): once per snapshot, not per click."""
    reference = SnapshotStore(Path(path)).table(Table.REFERENCE)
    edges = np.unique(np.nanquantile(reference["AMT_INCOME_TOTAL"].astype(float), np.linspace(0, 1, 6)))
    if len(edges) != 6:
        return reference.assign(AGE_BAND="", INCOME_BAND=""), None
    edges[0], edges[-1] = -np.inf, np.inf
    return with_bands(reference, edges), edges


def with_bands(frame: pd.DataFrame, income_edges: np.ndarray) -> pd.DataFrame:
    age = pd.cut(frame["APP_AGE_YEARS"], AGE_EDGES, right=False, labels=["under 25", "25-34", "35-44", "45-54", "55-64", "65 and over"])
    income = pd.cut(frame["AMT_INCOME_TOTAL"], income_edges, include_lowest=True,
                    labels=["lowest fifth", "second fifth", "middle fifth", "fourth fifth", "highest fifth"])
    return frame.assign(AGE_BAND=age.astype(str), INCOME_BAND=income.astype(str))


def comparable_features(store: SnapshotStore) -> dict[str, str]:
    """Meaning -> feature, for the features the snapshot compares on."""
    meanings = store.meanings()
    return {meanings.get(f, humanize(f)): f for f in store.compared_features()}


def compare(store: SnapshotStore, sk_id: int, feature: str, same: list[str]) -> Comparison:
    reference, edges = _banded_reference(str(store.path), store.version())
    a = store.applicant(sk_id)
    client = with_bands(a.details.to_frame().T.infer_objects(), edges).iloc[0] if edges is not None else a.details
    group, words = reference, []
    for name in same:
        column = GROUPS[name]
        value = client.get(column)
        group = group[group[column] == value]
        words.append(f"{name} ({value})")
    values = a.comparison.set_index("feature")["value"]
    client_value = None if _missing(values.get(feature)) else float(values.get(feature))
    meaning = store.meanings().get(feature, humanize(feature))
    all_values = reference[feature].dropna().to_numpy(dtype=float) if feature in reference else np.array([])
    group_values = group[feature].dropna().to_numpy(dtype=float) if feature in group else np.array([])
    who = "clients with the same " + " and ".join(words) if words else "all past clients"
    if client_value is None:
        sentence = f"{meaning}: not on file for this client."
    else:
        sentence = f"{meaning}: {client_value:,.4g}, {standing(all_values, client_value)} of all past clients."
        if words and len(group_values):
            sentence += f" Among {who}: {standing(group_values, client_value)}."
    # the nearest past clients among those the user asked to compare with
    neighbours = store.neighbours(sk_id, within=group if words else None)
    repaid = int((neighbours["outcome"] == "repaid").sum()) if len(neighbours) else 0
    return Comparison(feature=feature, meaning=meaning, client_value=client_value, all_values=all_values,
                      group_values=group_values, group_words=f"{who}: {len(group):,} clients", sentence=sentence,
                      neighbours=neighbours,
                      neighbours_sentence=(f"Of the {len(neighbours)} past clients most like this one{' among ' + who if words else ''}, "
                             f"{repaid} repaid without difficulty." if len(neighbours) else "No similar past client on file."))


def standing(values: np.ndarray, value: float) -> str:
    if not len(values):
        return "no one to compare with"
    below, above = float((values < value).mean()), float((values > value).mean())
    return f"higher than {below:.0%}" if below >= above else f"lower than {above:.0%}"


# --- what-if ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class WhatIf:
    before: pd.Series
    after: pd.Series
    sentence: str
    reasons: list[str]


WHAT_IF_FIELDS = {"AMT_CREDIT": "the amount of the loan", "AMT_ANNUITY": "the repayment", "AMT_GOODS_PRICE": "the price of the goods"}


def what_if(store: SnapshotStore, sk_id: int, amount: float | None, annuity: float | None, goods_price: float | None) -> WhatIf:
    """Re-score the application with other amounts through the nightly SQL models and the
    champion (the API's on-demand path); the stored decision is not touched. An empty field or
    an application the API would refuse (`plausibility`) raises ValueError with the same words."""
    values = {"AMT_CREDIT": amount, "AMT_ANNUITY": annuity, "AMT_GOODS_PRICE": goods_price}
    empty = [WHAT_IF_FIELDS[c] for c, v in values.items() if _missing(v)]
    if empty:
        raise ValueError(f"Fill in {' and '.join(empty)}.")
    a = store.applicant(sk_id)
    application = a.application.drop(labels=["partition_date"], errors="ignore").to_frame().T
    application = application.assign(**{c: float(v) for c, v in values.items()})
    broken = plausibility.problems(application).iloc[0]
    if broken:
        raise ValueError(" ".join(rule.split(": ", 1)[1][:1].upper() + rule.split(": ", 1)[1][1:] + "." for rule in broken))
    application = ondemand.typed(ondemand.APPLICATION, application)
    after = ondemand.score(ondemand.Batch(application), store.model(), store.dictionary(), store.path,
                           search_counterfactuals=False).iloc[0]
    before = a.row
    low, high = float(before["refer_low"]), float(before["refer_high"])
    was, now = percents(float(before["probability_of_default"]), low, high)[0], percents(float(after["probability_of_default"]), low, high)[0]
    decided = DECISIONS[after["decision"]][1].lower()
    same = after["decision"] == before["decision"]
    if was == now:
        sentence = f"With these amounts the probability of default is unchanged at {now}: {decided}" + (
            ", as before." if same else f" instead of {DECISIONS[before['decision']][1].lower()}.")
    else:
        moved = "falls" if after["probability_of_default"] < before["probability_of_default"] else "rises"
        sentence = (f"With these amounts the probability of default {moved} from {was} to {now}: {decided}"
                    + (", as before." if same else f" instead of {DECISIONS[before['decision']][1].lower()}."))
    return WhatIf(before=before, after=after, sentence=sentence, reasons=scoring.reasons_of(after))


# --- supervisors -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Supervision:
    volumes: pd.DataFrame  # night x decision counts
    probabilities: np.ndarray
    psi: pd.DataFrame
    drift_night: str | None
    fairness: pd.DataFrame
    fairness_flags: list[str]
    history: pd.DataFrame


def supervision(store: SnapshotStore) -> Supervision:
    scored = store.table(Table.SCORED)
    volumes = scored.pivot_table(index="partition_date", columns="decision", values="SK_ID_CURR", aggfunc="count", fill_value=0)
    volumes = volumes.reindex(columns=list(DECISIONS), fill_value=0).sort_index()
    psi = store.table(Table.PSI)
    night = str(psi["partition_date"].max()) if len(psi) else None
    latest = psi[psi["partition_date"] == night].sort_values("psi_excess", ascending=False) if night else psi
    fairness = store.table(Table.MODEL_FAIRNESS)
    by_attribute = {a: rows.to_dict("records") for a, rows in fairness.groupby("attribute", sort=False)}
    flags = ml_fairness.flags(by_attribute, ml_fairness.configured_tolerances())
    return Supervision(volumes=volumes, probabilities=scored["probability_of_default"].to_numpy(), psi=latest,
                       drift_night=night, fairness=fairness, fairness_flags=flags, history=store.table(Table.MODEL_HISTORY))


def _date_time(value) -> str:
    """A stored time (UTC) as people read it: "1 December 2026, 14:07 UTC"."""
    if _missing(value) or value == "":
        return ""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp
    return f"{stamp.day} {stamp:%B %Y, %H:%M} UTC"


def history_table(history: pd.DataFrame) -> pd.DataFrame:
    """The model history in words: dates, AUC to three places, yes or no."""
    return pd.DataFrame({
        "Model": history["model_version"],
        "Trained": history["created_at"].map(_date_time),
        "Cross-validated AUC": history["cv_roc_auc"].map(lambda x: "" if _missing(x) else f"{float(x):.3f}"),
        "Made champion": history["promoted_at"].map(_date_time),
        "Champion now": history["champion"].map(lambda x: "yes" if bool(x) and not _missing(x) else "no"),
    })


def psi_table(psi: pd.DataFrame, meanings: dict[str, str]) -> pd.DataFrame:
    """The latest night's drift per feature, named in words, figures to two places."""
    if psi.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "Information": [meanings.get(f, "The score (probability of default)" if f == "(score)" else humanize(f)) for f in psi["feature"]],
        # several columns can share one meaning (the building's figures): the column tells them apart
        "Column": psi["feature"],
        "Drift (PSI)": psi["psi"].map(lambda x: f"{x:.2f}"),
        "Noise level": psi["noise_floor"].map(lambda x: f"{x:.2f}"),
        "Beyond noise": psi["psi_excess"].map(lambda x: f"{x:.2f}"),
        "Verdict": psi["status"],
    })


ATTRIBUTE_WORDS = {"CODE_GENDER": "Sex", "age_band": "Age"}
GROUP_WORDS = {("CODE_GENDER", "F"): "women", ("CODE_GENDER", "M"): "men", ("CODE_GENDER", "XNA"): "not stated"}


def group_words(attribute: str, group: str) -> str:
    """A fairness group as people say it: "women", "aged 25 to 34"."""
    if attribute == "age_band":
        return f"aged {group.replace('-', ' to ').replace('<', 'under ').replace('+', ' or more')}"
    return GROUP_WORDS.get((attribute, str(group)), str(group))


def fairness_verdict(row: dict) -> str:
    """One sentence per group: which rule it passes or fails, and by how much."""
    failed = []
    if bool(row.get("four_fifths_flag")):
        failed.append(f"approved {row['disparate_impact']:.2f} times as often as the most approved group, under the four-fifths rule (0.80)")
    tolerance = ml_fairness.configured_tolerances()
    if not _missing(row.get("equal_opportunity")) and row["equal_opportunity"] < tolerance.min_equal_opportunity:
        failed.append(f"clients who repaid approved {row['equal_opportunity']:.2f} times as often as in the most approved group "
                      f"(under {tolerance.min_equal_opportunity:.2f})")
    return ("Fails: " + "; ".join(failed) + ".") if failed else "Passes the four-fifths rule and equal opportunity."


def fairness_table(fairness: pd.DataFrame) -> pd.DataFrame:
    records = fairness.to_dict("records")
    return pd.DataFrame({
        "Attribute": [ATTRIBUTE_WORDS.get(a, humanize(a)) for a in fairness["attribute"]],
        "Group": [group_words(r["attribute"], r["group"]) for r in records],
        "Verdict": [fairness_verdict(r) for r in records],
        "Applicants": fairness["applicants"].map(lambda x: f"{int(x):,}"),
        "Approval rate": fairness["approval_rate"].map(lambda x: f"{x:.0%}"),
        "Against the most approved group (four-fifths rule)": fairness["disparate_impact"].map(lambda x: f"{x:.2f} times"),
        "Approval rate of clients who repaid": _column(fairness, "approval_rate_repaid", lambda x: f"{x:.0%}"),
        "Against the most approved group (equal opportunity)": _column(fairness, "equal_opportunity", lambda x: f"{x:.2f} times"),
        "Default rate observed (95 % interval)": [
            f"{r['default_rate']:.1%} ({r['default_rate_low']:.1%}-{r['default_rate_high']:.1%})" if "default_rate_low" in r else ""
            for r in fairness.to_dict("records")],
        "Default rate predicted": _column(fairness, "predicted_default_rate", lambda x: f"{x:.1%}"),
    })


def _column(frame: pd.DataFrame, name: str, write) -> list[str]:
    # models registered before a column existed show it empty
    return [write(x) if not _missing(x) else "" for x in frame[name]] if name in frame else [""] * len(frame)


# --- human review ----------------------------------------------------------------------------

def case_of(store: SnapshotStore, journal: ReviewJournal, sk_id: int) -> review.Case:
    return journal.case(sk_id, str(store.applicant(sk_id).row["decision"]))


def record_review(store: SnapshotStore, journal: ReviewJournal, sk_id: int, action: str, *, user: str, role: str,
                  revision: int, final: str | None = None, reason_codes: tuple[str, ...] = (), note: str = "",
                  channel: str | None = None, received_on: str | None = None) -> review.Case:
    """Record a review action on the application as the snapshot has it; ReviewError says why not."""
    row = store.applicant(sk_id).row
    if action == review.CONTEST and received_on:
        review.check_received_on(pd.Timestamp(received_on).date(), datetime.now(UTC).date())
    return journal.record(sk_id, action, user=user, role=role, model_version=str(row["model_version"]),
                          model_decision=str(row["decision"]), revision=revision, final=final, reason_codes=reason_codes, note=note,
                          channel=channel, received_on=received_on)


def _override(a: review.Action) -> bool:
    return a.action == review.DECIDE and a.model_decision in (review.GRANTED, review.REFUSED) and a.final != a.model_decision


def case_history(journal: ReviewJournal, sk_id: int) -> list[str]:
    """What was done on the case, in words, oldest first (the notes as written: the page escapes them)."""
    lines = []
    for a in journal.actions_of(sk_id):
        if a.action == review.CONTEST:
            how = f" ({a.channel}, received on {review.day_words(a.received_on)})" if a.received_on else ""
            what = f"recorded the client's request for a human review{how}"
        elif a.action == review.RESCORE:
            what = (f"scored the night again with model {a.model_version}: the new score would have it {review.WORDS[a.model_decision]}; "
                    f"the decision that stood ({review.WORDS[a.final]}) stands until a person decides")
        elif _override(a):
            what = f"asked to have it {a.final}, reversing the model: sent to a supervisor for approval"
        else:
            what = {review.DECIDE: f"decided: {a.final}", review.APPROVE: "approved the override",
                    review.SEND_BACK: "sent it back"}.get(a.action, a.action)
        codes = "; ".join(review.REASON_CODES.get(c, c) for c in a.reason_codes)
        lines.append(f"{a.at[:16].replace('T', ' ')} UTC · {a.user} ({a.role or 'client'}) {what}" + (f" · {codes}" if codes else "")
                     + (f" · “{a.note}”" if a.note else ""))
    return lines


def action_outcome(sk_id: int, action: str, case: review.Case) -> str:
    """What an action did, said from the case it left (never "decided" for a request that waits)."""
    words = review.WORDS
    if action == review.DECIDE and case.status == review.WAITING:
        return (f"Sent to a supervisor for approval: application {sk_id} would be {words[case.requested_final]}. A supervisor "
                f"other than you decides; until then the model's decision ({words[case.final_decision]}) stands.")
    if action == review.SEND_BACK:
        return (f"Sent back: application {sk_id} is open again for an advisor; the model's decision "
                f"({words[case.final_decision]}) stands meanwhile.")
    if action == review.CONTEST:
        return (f"Recorded: the client's request for a human review of application {sk_id}. It is in the queue, marked "
                f"contested; the decision ({words[case.final_decision]}) stands until a person decides again.")
    verb = "Override approved" if action == review.APPROVE else "Decided"
    return f"{verb}: application {sk_id} is now {words[case.final_decision]}. {review.standing(case, None)}"


def waiting_sentence(store: SnapshotStore, journal: ReviewJournal, sk_id: int) -> str:
    """How long the case has waited, against the service time ("" once decided)."""
    cases = queue(store, journal).set_index("SK_ID_CURR")
    if sk_id not in cases.index or cases.at[sk_id, "status"] not in (review.OPEN, review.WAITING):
        return ""
    days, service = int(cases.at[sk_id, "working_days_open"]), settings.current().review_service_days
    late = "past" if cases.at[sk_id, "past_service_time"] else "within"
    return (f"Waiting since {pd.Timestamp(cases.at[sk_id, 'opened']):%-d %B %Y}: {wording.plural(days, 'working day')}, "
            f"{late} the service time of {wording.plural(service, 'working day')}.")


@dataclass(frozen=True)
class Workload:
    sentence: str  # counts per state, as the list's work list gives them
    per_reviewer: pd.DataFrame  # in words, one row per reviewer
    overrides: int  # overrides that stand now (approved), from the journal
    as_of: str


def workload(store: SnapshotStore, journal: ReviewJournal) -> Workload:
    """The review queue now, for a supervisor: read live from the journal (no fold, no night)."""
    cases = queue(store, journal)
    actions = journal.actions()
    reviewers = sorted({a.user for a in actions if a.role in review.ROLES})
    waiting = cases[cases["status"] == review.WAITING]
    per_reviewer = pd.DataFrame({
        "Reviewer": reviewers,
        "Decisions recorded": [sum(a.user == u and a.action == review.DECIDE for a in actions) for u in reviewers],
        "Overrides asked": [sum(a.user == u and _override(a) for a in actions) for u in reviewers],
        "Their requests waiting for approval now": [int((waiting["requested_by"] == u).sum()) for u in reviewers],
        "Approved or sent back": [sum(a.user == u and a.action in (review.APPROVE, review.SEND_BACK) for a in actions) for u in reviewers],
    })
    decided = cases[cases["status"] == review.DECIDED]
    overrides = int(((decided["model_decision"] != review.REFER) & (decided["final_decision"] != decided["model_decision"])).sum())
    return Workload(sentence=workload_sentence(cases), per_reviewer=per_reviewer, overrides=overrides,
                    as_of=_date_time(datetime.now(UTC)))


def client_letter(store: SnapshotStore, journal: ReviewJournal, sk_id: int) -> letters.Letter:
    """The letter due to the client now: the decision, or the outcome of the review they asked for."""
    return letters.due(store.applicant(sk_id).row.to_dict(), journal, bool(store.model_summary()["synthetic"]))


# --- back-testing on outcomes ---------------------------------------------------------------------

@dataclass(frozen=True)
class Backtesting:
    vintages: pd.DataFrame  # in words, one row per model version and vintage
    grades: pd.DataFrame  # the newest judged vintage of the newest model version: observed against predicted per grade
    curves: pd.DataFrame  # cumulative default rate by months on book, per grade
    auc_over_time: pd.DataFrame  # per model version and vintage: realized AUC and its interval, development's among the granted
    overrides: pd.DataFrame  # in words: per reviewer, per grade and overall
    sentence: str
    grades_sentence: str
    curves_sentence: str
    as_of: str  # when the back-test was published
    auc_sentence: str = ""  # the realized AUC of each judged vintage against development's, with a verdict


def backtesting(store: SnapshotStore) -> Backtesting | None:
    """What the outcomes say of the decisions, once the back-test has run (else None)."""
    vintages, grades, curves, overrides = (store.beside(snapshot.BACKTEST_SNAPSHOT, t) for t in (
        "backtest_vintages", "backtest_grades", "backtest_curves", "backtest_overrides"))
    if vintages is None or vintages.empty:
        return None
    judged = vintages[vintages["with_outcome"] > 0].sort_values(["vintage", "model_version"])
    latest = judged.iloc[-1] if len(judged) else vintages.sort_values("vintage").iloc[-1]
    per_grade = grades[(grades["model_version"] == latest["model_version"]) & (grades["vintage"] == latest["vintage"])
                       & (grades["grade"] != "all")].sort_values("grade")
    version_curves = curves[curves["model_version"] == latest["model_version"]]

    def auc(r) -> str:
        return "not yet" if pd.isna(r["realized_auc"]) else f"{r['realized_auc']:.3f} ({r['realized_auc_low']:.3f} to {r['realized_auc_high']:.3f})"

    table = pd.DataFrame({
        "Model": vintages["model_version"], "Vintage": vintages["vintage"], "Decisions": vintages["decisions"].map("{:,}".format),
        "Never judged (not granted)": vintages["never_judged"].map("{:,}".format),
        "With an outcome": [f"{w:,} ({s:.0%})" for w, s in zip(vintages["with_outcome"], vintages["share_with_outcome"], strict=True)],
        "Defaults": vintages["defaults"].map("{:,}".format), "Realized AUC (95 % interval)": [auc(r) for _, r in vintages.iterrows()],
        "Development AUC among those granted": vintages["development_granted_auc"].map("{:.3f}".format),
        "PSI of the score": vintages["psi"].map("{:.3f}".format),
        "Verdict": vintages["verdict"]})
    failing = per_grade[per_grade["verdict"].isin(["warn", "fail"])]["grade"].tolist()

    def rate(value) -> str:
        return "no outcome yet" if pd.isna(value) else f"{value:.1%}"

    people = pd.DataFrame({
        "Who or what": [("All reviewers" if s == "overall" else f"{'Reviewer' if s == 'reviewer' else 'Grade'} {v}")
                        for s, v in zip(overrides["segment"], overrides["value"], strict=True)],
        "Decided by people": overrides["decided_by_people"].map("{:,}".format),
        "Overrides": [f"{o:,} ({r:.0%})" if pd.notna(r) else f"{o:,}"
                      for o, r in zip(overrides["overrides"], overrides["override_rate"], strict=True)],
        "Granted against the model": overrides["granted_against_the_model"].map("{:,}".format),
        "Their default rate": overrides["their_default_rate"].map(rate),
        "Default rate of the model's grants": overrides["model_granted_default_rate"].map(rate),
    }) if overrides is not None else pd.DataFrame()
    published = store.path.with_name(snapshot.BACKTEST_SNAPSHOT)
    tolerance = settings.current().backtest_auc_tolerance

    def auc_verdict(r) -> str:
        realized = (f"model {r['model_version']}, vintage {r['vintage']}: realized AUC {r['realized_auc']:.3f} (95 % interval "
                    f"{r['realized_auc_low']:.3f} to {r['realized_auc_high']:.3f}) among the granted, against "
                    f"{r['development_granted_auc']:.3f} in development among those the policy grants")
        if r["realized_auc_high"] < r["development_granted_auc"] - tolerance:
            return realized + f": it no longer ranks as promised (more than {tolerance:.2f} under, beyond its interval)"
        if r["realized_auc_high"] < r["development_granted_auc"]:
            return realized + f": under what development promised, within the tolerance of {tolerance:.2f}; watch it"
        return realized + ": as development promised"

    judged_auc = judged.dropna(subset=["realized_auc"])
    return Backtesting(
        auc_sentence=(wording.sentence("; ".join(auc_verdict(r) for r in judged_auc.to_dict("records")))
                      if len(judged_auc) else "No vintage has enough outcomes yet for its AUC to be judged."),
        as_of=_date_time(pd.Timestamp(published.stat().st_mtime, unit="s", tz="UTC")) if published.exists() else "an unknown day",
        vintages=table, grades=per_grade, curves=version_curves, overrides=people,
        auc_over_time=judged[["model_version", "vintage", "realized_auc", "realized_auc_low", "realized_auc_high",
                              "development_granted_auc"]].dropna(subset=["realized_auc"]),
        sentence=(f"{int(vintages['with_outcome'].sum()):,} granted applications have an outcome so far, "
                  f"{int(vintages['defaults'].sum()):,} with payment difficulties; {int(vintages['never_judged'].sum()):,} "
                  "decisions can never be judged (not granted: no loan, no outcome)."),
        grades_sentence=(f"Model {latest['model_version']}, vintage {latest['vintage']}: " + "; ".join(
            f"grade {r.grade} defaulted {r.observed_rate:.1%} (between {r.observed_low:.1%} and {r.observed_high:.1%}) "
            f"against {r.predicted_rate:.1%} predicted" for r in per_grade.itertuples())
            + (f". Defaulting more than promised: grade {', '.join(failing)}." if failing else ". Every grade within what was promised.")),
        curves_sentence="; ".join(f"grade {g}: " + ", ".join(f"{r.cumulative_default_rate:.1%} by month {r.months_on_book}"
                                                              for r in rows.itertuples())
                                  for g, rows in version_curves.groupby("grade")) + ".")
