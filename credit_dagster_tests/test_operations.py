"""Operations as they happen: a real SIGKILL of a running night, concurrent runs, the CLI's words."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from credit_dagster import cli
from credit_dagster_tests.conftest import SCORED_DAYS

DAY = SCORED_DAYS[1]  # replayed into the scored home's inbox, not scored there yet


def _cli(home: Path, *args: str, inbox: Path | None = None, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "CREDIT_HOME": str(home), "CREDIT_LOG_LEVEL": "DEBUG"}
    env.pop("DAGSTER_HOME", None)
    env.pop("CREDIT_INBOX", None)
    if inbox is not None:
        env["CREDIT_INBOX"] = str(inbox)
    return subprocess.Popen([sys.executable, "-m", "credit_dagster.cli", *args], env=env,
                            **{"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, **kwargs})


@pytest.fixture
def ops_home(scored_home, synthetic_dir, tmp_path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(scored_home, home)
    (home / "data_dir.txt").write_text(str(synthetic_dir))
    return home


@pytest.fixture
def empty_home(tmp_path, synthetic_dir) -> Path:
    """A CREDIT_HOME with nothing built, that knows its data folder: for the CLI's words that need no model."""
    home = tmp_path / "empty_home"
    home.mkdir()
    (home / "data_dir.txt").write_text(str(synthetic_dir))
    return home


@pytest.mark.slow
def test_sigkill_mid_night_then_the_rerun_completes_without_duplicates(ops_home):
    killed = _cli(ops_home, "score", "--start", DAY)
    # wait until the night is inside a step that writes the warehouse, then kill it without warning
    deadline, seen = time.monotonic() + 240, []
    for line in killed.stdout:
        seen.append(line)
        if "scoring__daily_features" in line or "scoring__scored_applications" in line or time.monotonic() > deadline:
            break
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "".join(seen)[-2000:]
    rerun = _cli(ops_home, "score", "--start", DAY)
    try:
        out, _ = rerun.communicate(timeout=300)  # before recovery this waited forever on the dead run's pool slot
    except subprocess.TimeoutExpired:
        rerun.kill()
        pytest.fail("the re-run after a SIGKILL did not finish within 300 s")
    assert rerun.returncode == 0, out[-3000:]
    assert "recovered: run" in out and "marked failed" in out
    with duckdb.connect(str(ops_home / "warehouse.duckdb"), read_only=True) as con:
        scored = con.execute("select count(*), count(distinct SK_ID_CURR) from scoring.scored_applications where partition_date = ?",
                             [DAY]).fetchone()
        audit = con.execute("""select run_id, count(*) from scoring.decision_audit where partition_date = ? group by 1""", [DAY]).fetchall()
    drop_rows = sum(1 for _ in open(next((ops_home / "inbox" / DAY).glob("application_test.csv*")))) - 1
    assert scored[0] == scored[1] > 0 and scored[0] <= drop_rows
    # each run's decisions went in whole or not at all: no half night in the audit trail
    assert audit and all(n == scored[0] for _, n in audit)


@pytest.mark.slow
def test_two_nights_at_once_both_succeed(ops_home):
    first = _cli(ops_home, "score", "--start", SCORED_DAYS[0])
    started = []
    for line in first.stdout:  # the first night is inside its steps: the second has to take turns with it
        started.append(line)
        if "STEP_START" in line:
            break
    second = _cli(ops_home, "score", "--start", DAY)
    outputs = [p.communicate(timeout=480)[0] for p in (first, second)]
    outputs[0] = "".join(started) + outputs[0]
    assert first.returncode == 0 and second.returncode == 0, [o[-2000:] for o in outputs]
    assert not any("Could not set lock" in o for o in outputs)


