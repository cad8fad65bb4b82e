"""SQL features against an independent pandas computation on hand-made edge cases.

Applicant 1: no history at all, not employed (365243), gender XNA, zero income.
Applicant 2: two bureau credits (one with months, one without), refused-only previous
history, instalments paid in parts, late, short, unpaid and with a zero amount due.
Applicant 3: a bureau credit with all-NULL amounts, an approved still-running loan, POS
months and a card with a zero limit. Applicant 4: a new (unlabelled) application.
"""

import duckdb
import numpy as np
import pandas as pd
import pytest

from credit_dagster.core.sources import SOURCE_TABLES
from credit_dagster.features import sql_models
from credit_dagster.features.dictionary import build_dictionary

NAN = np.nan

APPS = pd.DataFrame({
    "SK_ID_CURR": [1, 2, 3], "TARGET": [0, 1, 0],
    "CODE_GENDER": ["XNA", "F", "M"], "NAME_CONTRACT_TYPE": ["Cash loans"] * 3,
    "AMT_INCOME_TOTAL": [0.0, 100_000.0, 50_000.0], "AMT_CREDIT": [200_000.0, 300_000.0, 0.0],
    "AMT_ANNUITY": [10_000.0, NAN, 5_000.0], "AMT_GOODS_PRICE": [180_000.0, 270_000.0, NAN],
    "CNT_FAM_MEMBERS": [2.0, 0.0, NAN], "DAYS_BIRTH": [-20000, -10000, -15000],
    "DAYS_EMPLOYED": [365243, -2000, -100], "ORGANIZATION_TYPE": ["XNA", "Bank", "Self-employed"],
    "EXT_SOURCE_1": [NAN, 0.2, NAN], "EXT_SOURCE_2": [0.5, 0.4, NAN], "EXT_SOURCE_3": [0.7, 0.9, NAN],
    "FLAG_DOCUMENT_3": [1, 1, 0], "FLAG_DOCUMENT_8": [1, 0, 0],
})
TEST_APPS = pd.DataFrame({
    "SK_ID_CURR": [4], "CODE_GENDER": ["F"], "AMT_INCOME_TOTAL": [90_000.0], "AMT_CREDIT": [450_000.0],
    "AMT_ANNUITY": [20_000.0], "DAYS_BIRTH": [-12000], "DAYS_EMPLOYED": [-300],
})
BUREAU = pd.DataFrame({
    "SK_ID_CURR": [2, 2, 3, 3], "SK_ID_BUREAU": [10, 11, 12, 13],
    "CREDIT_ACTIVE": ["Active", "Closed", "Active", "Bad debt"],
    "DAYS_CREDIT": [-100, -2000, -50, -800], "CREDIT_DAY_OVERDUE": [15, 0, 0, 0],
    "DAYS_CREDIT_ENDDATE": [500.0, -1500.0, -41000.0, NAN],
    "AMT_CREDIT_MAX_OVERDUE": [3000.0, NAN, NAN, NAN], "CNT_CREDIT_PROLONG": [1, 2, 0, 0],
    "AMT_CREDIT_SUM": [100_000.0, 50_000.0, NAN, 0.0], "AMT_CREDIT_SUM_DEBT": [40_000.0, 0.0, NAN, NAN],
    "AMT_CREDIT_SUM_LIMIT": [0.0, NAN, NAN, NAN], "AMT_CREDIT_SUM_OVERDUE": [2_000.0, 0.0, NAN, NAN],
    "DAYS_CREDIT_UPDATE": [-5, -1400, -10, -700],
})
BUREAU_BALANCE = pd.DataFrame({
    "SK_ID_BUREAU": [10, 10, 10, 10, 10, 12],
    "MONTHS_BALANCE": [0, -1, -2, -13, -14, 0],
    "STATUS": ["C", "0", "1", "3", "X", "X"],
})
PREVIOUS = pd.DataFrame({
    "SK_ID_PREV": [100, 101, 102, 103], "SK_ID_CURR": [2, 2, 3, 3],
    "NAME_CONTRACT_STATUS": ["Refused", "Refused", "Approved", "Canceled"],
    "AMT_APPLICATION": [10_000.0, 20_000.0, 30_000.0, 0.0], "AMT_CREDIT": [0.0, 25_000.0, 27_000.0, 0.0],
    "AMT_ANNUITY": [NAN, 2_000.0, 3_000.0, NAN], "CNT_PAYMENT": [NAN, 12.0, 10.0, NAN],
    "RATE_DOWN_PAYMENT": [NAN, 0.1, 0.0, NAN], "DAYS_DECISION": [-200, -400, -30, -10],
    "DAYS_LAST_DUE": [NAN, NAN, 365243.0, NAN], "DAYS_FIRST_DRAWING": [NAN, NAN, 365243.0, NAN],
})
POS = pd.DataFrame({
    "SK_ID_PREV": [102, 102, 102, 104, 104], "SK_ID_CURR": [3, 3, 3, 3, 3],
    "MONTHS_BALANCE": [-1, -2, -20, -30, -31], "CNT_INSTALMENT": [10.0] * 3 + [6.0] * 2,
    "CNT_INSTALMENT_FUTURE": [4.0, 5.0, 9.0, 0.0, 1.0],
    "NAME_CONTRACT_STATUS": ["Active", "Active", "Active", "Completed", "Active"],
    "SK_DPD": [0, 12, 3, 0, 0], "SK_DPD_DEF": [0, 12, 0, 0, 0],
})
INSTALMENTS = pd.DataFrame({
    "SK_ID_PREV": [101] * 6, "SK_ID_CURR": [2] * 6,
    "NUM_INSTALMENT_VERSION": [1.0] * 6, "NUM_INSTALMENT_NUMBER": [1, 1, 2, 3, 4, 5],
    "DAYS_INSTALMENT": [-100.0, -100.0, -70.0, -40.0, -10.0, -5.0],
    "DAYS_ENTRY_PAYMENT": [-105.0, -95.0, -60.0, NAN, -12.0, -5.0],
    "AMT_INSTALMENT": [1000.0, 1000.0, 1000.0, 1000.0, 0.0, 500.0],
    "AMT_PAYMENT": [600.0, 400.0, 700.0, NAN, 0.0, 500.0],
})
CARDS = pd.DataFrame({
    "SK_ID_PREV": [102, 102, 102], "SK_ID_CURR": [3, 3, 3], "MONTHS_BALANCE": [-1, -2, -14],
    "AMT_BALANCE": [500.0, 900.0, 100.0], "AMT_CREDIT_LIMIT_ACTUAL": [1000, 1000, 0],
    "AMT_DRAWINGS_CURRENT": [100.0, NAN, 0.0], "AMT_DRAWINGS_ATM_CURRENT": [50.0, NAN, 0.0],
    "AMT_INST_MIN_REGULARITY": [50.0, 0.0, 10.0], "AMT_PAYMENT_CURRENT": [20.0, 30.0, NAN],
    "NAME_CONTRACT_STATUS": ["Active"] * 3, "SK_DPD": [0, 5, 0], "SK_DPD_DEF": [0, 0, 0],
})
TABLES = {
    "application_train": APPS, "application_test": TEST_APPS, "bureau": BUREAU, "bureau_balance": BUREAU_BALANCE,
    "previous_application": PREVIOUS, "pos_cash_balance": POS, "installments_payments": INSTALMENTS, "credit_card_balance": CARDS,
}


