"""One definition of a complete and plausible application, for every place that takes one.

The API refuses an on-demand application that breaks a rule (422, naming it), the dashboard's
what-if shows the same message in its form, the night refers such an application to an advisor
(it is scored, never granted automatically) and the ingestion checks count them. The bounds are
the product's: wider than anything in Kaggle's data (amounts 45,000 to 4,050,000; 8 to 45
repayments), narrow enough that a typing slip (an amount of 1e12, a repayment above the loan)
cannot reach the model, whose trees would score it like the largest amount they ever saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# What a lender needs before deciding: an application without one of them is incomplete, not low-risk.
REQUIRED = {
    "NAME_CONTRACT_TYPE": "the kind of loan", "AMT_CREDIT": "the loan amount", "AMT_ANNUITY": "the repayment",
    "AMT_INCOME_TOTAL": "the income", "NAME_INCOME_TYPE": "the kind of income", "DAYS_BIRTH": "the date of birth",
    "DAYS_EMPLOYED": "the employment",
}
# the other columns the rules read
CHECKED = ("AMT_GOODS_PRICE", "CNT_CHILDREN", "CNT_FAM_MEMBERS")
NOT_EMPLOYED = 365243  # Kaggle's DAYS_EMPLOYED for clients not in employment (mostly pensioners)


@dataclass(frozen=True)
class Product:
    """What the lender offers: amounts in the data's currency, a term in repayments."""

    min_credit: float = 1_000
    max_credit: float = 10_000_000
    min_term: float = 3  # repayments (AMT_CREDIT / AMT_ANNUITY)
    max_term: float = 120
    max_income: float = 200_000_000  # yearly; Kaggle's largest is 117 million
    max_goods_price: float = 10_000_000
    min_age: float = 18
    max_age: float = 100


PRODUCT = Product()


def _num(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The column as floats, NaN where missing or not a number."""
    if column not in frame:
        return np.full(len(frame), np.nan)
    values = frame[column]
    if not pd.api.types.is_numeric_dtype(values.dtype):
        values = pd.to_numeric(values, errors="coerce")
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def missing_required(frame: pd.DataFrame) -> pd.Series:
    """Per row, what a lender needs and the application does not give (an empty list if complete)."""
    absent = {c: (frame[c].isna() if c in frame else pd.Series(True, index=frame.index)) for c in REQUIRED}
    if "APP_NOT_EMPLOYED" in frame:  # the feature tables make Kaggle's "not employed" code missing and say it here
        absent["DAYS_EMPLOYED"] = absent["DAYS_EMPLOYED"] & (frame["APP_NOT_EMPLOYED"] != 1).fillna(True)
    lacking = np.column_stack([absent[c].to_numpy(dtype=bool) for c in REQUIRED]) if len(frame) else np.zeros((0, len(REQUIRED)), bool)
    return _named(lacking, list(REQUIRED), frame.index)


def problems(frame: pd.DataFrame, product: Product = PRODUCT) -> pd.Series:
    """Per row, the rules its given values break, each naming the field (an empty list if none).
    A missing value breaks no rule here (NaN compares false): `missing_required` says what is missing.
    On NumPy arrays: the API asks it of each application, where pandas' per-operation cost was
    most of its time."""
    credit, annuity, income = _num(frame, "AMT_CREDIT"), _num(frame, "AMT_ANNUITY"), _num(frame, "AMT_INCOME_TOTAL")
    goods, birth, employed = _num(frame, "AMT_GOODS_PRICE"), _num(frame, "DAYS_BIRTH"), _num(frame, "DAYS_EMPLOYED")
    children, members = _num(frame, "CNT_CHILDREN"), _num(frame, "CNT_FAM_MEMBERS")
    with np.errstate(divide="ignore", invalid="ignore"):  # a repayment of 0 has its own rule
        term, age = credit / annuity, -birth / 365.25
    years_employed = np.where(employed != NOT_EMPLOYED, -employed / 365.25, np.nan)
    rules = [
        ((credit < product.min_credit) | (credit > product.max_credit),
         f"AMT_CREDIT: the loan amount must be between {product.min_credit:,.0f} and {product.max_credit:,.0f}"),
        (annuity <= 0, "AMT_ANNUITY: the repayment must be more than 0"),
        ((annuity > 0) & (annuity >= credit), "AMT_ANNUITY: the repayment must be less than the loan amount"),
        ((annuity > 0) & (annuity < credit) & ((term < product.min_term) | (term > product.max_term)),
         f"AMT_ANNUITY: the loan must be repaid in {product.min_term:g} to {product.max_term:g} repayments "
         "(the loan amount divided by the repayment)"),
        ((income <= 0) | (income > product.max_income),
         f"AMT_INCOME_TOTAL: the yearly income must be more than 0 and at most {product.max_income:,.0f}"),
        ((goods < 0) | (goods > product.max_goods_price),
         f"AMT_GOODS_PRICE: the price of the goods must be between 0 and {product.max_goods_price:,.0f}"),
        ((age < product.min_age) | (age > product.max_age),
         f"DAYS_BIRTH: the applicant must be {product.min_age:g} to {product.max_age:g} years old"),
        ((employed > 0) & (employed != NOT_EMPLOYED), "DAYS_EMPLOYED: the start of the employment cannot be in the future"),
        (years_employed > age - 14, "DAYS_EMPLOYED: the employment cannot have started before the age of 14"),
        (children < 0, "CNT_CHILDREN: the number of children cannot be negative"),
        (members < 1, "CNT_FAM_MEMBERS: a household has at least one member"),
        ((children >= 0) & (members >= 1) & (children >= members),
         "CNT_CHILDREN: the household must count more people than the children"),
    ]
    hits = np.column_stack([mask for mask, _ in rules]) if len(frame) else np.zeros((0, len(rules)), bool)
    return _named(hits, [text for _, text in rules], frame.index)


def _named(hits: np.ndarray, names: list[str], index: pd.Index) -> pd.Series:
    """Per row, the names of its columns of `hits` that are true (a list of its own, empty for
    most rows: a night's rows are not gone through one by one)."""
    named: list[list[str]] = [[] for _ in range(len(hits))]
    for r in np.flatnonzero(hits.any(axis=1)).tolist():
        named[r] = [name for name, hit in zip(names, hits[r].tolist(), strict=True) if hit]
    return pd.Series(named, index=index, dtype=object)


def referral_reason(missing: list[str], broken: list[str]) -> str | None:
    """The reason given when an application cannot be decided by the model alone, or None."""
    if missing:
        return "Incomplete application: " + ", ".join(REQUIRED[c] for c in missing) + " not given"
    if broken:
        return "Application to check: " + "; ".join(b.split(": ", 1)[1] for b in broken)
    return None


def findings(frame: pd.DataFrame, examples: int = 10) -> tuple[dict[str, int], list[str]]:
    """Rows per broken rule (a missing required field counts as a rule of its own) and the first
    applicants concerned, for a data-quality check over a whole table."""
    missing, broken = missing_required(frame), problems(frame)
    counts: dict[str, int] = {}
    shown = []
    for i, (lacks, rules) in enumerate(zip(missing, broken, strict=True)):
        said = [f"{c}: required, not given" for c in lacks] + rules
        for rule in said:
            counts[rule] = counts.get(rule, 0) + 1
        if said and len(shown) < examples:
            shown.append(f"SK_ID_CURR {frame['SK_ID_CURR'].iloc[i]}: " + "; ".join(said))
    return counts, shown
