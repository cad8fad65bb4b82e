"""What a person reads: reasons in a client's words, true to the model, one per group, in the
client's units; probabilities that never contradict their band; complete and plausible applications."""

import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from credit_dagster.core import plausibility, settings, wording
from credit_dagster.decision import reasons, scoring
from credit_dagster.features import sql_models
from credit_dagster.features.dictionary import build_dictionary
from credit_dagster.model.registry import Registry
from credit_dagster_tests.conftest import SCORED_DAYS, temporary_home
from panel_app import view_model as vm

SCIENTIFIC = re.compile(r"\d\.?\d*e[+-]?\d+", re.IGNORECASE)
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


# --- words and numbers, by hand ---------------------------------------------------------------

def test_a_reason_agrees_with_the_direction_of_risk_or_is_not_given():
    score = ("Your credit score from the first external agency", "score", "-")
    assert wording.reason_sentence(*score, 0.2, 0.5, "EUR") == (
        "Your credit score from the first external agency: in the lowest third of its scale (lower than for most applicants)")
    # a score above most applicants' did not weigh against anyone, whatever its contribution says
    assert wording.reason_sentence(*score, 0.7, 0.5, "EUR") is None
    assert wording.reason_sentence(*score, 0.5, 0.5, "EUR") is None  # typical
    assert wording.reason_sentence(*score, float("nan"), 0.5, "EUR") is None  # missing: never a fault
    amount = ("The loan amount you asked for", "money", "+")
    assert wording.reason_sentence(*amount, 1_250_000.0, 500_000.0, "EUR") == (
        "The loan amount you asked for: 1,250,000 EUR (more than for most applicants)")
    assert wording.reason_sentence(*amount, 100_000.0, 500_000.0, "EUR") is None
    # a document provided like most applicants is no fault; one missing is said plainly
    document = ("You provided document number 3 with the application", "flag", "?")
    assert wording.reason_sentence(*document, 1, 1.0, "EUR") is None
    assert wording.reason_sentence(*document, 0, 1.0, "EUR") == "You provided document number 3 with the application: no"
    assert wording.reason_sentence("Your occupation", "text", "?", "Drivers", None, "EUR") == "Your occupation: driving"
    assert wording.reason_sentence("The kind of organisation you work for", "text", "?", "Trade: type 7", None, "EUR") == (
        "The kind of organisation you work for: trade")
    # a figure the client cannot be shown (the building's normalised measures) is never a reason: too vague to act on
    assert wording.reason_sentence("What is recorded about the building you live in", "none", "?", 0.9, 0.1, "EUR") is None


CATEGORY_COLUMNS = ("NAME_CONTRACT_TYPE", "NAME_INCOME_TYPE", "NAME_EDUCATION_TYPE", "NAME_HOUSING_TYPE", "NAME_FAMILY_STATUS",
                    "OCCUPATION_TYPE", "ORGANIZATION_TYPE")


def test_every_category_value_of_the_synthetic_catalog_is_worded_for_a_client():
    catalog = json.loads((Path(wording.__file__).parents[1] / "synth" / "catalog.json").read_text())
    for table in ("application_train", "application_test"):
        values = {(c, v) for c in CATEGORY_COLUMNS for v in catalog[table][c].get("values", [])}
        assert values and not [cv for cv in values if not wording.worded(cv[1])]
    assert not any(re.search(r"type \d|/|staff$", wording.category_text(v), re.IGNORECASE)
                   for c in CATEGORY_COLUMNS for v in catalog["application_train"][c]["values"])


def test_every_category_value_of_the_real_sample_is_worded_for_a_client(real_dir):
    frame = pd.read_csv(real_dir / "application_test.csv.gz", usecols=list(CATEGORY_COLUMNS))
    train = pd.read_csv(real_dir / "application_train.csv.gz", usecols=list(CATEGORY_COLUMNS))
    unworded = {(c, v) for f in (frame, train) for c in CATEGORY_COLUMNS for v in f[c].dropna().unique() if not wording.worded(v)}
    assert not unworded, sorted(unworded)


@pytest.mark.parametrize("value, unit, expected", [
    (34210.0, "money", "34,210 EUR"), (0.01735, "percent", "1.7%"), (0.25, "percent", "25%"), (0.0049, "percent", "0.5%"),
    (-227.0, "days_ago", "7 months ago"),
    (-4000.0, "duration", "11.0 years"), (3.4, "times", "3.4 times"), (12.0, "months", "12 months"), (2.0, "delay_step", "31 to 60 days"),
    (1234567.0, "count", "1,234,567"), (0.5, "none", None), ("Y", "flag", "yes"), (1e12, "number", "1,000,000,000,000.00"),
])
def test_values_are_written_in_the_clients_units(value, unit, expected):
    assert wording.value_text(value, unit, "EUR") == expected
    assert expected is None or not SCIENTIFIC.search(expected)


