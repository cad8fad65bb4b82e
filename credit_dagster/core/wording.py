"""Words a client reads: a value in the client's units, and the reason a feature gives.

Each feature's unit is declared in its SQL header (`-- AMT_CREDIT (+, money) [loan amount]: ...`).
A reason says how the client's value compares with most applicants', so it must agree with the
feature's direction of risk: a feature whose higher values lower the risk can only weigh against
an application whose value is lower than most. A typical value, a missing value or a wording that
would contradict the contribution is never given as a reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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
    "score": (lambda v: f"{v:.2f} on a scale from 0 to 1", HIGHER, LOWER),
    "rating": (lambda v: f"{v:.0f}", "worse than", "better than"),
    "delay_step": (_delay_step, "longer than", "shorter than"),
    "flag": (_flag, "", ""),
    "text": (str, "", ""),
    "none": (None, HIGHER, LOWER),  # not shown as a number (e.g. normalised building figures)
    "number": (lambda v: f"{v:,.2f}", HIGHER, LOWER),
}


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or bool(pd.isna(value))


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
    if missing(value):
        return None
    if unit == "text":
        return f"{meaning}: {value}"
    if unit == "flag":
        if median is not None and not isinstance(value, str) and float(value) == median:
            return None  # what most applicants answer is no fault
        return f"{meaning}: {_flag(value)}"
    if median is None:
        return None  # nothing to say how it compares
    value = float(value)
    if value == median:
        return None
    higher = value > median
    if (direction == "+" and not higher) or (direction == "-" and higher):
        return None
    words = UNITS.get(unit, UNITS["number"])[1 if higher else 2]
    shown = value_text(value, unit, currency)
    compared = f"{words} for most applicants"
    return f"{meaning}: {shown} ({compared})" if shown else f"{meaning} ({compared})"


def bar_label(meaning: str, unit: str, value, currency: str) -> str:
    """A chart's label for one piece of information: its meaning and the client's value."""
    if missing(value):
        return f"{meaning}: not on file"
    shown = value_text(value, unit, currency)
    return f"{meaning}: {shown}" if shown else meaning


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


def plural(count: int, word: str, words: str | None = None) -> str:
    """`1 application`, `2 applications`, `10,444 applications`."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"
