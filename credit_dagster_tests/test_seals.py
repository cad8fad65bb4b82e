"""Each night's decisions sealed (core/seals.py): an edited, deleted or inserted audit row, or a
forged run, is found by the night's check and by `credit-dagster audit verify`, saying where."""

import shutil

import duckdb

from credit_dagster import cli
from credit_dagster.core import audit, seals
from credit_dagster_tests.conftest import SCORED_DAYS, score_night


def check_of(result) -> tuple[bool, str]:
    [evaluation] = [e.event_specific_data for e in result.all_events
                    if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == "decisions_untouched"]
    return evaluation.passed, evaluation.description or ""


def test_a_night_s_decisions_are_sealed_and_a_changed_row_is_found_where_it_is(scored_home, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    shutil.copytree(scored_home, home, ignore=shutil.ignore_patterns("*.lock"))
    monkeypatch.setenv("CREDIT_HOME", str(home))
    first, second = SCORED_DAYS
    result = score_night(second)
    passed, said = check_of(result)
    assert passed and "runs as sealed" in said
    head = result.asset_materializations_for_node("scoring__scored_applications")[0].metadata["decision_audit_head"].value
    warehouse = home / "warehouse.duckdb"
    journal = [audit.record_of(line) for p in sorted(audit.audit_dir().glob("seals_*.jsonl")) for line in p.read_bytes().splitlines()]
    assert journal[-1]["head"] == head and journal[-1]["night"] == second  # the head in Dagster's metadata is the journal's
    # ... and the serving snapshot's, beside each journal's head as the night published it
    with duckdb.connect(str(home / "serving" / "serving.duckdb"), read_only=True) as con:
        published = con.execute("select store, night, run_id, head from audit_heads").fetchall()
    assert ("night decisions", second, journal[-1]["run_id"], head) in published
    assert {(s, h) for s, n, _, h in published if n is None} == {(name, audit.verify(folder, prefix)[1])
                                                                 for name, (folder, prefix) in audit.journals().items()}
    sealed = next(r for r in journal if r["night"] == first)  # (the shared fixture's other tests may have scored it again)
    run_id = sealed["run_id"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        checked = seals.verify(con)
        rows, runs = con.execute("select count(*), count(distinct run_id) from scoring.decision_audit").fetchone()
        night = [r[0] for r in con.execute("select SK_ID_CURR from scoring.decision_audit where run_id = ? order by 1", [run_id]).fetchall()]
    assert checked.problems == [] and checked.runs == runs == len(journal) and checked.rows == rows and checked.unsealed_before == 0
    assert cli.main(["audit", "verify"]) == 0
    assert f"night decisions: {rows:,} rows of {runs} sealed runs" in capsys.readouterr().out
    pristine = warehouse.read_bytes()
    block, full = sealed["block"], len(sealed["blocks"]) * sealed["block"]
    assert full >= block and len(night) > full  # a whole block and a tail after it
    target, neighbour = night[block // 2], night[block // 2 + 1]
    where = f"rows 1 to {block} (SK_ID_CURR {night[0]} to {night[block - 1]})"

    def found(change: str, *params) -> list[str]:
        """What verify says once `change` is made to the warehouse, which is put back after."""
        with duckdb.connect(str(warehouse)) as con:
            con.execute(change, list(params))
        try:
            with duckdb.connect(str(warehouse), read_only=True) as con:
                return seals.verify(con).problems
        finally:
            warehouse.write_bytes(pristine)

    edited = found("update scoring.decision_audit set decision = 'granted', probability_of_default = 0.01 where SK_ID_CURR = ? "
                   "and run_id = ?", target, run_id)
    at = block // 2 + 1  # the target's row number in the night's chain
    assert edited == [f"night {first} (run {run_id}): row {at} (SK_ID_CURR {target}) was edited"]
    # two decisions swapped between their applicants (the rows "reordered"): the first is named
    swapped = found("update scoring.decision_audit set SK_ID_CURR = case when SK_ID_CURR = ? then ? else ? end "
                    "where SK_ID_CURR in (?, ?) and run_id = ?", target, neighbour, target, target, neighbour, run_id)
    assert swapped == [f"night {first} (run {run_id}): row {at} (SK_ID_CURR {target}) was edited"]
    tail = found("update scoring.decision_audit set points = points + 1 where SK_ID_CURR = ? and run_id = ?", night[full + 1], run_id)
    assert tail == [f"night {first} (run {run_id}): row {full + 2:,} (SK_ID_CURR {night[full + 1]}) was edited"]
    deleted = found("delete from scoring.decision_audit where SK_ID_CURR = ? and run_id = ?", target, run_id)
    assert deleted == [f"night {first} (run {run_id}): the row sealed as row {at} was deleted (it came before SK_ID_CURR {neighbour})"]
    # a row slipped in between two, and the one after the last: both said
    inserted = found("insert into scoring.decision_audit select * replace (SK_ID_CURR + 1 as SK_ID_CURR) from scoring.decision_audit "
                     "where SK_ID_CURR = ? and run_id = ?", target, run_id)
    assert len(inserted) == 1 and f"(SK_ID_CURR {target + 1}) was inserted" in inserted[0]
    last = found("insert into scoring.decision_audit select * replace (SK_ID_CURR + 10000000 as SK_ID_CURR) from scoring.decision_audit "
                 "where SK_ID_CURR = ? and run_id = ?", night[-1], run_id)
    assert last == [f"night {first} (run {run_id}): row {len(night) + 1:,} (SK_ID_CURR {night[-1] + 10000000}) and 0 after it were "
                    "inserted after the last sealed row"]
    # the rows' digests kept beside the seal changed too: the chain still finds it, to its block
    digests = audit.audit_dir() / sealed["row_digests"]["file"]
    kept = digests.read_bytes()
    digests.write_bytes(b"\0" * len(kept))
    try:
        assert found("update scoring.decision_audit set points = points + 1 where SK_ID_CURR = ? and run_id = ?", target, run_id) == [
            f"night {first} (run {run_id}): a row among {where} was edited, deleted or inserted"]
    finally:
        digests.write_bytes(kept)
    # a whole night forged under a run of its own: rows no seal names
    forged = found("insert into scoring.decision_audit select * replace ('forged' as run_id) from scoring.decision_audit "
                   "where run_id = ?", run_id)
    assert forged == [f"night {first} (run forged): {len(night):,} rows that no seal names (inserted into the audit table, "
                      "or the night was stopped between writing and sealing: its run's log says which)"]
    # the night's check and the command say it too
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update scoring.decision_audit set reason_1 = 'edited' where SK_ID_CURR = ? and run_id = ?", [neighbour, run_id])
    assert cli.main(["audit", "verify"]) == 1
    assert f"BROKEN night {first} (run {run_id}): row {at + 1} (SK_ID_CURR {neighbour}) was edited" in capsys.readouterr().out
    passed, description = check_of(score_night(second))
    assert not passed and f"night {first} (run {run_id}): row {at + 1} (SK_ID_CURR {neighbour}) was edited" in description


def test_the_nightly_check_chains_the_latest_nights_and_each_older_one_in_turn(tmp_path):
    """Forty sealed nights: each night's check chains the latest ones and a turn of the older ones,
    so an edit of an old night is found within the rotation (and `audit verify`, chaining all, finds
    it at once), while rows that no seal names are found every night."""
    from datetime import date, timedelta

    folder, nights = tmp_path / "audit", [(date(2026, 1, 1) + timedelta(days=i)).isoformat() for i in range(40)]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("create schema scoring")
        con.execute("create table scoring.decision_audit (SK_ID_CURR bigint, partition_date varchar, run_id varchar, "
                    "scored_at timestamp, decision varchar)")
        for i, night in enumerate(nights):
            con.execute("insert into scoring.decision_audit select 100000 + range, ?, ?, now(), 'granted' from range(5)", [night, f"run-{i}"])
            seals.seal(con, night, f"run-{i}", folder)
        every = seals.verify(con, folder)
        assert (every.runs, every.deferred, every.problems) == (40, 0, [])
        # nothing changed: 7 latest nights and the older ones' turn each night, all of them within 10 nights
        days = [date(2026, 3, 1) + timedelta(days=d) for d in range(10)]
        chained = [seals.due(audit.records(folder, audit.SEALS_PREFIX)[0], day, recent=7, rotation=10) for day in days]
        assert all({f"run-{i}" for i in range(33, 40)} <= runs for runs in chained)
        assert set().union(*chained) == {f"run-{i}" for i in range(40)} and all(len(runs) <= 7 + 4 for runs in chained)
        tonight = seals.verify(con, folder, today=days[0], recent=7, rotation=10)
        assert tonight.problems == [] and tonight.runs + tonight.deferred == 40 and tonight.runs == len(chained[0])
        # an old night edited: found the night its turn comes, by the full check at once, never missed for longer
        old = next(i for i in range(33) if f"run-{i}" not in chained[0])
        con.execute("update scoring.decision_audit set decision = 'refused' where run_id = ? and SK_ID_CURR = 100002", [f"run-{old}"])
        found = [bool(seals.verify(con, folder, today=day, recent=7, rotation=10).problems) for day in days]
        assert found == [f"run-{old}" in runs for runs in chained] and any(found) and not found[0]
        assert seals.verify(con, folder).problems == [f"night {nights[old]} (run run-{old}): row 3 (SK_ID_CURR 100002) was edited"]
        # a run no seal names is found every night, whatever the turn
        con.execute("update scoring.decision_audit set decision = 'granted' where run_id = ?", [f"run-{old}"])
        con.execute("insert into scoring.decision_audit select 200000, ?, 'forged', now(), 'granted'", [nights[3]])
        assert all(len(seals.verify(con, folder, today=day, recent=7, rotation=10).problems) == 1 for day in days)


def test_runs_written_before_nights_were_sealed_are_counted_and_a_forged_copy_of_one_is_named(tmp_path):
    """The first seal names the runs already written (a release that did not seal nights): they are
    counted, not checked. A run forged later with those rows' very times is still named, as is a
    night's run stopped before its seal, however old its times. A journal an earlier release began
    is read as that release did (it stays valid on upgrade)."""
    folder = tmp_path / "audit"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("create schema scoring")
        con.execute("create table scoring.decision_audit (SK_ID_CURR bigint, partition_date varchar, run_id varchar, "
                    "scored_at timestamp, decision varchar)")

        def write(night: str, run: str, at: str, n: int = 4) -> None:
            con.execute("insert into scoring.decision_audit select 100000 + range, ?, ?, ?::timestamp, 'granted' from range(?)",
                        [night, run, at, n])

        write("2026-01-01", "old-1", "2026-01-01 02:00")
        write("2026-01-02", "old-2", "2026-01-02 02:00")
        write("2026-01-03", "shard-1", "2026-01-03 02:00")
        write("2026-01-03", "shard-2", "2026-01-03 02:01")
        first = seals.seal(con, "2026-01-03", "shard-1", folder)
        assert first["before_seals"] == ["old-1", "old-2"]  # not the night's other shard, sealed next
        assert "before_seals" not in seals.seal(con, "2026-01-03", "shard-2", folder)  # only the first seal names them
        checked = seals.verify(con, folder)
        assert (checked.problems, checked.unsealed_before, checked.runs) == ([], 8, 2)
        # a journal an earlier release began (its first seal names no runs) keeps that release's rule: by the rows' times
        earlier = tmp_path / "earlier"
        shutil.copytree(folder / "seal_rows", earlier / "seal_rows")
        audit.AuditLog(earlier, prefix=audit.SEALS_PREFIX).append(
            [{k: v for k, v in r.items() if k != "before_seals"} for r in audit.records(folder, audit.SEALS_PREFIX)[0]])
        assert (seals.verify(con, earlier).problems, seals.verify(con, earlier).unsealed_before) == ([], 8)
        con.execute("insert into scoring.decision_audit select * replace ('forged' as run_id, 'refused' as decision) "
                    "from scoring.decision_audit where run_id = 'old-1'")
        write("2026-01-04", "stopped", "2026-01-01 01:00", 3)
        checked = seals.verify(con, folder)
        assert checked.unsealed_before == 8 and sorted(checked.problems) == [
            "night 2026-01-01 (run forged): 4 rows that no seal names (inserted into the audit table, or the night was stopped "
            "between writing and sealing: its run's log says which)",
            "night 2026-01-04 (run stopped): 3 rows that no seal names (inserted into the audit table, or the night was stopped "
            "between writing and sealing: its run's log says which)"]