def test_a_column_s_values_that_may_be_reasons_are_those_a_sentence_is_made_for():
    """`may_be_reason` (a night asks it of whole columns) against `reason_sentence`, value by value."""
    numbers = np.array([np.nan, -np.nan, -1.5, -0.0, 0.0, 0.5, 1.0, 2.0, 1e12, -1e-300])
    texts = np.array(["Y", "N", None, np.nan, "Working", "1"], dtype=object)
    for unit in wording.UNITS:
        for direction in ("+", "-", "?"):
            for median in (None, 0.0, 0.5, 1.0):
                said = [wording.reason_sentence("m", unit, direction, v, median, "EUR") is not None for v in numbers.tolist()]
                assert wording.may_be_reason(unit, direction, numbers, median).tolist() == said, (unit, direction, median)
                # texts: never False where a sentence is made (a text in a numeric field is left to the sentence)
                may = wording.may_be_reason(unit, direction, texts, median).tolist()
                for value, maybe in zip(texts.tolist(), may, strict=True):
                    if not maybe:
                        assert wording.reason_sentence("m", unit, direction, value, median, "EUR") is None, (unit, median, value)


def test_every_header_unit_is_known(tmp_path):
    assert all(doc.unit in wording.UNITS for m in sql_models.discover() for doc in m.columns)
    path = tmp_path / "m.sql"
    path.write_text("-- X (+, furlongs): a distance\nselect 1 as X\n")
    with pytest.raises(sql_models.SqlModelError, match="unit 'furlongs'"):
        sql_models.parse_model(path, tmp_path)


@pytest.mark.parametrize("p", [0.075, 0.07499999, 0.0750001, 0.095, 0.0949999, 0.09500001, 0.0851234])
def test_the_band_sentence_agrees_with_the_decision_at_the_thresholds(p):
    low, high = 0.075, 0.095
    decision = scoring.Policy(low=low, high=high).decide(np.array([p]))[0]
    shown, lo, hi = (float(x.rstrip(" %")) for x in vm.percents(p, low, high))
    said = scoring.GRANTED if shown < lo else scoring.REFUSED if shown >= hi else scoring.REFER
    assert said == decision, (p, vm.band_sentence(p, low, high))
    assert vm.percents(p, low, high)[0] in vm.band_sentence(p, low, high)


def test_counts_are_plural_only_when_more_than_one():
    assert wording.plural(1, "application") == "1 application"
    assert wording.plural(10444, "application") == "10,444 applications"


# --- complete and plausible applications --------------------------------------------------------

def test_incomplete_and_implausible_applications_are_named():
    frame = pd.DataFrame([
        {"SK_ID_CURR": 1, "AMT_CREDIT": 1000.0, "AMT_ANNUITY": 100.0},
        {"SK_ID_CURR": 2, "NAME_CONTRACT_TYPE": "Cash loans", "AMT_CREDIT": 1e12, "AMT_ANNUITY": 2e12, "AMT_INCOME_TOTAL": 1e5,
         "NAME_INCOME_TYPE": "Working", "DAYS_BIRTH": -12000, "DAYS_EMPLOYED": 365243},
        {"SK_ID_CURR": 3, "NAME_CONTRACT_TYPE": "Cash loans", "AMT_CREDIT": 500000.0, "AMT_ANNUITY": 25000.0,
         "AMT_INCOME_TOTAL": 1e5, "NAME_INCOME_TYPE": "Working", "DAYS_BIRTH": -12000, "DAYS_EMPLOYED": -400},
    ])
    missing, broken = plausibility.missing_required(frame), plausibility.problems(frame)
    assert set(missing[0]) == {"NAME_CONTRACT_TYPE", "AMT_INCOME_TOTAL", "NAME_INCOME_TYPE", "DAYS_BIRTH", "DAYS_EMPLOYED"}
    assert missing[1] == [] and missing[2] == [] and broken[2] == []
    assert any(b.startswith("AMT_CREDIT:") for b in broken[1]) and any("less than the loan amount" in b for b in broken[1])
    assert plausibility.referral_reason(missing[0], broken[0]).startswith("Incomplete application: the kind of loan")


