"""The feature dictionary: every feature of `features.application_features` in plain language.

Meanings come from the SQL models' header comments (written for a client, since they become
the reasons given for a decision) and, for application columns passed through unchanged,
from Kaggle's column descriptions when that file was loaded.
"""

from __future__ import annotations

import pandas as pd

from credit_dagster.sql_models import RISK_DIRECTION, SqlModel

# Protected or sensitive attributes: never given to a client as a reason for a decision.
PROTECTED = ("CODE_GENDER", "DAYS_BIRTH", "APP_AGE_YEARS", "NAME_FAMILY_STATUS", "CNT_CHILDREN")


def build_dictionary(
    models: list[SqlModel],
    feature_columns: list[str],
    kaggle_descriptions: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per feature column: feature, source model, raw tables, meaning, risk direction."""
    documented = {}
    for model in models:
        raw_tables = ", ".join(t for _, t in model.sources) or ", ".join(model.refs)
        for doc in model.columns:
            documented.setdefault(doc.name, (model.name, raw_tables, doc.meaning, RISK_DIRECTION[doc.direction]))
    kaggle_descriptions = kaggle_descriptions or {}
    rows = []
    for col in feature_columns:
        if col in documented:
            model, raw_tables, meaning, direction = documented[col]
        else:
            model, raw_tables, direction = "application_clean", "application_train, application_test", RISK_DIRECTION["?"]
            meaning = kaggle_descriptions.get(col) or f"Information from your application ({col.replace('_', ' ').lower()})"
        rows.append({
            "feature": col, "source_model": model, "source_tables": raw_tables, "meaning": meaning,
            "risk_direction": direction, "protected": col in PROTECTED, "documented": col in documented,
        })
    return pd.DataFrame(rows)


def risk_directions(models: list[SqlModel]) -> dict[str, int]:
    """+1 (higher value, higher risk) or -1 (higher value, lower risk) per feature whose SQL header
    states it: the monotone constraints of the model. Features marked `?` are left free."""
    sign = {"+": 1, "-": -1}
    return {doc.name: sign[doc.direction] for m in models for doc in m.columns if doc.direction in sign}
