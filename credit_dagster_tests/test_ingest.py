"""Bad input gets a clear error naming file, column and row; nothing good is lost."""

import gzip
import shutil

import duckdb
import pytest

from credit_dagster.core.sources import COLUMNS_DESCRIPTION, SOURCE_TABLES
from credit_dagster.ingest.loaders import SourceFileError, find_source_file, load_table

BUREAU = SOURCE_TABLES["bureau"]
APP = SOURCE_TABLES["application_train"]


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield connection
    connection.close()


@pytest.fixture
def bureau_lines(synthetic_dir):
    return (synthetic_dir / "bureau.csv").read_text().splitlines()


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_clean_file_loads_every_row_with_declared_types(con, synthetic_dir, bureau_lines):
    report = load_table(con, BUREAU, synthetic_dir / "bureau.csv")
    assert report.rows == len(bureau_lines) - 1 and report.quarantined == 0
    types = dict(con.execute("select column_name, data_type from information_schema.columns where table_name = 'bureau'").fetchall())
    assert types["DAYS_CREDIT"] == "BIGINT" and types["AMT_CREDIT_SUM"] == "DOUBLE" and types["CREDIT_ACTIVE"] == "VARCHAR"
    assert len(report.sha256) == 64 and report.null_shares["AMT_ANNUITY"] > 0.3


def test_missing_file_names_the_expected_files(tmp_path):
    with pytest.raises(SourceFileError, match=r"no file bureau\.csv or bureau\.csv\.gz"):
        find_source_file(tmp_path, BUREAU)


def test_renamed_column_is_reported_with_a_hint(con, tmp_path, bureau_lines):
    header = bureau_lines[0].replace("DAYS_CREDIT_UPDATE", "DAYS_CREDIT_UPDATED")
    path = write(tmp_path / "bureau.csv", [header, *bureau_lines[1:5]])
    with pytest.raises(SourceFileError, match=r"missing column\(s\) DAYS_CREDIT_UPDATE \(renamed to DAYS_CREDIT_UPDATED\?\)"):
        load_table(con, BUREAU, path)


def test_extra_column_is_ignored_and_reported(con, tmp_path, bureau_lines):
    lines = [bureau_lines[0] + ',"NEW_COL"'] + [line + ",whatever" for line in bureau_lines[1:6]]
    report = load_table(con, BUREAU, write(tmp_path / "bureau.csv", lines))
    assert report.extra_columns == ["NEW_COL"] and report.rows == 5
    assert "NEW_COL" not in [r[0] for r in con.execute("describe raw.bureau").fetchall()]


def test_unparsable_value_is_quarantined_with_line_and_column(con, tmp_path, bureau_lines):
    fields = bureau_lines[3].split(",")
    fields[4] = "yesterday"  # DAYS_CREDIT must be an integer
    lines = bureau_lines[:3] + [",".join(fields)] + bureau_lines[4:]
    report = load_table(con, BUREAU, write(tmp_path / "bureau.csv", lines), max_reject_share=0.5)
    assert report.quarantined == 1 and report.rows == len(lines) - 2
    line, column, reason, record = con.execute("select line, column_name, reason, record from raw.quarantine").fetchone()
    assert (line, column) == (4, "DAYS_CREDIT") and reason.startswith("CAST") and "yesterday" in record


def test_duplicate_key_rows_are_all_held_back(con, tmp_path, bureau_lines):
    lines = bureau_lines[:6] + [bureau_lines[2]]
    report = load_table(con, BUREAU, write(tmp_path / "bureau.csv", lines), max_reject_share=0.5)
    dup_id = bureau_lines[2].split(",")[1]
    assert report.rows == 4 and report.quarantined == 2
    assert report.quarantine_reasons == {"duplicate SK_ID_BUREAU": 2}
    reasons = [r[0] for r in con.execute("select reason from raw.quarantine").fetchall()]
    assert reasons == [f"duplicate SK_ID_BUREAU {dup_id} (appears 2 times; all copies held back)"] * 2


def test_too_many_bad_rows_fail_and_keep_the_previous_table(con, tmp_path, synthetic_dir, bureau_lines):
    load_table(con, BUREAU, synthetic_dir / "bureau.csv")
    broken = [bureau_lines[0]] + [line.replace('"Closed"', '"Closed",extra') for line in bureau_lines[1:40]]
    with pytest.raises(SourceFileError, match=r"cannot be loaded, more than the 1\.0% allowed.*line \d+"):
        load_table(con, BUREAU, write(tmp_path / "bureau.csv", broken))
    assert con.execute("select count(*) from raw.bureau").fetchone()[0] == len(bureau_lines) - 1
    assert con.execute("select count(*) from raw.quarantine where table_name = 'bureau'").fetchone()[0] > 0
    statuses = [r[0] for r in con.execute("select status from raw.load_log order by loaded_at").fetchall()]
    assert statuses == ["loaded", "failed"]
    assert con.execute("select count(*) from information_schema.tables where table_name like '_staging%'").fetchone()[0] == 0


@pytest.mark.parametrize(
    "content, message",
    [(b"", "file is empty"), (b'"SK_ID_CURR","SK_ID_BUREAU"\n', "missing column"), (None, "header only")],
)
def test_empty_files_are_rejected(con, tmp_path, bureau_lines, content, message):
    path = tmp_path / "bureau.csv"
    path.write_bytes(content if content is not None else (bureau_lines[0] + "\n").encode())
    with pytest.raises(SourceFileError, match=message):
        load_table(con, BUREAU, path)


def test_wrong_encoding_is_quarantined_as_invalid_encoding(con, tmp_path, bureau_lines):
    bad = bureau_lines[1].replace("Consumer credit", "Crédit conso").encode("latin-1")
    path = tmp_path / "bureau.csv"
    path.write_bytes("\n".join([bureau_lines[0], *bureau_lines[2:]]).encode() + b"\n" + bad + b"\n")
    report = load_table(con, BUREAU, path, max_reject_share=0.5)
    assert report.quarantined == 1
    assert "INVALID ENCODING" in con.execute("select reason from raw.quarantine").fetchone()[0]


def test_corrupt_gzip_is_a_clear_error(con, tmp_path):
    path = tmp_path / "bureau.csv.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(SourceFileError, match="valid gzip file"):
        load_table(con, BUREAU, path)


def test_truncated_gzip_keeps_the_previous_table(con, tmp_path, synthetic_dir):
    load_table(con, BUREAU, synthetic_dir / "bureau.csv")
    good = gzip.compress((synthetic_dir / "bureau.csv").read_bytes())
    path = tmp_path / "bureau.csv.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(SourceFileError, match=str(path)):
        load_table(con, BUREAU, path)
    assert con.execute("select count(*) from raw.bureau").fetchone()[0] > 0


def test_gzip_and_cp1252_description_file(con, tmp_path, synthetic_dir):
    with open(synthetic_dir / "bureau.csv", "rb") as src, gzip.open(tmp_path / "bureau.csv.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert load_table(con, BUREAU, find_source_file(tmp_path, BUREAU)).rows > 0
    path = tmp_path / "HomeCredit_columns_description.csv"
    path.write_bytes(',Table,Row,Description,Special\r\n1,bureau.csv,SK_ID_BUREAU,Recoded ID \x96 unique,\r\n'.encode("latin-1"))
    report = load_table(con, COLUMNS_DESCRIPTION, path)
    assert report.rows == 1
    assert con.execute("select Description from raw.columns_description").fetchone()[0] == "Recoded ID \u2013 unique"
