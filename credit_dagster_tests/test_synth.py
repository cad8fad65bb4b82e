import hashlib

import duckdb
import numpy as np
import pandas as pd
import pytest

from credit_dagster.core.sources import SENTINEL_DAYS, SOURCE_TABLES
from credit_dagster.synth.generator import KAGGLE_ROWS, allocate, generate, row_counts
from credit_dagster_tests.conftest import TEST_SCALE


def read(folder, table):
    return pd.read_csv(folder / f"{SOURCE_TABLES[table].file_stem}.csv")


def test_every_table_has_kaggle_columns_in_order(synthetic_dir):
    for spec in SOURCE_TABLES.values():
        header = (synthetic_dir / f"{spec.file_stem}.csv").open().readline().strip().replace('"', "").split(",")
        assert header == list(spec.columns), spec.name


def test_row_counts_are_exact_at_any_scale(synthetic_dir):
    expected = row_counts(TEST_SCALE)
    for table, n in expected.items():
        assert len(read(synthetic_dir, table)) == n, table
    assert row_counts(1) == KAGGLE_ROWS


def test_allocate_respects_total_and_cap():
    rng = np.random.default_rng(0)
    counts = allocate(rng, 10_000, rng.gamma(2.0, 1.0, 300), cap=50)
    assert counts.sum() == 10_000 and counts.max() <= 50
    with pytest.raises(ValueError, match="every parent is full"):
        allocate(rng, 1_000, np.ones(10), cap=5)


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, synthetic_dir):
    generate(tmp_path / "again", scale=TEST_SCALE, seed=7, progress=False)
    generate(tmp_path / "other", scale=TEST_SCALE, seed=8, progress=False)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    for spec in SOURCE_TABLES.values():
        name = f"{spec.file_stem}.csv"
        assert digest(synthetic_dir / name) == digest(tmp_path / "again" / name), name
    assert digest(synthetic_dir / "bureau.csv") != digest(tmp_path / "other" / "bureau.csv")


def test_keys_link_across_tables(synthetic_dir):
    con = duckdb.connect()
    for spec in SOURCE_TABLES.values():
        con.execute(f"create view {spec.name} as select * from read_csv('{synthetic_dir / spec.file_stem}.csv')")
    orphans = {
        "bureau": "select count(*) from bureau where SK_ID_CURR not in "
        "(select SK_ID_CURR from application_train union all select SK_ID_CURR from application_test)",
        "bureau_balance": "select count(*) from bureau_balance where SK_ID_BUREAU not in (select SK_ID_BUREAU from bureau)",
        "pos": "select count(*) from pos_cash_balance p join previous_application a using (SK_ID_PREV) where p.SK_ID_CURR <> a.SK_ID_CURR",
        "pos_prev": "select count(*) from pos_cash_balance where SK_ID_PREV not in (select SK_ID_PREV from previous_application)",
        "inst": "select count(*) from installments_payments where SK_ID_PREV not in (select SK_ID_PREV from previous_application)",
        "cc": "select count(*) from credit_card_balance where SK_ID_PREV not in (select SK_ID_PREV from previous_application)",
    }
    for name, sql in orphans.items():
        assert con.execute(sql).fetchone()[0] == 0, name
    # Monthly tables never repeat a month of the same record.
    for table, key in (("bureau_balance", "SK_ID_BUREAU"), ("pos_cash_balance", "SK_ID_PREV"), ("credit_card_balance", "SK_ID_PREV")):
        dupes = con.execute(f"select count(*) from (select {key}, MONTHS_BALANCE from {table} group by all having count(*) > 1)").fetchone()[0]
        assert dupes == 0, table


def test_real_data_quirks_are_reproduced(synthetic_dir):
    app = read(synthetic_dir, "application_train")
    sentinel = app["DAYS_EMPLOYED"] == SENTINEL_DAYS
    assert 0.1 < sentinel.mean() < 0.3
    assert (app.loc[sentinel, "ORGANIZATION_TYPE"] == "XNA").all()
    assert 0.4 < app["EXT_SOURCE_1"].isna().mean() < 0.7
    prev = read(synthetic_dir, "previous_application")
    assert (prev["DAYS_FIRST_DRAWING"] == SENTINEL_DAYS).mean() > 0.3
    assert "XAP" in set(prev["CODE_REJECT_REASON"])
    assert set(read(synthetic_dir, "bureau_balance")["STATUS"].astype(str)) <= set("012345CX")


def test_default_rate_near_kaggle_and_history_carries_signal(synthetic_dir):
    app = read(synthetic_dir, "application_train")
    assert 0.06 < app["TARGET"].mean() < 0.105
    # Riskier applicants have lower external scores and more late bureau months.
    ext = app[["EXT_SOURCE_2", "EXT_SOURCE_3"]].mean(axis=1)
    assert ext[app["TARGET"] == 1].mean() < ext[app["TARGET"] == 0].mean() - 0.03
    bb = read(synthetic_dir, "bureau_balance").merge(read(synthetic_dir, "bureau")[["SK_ID_BUREAU", "SK_ID_CURR"]])
    late = bb.assign(late=bb["STATUS"].astype(str).isin(list("12345"))).groupby("SK_ID_CURR")["late"].mean()
    joined = app.set_index("SK_ID_CURR").join(late, how="inner")
    assert joined.loc[joined["TARGET"] == 1, "late"].mean() > 1.5 * joined.loc[joined["TARGET"] == 0, "late"].mean()
