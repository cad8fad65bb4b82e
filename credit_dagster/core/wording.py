"""Words a client reads: a value in the client's units, and the reason a feature gives.

Each feature's unit is declared in its SQL header (`-- AMT_CREDIT (+, money) [loan amount]: ...`).
A reason says how the client's value compares with most applicants', so it must agree with the
feature's direction of risk: a feature whose higher values lower the risk can only weigh against
an application whose value is lower than most. A typical value, a missing value or a wording that
would contradict the contribution is never given as a reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pandas as pd


def _years(days: float) -> str:
    years = days / 365.25
    if years >= 1:
        return f"{years:.1f} years"
    months = round(days / 30.44)
    return f"{months} month{'s' if months != 1 else ''}"


def _delay_step(step: float) -> str:
    # bureau_balance STATUS: 1 is 1-30 days past due, ..., 5 is more than 120 days (or sold, written off)
    step = int(step)
    if step <= 0:
        return "no delay"
    return "more than 120 days" if step >= 5 else f"{30 * (step - 1) + 1} to {30 * step} days"


def _count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _percent(value: float) -> str:
    return f"{value:.1%}" if 0 < abs(value) < 0.1 else f"{value:.0%}"


def _flag(value) -> str:
    return "yes" if value in (1, "Y", "1", True) else "no"


def _score_band(value: float) -> str:
    # an external agency's score is no figure a client can check: said as where it sits on its scale
    return "in the lowest third of its scale" if value < 1 / 3 else "in the middle of its scale" if value < 2 / 3 else \
        "in the highest third of its scale"


# The application's category values as a client says them (Kaggle's own values are data labels:
# "Laborers", "Trade: type 7"). Reviewed like the features' wording; a test fails on any value of
# the real sample or the synthetic catalog without an entry (or the organisation rule below).
CATEGORY_WORDS = {
    # NAME_CONTRACT_TYPE
    "Cash loans": "a cash loan", "Revolving loans": "revolving credit",
    # NAME_INCOME_TYPE
    "Working": "employed", "Commercial associate": "in business or self-employed", "Pensioner": "a pension",
    "State servant": "employed in the public service", "Student": "a student", "Unemployed": "not in work",
    "Businessman": "a business owner", "Maternity leave": "on parental leave",
    # NAME_EDUCATION_TYPE
    "Secondary / secondary special": "secondary school", "Higher education": "a university degree",
    "Incomplete higher": "university studies not completed", "Lower secondary": "lower secondary school",
    "Academic degree": "a postgraduate degree",
    # NAME_HOUSING_TYPE
    "House / apartment": "your own house or flat", "With parents": "with your parents", "Municipal apartment": "municipal housing",
    "Rented apartment": "a rented flat", "Office apartment": "housing from your employer", "Co-op apartment": "cooperative housing",
    # NAME_FAMILY_STATUS
    "Married": "married", "Single / not married": "single", "Civil marriage": "in a civil partnership", "Separated": "separated",
    "Widow": "widowed", "Unknown": "not given",
    # OCCUPATION_TYPE
    "Laborers": "manual work", "Sales staff": "sales", "Core staff": "office or staff work", "Managers": "management",
    "Drivers": "driving", "High skill tech staff": "skilled technical work", "Accountants": "accounting", "Medicine staff": "health care",
    "Security staff": "security", "Cooking staff": "catering", "Cleaning staff": "cleaning", "Private service staff": "personal services",
    "Low-skill Laborers": "unskilled manual work", "Secretaries": "secretarial work", "Waiters/barmen staff": "waiting and bar work",
    "Realty agents": "estate agency", "HR staff": "human resources", "IT staff": "information technology",
    # ORGANIZATION_TYPE, besides the numbered sectors (`category_text`)
    "XNA": "not given", "Self-employed": "self-employed", "Other": "another kind of organisation", "Medicine": "health care",
    "Government": "government", "School": "a school", "Kindergarten": "a nursery", "Construction": "construction", "Military": "the armed forces",
    "Security": "security", "Housing": "housing", "Police": "the police", "Bank": "a bank", "Security Ministries": "a security ministry",
    "Agriculture": "agriculture", "Postal": "postal services", "Services": "services", "Restaurant": "a restaurant",
    "University": "a university", "Electricity": "the electricity sector", "Hotel": "a hotel", "Telecom": "telecommunications",
    "Emergency": "emergency services", "Insurance": "insurance", "Advertising": "advertising", "Realtor": "estate agency",
    "Culture": "culture", "Legal Services": "legal services", "Mobile": "mobile communications", "Cleaning": "cleaning",
    "Religion": "a religious organisation",
}
# Kaggle numbered anonymised sectors ("Trade: type 7", "Business Entity Type 3"): the sector is all a client recognises
_NUMBERED = re.compile(r"^(Business Entity|Trade|Industry|Transport):? [Tt]ype \d+$")
_SECTORS = {"Business Entity": "a business", "Trade": "trade", "Industry": "industry", "Transport": "transport"}


def category_text(value) -> str:
    """A category value as a client reads it; a value without a wording is shown as given."""
    text = str(value)
    if text in CATEGORY_WORDS:
        return CATEGORY_WORDS[text]
    numbered = _NUMBERED.match(text)
    return _SECTORS[numbered.group(1)] if numbered else text


def worded(value) -> bool:
    """Whether a category value has a client's wording (the test over every known value uses it)."""
    return str(value) in CATEGORY_WORDS or bool(_NUMBERED.match(str(value)))


