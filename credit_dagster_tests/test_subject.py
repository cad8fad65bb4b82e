"""A person's data on request: `credit-dagster subject export ID` finds every row held about one
applicant, in every store, and nobody else's."""

import getpass
import gzip
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

import duckdb
import pypdf
import pytest
from fastapi import HTTPException

from credit_dagster import cli
from credit_dagster.api.runtime import Serving
from credit_dagster.core import audit, pseudonyms, seals
from credit_dagster.review import cases as review
from credit_dagster.review.journal import ReviewJournal
from credit_dagster.subject import export
from credit_dagster_tests.conftest import SCORED_DAYS, score_night
from credit_dagster_tests.test_seals import check_of


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


JOURNALS = [("on-demand decisions", audit.audit_dir, "ondemand_", "SK_ID_CURR"), ("review journal", audit.review_dir, "review_", "sk_id"),
            ("dashboard access log", audit.access_dir, "access_", "SK_ID_CURR")]


def reviewed() -> set[int]:
    """Applicants the review journal names (the shared home's other tests review some)."""
    return {a.sk_id for a in ReviewJournal().actions()}


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


def test_an_erased_applicant_is_found_nowhere_but_in_the_decisions_kept_under_a_pseudonym(scored_home, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    shutil.copytree(scored_home, home, ignore=shutil.ignore_patterns("*.lock"))
    monkeypatch.setenv("CREDIT_HOME", str(home))
    monkeypatch.delenv("CREDIT_DATA_DIR", raising=False)
    first, second = SCORED_DAYS
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        # two applicants of the served night with bureau credits: the one erased, and one left as they are
        con.execute(f"attach '{home / 'serving' / 'serving.duckdb'}' as served (read_only)")
        # (none the shared home's other tests put under review: a contest of theirs is planted below)
        (applicant, decision, served), (neighbour, *_) = [r for r in con.execute("""
            select s.SK_ID_CURR, s.decision, v.decision from scoring.scored_applications s join served.scored_applications v using (SK_ID_CURR)
            where SK_ID_CURR in (select SK_ID_CURR from raw.bureau) order by 1""").fetchall() if r[0] not in reviewed()][:2]
        audited = con.execute("select count(*) from scoring.decision_audit where SK_ID_CURR = ?", [applicant]).fetchone()[0]
    words = "My late husband's debts were settled in March"
    # what people and systems did about them, and about a neighbour, in each journal; an export made for them
    audit.AuditLog(audit.audit_dir()).append([{"SK_ID_CURR": i, "decision": "granted", "caller": "branch"} for i in (applicant, neighbour)])
    ReviewJournal().record(applicant, review.CONTEST, user="api:front", role="", model_version="v", model_decision="refused",
                           revision=None, note=words, channel="branch", received_on="2026-11-02")
    audit.AuditLog(audit.access_dir(), prefix=audit.ACCESS_PREFIX).append(
        [{"at": "2026-11-02T10:00:00", "user": "advisor1", "event": "opened", "SK_ID_CURR": i} for i in (applicant, neighbour)])
    assert cli.main(["subject", "export", str(applicant)]) == 0
    assert list((home / "exports").glob(f"subject_{applicant}_*.pdf"))
    # an outcome file reporting on both (kept, as the back-tests' evidence, under the pseudonym)
    outcomes = home / "outcomes" / "inbox" / "2026-12" / "loan_outcomes.csv"
    outcomes.parent.mkdir(parents=True)
    outcomes.write_text(f"SK_ID_CURR,months_on_book,status\n{applicant},6,current\n{neighbour},6,late\n")
    # the nights' Parquet datasets (CREDIT_STORAGE=datasets): a decision kept, a feature row deleted
    for table in ("scored_applications", "applicant_features"):
        folder = home / "datasets" / table / f"partition_date={first}"
        folder.mkdir(parents=True)
        duckdb.sql(f"copy (select * from (values ({applicant}, 'refused', 'a'), ({neighbour}, 'granted', 'b')) v(SK_ID_CURR, decision, note)) "
                   f"to '{folder / 'part-0.parquet'}' (format parquet)")

    # a letter to them kept in the warehouse (not a decision: deleted), there in the file's bytes
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("create table main.letters_sent as select * from (values (?, ?), (?, 'b')) v(SK_ID_CURR, body)", [applicant, words, neighbour])
    assert words.encode() in (home / "warehouse.duckdb").read_bytes()
    # each journal's lines about them (with what the shared home's other tests wrote) and about the neighbour
    earlier = {name: lines_about(folder(), prefix, key, applicant) for name, folder, prefix, key in JOURNALS}
    neighbour_s = {name: lines_about(folder(), prefix, key, neighbour) for name, folder, prefix, key in JOURNALS}
    assert all(earlier.values())
    serving = Serving(home / "models", home / "serving" / "serving.duckdb")  # the API, already serving their decision
    assert serving.decision(applicant)["decision"] == served

    assert cli.main(["subject", "erase", str(applicant)]) == 1  # the request's reference is required
    # done everywhere it can be; what it cannot reach (this home remembers no source folder) is said, and the exit says so
    assert cli.main(["subject", "erase", str(applicant), "--reason", "DPO request 2026-118"]) == 1
    said = capsys.readouterr().out
    assert "NOT ERASED the source data: no data folder known" in said
    alias = pseudonyms.known(applicant)
    assert alias is not None and alias < 0 and f"under pseudonym {alias}" in said

    # nothing about them is found any more, in any store, nor any file naming them or holding their words
    assert export.export(applicant).found == []
    number = re.compile(rf"(?<![0-9]){applicant}(?![0-9])".encode())
    # (DuckDB leaves a deleted row's bytes in its file until the space is reused: the erasure writes each file anew)
    for path in (p for p in home.rglob("*") if p.is_file() and "dagster" not in p.parts):
        data = path.read_bytes()
        data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data  # (other tests plant files that are not gzip in the shared home)
        assert words.encode() not in data, path
        if path.suffix in (".csv", ".jsonl", ".json"):
            assert not number.search(data), path
    # what the law makes the lender keep: the decision and its audit rows under the pseudonym, the review
    # action without what the client wrote, each journal's line; the neighbour's untouched
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select decision from scoring.scored_applications where SK_ID_CURR = ?", [alias]).fetchone()[0] == decision
        assert con.execute("select count(*) from scoring.decision_audit where SK_ID_CURR = ?", [alias]).fetchone()[0] == audited
        assert con.execute("select count(*) from raw.bureau where SK_ID_CURR = ?", [alias]).fetchone()[0] == 0
        assert con.execute("select SK_ID_CURR, body from main.letters_sent").fetchall() == [(neighbour, "b")]
    parquet = {table: duckdb.sql(f"select SK_ID_CURR, note from read_parquet('{home}/datasets/{table}/*/*.parquet') order by 1").fetchall()
               for table in ("scored_applications", "applicant_features")}
    assert parquet == {"scored_applications": [(alias, "[erased]"), (neighbour, "b")], "applicant_features": [(neighbour, "b")]}
    assert sorted(outcomes.read_text().splitlines()) == sorted(["SK_ID_CURR,months_on_book,status", f"{alias},6,current", f"{neighbour},6,late"])
    for name, folder, prefix, key in JOURNALS:  # each line about them kept under the pseudonym; the neighbour's untouched
        assert len(lines_about(folder(), prefix, key, alias)) == len(earlier[name]), name
        assert lines_about(folder(), prefix, key, neighbour) == neighbour_s[name], name
    contest = lines_about(audit.review_dir(), "review_", "sk_id", alias)
    assert (review.CONTEST, "[erased]", "branch") in [(r["action"], r["note"], r["channel"]) for r in contest]
    assert all(r.get("note") in (None, "", "[erased]") for r in contest)
    with pytest.raises(HTTPException) as unknown:  # the API answers from the snapshot as erased, without a restart
        serving.decision(applicant)
    assert unknown.value.status_code == 404 and serving.decision(neighbour)
    # the person's number still finds the kept decision
    assert cli.main(["decision", "show", str(applicant)]) == 0
    assert decision in capsys.readouterr().out
    # every chain still verifies, and still finds a change made after the erasure
    assert cli.main(["audit", "verify"]) == 0
    erasures = [audit.record_of(line) for p in sorted(audit.audit_dir().glob("erasures_*.jsonl")) for line in p.read_bytes().splitlines()]
    assert [e["reason"] for e in erasures if "reason" in e] == ["DPO request 2026-118"] and erasures[-1]["completed"]
    assert not number.search(json.dumps(erasures).encode())
    review_file = next(audit.review_dir().glob("review_*.jsonl"))
    pristine = review_file.read_bytes()
    review_file.write_bytes(pristine.replace(b'"[erased]"', b'"[erased] and more"'))
    assert cli.main(["audit", "verify"]) == 1
    assert "marked as rewritten by an erasure that the erasures journal does not name" in capsys.readouterr().out
    review_file.write_bytes(pristine)
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("update scoring.decision_audit set points = points + 1 where SK_ID_CURR = ?", [alias])
        # (one problem per run that decided the night, in the seals journal's order: the test sorts both)
        assert sorted(seals.verify(con).problems) == sorted(
            f"night {first} (run {run}): the row a person's erasure pseudonymised as {alias} was changed since"
            for (run,) in con.execute("select distinct run_id from scoring.decision_audit "
                                      "where SK_ID_CURR = ? and partition_date = ?", [alias, first]).fetchall())
        con.execute("update scoring.decision_audit set points = points - 1 where SK_ID_CURR = ?", [alias])
    # and the next night runs, its check finding every sealed night as it was
    passed, description = check_of(score_night(second))
    assert passed, description


def test_an_erasure_killed_once_its_plan_is_recorded_is_finished_by_running_it_again(scored_home, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(scored_home, home, ignore=shutil.ignore_patterns("*.lock"))
    monkeypatch.setenv("CREDIT_HOME", str(home))
    monkeypatch.delenv("CREDIT_DATA_DIR", raising=False)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        applicant = max(set(r[0] for r in con.execute("select SK_ID_CURR from scoring.scored_applications").fetchall()) - reviewed())
    ReviewJournal().record(applicant, review.CONTEST, user="api:front", role="", model_version="v", model_decision="refused",
                           revision=None, note="words of theirs", channel="branch", received_on="2026-11-02")
    erasing = subprocess.Popen([sys.executable, "-m", "credit_dagster.cli", "subject", "erase", str(applicant), "--reason", "REF-1"],
                               env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size for p in audit.audit_dir().glob("erasures_*.jsonl")) and erasing.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    erasing.send_signal(signal.SIGKILL)  # somewhere after its plan was recorded
    erasing.wait()
    assert cli.main(["audit", "verify"]) == 0  # whatever it had done is as its plan says
    assert cli.main(["subject", "erase", str(applicant), "--reason", "REF-1"]) == 1  # (no source folder known: said)
    assert export.export(applicant).found == []
    assert cli.main(["audit", "verify"]) == 0
    records = [audit.record_of(line) for p in sorted(audit.audit_dir().glob("erasures_*.jsonl")) for line in p.read_bytes().splitlines()]
    assert records[-1]["completed"] and sum("sealed_rows" in r for r in records) == 2  # the plan killed, then the one that finished
    alias = pseudonyms.known(applicant)
    notes = [r.get("note") for r in lines_about(audit.review_dir(), "review_", "sk_id", alias)]
    assert "[erased]" in notes and set(notes) <= {None, "", "[erased]"}
    assert not list(home.rglob(".*.erasing"))  # nothing of the killed run's work files left once it is finished


def test_a_backup_taken_before_an_erasure_is_restored_with_the_erasure_applied_again(scored_home, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    shutil.copytree(scored_home, home, ignore=shutil.ignore_patterns("*.lock"))
    monkeypatch.setenv("CREDIT_HOME", str(home))
    monkeypatch.delenv("CREDIT_DATA_DIR", raising=False)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        applicant, other = [r[0] for r in con.execute("select SK_ID_CURR from scoring.scored_applications order by 1 limit 2").fetchall()]
    assert cli.main(["backup", str(tmp_path / "backup")]) == 0
    cli.main(["subject", "erase", str(applicant), "--reason", "REF-7"])
    assert export.export(applicant).found == []
    restored = tmp_path / "restored"
    assert cli.main(["restore", str(tmp_path / "backup"), "--to", str(restored)]) == 0
    said = capsys.readouterr().out
    assert "1 people erased since" in said and "1 of them were in the backup, erased again in the restored home" in said
    monkeypatch.setenv("CREDIT_HOME", str(restored))
    assert export.export(applicant).found == []  # erased again, with the same pseudonym
    assert export.export(other).found  # nobody else
    assert pseudonyms.known(applicant) is not None
    with duckdb.connect(str(restored / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from scoring.decision_audit where SK_ID_CURR = ?", [pseudonyms.known(applicant)]).fetchone()[0]
    assert cli.main(["audit", "verify"]) == 0