def create_raw(con: duckdb.DuckDBPyConnection, tables: dict[str, pd.DataFrame], schema: str = "raw") -> None:
    """Raw tables with the full declared schema; columns a fixture leaves out are NULL."""
    con.execute(f"create schema if not exists {schema}")
    for name, spec in SOURCE_TABLES.items():
        columns = ", ".join(f'"{c}" {t}' for c, t in spec.columns.items())
        con.execute(f"create or replace table {schema}.{name} ({columns})")
        frame = tables.get(name)
        if frame is not None and len(frame):
            con.register("fixture", frame)
            con.execute(f"insert into {schema}.{name} by name select * from fixture")
            con.unregister("fixture")


@pytest.fixture(scope="module")
def built():
    con = duckdb.connect()
    create_raw(con, TABLES)
    sql_models.build_all(con, sql_models.discover())
    yield con
    con.close()


def sql_frame(con, table: str) -> pd.DataFrame:
    return con.execute(f"select * from features.{table} order by SK_ID_CURR").df().set_index("SK_ID_CURR")


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Every expected column, applicant by applicant, NaN equal to NaN."""
    assert sorted(actual.index) == sorted(expected.index)
    for col in expected.columns:
        a = actual.loc[expected.index, col].astype(float).to_numpy()
        e = expected[col].astype(float).to_numpy()
        np.testing.assert_allclose(a, e, rtol=1e-9, equal_nan=True, err_msg=col)


def safe_div(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((b == 0) | np.isnan(b), np.nan, a / b)


def test_application_clean(built):
    apps = pd.concat([APPS.drop(columns="TARGET"), TEST_APPS], ignore_index=True).set_index("SK_ID_CURR")
    employed = apps["DAYS_EMPLOYED"].where(apps["DAYS_EMPLOYED"] != 365243)
    ext = apps[["EXT_SOURCE_1", "EXT_SOURCE_2", "EXT_SOURCE_3"]]
    expected = pd.DataFrame({
        "DAYS_EMPLOYED": employed,
        "APP_CREDIT_INCOME_RATIO": safe_div(apps["AMT_CREDIT"], apps["AMT_INCOME_TOTAL"]),
        "APP_ANNUITY_INCOME_RATIO": safe_div(apps["AMT_ANNUITY"], apps["AMT_INCOME_TOTAL"]),
        "APP_PAYMENT_RATE": safe_div(apps["AMT_ANNUITY"], apps["AMT_CREDIT"]),
        "APP_GOODS_CREDIT_RATIO": safe_div(apps["AMT_GOODS_PRICE"], apps["AMT_CREDIT"]),
        "APP_INCOME_PER_PERSON": safe_div(apps["AMT_INCOME_TOTAL"], apps["CNT_FAM_MEMBERS"]),
        "APP_EMPLOYED_AGE_RATIO": safe_div(employed, apps["DAYS_BIRTH"]),
        "APP_NOT_EMPLOYED": (apps["DAYS_EMPLOYED"] == 365243).astype(int),
        "APP_EXT_SOURCE_MEAN": ext.mean(axis=1), "APP_EXT_SOURCE_MIN": ext.min(axis=1),
        "APP_EXT_SOURCE_MAX": ext.max(axis=1), "APP_EXT_SOURCE_PROD": ext.prod(axis=1, min_count=3),
        "APP_EXT_SOURCE_COUNT": ext.notna().sum(axis=1),
        "APP_DOCUMENT_COUNT": apps[["FLAG_DOCUMENT_3", "FLAG_DOCUMENT_8"]].fillna(0).sum(axis=1).where(apps.index != 4),
    }, index=apps.index)
    actual = sql_frame(built, "application_clean")
    assert_same(actual, expected)
    assert actual.loc[1, "CODE_GENDER"] is None or pd.isna(actual.loc[1, "CODE_GENDER"])
    assert pd.isna(actual.loc[1, "ORGANIZATION_TYPE"]) and "TARGET" not in actual.columns


def test_bureau_features(built):
    months = BUREAU_BALANCE.assign(
        late=BUREAU_BALANCE["STATUS"].isin(list("12345")), recent=BUREAU_BALANCE["MONTHS_BALANCE"] >= -12,
        level=pd.to_numeric(BUREAU_BALANCE["STATUS"], errors="coerce").fillna(0),
    ).merge(BUREAU[["SK_ID_BUREAU", "SK_ID_CURR"]])
    b = BUREAU.assign(active=BUREAU["CREDIT_ACTIVE"] == "Active")
    rows = {}
    for cid, g in b.groupby("SK_ID_CURR"):
        m = months[months["SK_ID_CURR"] == cid]
        r12 = m[m["recent"]]
        rows[cid] = {
            "BUR_CREDIT_COUNT": len(g), "BUR_ACTIVE_COUNT": g["active"].sum(),
            "BUR_CLOSED_COUNT": (g["CREDIT_ACTIVE"] == "Closed").sum(), "BUR_ACTIVE_SHARE": g["active"].mean(),
            "BUR_BAD_DEBT_COUNT": g["CREDIT_ACTIVE"].isin(["Bad debt", "Sold"]).sum(),
            "BUR_DAYS_SINCE_LAST_CREDIT": -g["DAYS_CREDIT"].max(), "BUR_DAYS_SINCE_FIRST_CREDIT": -g["DAYS_CREDIT"].min(),
            "BUR_CREDIT_SUM": g["AMT_CREDIT_SUM"].sum(min_count=1), "BUR_DEBT_SUM": g["AMT_CREDIT_SUM_DEBT"].sum(min_count=1),
            "BUR_ACTIVE_DEBT_SUM": g.loc[g["active"], "AMT_CREDIT_SUM_DEBT"].sum(),
            "BUR_DEBT_CREDIT_RATIO": safe_div(g["AMT_CREDIT_SUM_DEBT"].sum(min_count=1), g["AMT_CREDIT_SUM"].sum(min_count=1)),
            "BUR_OVERDUE_DEBT_RATIO": safe_div(g["AMT_CREDIT_SUM_OVERDUE"].sum(min_count=1), g["AMT_CREDIT_SUM_DEBT"].sum(min_count=1)),
            "BUR_MAX_DAYS_OVERDUE": g["CREDIT_DAY_OVERDUE"].max(),
            "BUR_OVERDUE_CREDIT_SHARE": (g["CREDIT_DAY_OVERDUE"] > 0).mean(),
            "BUR_PROLONG_COUNT": g["CNT_CREDIT_PROLONG"].sum(),
            "BUR_ACTIVE_DAYS_TO_END_MEAN": g.loc[g["active"] & (g["DAYS_CREDIT_ENDDATE"].abs() < 18250), "DAYS_CREDIT_ENDDATE"].mean(),
            "BUR_BAL_MONTHS": len(m),
            "BUR_BAL_LATE_SHARE": m["late"].mean() if len(m) else NAN,
            "BUR_BAL_ON_TIME_SHARE": (m["STATUS"] == "0").mean() if len(m) else NAN,
            "BUR_BAL_UNKNOWN_SHARE": (m["STATUS"] == "X").mean() if len(m) else NAN,
            "BUR_BAL_WORST_STATUS": m["level"].where(m["late"], 0).max() if len(m) else NAN,
            "BUR_BAL_LATE_SHARE_12M": r12["late"].mean() if len(r12) else NAN,
            "BUR_BAL_WORST_STATUS_12M": r12["level"].where(r12["late"], 0).max() if len(r12) else NAN,
        }
    assert_same(sql_frame(built, "bureau_features"), pd.DataFrame(rows).T)


def test_previous_features(built):
    p = PREVIOUS.assign(refused=PREVIOUS["NAME_CONTRACT_STATUS"] == "Refused", approved=PREVIOUS["NAME_CONTRACT_STATUS"] == "Approved",
                        ratio=safe_div(PREVIOUS["AMT_APPLICATION"], PREVIOUS["AMT_CREDIT"]))
    rows = {}
    for cid, g in p.groupby("SK_ID_CURR"):
        rows[cid] = {
            "PREV_COUNT": len(g), "PREV_APPROVED_COUNT": g["approved"].sum(), "PREV_REFUSED_COUNT": g["refused"].sum(),
            "PREV_REFUSED_SHARE": g["refused"].mean(),
            "PREV_REFUSED_LAST_YEAR": (g["refused"] & (g["DAYS_DECISION"] >= -365)).sum(),
            "PREV_RUNNING_COUNT": (g["approved"] & (g["DAYS_LAST_DUE"] == 365243)).sum(),
            "PREV_APP_CREDIT_RATIO_MEAN": g["ratio"].mean(),
            "PREV_APPROVED_APP_CREDIT_RATIO_MEAN": g.loc[g["approved"], "ratio"].mean(),
            "PREV_REFUSED_AMT_APPLICATION_MEAN": g.loc[g["refused"], "AMT_APPLICATION"].mean(),
            "PREV_DAYS_SINCE_LAST_DECISION": -g["DAYS_DECISION"].max(),
            "PREV_DAYS_SINCE_LAST_REFUSAL": -g.loc[g["refused"], "DAYS_DECISION"].max(),
            "PREV_APPROVED_CREDIT_SUM": g.loc[g["approved"], "AMT_CREDIT"].sum(min_count=1),
            "PREV_TERM_MEAN": g["CNT_PAYMENT"].mean(),
        }
    assert_same(sql_frame(built, "previous_features"), pd.DataFrame(rows).T)


def test_pos_cash_features(built):
    g = POS
    latest = g.sort_values("MONTHS_BALANCE").groupby("SK_ID_PREV").tail(1)
    expected = pd.DataFrame({3: {
        "POS_MONTHS": len(g), "POS_LOANS": g["SK_ID_PREV"].nunique(), "POS_DPD_MAX": g["SK_DPD"].max(),
        "POS_DPD_MEAN": g["SK_DPD"].mean(), "POS_DPD_MONTH_SHARE": (g["SK_DPD"] > 0).mean(),
        "POS_DPD_DEF_MONTH_SHARE": (g["SK_DPD_DEF"] > 0).mean(),
        "POS_DPD_MONTH_SHARE_12M": (g.loc[g["MONTHS_BALANCE"] >= -12, "SK_DPD"] > 0).mean(),
        "POS_COMPLETED_LOANS": g.loc[g["NAME_CONTRACT_STATUS"] == "Completed", "SK_ID_PREV"].nunique(),
        "POS_REMAINING_INSTALMENTS": latest["CNT_INSTALMENT_FUTURE"].sum(),
    }}).T
    assert_same(sql_frame(built, "pos_cash_features"), expected)


def test_installments_features(built):
    keys = ["SK_ID_CURR", "SK_ID_PREV", "NUM_INSTALMENT_VERSION", "NUM_INSTALMENT_NUMBER"]
    inst = INSTALMENTS.groupby(keys).agg(
        due=("DAYS_INSTALMENT", "max"), amount=("AMT_INSTALMENT", "max"),
        paid=("AMT_PAYMENT", lambda s: s.sum()), last=("DAYS_ENTRY_PAYMENT", "max"),
    ).reset_index()
    inst["dpd"] = (inst["last"] - inst["due"]).clip(lower=0)
    inst["early"] = (inst["due"] - inst["last"]).clip(lower=0)
    inst["under"] = (inst["amount"] - inst["paid"]).clip(lower=0)
    last10 = inst.sort_values("due", ascending=False).head(10)
    expected = pd.DataFrame({2: {
        "INST_COUNT": len(inst), "INST_PAID_RATIO_MEAN": np.nanmean(safe_div(inst["paid"], inst["amount"])),
        "INST_DPD_MAX": inst["dpd"].max(), "INST_DPD_MEAN": inst["dpd"].mean(), "INST_DAYS_EARLY_MEAN": inst["early"].mean(),
        "INST_LATE_SHARE": (inst["dpd"] > 0).sum() / inst["dpd"].notna().sum(),
        "INST_UNDERPAID_SHARE": (inst["under"] > 0).mean(), "INST_UNDERPAID_SUM": inst["under"].sum(),
        "INST_LATE_SHARE_LAST10": (last10["dpd"] > 0).sum() / last10["dpd"].notna().sum(), "INST_DPD_MEAN_LAST10": last10["dpd"].mean(),
    }}).T
    assert expected.loc[2, "INST_UNDERPAID_SUM"] == 1300  # 300 short on instalment 2, 1000 never paid on 3
    assert_same(sql_frame(built, "installments_features"), expected)


def test_credit_card_features(built):
    c = CARDS.assign(util=safe_div(CARDS["AMT_BALANCE"], CARDS["AMT_CREDIT_LIMIT_ACTUAL"]),
                     below=np.where(CARDS["AMT_INST_MIN_REGULARITY"] > 0,
                                    (CARDS["AMT_PAYMENT_CURRENT"].fillna(0) < CARDS["AMT_INST_MIN_REGULARITY"]).astype(float), NAN))
    recent = c["MONTHS_BALANCE"] >= -12
    expected = pd.DataFrame({3: {
        "CC_MONTHS": len(c), "CC_CARDS": 1, "CC_UTILISATION_MEAN": c["util"].mean(), "CC_UTILISATION_MAX": c["util"].max(),
        "CC_UTILISATION_MEAN_12M": c.loc[recent, "util"].mean(), "CC_BALANCE_MEAN": c["AMT_BALANCE"].mean(),
        "CC_LIMIT_MAX": c["AMT_CREDIT_LIMIT_ACTUAL"].max(), "CC_DRAWINGS_MEAN": c["AMT_DRAWINGS_CURRENT"].mean(),
        "CC_PAYMENT_MIN_RATIO_MEAN": np.nanmean(safe_div(c["AMT_PAYMENT_CURRENT"], c["AMT_INST_MIN_REGULARITY"])),
        "CC_BELOW_MIN_SHARE": np.nanmean(c["below"]), "CC_DPD_MAX": c["SK_DPD"].max(),
        "CC_DPD_MONTH_SHARE": (c["SK_DPD"] > 0).mean(), "CC_DPD_MONTH_SHARE_12M": (c.loc[recent, "SK_DPD"] > 0).mean(),
    }}).T
    assert_same(sql_frame(built, "credit_card_features"), expected)


def test_wide_table_grain_zero_counts_and_no_label(built):
    wide = sql_frame(built, "application_features")
    assert list(wide.index) == [1, 2, 3, 4]
    assert "TARGET" not in wide.columns
    assert wide.loc[1, ["BUR_CREDIT_COUNT", "PREV_COUNT", "POS_MONTHS", "INST_COUNT", "CC_MONTHS"]].tolist() == [0, 0, 0, 0, 0]
    assert pd.isna(wide.loc[1, "BUR_DEBT_CREDIT_RATIO"]) and wide.loc[1, "HAS_BUREAU_HISTORY"] == 0
    assert wide.loc[2, "HAS_BUREAU_HISTORY"] == 1 and wide.loc[2, "PREV_REFUSED_SHARE"] == 1.0
    labels = built.execute("select * from features.application_labels order by 1").df()
    assert labels["TARGET"].tolist() == [0, 1, 0]


def test_batch_of_applicants_gets_the_same_features_from_the_same_sql(built):
    """The nightly path: the same models over one batch's tables, without the full build."""
    batch = {name: frame[frame["SK_ID_CURR"].isin([2, 3])] for name, frame in TABLES.items() if "SK_ID_CURR" in frame}
    batch["bureau_balance"] = BUREAU_BALANCE[BUREAU_BALANCE["SK_ID_BUREAU"].isin(batch["bureau"]["SK_ID_BUREAU"])]
    batch["application_test"] = batch.pop("application_train").drop(columns="TARGET")
    create_raw(built, batch, schema="batch_raw")
    sql_models.build_all(built, sql_models.discover(), schemas={"raw": "batch_raw", "features": "batch_features"})
    full = sql_frame(built, "application_features").loc[[2, 3]]
    night = built.execute("select * from batch_features.application_features order by SK_ID_CURR").df().set_index("SK_ID_CURR")
    pd.testing.assert_frame_equal(night[full.columns], full, check_dtype=False)