MORE, FEWER, HIGHER, LOWER = "more than", "fewer than", "higher than", "lower than"
# unit -> (how a value is written, words when it is above most applicants', below most applicants')
UNITS: dict[str, tuple[Callable | None, str, str]] = {
    "money": (None, MORE, "less than"),  # formatted with the currency, see `value_text`
    "times": (lambda v: f"{v:,.1f} times", HIGHER, LOWER),
    "percent": (_percent, HIGHER, LOWER),
    "years": (lambda v: _years(v * 365.25), MORE, FEWER),
    "duration": (lambda v: _years(-v), "shorter than", "longer than"),  # Kaggle's negative day counts
    "days_ago": (lambda v: f"{_years(-v)} ago", "more recent than", "longer ago than"),
    "days": (lambda v: _years(v) if v >= 730 else f"{v:,.0f} days", "longer than", "shorter than"),
    "months": (lambda v: f"{v:,.0f} months", MORE, FEWER),
    "count": (_count, MORE, FEWER),
    "score": (_score_band, HIGHER, LOWER),
    "rating": (lambda v: f"{v:.0f}", "worse than", "better than"),
    "delay_step": (_delay_step, "longer than", "shorter than"),
    "flag": (_flag, "", ""),
    "text": (category_text, "", ""),
    "none": (None, HIGHER, LOWER),  # not shown as a number (e.g. normalised building figures)
    "number": (lambda v: f"{v:,.2f}", HIGHER, LOWER),
}


def missing(value) -> bool:
    if isinstance(value, float):  # numpy's float64 too: the common case, without pandas' general test
        return math.isnan(value)
    if isinstance(value, int | str | np.integer):
        return False
    return value is None or bool(pd.isna(value))


def money(value, currency: str) -> str:
    return "not given" if missing(value) else f"{value:,.0f} {currency}"


def value_text(value, unit: str, currency: str) -> str | None:
    """The value as a client reads it, or None when the unit is not shown (or it is missing)."""
    if missing(value):
        return None
    if unit == "money":
        return money(value, currency)
    if isinstance(value, str) and unit not in ("text", "flag"):
        return value  # a category in a field declared as a number: shown as given
    write = UNITS.get(unit, UNITS["number"])[0]
    if write is None:
        return None
    return write(value if unit in ("text", "flag") else float(value))


