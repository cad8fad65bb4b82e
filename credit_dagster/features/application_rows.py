"""`application_clean.sql` computed on a few applications in NumPy, and `application_features.sql`'s
join as a `Mirror`: for on-demand scoring and the counterfactual variants.

The SQL stays the one definition: the night builds every applicant's features with it, and this
mirror exists only because DuckDB spends 25-35 ms binding and running the 330-column features
query for one application, where NumPy spends about one. `Workspace` (decision/ondemand.py)
uses it only once the SQL has confirmed its columns, and a test holds it to the SQL's answers on
every applicant of a whole night (`test_the_features_of_a_few_rows_are_the_sql_s_on_a_whole_night`).
Each expression below says the SQL's in NumPy: NULL is NaN (None in text columns), `nullif(x, v)`
is x where x != v, and an aggregate over a list skips the NULLs; the results are the SQL's to the
bit (the features' fingerprint hashes the bits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

NOT_EMPLOYED = 365243  # Kaggle's DAYS_EMPLOYED for the retired and the unemployed
UNKNOWN = "XNA"
EXT_SOURCES = ("EXT_SOURCE_1", "EXT_SOURCE_2", "EXT_SOURCE_3")
DOCUMENTS = tuple(f"FLAG_DOCUMENT_{n}" for n in range(2, 22))


def arrays(table: pa.Table) -> dict[str, np.ndarray]:
    """`table`'s columns as NumPy arrays, the layout `clean` and `variants` take (a whole number
    column with a missing value as floats with NaN, text as objects with None)."""
    return {name: column.to_numpy() for name, column in zip(table.column_names, table.columns, strict=True)}


def clean(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The columns `application_clean` replaces or adds, for applications given as `columns`
    (the application_test layout, one array each: numbers with NaN for missing, text as objects
    with None)."""
    def number(column: str) -> np.ndarray:
        return np.asarray(columns[column], dtype=float)

    def ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:  # top / nullif(bottom, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(bottom == 0, np.nan, top / bottom)

    credit, annuity, income = number("AMT_CREDIT"), number("AMT_ANNUITY"), number("AMT_INCOME_TOTAL")
    raw_employed, birth = number("DAYS_EMPLOYED"), number("DAYS_BIRTH")
    employed = np.where(raw_employed == NOT_EMPLOYED, np.nan, raw_employed)
    scores = np.column_stack([number(c) for c in EXT_SOURCES])
    given = ~np.isnan(scores)
    count = given.sum(axis=1)
    with np.errstate(invalid="ignore"):
        mean = np.where(count > 0, np.where(given, scores, 0.0).sum(axis=1) / count, np.nan)
    documents = np.column_stack([number(c) for c in DOCUMENTS])
    return {
        "DAYS_EMPLOYED": employed,
        "CODE_GENDER": np.where(columns["CODE_GENDER"] == UNKNOWN, None, columns["CODE_GENDER"]),
        "ORGANIZATION_TYPE": np.where(columns["ORGANIZATION_TYPE"] == UNKNOWN, None, columns["ORGANIZATION_TYPE"]),
        "APP_CREDIT_INCOME_RATIO": ratio(credit, income),
        "APP_ANNUITY_INCOME_RATIO": ratio(annuity, income),
        "APP_PAYMENT_RATE": ratio(annuity, credit),
        "APP_GOODS_CREDIT_RATIO": ratio(number("AMT_GOODS_PRICE"), credit),
        "APP_INCOME_PER_PERSON": ratio(income, number("CNT_FAM_MEMBERS")),
        "APP_EMPLOYED_AGE_RATIO": ratio(employed, birth),
        # 0 - x, not -x: the SQL negates a whole number, whose 0 has no sign (-0.0 would hash apart)
        "APP_AGE_YEARS": (0.0 - birth) / 365.25,
        "APP_YEARS_EMPLOYED": (0.0 - employed) / 365.25,
        "APP_NOT_EMPLOYED": np.where(np.isnan(raw_employed), np.nan, (raw_employed == NOT_EMPLOYED).astype(float)),
        "APP_EXT_SOURCE_MEAN": mean,
        "APP_EXT_SOURCE_MIN": np.where(count > 0, np.where(given, scores, np.inf).min(axis=1), np.nan),
        "APP_EXT_SOURCE_MAX": np.where(count > 0, np.where(given, scores, -np.inf).max(axis=1), np.nan),
        "APP_EXT_SOURCE_PROD": scores[:, 0] * scores[:, 1] * scores[:, 2],
        "APP_EXT_SOURCE_COUNT": count.astype(float),
        "APP_DOCUMENT_COUNT": np.where(np.isnan(documents).all(axis=1), np.nan, np.nansum(documents, axis=1)),
    }


def variants(columns: dict[str, np.ndarray], at: np.ndarray, amount: np.ndarray, term: np.ndarray) -> dict[str, np.ndarray]:
    """`application_clean` for rows `at` of `columns` (the application_test layout) with the
    amount asked times `amount` and the term times `term`: the repayment times amount / term, as
    counterfactuals.variants_sql changes them, and the steps kept as cf_amount and cf_term."""
    rows = {name: values[at] for name, values in columns.items()}
    rows["AMT_CREDIT"] = np.asarray(rows["AMT_CREDIT"], dtype=float) * amount
    rows["AMT_ANNUITY"] = np.asarray(rows["AMT_ANNUITY"], dtype=float) * amount / term
    rows["cf_amount"], rows["cf_term"] = amount, term
    return rows | clean(rows)


@dataclass(frozen=True)
class Mirror:
    """application_features.sql's join, as the on-demand workspace read it from the SQL
    (decision/ondemand.py, `Workspace._read_mirror`): the result's columns in order, each history
    model's columns, the flags saying a model has a row for the applicant, the values a missing
    one takes, and which are numbers. Every other column is application_clean's."""

    columns: list[str]
    history: dict[str, list[str]]
    presence: dict[str, list[str]]
    defaults: dict[str, object]
    numeric: dict[str, bool]  # a history column's values are numbers (else text)

    @property
    def joined(self) -> set[str]:
        """The columns an applicant's history gives, the same for every variant of an application."""
        return {c for columns in (*self.history.values(), *self.presence.values()) for c in columns}
