"""A person's data on request: `credit-dagster subject export ID` finds every row held about one
applicant, in every store, and nobody else's."""

import getpass
import json
import shutil
import stat

import duckdb
import pypdf

from credit_dagster import cli
from credit_dagster.core import audit
from credit_dagster.review import cases as review
from credit_dagster.review.journal import ReviewJournal


def test_the_export_finds_every_row_held_about_one_applicant_and_nobody_else_s(scored_home, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(scored_home, home, ignore=shutil.ignore_patterns("*.lock"))
    monkeypatch.setenv("CREDIT_HOME", str(home))
    monkeypatch.delenv("CREDIT_DATA_DIR", raising=False)  # a fixture home remembers no data folder: said below
    # a file of the inbox that cannot be read: said, and the search goes on
    next((home / "inbox").iterdir()).joinpath("notes.csv.gz").write_bytes(b"not a gzip stream")
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        # an applicant of the scored night with bureau credits (their months are found by SK_ID_BUREAU)
        applicant = con.execute("""select s.SK_ID_CURR from scoring.scored_applications s join raw.bureau b using (SK_ID_CURR)
                                   join raw.bureau_balance bb using (SK_ID_BUREAU) order by 1 limit 1""").fetchone()[0]
    # what people and systems did about them since, in each journal; and rows of neighbours whose
    # ids contain theirs, never to be exported
    others = [applicant * 10, int(f"{applicant}1"), int(str(applicant)[1:])]
    audit.AuditLog(audit.audit_dir()).append([{"SK_ID_CURR": i, "decision": "granted", "caller": "branch"} for i in [applicant, *others]])
    ReviewJournal().record(applicant, review.CONTEST, user="api:front", role="", model_version="v", model_decision="refused",
                           revision=None, note="I was never late", channel="branch", received_on="2026-11-02")
    audit.AuditLog(audit.access_dir(), prefix=audit.ACCESS_PREFIX).append(
        [{"at": "2026-11-02T10:00:00", "user": "advisor1", "event": "opened", "SK_ID_CURR": i} for i in [applicant, *others]])

    out = tmp_path / "exports" / "subject.json"
    assert cli.main(["subject", "export", str(applicant), "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and stat.S_IMODE(out.parent.stat().st_mode) == 0o700
    exported = json.loads(out.read_text())
    found = {(f["store"], f["where"], f["table"]): f["rows"] for f in exported["found"]}

    # every table of every DuckDB file: as many of their rows as a query of each table finds
    for file, store in ((home / "warehouse.duckdb", "warehouse"), (home / "serving" / "serving.duckdb", "snapshot")):
        with duckdb.connect(str(file), read_only=True) as con:
            bureaus = [r[0] for r in con.execute("select SK_ID_BUREAU from raw.bureau where SK_ID_CURR = ?", [applicant]).fetchall()] \
                if store == "warehouse" else []
            tables = con.execute("""select table_schema, table_name, list(upper(column_name)) from information_schema.columns
                                    where table_catalog = current_database() group by all""").fetchall()
            expected = {}
            for schema, table, columns in tables:
                key = next((c for c in ("SK_ID_CURR", "SK_ID") if c in columns), None)
                if key:
                    n = con.execute(f'select count(*) from "{schema}"."{table}" where {key} = ?', [applicant]).fetchone()[0]
                elif "SK_ID_BUREAU" in columns and bureaus:
                    n = con.execute(f'select count(*) from "{schema}"."{table}" where SK_ID_BUREAU in (select unnest(?))',
                                    [bureaus]).fetchone()[0]
                else:
                    continue
                if n:
                    expected[f"{schema}.{table}"] = n
        where = file.relative_to(home).as_posix()
        got = {table: len(rows) for (s, w, table), rows in found.items() if s == store and w == where}
        assert got == expected, store
    assert {"raw.application_test", "raw.bureau_balance", "scoring.scored_applications", "scoring.decision_audit",
            "scoring.applicant_contributions"} <= {t for (s, _, t) in found if s == "warehouse"}
    # the drop's files in the inbox, the bureau months among them
    drops = {t for (s, _, t) in found if s == "drop"}
    assert {"application_test.csv", "bureau.csv", "bureau_balance.csv"} <= drops
    # each journal's lines about them, and only theirs
    # each journal's lines about them (the shared fixture's other tests may have written some too), and only theirs
    journals = {t.split("_")[0]: rows for (s, _, t), rows in found.items() if s == "journal"}
    for prefix, folder, key in (("ondemand", audit.audit_dir(), "SK_ID_CURR"), ("access", audit.access_dir(), "SK_ID_CURR"),
                                ("review", audit.review_dir(), "sk_id")):
        assert journals[prefix] == lines_about(folder, f"{prefix}_", key, applicant), prefix
    assert journals["ondemand"][-1]["caller"] == "branch" and journals["access"][-1]["user"] == "advisor1"
    assert journals["review"][-1]["note"] == "I was never late"
    for rows in found.values():
        for row in rows:
            ids = {str(v) for k, v in row.items() if k.upper() in ("SK_ID_CURR", "SK_ID")}
            assert ids <= {str(applicant)}, row
    assert not {str(o) for o in others} & {str(v) for rows in found.values() for r in rows for k, v in r.items()
                                           if k.upper() in ("SK_ID_CURR", "SK_ID")}
    # the same, readable: each place it is kept, the review note as the client wrote it, nobody else
    pdf = out.with_suffix(".pdf")
    assert stat.S_IMODE(pdf.stat().st_mode) == 0o600
    text = " ".join(" ".join(page.extract_text().split()) for page in pypdf.PdfReader(pdf).pages)
    assert f"What we hold about applicant {applicant}" in text and "I was never late" in text
    assert "kept in warehouse.duckdb" in text and "kept in serving/serving.duckdb" in text and "Logs of decisions" in text
    assert f"SK_ID_CURR: {applicant * 10}" not in text
    # a fixture home remembers no data folder: said, not silently skipped
    assert any("source data" in gap for gap in exported["not_searched"])
    assert any("notes.csv.gz: not readable" in gap for gap in exported["not_searched"])
    # the export itself is on record, with the OS account that asked
    reads, _ = audit.read(audit.audit_dir(), audit.READS_PREFIX)
    assert reads.iloc[-1][["caller", "read", "SK_ID_CURR"]].tolist() == [f"cli:{getpass.getuser()}", "subject export", applicant]


def lines_about(folder, prefix: str, key: str, applicant: int) -> list[dict]:
    """The journal's records naming the applicant, read line by line here."""
    records = []
    for path in sorted(folder.glob(f"{prefix}*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            record.pop("_prev", None)
            if record.get(key) == applicant:
                records.append(record)
    return records
