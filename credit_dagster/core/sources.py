"""The contract of each Home Credit source file: columns, keys, links and plausible values.

One `SourceTable` per Kaggle file. Ingestion, the data-quality gates, the profile and the
synthetic generator all read this one description, so a rule is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from credit_dagster.core import kaggle_columns as kc

# Kaggle writes "no date" in several DAYS_* columns as +365243 days (about 1000 years).
SENTINEL_DAYS = 365243

APPLICANT_TABLES = ("application_train", "application_test")


@dataclass(frozen=True)
class ForeignKey:
    """`column` must match `parent_column` in one of `parent_tables` (orphans are reported)."""

    column: str
    parent_tables: tuple[str, ...]
    parent_column: str


@dataclass(frozen=True)
class SourceTable:
    """One Kaggle file and the rules its rows must follow."""

    name: str  # raw table name: the Kaggle file stem in lower case
    file_stem: str  # Kaggle file name without extension
    columns: dict[str, str]  # column -> DuckDB type, in Kaggle's order
    description: str
    grain: str
    key: str | None = None  # unique, non-null identifier; duplicates are quarantined
    not_null: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    # column -> allowed values; `blocking_values` marks those whose violation corrupts training
    value_sets: dict[str, tuple] = field(default_factory=dict)
    blocking_values: tuple[str, ...] = ()
    # column -> (min, max), either may be None; sentinel 365243 is excluded before the test
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    # categorical columns whose default rate the profile shows (application_train only)
    profile_by: tuple[str, ...] = ()
    encoding: str = "utf-8"

    def columns_sql(self) -> str:
        """The column list of a `create table` of this layout, empty tables included."""
        return ", ".join(f'"{c}" {t}' for c, t in self.columns.items())


_APPLICANT_FK = ForeignKey("SK_ID_CURR", APPLICANT_TABLES, "SK_ID_CURR")
_PREVIOUS_FK = ForeignKey("SK_ID_PREV", ("previous_application",), "SK_ID_PREV")

_APPLICATION_VALUES = {
    "NAME_CONTRACT_TYPE": ("Cash loans", "Revolving loans"),
    "CODE_GENDER": ("F", "M", "XNA"),
    "FLAG_OWN_CAR": ("Y", "N"),
    "FLAG_OWN_REALTY": ("Y", "N"),
}
_APPLICATION_RANGES = {
    "AMT_INCOME_TOTAL": (0, None),
    "AMT_CREDIT": (0, None),
    "AMT_ANNUITY": (0, None),
    "CNT_CHILDREN": (0, 30),
    "DAYS_BIRTH": (-36500, -6570),  # 18 to 100 years old
    "DAYS_EMPLOYED": (-36500, 0),
    "EXT_SOURCE_1": (0, 1),
    "EXT_SOURCE_2": (0, 1),
    "EXT_SOURCE_3": (0, 1),
}
_CONTRACT_STATUS_MONTHLY = (
    "Active", "Completed", "Signed", "Demand", "Returned to the store", "Approved",
    "Amortized debt", "Canceled", "XNA", "Sent proposal", "Refused",
)

SOURCE_TABLES: dict[str, SourceTable] = {
    t.name: t
    for t in (
        SourceTable(
            name="application_train",
            file_stem="application_train",
            columns=kc.APPLICATION_TRAIN_COLUMNS,
            description="Labelled loan applications: one row per applicant with TARGET (1 = payment difficulties).",
            grain="one row per SK_ID_CURR",
            key="SK_ID_CURR",
            not_null=("TARGET",),
            value_sets={"TARGET": (0, 1), **_APPLICATION_VALUES},
            blocking_values=("TARGET",),
            ranges=_APPLICATION_RANGES,
            profile_by=(
                "NAME_CONTRACT_TYPE", "CODE_GENDER", "NAME_INCOME_TYPE", "NAME_EDUCATION_TYPE",
                "NAME_FAMILY_STATUS", "NAME_HOUSING_TYPE", "OCCUPATION_TYPE",
            ),
        ),
        SourceTable(
            name="application_test",
            file_stem="application_test",
            columns=kc.APPLICATION_TEST_COLUMNS,
            description="New loan applications without a label: the population to score.",
            grain="one row per SK_ID_CURR",
            key="SK_ID_CURR",
            value_sets=_APPLICATION_VALUES,
            ranges=_APPLICATION_RANGES,
        ),
        SourceTable(
            name="bureau",
            file_stem="bureau",
            columns=kc.BUREAU_COLUMNS,
            description="Credits the applicant held at other institutions, as reported to the Credit Bureau.",
            grain="one row per SK_ID_BUREAU",
            key="SK_ID_BUREAU",
            not_null=("SK_ID_CURR",),
            foreign_keys=(_APPLICANT_FK,),
            value_sets={"CREDIT_ACTIVE": ("Closed", "Active", "Sold", "Bad debt")},
            ranges={"DAYS_CREDIT": (-3000, 0), "AMT_CREDIT_SUM": (0, None), "CREDIT_DAY_OVERDUE": (0, None)},
        ),
        SourceTable(
            name="bureau_balance",
            file_stem="bureau_balance",
            columns=kc.BUREAU_BALANCE_COLUMNS,
            description="Monthly status of each Credit Bureau credit (0 = no DPD, 1-5 = DPD buckets, C = closed, X = unknown).",
            grain="one row per SK_ID_BUREAU and MONTHS_BALANCE",
            not_null=("SK_ID_BUREAU", "MONTHS_BALANCE"),
            foreign_keys=(ForeignKey("SK_ID_BUREAU", ("bureau",), "SK_ID_BUREAU"),),
            value_sets={"STATUS": ("0", "1", "2", "3", "4", "5", "C", "X")},
            ranges={"MONTHS_BALANCE": (-120, 0)},
        ),
        SourceTable(
            name="previous_application",
            file_stem="previous_application",
            columns=kc.PREVIOUS_APPLICATION_COLUMNS,
            description="Earlier applications of the same clients for Home Credit loans, approved or not.",
            grain="one row per SK_ID_PREV",
            key="SK_ID_PREV",
            not_null=("SK_ID_CURR",),
            foreign_keys=(_APPLICANT_FK,),
            value_sets={"NAME_CONTRACT_STATUS": ("Approved", "Refused", "Canceled", "Unused offer")},
            ranges={"AMT_APPLICATION": (0, None), "AMT_CREDIT": (0, None), "DAYS_DECISION": (-3000, 0)},
        ),
        SourceTable(
            name="pos_cash_balance",
            file_stem="POS_CASH_balance",
            columns=kc.POS_CASH_BALANCE_COLUMNS,
            description="Monthly snapshots of earlier point-of-sale and cash loans with Home Credit.",
            grain="one row per SK_ID_PREV and MONTHS_BALANCE",
            not_null=("SK_ID_PREV", "SK_ID_CURR", "MONTHS_BALANCE"),
            foreign_keys=(_APPLICANT_FK, _PREVIOUS_FK),
            value_sets={"NAME_CONTRACT_STATUS": _CONTRACT_STATUS_MONTHLY},
            ranges={"SK_DPD": (0, None), "SK_DPD_DEF": (0, None), "MONTHS_BALANCE": (-120, 0)},
        ),
        SourceTable(
            name="installments_payments",
            file_stem="installments_payments",
            columns=kc.INSTALLMENTS_PAYMENTS_COLUMNS,
            description="Each instalment due on earlier Home Credit loans and what was paid, when.",
            grain="one row per payment of an instalment (an instalment may be paid in parts)",
            not_null=("SK_ID_PREV", "SK_ID_CURR"),
            foreign_keys=(_APPLICANT_FK, _PREVIOUS_FK),
            ranges={"AMT_INSTALMENT": (0, None), "AMT_PAYMENT": (0, None)},
        ),
        SourceTable(
            name="credit_card_balance",
            file_stem="credit_card_balance",
            columns=kc.CREDIT_CARD_BALANCE_COLUMNS,
            description="Monthly snapshots of earlier Home Credit credit cards.",
            grain="one row per SK_ID_PREV and MONTHS_BALANCE",
            not_null=("SK_ID_PREV", "SK_ID_CURR", "MONTHS_BALANCE"),
            foreign_keys=(_APPLICANT_FK, _PREVIOUS_FK),
            value_sets={"NAME_CONTRACT_STATUS": _CONTRACT_STATUS_MONTHLY},
            ranges={"AMT_CREDIT_LIMIT_ACTUAL": (0, None), "SK_DPD": (0, None), "MONTHS_BALANCE": (-120, 0)},
        ),
    )
}

# HomeCredit_columns_description.csv ships as cp1252 with an unnamed index column.
COLUMNS_DESCRIPTION = SourceTable(
    name="columns_description",
    file_stem="HomeCredit_columns_description",
    columns={"": "BIGINT", "Table": "VARCHAR", "Row": "VARCHAR", "Description": "VARCHAR", "Special": "VARCHAR"},
    description="Kaggle's description of every source column (optional file).",
    grain="one row per source column",
    encoding="cp1252",
)
