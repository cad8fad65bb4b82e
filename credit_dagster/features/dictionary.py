"""The feature dictionary: every column of `features.application_features` in a client's words.

Meanings, units, groups and directions come from the SQL models' header comments, written for
this project (they become the reasons given for a decision); Kaggle's column descriptions are
never shown to a client. A column without a header line is `documented = False` and is never
given as a reason (a test keeps every column documented).
"""

from __future__ import annotations

import pandas as pd

from credit_dagster.features.sql_models import RISK_DIRECTION, ColumnDoc, SqlModel, derived_from

# Protected or sensitive attributes of the application: never a model input, never a reason given
# to a client. What the SQL computes from any of them is protected too (`protected`): the share of
# one's life spent in one's job is a function of age, the income per person of the household's size.
PROTECTED_SOURCES = ("CODE_GENDER", "DAYS_BIRTH", "NAME_FAMILY_STATUS", "CNT_CHILDREN", "CNT_FAM_MEMBERS")


def protected(models: list[SqlModel]) -> tuple[str, ...]:
    """The protected attributes and every column the SQL models derive from them (their lineage, read from the SQL)."""
    return tuple(sorted(derived_from(models, PROTECTED_SOURCES)))


def _doc_of(models: list[SqlModel], column: str) -> tuple[SqlModel, ColumnDoc, str] | None:
    """The header line about `column`: an exact name before a pattern, the first model first."""
    for exact in (True, False):
        for model in models:
            for doc in model.columns:
                if ("*" not in doc.name) == exact and (meaning := doc.matches(column)) is not None:
                    return model, doc, meaning
    return None


def build_dictionary(models: list[SqlModel], feature_columns: list[str]) -> pd.DataFrame:
    """One row per feature column: source model, raw tables, meaning, unit, group, risk direction."""
    kept_out = set(protected(models))
    rows = []
    for col in feature_columns:
        found = _doc_of(models, col)
        if found:
            model, doc, meaning = found
            raw_tables = ", ".join(t for _, t in model.sources) or ", ".join(model.refs)
            row = {"source_model": model.name, "source_tables": raw_tables, "meaning": meaning, "unit": doc.unit,
                   "reason_group": doc.group or col, "risk_direction": RISK_DIRECTION[doc.direction], "direction": doc.direction}
        else:
            row = {"source_model": None, "source_tables": None, "meaning": None, "unit": "number", "reason_group": col,
                   "risk_direction": RISK_DIRECTION["?"], "direction": "?"}
        rows.append({"feature": col, **row, "protected": col.upper() in kept_out, "documented": found is not None,
                     "model_input": found is None or found[1].direction != "x"})
    return pd.DataFrame(rows)


def not_inputs(models: list[SqlModel], columns: list[str]) -> tuple[str, ...]:
    """The columns marked `(x)`: never a model input, since no lender could give them as a reason."""
    return tuple(c for c in columns if (found := _doc_of(models, c)) and found[1].direction == "x")


def risk_directions(models: list[SqlModel]) -> dict[str, int]:
    """+1 (higher value, higher risk) or -1 (higher value, lower risk) per feature whose SQL header
    states it: the monotone constraints of the model. Features marked `?` are left free."""
    sign = {"+": 1, "-": -1}
    return {doc.name: sign[doc.direction] for m in models for doc in m.columns if doc.direction in sign and "*" not in doc.name}