def test_a_table_check_counts_each_rule_and_names_the_applicants():
    frame = pd.DataFrame({"SK_ID_CURR": [7, 8], "NAME_CONTRACT_TYPE": ["Cash loans"] * 2, "AMT_CREDIT": [5e5, 5e5],
                          "AMT_ANNUITY": [np.nan, 6e5], "AMT_INCOME_TOTAL": [1e5] * 2, "NAME_INCOME_TYPE": ["Working"] * 2,
                          "DAYS_BIRTH": [-12000] * 2, "DAYS_EMPLOYED": [-400] * 2})
    counts, examples = plausibility.findings(frame)
    assert counts == {"AMT_ANNUITY: required, not given": 1, "AMT_ANNUITY: the repayment must be less than the loan amount": 1}
    assert examples[0].startswith("SK_ID_CURR 7: AMT_ANNUITY") and examples[1].startswith("SK_ID_CURR 8:")


def check_monotone_in_the_amount(home, day: str) -> None:
    """Every applicant of the night asking for more, with income, term and goods price fixed,
    is never scored safer, through the very SQL models and champion of the night."""
    from credit_dagster.decision import ondemand

    with temporary_home(home):
        model = Registry(settings.models_dir()).load("champion")
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        apps = con.execute(f"select * from drop_{day.replace('-', '')}.application_test order by SK_ID_CURR").df()
        dictionary = con.execute("select * from features.feature_dictionary").df()
    apps = apps[apps["AMT_ANNUITY"].notna()]
    pds = []
    for factor in (1.0, 1.25, 2.0, 5.0):
        asked = apps.assign(AMT_CREDIT=apps["AMT_CREDIT"] * factor, AMT_ANNUITY=apps["AMT_ANNUITY"] * factor)
        scored = ondemand.score(ondemand.Batch(ondemand.typed(ondemand.APPLICATION, asked)), model, dictionary,
                                home / "serving" / "serving.duckdb", search_counterfactuals=False)
        pds.append(scored["probability_of_default"].to_numpy())
    steps = np.diff(np.vstack(pds), axis=0)
    assert (steps >= -1e-12).all(), f"{int((steps < -1e-12).sum())} larger loans scored safer"
    assert (pds[-1] > pds[0]).mean() > 0.5  # and the amount does weigh


def test_a_larger_loan_never_looks_safer(scored_home):
    check_monotone_in_the_amount(scored_home, SCORED_DAYS[0])


@pytest.mark.real_sample
def test_a_larger_loan_never_looks_safer_to_real_applicants(real_scored):
    check_monotone_in_the_amount(real_scored[0], real_scored[1])


def test_the_night_refers_an_incomplete_application_and_never_grants_it(scored_home):
    with temporary_home(scored_home):
        model = Registry(settings.models_dir()).load("champion")
        with duckdb.connect(str(scored_home / "warehouse.duckdb"), read_only=True) as con:
            schema = "drop_" + SCORED_DAYS[0].replace("-", "") + "_features"
            features = con.execute(f"select * from {schema}.application_features order by SK_ID_CURR").df()
            dictionary = con.execute("select * from features.feature_dictionary").df()
    before = scoring.score_frame(model, features, dictionary)
    granted = before["decision"] == scoring.GRANTED
    assert granted.any()
    incomplete = features.copy()
    incomplete.loc[granted.to_numpy(), "AMT_INCOME_TOTAL"] = np.nan
    after = scoring.score_frame(model, incomplete, dictionary)
    assert (after.loc[granted, "decision"] == scoring.REFER).all()
    assert after.loc[granted, "reason_1"].str.startswith("Incomplete application: the income not given").all()
    assert (after.loc[~granted, "decision"] == before.loc[~granted, "decision"]).all()


# --- a whole night -----------------------------------------------------------------------------