def reason_sentence(meaning: str, unit: str, direction: str, value, median: float | None, currency: str) -> str | None:
    """What a feature says against an application, or None when it cannot honestly be a reason:
    the value is missing or typical, or its comparison with most applicants contradicts the
    feature's direction of risk (a `(-)` feature above most applicants' did not weigh against it)."""
    return reason_sentences(meaning, unit, direction, [value], median, currency)[0]


def reason_sentences(meaning: str, unit: str, direction: str, values: list, median: float | None, currency: str) -> list[str | None]:
    """`reason_sentence` of each of a feature's values (a night words a feature's values together:
    what depends on the feature alone is decided once)."""
    if unit == "text":
        return [None if missing(v) else f"{meaning}: {category_text(v)}" for v in values]
    if unit == "flag":  # what most applicants answer is no fault
        return [None if missing(v) or (median is not None and not isinstance(v, str) and float(v) == median)
                else f"{meaning}: {_flag(v)}" for v in values]
    if median is None or unit == "none":
        return [None] * len(values)  # nothing to say how it compares, or a figure the client cannot be shown: too vague to act on
    above, below = UNITS.get(unit, UNITS["number"])[1:]
    said: list[str | None] = []
    for v in values:
        value = None if missing(v) else float(v)
        if value is None or value == median or (direction == "+" and value < median) or (direction == "-" and value > median):
            said.append(None)
            continue
        compared = f"{above if value > median else below} for most applicants"
        shown = value_text(value, unit, currency)
        said.append(f"{meaning}: {shown} ({compared})" if shown else f"{meaning} ({compared})")
    return said


def may_be_reason(unit: str, direction: str, values: np.ndarray, median: float | None) -> np.ndarray:
    """Whether `reason_sentence` may word each of a column's values (a night asks it of whole
    columns before wording any): its rules above, for arrays; True where only the sentence can
    tell (a text in a numeric field)."""
    said = ~np.isnan(values) if values.dtype == np.float64 else ~pd.isna(values)
    if unit == "text" or (unit == "flag" and median is None):
        return said
    if median is None or unit == "none":
        return np.zeros(len(values), dtype=bool)
    if values.dtype != np.float64:
        return said
    said &= values != median
    if unit == "flag":
        return said
    if direction == "+":
        said &= values > median
    elif direction == "-":
        said &= values < median
    return said


def bar_texts(meaning: str, unit: str, value, currency: str) -> tuple[str | None, str]:
    """A chart's bar for one piece of information: the client's value as shown (`value_text`)
    and the bar's label, its meaning and that value."""
    if missing(value):
        return None, f"{meaning}: not on file"
    shown = value_text(value, unit, currency)
    return shown, f"{meaning}: {shown}" if shown else meaning


def percents(value: float, *bounds: float) -> tuple[str, ...]:
    """`value` and `bounds` as percentages that compare as the numbers do: one decimal, or two
    when one would blur a comparison; a value still rounded onto a bound it is not on is moved
    one hundredth away from it, to its own side (7.4999 % reads "7.49 %" beside "granted under
    7.50 %", never "7.50 %")."""
    for decimals in (1, 2):
        shown = round(100 * value, decimals)
        marks = [round(100 * b, decimals) for b in bounds]
        if all((shown < m) == (value < b) and (shown > m) == (value > b) for m, b in zip(marks, bounds, strict=True)):
            break
    else:
        for m, b in zip(marks, bounds, strict=True):
            if value < b and shown >= m:
                shown = round(m - 0.01, 2)
            elif value > b and shown <= m:
                shown = round(m + 0.01, 2)
    return tuple(f"{x:.{decimals}f} %" for x in (shown, *marks))


def sentence(text: str) -> str:
    """`text` as a sentence: its first letter a capital (the rest as it is), a full stop at the end."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def plural(count: int, word: str, words: str | None = None) -> str:
    """`1 application`, `2 applications`, `10,444 applications`."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"