def test_cli_failures_are_one_line(empty_home, monkeypatch, capsys):
    monkeypatch.setenv("CREDIT_HOME", str(empty_home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(SystemExit):
        cli.main(["score", "--start", "18/11/2026"])
    assert "not a day written YYYY-MM-DD" in capsys.readouterr().err
    assert cli.main(["score", "--start", "2999-01-01"]) == 1
    err = capsys.readouterr().err
    assert "has not ended yet" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert cli.main(["promote", "v9999", "--reason", "x"]) == 1
    assert "no model v9999" in capsys.readouterr().err


def test_the_cli_speaks_plainly_to_a_new_user(tmp_path, synthetic_dir, monkeypatch, capsys):
    monkeypatch.setenv("CREDIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("CREDIT_DATA_DIR", raising=False)
    empty = tmp_path / "not_kaggle"
    empty.mkdir()
    # a folder without the Kaggle files: one line naming them, before any run
    assert cli.main(["run", "--data-dir", str(empty)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "8 of 8 missing" in err and "bureau.csv" in err and "SourceFileError" not in err
    # --verbose, which every error suggests, is taken after the command too
    with pytest.raises(cli.CliError):
        cli.main(["run", "--data-dir", str(empty), "--verbose"])
    capsys.readouterr()
    # a CREDIT_HOME that cannot be written: said, with what to do
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("CREDIT_HOME", str(tmp_path / "a_file" / "home"))
    assert cli.main(["run", "--data-dir", str(synthetic_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "set CREDIT_HOME to a folder you can write" in err and "NotADirectoryError" not in err
    # a dashboard nobody can sign in to is refused before it announces an address
    monkeypatch.setenv("CREDIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CREDIT_DASHBOARD_OAUTH_PROVIDER", raising=False)
    monkeypatch.setenv("CREDIT_DASHBOARD_USERS", str(tmp_path / "none.json"))
    assert cli.main(["dashboard"]) == 1
    out, err = capsys.readouterr()
    assert "http://" not in out and "dashboard-user add" in err


@pytest.mark.slow
def test_a_sign_off_shows_in_the_ui_and_the_next_run_scores_without_rebuilding(ops_home, synthetic_dir, monkeypatch, capsys):
    from credit_dagster.model.assets import CHAMPION
    from credit_dagster.model.registry import Registry

    monkeypatch.setenv("CREDIT_HOME", str(ops_home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    version = Registry(ops_home / "models").versions()[-1]
    assert cli.main(["promote", version, "--reason", "fairness figures reviewed by the risk committee"]) == 0
    assert "next: credit-dagster run" in capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:  # what the UI shows of model/champion_model
        shown = instance.get_latest_materialization_event(CHAMPION).asset_materialization.metadata
        assert shown["champion"].value == version
    # the home was built from this data with this code: run goes straight to the nights
    (ops_home / "build_stamp.json").write_text(__import__("json").dumps(cli._build_stamp(synthetic_dir)))
    assert cli.main(["run", "--data-dir", str(synthetic_dir)]) == 0
    out = capsys.readouterr().out
    assert "build_all: up to date" in out and "build_all run" not in out and "nightly_scoring [" in out
    with dg.DagsterInstance.get() as instance:
        assert {r.job_name for r in instance.get_runs()} == {"nightly_scoring"}
        scored = len(instance.get_runs())
    # once more: the nights are scored, their decisions stand; nothing is made again
    assert cli.main(["run", "--data-dir", str(synthetic_dir)]) == 0
    out = capsys.readouterr().out
    assert "already scored: their decisions stand" in out and "nightly_scoring [" not in out
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == scored


def test_a_night_without_a_drop_is_skipped_not_failed(empty_home, monkeypatch, capsys):
    monkeypatch.setenv("CREDIT_HOME", str(empty_home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert cli.main(["score", "--start", "2026-10-03"]) == 0
    assert "no drop" in capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:  # nor a partition the UI would count as missing
        assert not instance.get_runs() and instance.get_dynamic_partitions("drop_days") == []


def test_score_without_a_known_data_folder_never_falls_back_to_synthetic(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CREDIT_HOME", str(tmp_path / "empty_home"))
    monkeypatch.delenv("CREDIT_DATA_DIR", raising=False)
    assert cli.main(["score", "--start", "2026-10-03"]) == 1
    assert "no data folder known" in capsys.readouterr().err
    assert not (tmp_path / "empty_home" / "data").exists()


def test_the_code_location_reads_the_data_its_home_was_built_from_never_the_synthetic_set(tmp_path, monkeypatch, synthetic_dir):
    """The Dagster UI or a daemon started without CREDIT_DATA_DIR (plain `dagster dev`, a production
    service): the source folder is the one this CREDIT_HOME was built from; a home built from nothing
    says so, and never falls back to the synthetic set (a retrain from the UI would train on it)."""
    from credit_dagster.core import settings
    from credit_dagster.core.resources import SourceData

    monkeypatch.setenv("CREDIT_HOME", str(tmp_path / "bank_home"))
    monkeypatch.delenv("CREDIT_DATA_DIR", raising=False)
    with pytest.raises(LookupError, match="no data folder known"):
        SourceData().folder()
    real = tmp_path / "real_data"
    real.mkdir()
    settings.credit_home().mkdir(parents=True)
    settings.remembered_data_dir().write_text(str(real))  # as `credit-dagster run --data-dir` leaves it
    (settings.credit_home() / "data" / "synthetic_default").mkdir(parents=True)  # a demo once ran here too
    assert SourceData().folder() == real
    monkeypatch.setenv("CREDIT_DATA_DIR", str(synthetic_dir))  # said explicitly: that one
    assert SourceData().folder() == synthetic_dir.resolve()


def test_a_secret_comes_from_a_file_as_container_platforms_mount_it(tmp_path, monkeypatch):
    from credit_dagster.core import settings

    secret = tmp_path / "cookie_secret"
    secret.write_text("from-a-mounted-file-" + "x" * 32 + "\n")
    monkeypatch.setenv("CREDIT_DASHBOARD_COOKIE_SECRET_FILE", str(secret))
    monkeypatch.delenv("CREDIT_DASHBOARD_COOKIE_SECRET", raising=False)
    assert settings.current().dashboard_cookie_secret == "from-a-mounted-file-" + "x" * 32
    monkeypatch.setenv("CREDIT_DASHBOARD_COOKIE_SECRET", "and-from-the-environment")
    with pytest.raises(ValueError, match="both CREDIT_DASHBOARD_COOKIE_SECRET and CREDIT_DASHBOARD_COOKIE_SECRET_FILE"):
        settings.current()
    monkeypatch.delenv("CREDIT_DASHBOARD_COOKIE_SECRET")
    monkeypatch.setenv("CREDIT_DASHBOARD_COOKIE_SECRET_FILE", str(tmp_path / "not_mounted"))
    with pytest.raises(ValueError, match="CREDIT_DASHBOARD_COOKIE_SECRET_FILE: cannot read") as refused:
        settings.current()
    assert "mounted-file" not in str(refused.value)


@pytest.mark.slow
def test_a_backup_taken_during_a_night_restores_a_home_that_answers_the_same_and_runs_on(ops_home, tmp_path, monkeypatch, capsys):
    """`credit-dagster backup` while a night runs and the API answers; `restore` into an empty folder:
    the API there gives the same decisions, every confirmed review action is there, the night runs
    to its end; a changed file of the backup is refused by name."""
    from fastapi.testclient import TestClient

    from credit_dagster.api import keys
    from credit_dagster.api.app import create_app
    from credit_dagster.review import cases as review
    from credit_dagster.review.journal import ReviewJournal

    for variable in ("DAGSTER_HOME", "CREDIT_INBOX", "CREDIT_REVIEW_JOURNAL_DIR", "CREDIT_API_AUDIT_DIR", "CREDIT_API_KEYS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CREDIT_HOME", str(ops_home))
    with duckdb.connect(str(ops_home / "warehouse.duckdb"), read_only=True) as con:
        picked = con.execute("select SK_ID_CURR, decision from scoring.scored_applications order by SK_ID_CURR limit 5").fetchall()
    journal = ReviewJournal()
    sk_id, decision = picked[0]
    journal.record(sk_id, review.CONTEST, user="api:branch", role="", model_version="v", model_decision=decision, revision=None,
                   note="I can repay", channel="phone")
    key = keys.create("backup-test", rate_per_second=1000, scopes=keys.SCOPES)
    (ops_home / "dashboard").mkdir(exist_ok=True)
    (ops_home / "dashboard" / "sessions.json").write_text("{}")  # open sessions: never restored
    night = _cli(ops_home, "score", "--start", DAY)
    for line in night.stdout:  # the night is under way
        if "scoring__" in line:
            break
    with TestClient(create_app()) as api:
        answers = {i: api.get(f"/v1/decisions/{i}", headers={"X-API-Key": key}).json()["final_decision"] for i, _ in picked}
        assert cli.main(["backup", str(tmp_path / "backup")]) == 0  # waits for the warehouse between two steps
        assert api.get(f"/v1/decisions/{sk_id}", headers={"X-API-Key": key}).status_code == 200  # answering meanwhile
    out, _ = night.communicate(timeout=300)
    assert night.returncode == 0, out[-2000:]
    restored = tmp_path / "restored"
    assert cli.main(["restore", str(tmp_path / "backup"), "--to", str(restored)]) == 0
    assert not (restored / "dashboard" / "sessions.json").exists() and (restored / "warehouse.duckdb").exists()
    assert {oct(p.stat().st_mode & 0o777) for p in restored.rglob("*") if p.is_file()} == {"0o600"}
    monkeypatch.setenv("CREDIT_HOME", str(restored))
    with TestClient(create_app()) as api:
        assert {i: api.get(f"/v1/decisions/{i}", headers={"X-API-Key": key}).json()["final_decision"] for i, _ in picked} == answers
    assert [a.note for a in ReviewJournal().actions()] == ["I can repay"]  # the confirmed action, restored
    assert cli.main(["score", "--start", DAY]) == 0  # the night, whole in the restored home (completed if caught midway)
    with duckdb.connect(str(restored / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from scoring.scored_applications where partition_date = ?", [DAY]).fetchone()[0] > 0
    journal_copy = next(p for p in (tmp_path / "backup").rglob("*.jsonl") if b"I can repay" in p.read_bytes())
    journal_copy.write_bytes(journal_copy.read_bytes().replace(b"I can repay", b"I cannot pay"))
    capsys.readouterr()
    assert cli.main(["restore", str(tmp_path / "backup"), "--verify-only"]) == 1
    assert journal_copy.relative_to(tmp_path / "backup").as_posix() in capsys.readouterr().err


def test_a_home_of_another_format_is_refused_in_one_line_and_an_older_one_migrated(ops_home, tmp_path, monkeypatch, capsys):
    """A home written before formats were recorded (every home of earlier releases) is refused by
    the CLI and by a run's first warehouse connection, with the command that fixes it; `migrate`
    backs it up and brings it to this release's formats, resumes after a step that died, and does
    nothing the second time; a home written by a newer release is refused naming that release."""
    from credit_dagster.core import formats
    from credit_dagster.core.resources import Warehouse

    monkeypatch.setenv("CREDIT_HOME", str(ops_home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert formats.read(ops_home)["stores"] == formats.STORES  # a home built by this release says so
    (ops_home / formats.STAMP).unlink()  # as every home of the releases before
    capsys.readouterr()
    assert cli.main(["score", "--start", DAY]) == 1
    assert "format 0): run `credit-dagster migrate`" in capsys.readouterr().err
    with pytest.raises(formats.MigrationDue), Warehouse().connect():
        pass  # a run launched from the UI stops at its first step, saying the same
    assert cli.main(["migrate", "--backup", str(tmp_path / "before")]) == 0
    assert (tmp_path / "before" / "manifest.json").exists() and formats.read(ops_home)["stores"] == formats.STORES
    assert cli.main(["migrate"]) == 0 and "nothing to migrate" in capsys.readouterr().out
    # a release whose warehouse format 2 needs a step: killed midway, then run again
    calls = []

    def step(home: Path) -> None:
        calls.append(home)
        if len(calls) == 1:
            raise RuntimeError("killed midway")

    monkeypatch.setattr(formats, "STORES", {**formats.STORES, "warehouse": 2, "journals": 2})
    monkeypatch.setitem(formats.MIGRATIONS, ("warehouse", 1), step)
    with pytest.raises(RuntimeError):
        formats.migrate(ops_home)
    assert formats.read(ops_home)["stores"]["warehouse"] == 1  # the step's end was never recorded
    assert cli.main(["migrate", "--no-backup"]) == 0 and len(calls) == 2
    assert formats.read(ops_home)["stores"] == {**formats.STORES}
    monkeypatch.undo()
    monkeypatch.setenv("CREDIT_HOME", str(ops_home))
    capsys.readouterr()
    assert cli.main(["score", "--start", DAY]) == 1  # now newer than this release
    assert f"written by credit-dagster {formats.release()} (warehouse format 2, journals format 2)" in capsys.readouterr().err


def test_each_store_carries_its_own_format_and_one_a_newer_release_wrote_is_refused_where_it_is_opened(ops_home, tmp_path, monkeypatch):
    """A store that travels without its home (a snapshot on the API's machine, a journal folder,
    the datasets, a registry) still says which release wrote it, and is refused by name when that
    release is newer: the API's /ready says so, nothing is read from it."""
    import json

    import fsspec
    from fastapi.testclient import TestClient

    from credit_dagster.api.app import create_app
    from credit_dagster.core import audit, datasets, formats, snapshot
    from credit_dagster.core.resources import Warehouse
    from credit_dagster.model.registry import Registry
    from panel_app import views
    from panel_app.data_store import SnapshotStore

    monkeypatch.setenv("CREDIT_HOME", str(ops_home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    newer = {**formats.stamp("journals"), "format": formats.STORES["journals"] + 1, "release": "9.9.9"}

    def made_newer(con, store):
        con.execute(f"update {formats.DUCKDB_STAMP} set format = format + 1, release = '9.9.9' where store = ?", [store])

    # each store as the night left it carries its stamp
    with Warehouse().connect() as con:
        assert con.execute(f"select store, format from {formats.DUCKDB_STAMP}").fetchall() == [("warehouse", formats.STORES["warehouse"])]
    with duckdb.connect(str(snapshot.snapshot_path()), read_only=True) as con:
        assert con.execute(f"select store, format from {formats.DUCKDB_STAMP}").fetchall() == [("snapshots", formats.STORES["snapshots"])]
    registry = Registry(ops_home / "models")
    index = json.loads(registry.index.read_text())
    assert index["stamp"]["format"] == formats.STORES["registry"]
    version = registry.alias("champion")
    metadata = json.loads((registry.root / version / "metadata.json").read_text())
    assert metadata["format_stamp"]["store"] == "registry"
    journal = tmp_path / "journal"
    audit.AuditLog(journal, prefix=audit.REVIEW_PREFIX).append([{"at": "now"}])
    assert json.loads((journal / formats.FOLDER_STAMP).read_text())["format"] == formats.STORES["journals"]

    # ... and each, written by a newer release, is refused naming it
    with duckdb.connect(str(snapshot.snapshot_path())) as con:
        made_newer(con, "snapshots")
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        ready = client.get("/ready")
    assert ready.status_code == 503 and "written by credit-dagster 9.9.9 (snapshots format" in ready.text
    assert str(ops_home) not in ready.text  # named, not located
    with pytest.raises(formats.FormatError, match="9.9.9"):
        SnapshotStore().model_summary()
    assert "written by credit-dagster 9.9.9 (snapshots format" in views.dashboard(SnapshotStore(), "advisor-1").object
    with Warehouse().connect() as con:
        made_newer(con, "warehouse")
    for read_only in (False, True):
        with pytest.raises(formats.FormatError, match="warehouse format"), Warehouse().connect(read_only=read_only):
            pass
    (registry.root / version / "metadata.json").write_text(json.dumps({**metadata, "format_stamp": {**newer, "store": "registry"}}))
    with pytest.raises(formats.FormatError, match="registry format"):
        registry.load(version)
    registry.index.write_text(json.dumps({**index, "stamp": {**newer, "store": "registry"}}))
    with pytest.raises(formats.FormatError, match="registry format"):
        registry.alias("champion")
    (journal / formats.FOLDER_STAMP).write_text(json.dumps(newer))
    with pytest.raises(formats.FormatError, match="journals format"):
        audit.AuditLog(journal, prefix=audit.REVIEW_PREFIX).append([{"at": "later"}])
    root = f"memory://stamps-{os.getpid()}"
    fs = fsspec.filesystem("memory")
    with duckdb.connect() as con:
        datasets.attach(con, root)
        datasets.write(con, "select 1 as x, '00' as shard", root, "t", "2026-10-01", ["00"])
        assert json.loads(fs.cat(f"{root[len('memory://'):]}/{formats.FOLDER_STAMP}"))["store"] == "datasets"
        fs.pipe(f"{root[len('memory://'):]}/{formats.FOLDER_STAMP}", json.dumps({**newer, "store": "datasets"}).encode())
        with pytest.raises(formats.FormatError, match="datasets format"):
            datasets.attach(con, root)


def test_a_home_the_previous_release_wrote_is_migrated_and_its_decisions_stand_and_replay(tmp_path, monkeypatch, capsys, synthetic_dir):
    """The home of fixtures/home_format_0.tar.xz, written by the release before formats were
    recorded (scripts/format_fixture.py): every command asks for `migrate`; once migrated, this
    release makes each of that release's decisions again exactly, the API answers them as the
    warehouse has them, and the next night runs."""
    import tarfile
    from datetime import date, timedelta

    from fastapi.testclient import TestClient

    from credit_dagster.api import keys
    from credit_dagster.api.app import create_app
    from credit_dagster.core import formats
    from credit_dagster.nightly import drops
    from credit_dagster_tests.conftest import score_night

    home = tmp_path / "home"
    with tarfile.open(Path(__file__).parent / "fixtures" / "home_format_0.tar.xz") as tar:
        tar.extractall(home, filter="data")
    assert "at commit " in (home / "FIXTURE.txt").read_text() and not (home / formats.STAMP).exists()
    (home / "data_dir.txt").write_text(str(synthetic_dir))
    monkeypatch.setenv("CREDIT_HOME", str(home))
    for name in ("DAGSTER_HOME", "CREDIT_INBOX", "CREDIT_DATA_DIR", "CREDIT_REVIEW_JOURNAL_DIR"):
        monkeypatch.delenv(name, raising=False)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        stored = con.execute("select * from scoring.scored_applications").df()
    night = str(stored["partition_date"].max())[:10]
    stored = stored[stored["partition_date"].astype(str).str[:10] == night]  # the night that release scored last
    capsys.readouterr()
    assert cli.main(["decision", "show", str(stored["SK_ID_CURR"].iloc[0])]) == 1
    assert "run `credit-dagster migrate`" in capsys.readouterr().err
    assert cli.main(["migrate", "--no-backup"]) == 0 and formats.read(home)["stores"] == formats.STORES

    assert cli.main(["decision", "replay", "--at", night]) == 0
    assert f"night {night}: {len(stored):,} of {len(stored):,} decisions replayed exactly" in capsys.readouterr().out
    key = keys.create("upgrade-test", rate_per_second=10_000, scopes=(keys.READ_DECISIONS,))
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        for row in stored.itertuples():
            answer = client.get(f"/v1/decisions/{row.SK_ID_CURR}", headers={"X-API-Key": key})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert (body["decision"], body["points"], body["model_version"]) == (row.decision, row.points, row.model_version)
            assert abs(body["probability_of_default"] - row.probability_of_default) < 1e-12
    after = (date.fromisoformat(night) + timedelta(days=1))
    drops.replay(synthetic_dir, drops.inbox_dir(), 1, after)
    assert score_night(after.isoformat()).success


def test_the_services_log_one_json_object_per_line_on_demand(monkeypatch, capfd):
    import json
    import logging

    from credit_dagster.core import logs

    monkeypatch.setenv("CREDIT_LOG_FORMAT", "json")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure()
        logging.getLogger("credit_dagster.api").info("GET %s %s caller=%s", "/v1/decisions/{sk_id_curr}", 200, "front-office")
        try:
            raise ValueError("a scoring process died")
        except ValueError:
            logging.getLogger("credit_dagster.api").exception("round failed")
        lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    finally:  # the process's logging as it was, for the next tests
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert [(line["level"], line["logger"], line["message"]) for line in lines] == [
        ("INFO", "credit_dagster.api", "GET /v1/decisions/{sk_id_curr} 200 caller=front-office"), ("ERROR", "credit_dagster.api", "round failed")]
    assert "a scoring process died" in lines[1]["exception"] and lines[0]["at"].endswith("+00:00")


def _broken_night(home: Path, monkeypatch) -> str:
    """A night whose drop lacks AMT_CREDIT, scored by the CLI in this process: its run fails."""
    import pandas as pd

    monkeypatch.setenv("CREDIT_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    source = next((home / "inbox" / DAY).glob("application_test.csv*"))
    broken = home / "inbox" / "2026-10-05"
    broken.mkdir()
    pd.read_csv(source).drop(columns=["AMT_CREDIT"]).head(20).to_csv(broken / "application_test.csv", index=False)
    assert cli.main(["score", "--start", "2026-10-05"]) == 1
    return broken.name


def test_a_failed_night_is_one_line_and_an_incident(ops_home, monkeypatch, capsys):
    from credit_dagster.instance import LOCATION

    _broken_night(ops_home, monkeypatch)
    out = capsys.readouterr().out
    assert "AMT_CREDIT" in out and "recorded in monitoring.incidents" in out
    with duckdb.connect(str(ops_home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("select job, partition_key, step, reason from monitoring.incidents").fetchall()
    assert [(job, day, step) for job, day, step, _ in rows] == [("nightly_scoring", "2026-10-05", "scoring__daily_drop")]
    assert "AMT_CREDIT" in rows[0][3]
    # the CLI's run is recorded as a run of the UI's code location, for that partition
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert instance.get_dynamic_partitions("drop_days") == ["2026-10-05"]  # the drop's day, added by the CLI
    assert run.job_name == "nightly_scoring" and run.tags["dagster/partition"] == "2026-10-05"
    assert run.remote_job_origin.location_name == LOCATION and run.status == dg.DagsterRunStatus.FAILURE


def _session_alive(session: int) -> list[int]:
    """Processes of a session that are still running (zombies waiting for a parent are not)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # fields: state, ppid, pgrp, session
            alive.append(int(stat.parent.name))
    return alive


@pytest.mark.slow
def test_ui_serves_the_jobs_and_the_cli_runs_and_stops_on_sigterm(ops_home, monkeypatch):
    import httpx

    from credit_dagster.instance import LOCATION
    from credit_dagster.monitoring.recovery import PID_TAG

    night = _broken_night(ops_home, monkeypatch)  # a run started from the CLI, before the UI

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # An empty inbox, so the late-drop sensor launches no night: a launched run in progress is let
    # finish on SIGTERM (Dagster's code server waits for its runs), which would make the stop's
    # time the run's. The UI must then count no partition but the CLI's night.
    empty = ops_home / "empty_inbox"
    empty.mkdir()
    # its log to a file: a pipe nobody reads fills up, and a process blocked writing to it never stops
    log = ops_home / "ui.log"
    # started with SIGINT ignored, as a background job of a script (CI) starts it: SIGTERM must still stop it
    ui = _cli(ops_home, "ui", "--port", str(port), start_new_session=True, inbox=empty, stdout=log.open("w"),
              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        jobs = []
        for _ in range(240):
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/graphql", timeout=5, json={"query": """{
                    repositoriesOrError { ... on RepositoryConnection { nodes { location { name } jobs { name } } } }
                    runsOrError { ... on Runs { results { jobName tags { key value } repositoryOrigin { repositoryLocationName } } } } }"""
                }).json()["data"]
                jobs = [j["name"] for r in answer["repositoriesOrError"]["nodes"] for j in r["jobs"]]
                if jobs:
                    break
            except (httpx.HTTPError, KeyError, TypeError, ValueError):
                pass
            assert ui.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        assert {"build_all", "nightly_scoring"} <= set(jobs)
        assert [r["location"]["name"] for r in answer["repositoriesOrError"]["nodes"]] == [LOCATION]
        # the CLI's run belongs to the served location: on the Overview timeline and the Jobs page, re-executable
        runs = answer["runsOrError"]["results"]  # the daemon may have launched the late-drop sensor's runs meanwhile
        (cli_run,) = [r for r in runs if any(t["key"] == PID_TAG for t in r["tags"])]
        assert cli_run["jobName"] == "nightly_scoring" and {"key": "dagster/partition", "value": night} in cli_run["tags"]
        assert all(r["repositoryOrigin"] == {"repositoryLocationName": LOCATION} for r in runs)
        # the partitions the UI counts are the nights that had a drop (here the CLI's), not every day since a start date
        stats = httpx.post(f"http://127.0.0.1:{port}/graphql", timeout=30, json={"query": """{
            assetNodes(assetKeys: [{path: ["serving", "serving_snapshot"]}]) { partitionStats { numPartitions numMaterialized } } }"""
        }).json()["data"]["assetNodes"][0]["partitionStats"]
        assert stats == {"numPartitions": 1, "numMaterialized": 0}, stats
        started = time.monotonic()
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=60)
        stopped = time.monotonic() - started
        for _ in range(50):  # the webserver, the daemon and the code servers go with it
            if not _session_alive(ui.pid):
                break
            time.sleep(0.2)
        assert not _session_alive(ui.pid) and stopped < 30, (stopped, _session_alive(ui.pid))
    finally:
        if _session_alive(ui.pid):
            os.killpg(ui.pid, signal.SIGKILL)


def test_run_monitoring_leaves_a_command_s_live_run_alone_and_fails_it_once_its_process_died(tmp_path):
    """On a deployment (deploy/dagster.yaml: CodeServerRunLauncher, run monitoring on), a night run by
    a `credit-dagster` command executes in that command's process, not in a code server: Dagster's
    daemon must not fail it while the process lives (it did, mid-night, when the launcher answered
    "unknown"), and must fail it once the process died. Asked through the daemon's own function."""
    import logging

    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    from credit_dagster.monitoring.recovery import HOST_TAG, PID_TAG

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()
    runs = {"live command": {PID_TAG: str(live.pid), HOST_TAG: here},
            "dead command": {PID_TAG: str(dead.pid), HOST_TAG: here},
            "command on another host": {PID_TAG: str(dead.pid), HOST_TAG: here + "-elsewhere"},
            "no command, no code server": {}}
    overrides = {"run_launcher": {"module": "credit_dagster.instance", "class": "CodeServerRunLauncher"},
                 "run_monitoring": {"enabled": True, "max_resume_run_attempts": 0}}
    try:
        with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
            for name, tags in runs.items():
                instance.add_run(dg.DagsterRun(job_name="nightly_scoring", run_id=name.replace(" ", "-"), tags=tags,
                                               status=dg.DagsterRunStatus.STARTED))
            for name in runs:
                monitor_started_run(instance, None, instance.get_run_record_by_id(name.replace(" ", "-")), logging.getLogger("test"))
            status = {name: instance.get_run_by_id(name.replace(" ", "-")).status for name in runs}
            assert status == {"live command": dg.DagsterRunStatus.STARTED, "dead command": dg.DagsterRunStatus.FAILURE,
                              "command on another host": dg.DagsterRunStatus.STARTED,
                              "no command, no code server": dg.DagsterRunStatus.STARTED}
            said = [e.message for e in instance.all_logs("dead-command")]
            assert any(f"process {dead.pid} on {here} that ran it died without finishing it" in m for m in said), said
    finally:
        live.kill()
        live.wait()


def test_the_incident_sensor_never_waits_for_a_busy_warehouse(credit_home):
    """The run-failure sensor runs in the code server: waiting there for a night's run to free the
    warehouse kept the daemon (and `credit-dagster ui` on SIGTERM) from stopping. With the lock
    held by another real process it keeps the incident in a file, and the next writer folds it."""
    from credit_dagster.core.resources import Warehouse
    from credit_dagster.monitoring import incidents
    from credit_dagster.monitoring.sensors import incident_sensor

    @dg.op
    def load_the_drop():
        raise ValueError("missing column AMT_CREDIT")

    @dg.job
    def night():
        load_the_drop()

    with dg.instance_for_test() as instance:
        result = night.execute_in_process(instance=instance, raise_on_error=False)
        failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
        context = dg.build_run_status_sensor_context(
            sensor_name="incident_sensor", dagster_event=failure, dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id)).for_run_failure()
        warehouse = Warehouse().file()
        warehouse.parent.mkdir(parents=True)
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sys, time\nfrom pathlib import Path\nfrom credit_dagster.core.warehouse import warehouse_lock\n"
            f"with warehouse_lock(Path({str(warehouse)!r})):\n    print('held', flush=True)\n    time.sleep(120)")],
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            started = time.monotonic()
            incident_sensor(context)
            assert time.monotonic() - started < 10
            kept = incidents.kept_file().read_text()
            assert result.run_id in kept and "AMT_CREDIT" in kept
        finally:
            holder.kill()
            holder.wait()
        incident_sensor(context)  # the warehouse is free again: written directly, the kept line folded with it
    assert not incidents.kept_file().exists()
    with Warehouse().connect(read_only=True) as con:
        rows = con.execute("select run_id, step, reason, origin from monitoring.incidents").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(result.run_id, "load_the_drop")]
    assert "AMT_CREDIT" in rows[0][2] and rows[0][3] == "dagster daemon"


def test_incidents_taken_by_a_writer_killed_before_its_commit_are_folded_by_the_next(credit_home):
    from credit_dagster.core.resources import Warehouse
    from credit_dagster.monitoring import incidents

    incidents.keep_for_later(run_id="r1", job="nightly_scoring", partition_key="2026-11-20", step="scored_applications",
                             reason="OSError: disk full", origin="dagster daemon")
    path = incidents.kept_file()
    path.rename(path.with_name(f"{path.name}.999999"))  # what a writer killed between taking and committing leaves
    incidents.keep_for_later(run_id="r2", job="build_all", partition_key=None, step=None, reason="x", origin="dagster daemon")
    with Warehouse().connect() as con:
        assert incidents.fold_kept(con) == 2
        assert incidents.fold_kept(con) == 0
        rows = con.execute("select run_id, partition_key, reason from monitoring.incidents order by run_id").fetchall()
    assert rows == [("r1", "2026-11-20", "OSError: disk full"), ("r2", None, "x")]
    assert list(path.parent.glob("incidents_kept*")) == []


def test_every_file_the_platform_writes_is_its_own_users_only(scored_home):
    """A built and scored home (warehouse, snapshots, inbox, models, reports, journals): no file or
    folder another local user can read (0600 and 0700 under the default CREDIT_UMASK)."""
    import stat

    opened = [f"{p.relative_to(scored_home)}: {stat.filemode(p.stat().st_mode)}" for p in [scored_home, *scored_home.rglob("*")]
              if not p.is_symlink() and p.stat().st_mode & 0o077]
    assert opened == [], opened[:20]
    assert len(list(scored_home.rglob("*.duckdb"))) >= 2  # the warehouse and the snapshot were among them


def test_a_home_readable_by_others_is_made_private(tmp_path, monkeypatch):
    from credit_dagster.instance import private_home

    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)  # made by an older release, or by hand
    monkeypatch.setenv("CREDIT_HOME", str(home))
    private_home()
    assert home.stat().st_mode & 0o777 == 0o700
    monkeypatch.setenv("CREDIT_UMASK", "027")  # a group that operates the platform, said deliberately
    home.chmod(0o750)
    private_home()
    assert home.stat().st_mode & 0o777 == 0o750