def test_feature_dictionary_covers_every_feature(built):
    columns = [c for c in sql_frame(built, "application_features").columns]
    dictionary = build_dictionary(sql_models.discover(), columns)
    assert list(dictionary["feature"]) == columns
    documented = dictionary.set_index("feature")
    assert documented.loc["INST_LATE_SHARE", "meaning"] == "Share of instalments paid late on earlier loans with us"
    # a client reads these: no brand but the lender's own ("us"), whatever data set the platform was built on
    assert not dictionary["meaning"].str.contains("Home Credit").any()
    assert documented.loc["INST_LATE_SHARE", "risk_direction"] == "higher value, higher risk"
    assert documented.loc["FLAG_MOBIL", "meaning"] == "You gave a mobile phone number"  # written here, never Kaggle's words
    assert documented.loc["CODE_GENDER", "protected"]
    assert dictionary["documented"].all(), dictionary.loc[~dictionary["documented"], "feature"].tolist()


def test_what_is_derived_from_a_protected_attribute_is_protected_too(tmp_path):
    """The lineage is read from the SQL: a column computed from age, gender, family status or the
    household (directly, or through another computed column) is protected, whatever its name."""
    from credit_dagster.features.dictionary import PROTECTED_SOURCES, protected

    kept_out = set(protected(sql_models.discover()))
    assert set(PROTECTED_SOURCES) <= kept_out
    # the share of one's life spent in one's job is a function of age; income per person, of the household
    assert {"APP_EMPLOYED_AGE_RATIO", "APP_AGE_YEARS", "APP_INCOME_PER_PERSON"} <= kept_out
    assert not {"APP_CREDIT_INCOME_RATIO", "APP_YEARS_EMPLOYED", "AMT_INCOME_TOTAL", "DAYS_EMPLOYED"} & kept_out
    # a new model that derives from a derived column, through a CTE and a `* replace`: caught all the same
    (tmp_path / "features").mkdir()
    for model in sql_models.discover():
        (tmp_path / "features" / model.path.name).write_text(model.path.read_text())
    (tmp_path / "features" / "household.sql").write_text(
        "-- grain: one row per SK_ID_CURR\n"
        "with a as (select SK_ID_CURR, APP_INCOME_PER_PERSON * 12 as MONTHLY_SHARE from {{ ref('application_clean') }})\n"
        "select * replace (MONTHLY_SHARE + 1 as MONTHLY_SHARE), ln(MONTHLY_SHARE) as LOG_SHARE, SK_ID_CURR * 2 as KEY2 from a\n")
    derived = set(protected(sql_models.discover(tmp_path)))
    assert {"MONTHLY_SHARE", "LOG_SHARE"} <= derived and "KEY2" not in derived


def test_no_protected_column_is_a_model_input_or_a_reason(build):
    """The trained champion reads none of them, and the dictionary never words one as a reason."""
    from credit_dagster.features.dictionary import protected
    from credit_dagster.model.registry import Registry

    home, _ = build
    model = Registry(home / "models").load("champion")
    kept_out = set(protected(sql_models.discover()))
    assert not kept_out & set(model.features), sorted(kept_out & set(model.features))
    assert kept_out <= set(model.metadata.excluded_features)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        dictionary = con.execute("select feature, protected from features.feature_dictionary").df().set_index("feature")
    in_table = [f for f in kept_out if f in dictionary.index]
    assert in_table and dictionary.loc[in_table, "protected"].all()