def check_night(home, day: str, kaggle_descriptions: set[str]) -> None:
    """Every scored application of the night: reasons from the SQL headers only (never Kaggle's
    descriptions), each raising the risk with wording in its direction, one per group, four when
    four groups could honestly be given, and no scientific notation."""
    with temporary_home(home):
        model = Registry(settings.models_dir()).load("champion")
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        schema = "drop_" + day.replace("-", "") + "_features"
        features = con.execute(f"select * from {schema}.application_features order by SK_ID_CURR").df()
        dictionary = con.execute("select * from features.feature_dictionary").df()
        scored = con.execute("select * from scoring.scored_applications where partition_date = ? order by SK_ID_CURR", [day]).df()
        bars = con.execute("select label from scoring.applicant_contributions where partition_date = ?", [day]).df()
    assert list(scored["SK_ID_CURR"]) == list(features["SK_ID_CURR"])
    info = dictionary.set_index("feature")
    assert info["documented"].all(), info.index[~info["documented"]].tolist()
    assert not set(info["meaning"]) & kaggle_descriptions
    matrix = model.matrix(features)
    contributions = model.ensemble.contributions(matrix)[:, : matrix.shape[1]]
    column = {f: j for j, f in enumerate(matrix.columns)}
    medians = model.metadata.feature_medians
    texts = scored[[f"reason_{i}" for i in range(1, 5)]]
    assert not texts.stack().map(lambda t: any(t.startswith(k) for k in kaggle_descriptions)).any()
    assert not texts.stack().str.contains("typical value|not known|e\\+", regex=True).any()
    assert not bars["label"].dropna().map(lambda t: bool(SCIENTIFIC.search(t))).any()
    groups = info["reason_group"]
    absent = {k: (pd.to_numeric(features[h.present_column], errors="coerce").fillna(0) == 0).to_numpy()
              for k, h in enumerate(reasons.HISTORIES)}
    kind = {f: next((k for k, h in enumerate(reasons.HISTORIES) if f.startswith(h.prefixes)), None) for f in matrix.columns}
    members_of = {g: [f for f in column if groups[f] == g] for g in dict.fromkeys(groups[f] for f in column)}
    protected = {f: bool(info.at[f, "protected"]) for f in column}
    values, said = matrix.to_numpy(dtype=object), {}

    def sentence(f: str, value) -> str | None:  # made once per feature and value (floats by their bits)
        key = (f, value.hex() if isinstance(value, float) else value)
        if key not in said:
            said[key] = wording.reason_sentence(info.at[f, "meaning"], info.at[f, "unit"], info.at[f, "direction"], value,
                                                medians.get(f), settings.current().currency)
        return said[key]

    full = 0
    for r, row in enumerate(scored.to_dict("records")):
        names = [n for n in (row["reason_features"] or "").split(",") if n and n != "application"]
        worded = scoring.reasons_of(row)[-len(names):] if names else []
        assert len({groups[n] for n in names}) == len(names), (row["SK_ID_CURR"], names)
        for name, text in zip(names, worded, strict=True):
            j = column[name]
            assert contributions[r, j] > 0, (row["SK_ID_CURR"], name)
            assert text.startswith(info.at[name, "meaning"])
            direction, unit = info.at[name, "direction"], info.at[name, "unit"]
            if direction in "+-" and unit not in ("flag", "text"):
                words = wording.UNITS[unit][1 if direction == "+" else 2]
                assert f"({words} for most applicants)" in text, (name, text)
        # the oracle, row by row: the groups that raised the risk, most first, each worded by its
        # member that raised it most among those with a sentence; four whenever four such groups exist
        sums: dict[str, float] = {}
        for f, j in column.items():
            if kind[f] is None or not absent[kind[f]][r]:
                sums[groups[f]] = sums.get(groups[f], 0.0) + contributions[r, j]
        expected: list[str] = []
        for group, total in sorted(sums.items(), key=lambda item: -item[1]):
            if total <= 0 or len(expected) == 4:
                break
            members = [f for f in members_of[group] if contributions[r, column[f]] > 0 and not protected[f]
                       and (kind[f] is None or not absent[kind[f]][r])]
            # the strongest first (sorted is stable: on a tie, the first column), the first with a sentence speaks
            speaker = next((f for f in sorted(members, key=lambda f: -contributions[r, column[f]]) if sentence(f, values[r, column[f]])), None)
            if speaker:
                expected.append(speaker)
        assert names == expected[: 4 - (row["reason_features"] or "").startswith("application")], (row["SK_ID_CURR"], names)
        full += len(names) == 4
    assert full > 0


def test_a_whole_synthetic_night_is_explained_truthfully(scored_home):
    check_night(scored_home, SCORED_DAYS[0], set())


def test_no_application_column_is_left_to_kaggles_description(synthetic_dir):
    from credit_dagster.core.kaggle_columns import APPLICATION_TRAIN_COLUMNS

    columns = [c for c in APPLICATION_TRAIN_COLUMNS if c not in ("SK_ID_CURR", "TARGET")]
    dictionary = build_dictionary(sql_models.discover(), columns).set_index("feature")
    assert dictionary["documented"].all(), dictionary.index[~dictionary["documented"]].tolist()
    assert dictionary.at["FLAG_DOCUMENT_3", "meaning"] == "You provided document number 3 with the application"
    assert dictionary.at["EXT_SOURCE_1", "reason_group"] == dictionary.at["EXT_SOURCE_3", "reason_group"] == "external credit scores"
    assert not dictionary.loc[["WEEKDAY_APPR_PROCESS_START", "HOUR_APPR_PROCESS_START"], "model_input"].any()


@pytest.mark.real_sample
def test_a_whole_real_night_is_explained_truthfully(real_scored):
    home, day, descriptions = real_scored
    check_night(home, day, descriptions)
