"""Retention (retention/policy.py): each store's data past its period removed by the daily job,
what went in its metadata, and every audit chain still whole afterwards."""

import shutil
from datetime import UTC, date, datetime

import duckdb

from credit_dagster import cli
from credit_dagster.core import audit
from credit_dagster_tests.conftest import SCORED_DAYS, score_night
from credit_dagster_tests.test_seals import check_of


def test_the_daily_job_removes_what_is_past_its_period_and_every_chain_still_verifies(scored_home, tmp_path, monkeypatch, capsys):
    import dagster as dg

    home = tmp_path / "home"
    shutil.copytree(scored_home, home, ignore=shutil.ignore_patterns("*.lock"))
    monkeypatch.setenv("CREDIT_HOME", str(home))
    first, second = SCORED_DAYS
    today = datetime.now(UTC).date()
    kept_from = (today - date.fromisoformat(second)).days  # the second night is the oldest day kept
    for store in ("DROP", "DECISION"):
        monkeypatch.setenv(f"CREDIT_RETENTION_{store}_DAYS", str(kept_from))
    monkeypatch.setenv("CREDIT_RETENTION_ACCESS_DAYS", "365")
    # access logs: a year-old day file then today's, chained across them; API reads only a year old
    access = audit.AuditLog(audit.access_dir(), prefix=audit.ACCESS_PREFIX)
    access.append([{"at": "2025-01-01T10:00:00", "user": "advisor1", "event": "opened", "SK_ID_CURR": 1}])
    old = audit.access_dir() / "access_2025-01-01.jsonl"
    next(audit.access_dir().glob(f"access_{today}.jsonl")).rename(old)
    access.append([{"at": f"{today}T10:00:00", "user": "advisor1", "event": "opened", "SK_ID_CURR": 2}])
    reads = audit.AuditLog(audit.audit_dir(), prefix=audit.READS_PREFIX)
    reads.append([{"at": "2025-01-01T10:00:00", "caller": "branch", "read": "decision", "SK_ID_CURR": 1}])
    for path in audit.audit_dir().glob(f"reads_{today}.jsonl"):  # (the shared fixture's other tests may have read some today)
        path.rename(audit.audit_dir() / "reads_2025-01-02.jsonl")
    audit._heads.clear()
    assert cli.main(["audit", "verify"]) == 0

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        details = {t: con.execute(f"select count(*) from scoring.{t} where partition_date < ?", [second]).fetchone()[0]
                   for t in ("applications", "applicant_details", "applicant_features", "applicant_contributions")}

    from credit_dagster.definitions import defs

    result = defs.resolve_job_def("retention").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    metadata = result.asset_materializations_for_node("governance__retention")[0].metadata
    removed = metadata["removed"].value
    assert metadata["oldest_day_kept"].value == {"drops": second, "decisions": second, "access": str(date(today.year - 1, today.month, today.day))}
    assert metadata["nights_retired"].value == [first]
    assert removed["inbox drop folders"] == 1 and removed["warehouse drop tables"] > 0
    assert removed["access_*.jsonl day files"] == 1 and removed["reads_*.jsonl day files"] >= 1
    # the first night's drop and decisions are gone, the second's drop is there
    assert not (home / "inbox" / first).exists() and (home / "inbox" / second).exists()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        schemas = {s for (s,) in con.execute("select schema_name from information_schema.schemata").fetchall()}
        assert "drop_" + first.replace("-", "") not in schemas and "drop_" + first.replace("-", "") + "_features" not in schemas
        assert con.execute("select count(*) from scoring.decision_audit where partition_date < ?", [second]).fetchone()[0] == 0
        # what the dashboard shows of the first night's applicants (their application, features, contributions) went with its drop
        assert {t: removed.get(f"scoring.{t} rows", 0) for t in details} == details and details["applicant_features"] > 0
        assert all(con.execute(f"select count(*) from scoring.{t} where partition_date < ?", [second]).fetchone()[0] == 0 for t in details)
    assert not old.exists() and list(audit.access_dir().glob("access_*.jsonl"))
    # every chain whole: the journals from where retention cut them, the retired night's seal not checked
    assert cli.main(["audit", "verify"]) == 0
    assert "runs past their retention, removed" in capsys.readouterr().out
    # journals go on from there, one whose every file went included
    reads.append([{"at": f"{today}T11:00:00", "caller": "branch", "read": "decision", "SK_ID_CURR": 3}])
    access.append([{"at": f"{today}T11:00:00", "user": "advisor1", "event": "opened", "SK_ID_CURR": 3}])
    assert cli.main(["audit", "verify"]) == 0
    # a second run finds nothing more to remove; and the next night runs, its checks whole
    again = defs.resolve_job_def("retention").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert again.asset_materializations_for_node("governance__retention")[0].metadata["removed_total"].value == 0
    passed, description = check_of(score_night(second))
    assert passed, description


def test_the_nights_parquet_datasets_are_removed_with_their_store_s_period(tmp_path, monkeypatch):
    """CREDIT_STORAGE=datasets: a night's partitions of the drop's and the features' datasets go with
    the drop's period, of the decisions' and their audit's with the decisions' (their runs' seals
    then counted as retired), each table on its own."""
    from credit_dagster.core import datasets
    from credit_dagster.retention import policy

    root = tmp_path / "datasets"
    monkeypatch.setenv("CREDIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CREDIT_STORAGE", "datasets")
    monkeypatch.setenv("CREDIT_DATASETS", str(root))
    old, recent, today = "2024-01-10", "2026-11-30", date(2026, 12, 1)
    con = duckdb.connect()
    root.mkdir()
    for table in ("drop_application_test", "night_application_features", "applicant_features", "scored_applications", "decision_audit"):
        con.execute(f"""copy (select 100001 + i as SK_ID_CURR, night, '00' as shard, 'run-' || night as run_id
                              from (values ('{old}'), ('{recent}')) v(night), range(3) r(i))
                        to '{root / table}' (format parquet, partition_by (night, shard))""")
    monkeypatch.setenv("CREDIT_RETENTION_DROP_DAYS", "365")
    monkeypatch.setenv("CREDIT_RETENTION_DECISION_DAYS", "0")  # decisions kept forever: only the drop's and features' old night goes
    applied = policy.apply(con, tmp_path / "inbox", today)
    assert {t: sorted(n) for t, n in datasets.nights(str(root)).items()} == {
        "decision_audit": [old, recent], "scored_applications": [old, recent], "applicant_features": [recent],
        "drop_application_test": [recent], "night_application_features": [recent]}
    assert applied.removed["datasets applicant_features nights"] == 1 and applied.nights_retired == []
    monkeypatch.setenv("CREDIT_RETENTION_DECISION_DAYS", "730")
    applied = policy.apply(con, tmp_path / "inbox", today)
    assert all(sorted(n) == [recent] for n in datasets.nights(str(root)).values())
    assert applied.nights_retired == [old] and applied.removed["datasets decision_audit nights"] == 1
    retired = [r for record in audit.records(audit.audit_dir(), audit.RETENTION_PREFIX)[0] for r in record["nights"]]
    assert retired == [{"night": old, "run_ids": [f"run-{old}"]}]
    # what is left still reads as one dataset
    assert con.execute(f"select count(*) from ({datasets.scan(str(root), 'decision_audit')})").fetchone()[0] == 3
