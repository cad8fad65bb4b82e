"""Shared fixtures: a small synthetic data set, the real sample when present, temporary homes."""

import os
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from credit_dagster.synth.generator import generate
from credit_dagster_tests.services import SERVER, fresh_database

TEST_SCALE = 0.005  # about 1,500 labelled applicants: every table non-empty, seconds to build


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    generate(folder, scale=TEST_SCALE, seed=7, progress=False)
    return folder


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The real Kaggle sample (CREDIT_DATA_DIR); CI points it at ../shared/data/home_credit_sample."""
    configured = os.environ.get("CREDIT_DATA_DIR")
    if not configured or not (Path(configured) / "application_train.csv.gz").exists():
        pytest.skip("CREDIT_DATA_DIR does not point at the real Home Credit sample")
    return Path(configured)


@pytest.fixture
def credit_home(tmp_path, monkeypatch) -> Path:
    """A fresh CREDIT_HOME (warehouse, DAGSTER_HOME, reports) for one test."""
    home = tmp_path / "credit_home"
    monkeypatch.setenv("CREDIT_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return home


@contextmanager
def temporary_home(root: Path):
    """CREDIT_HOME at `root` for fixtures wider than one test (monkeypatch is per test)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CREDIT_HOME", str(root))
        mp.delenv("DAGSTER_HOME", raising=False)
        mp.delenv("CREDIT_INBOX", raising=False)
        yield root


SCORED_DAYS = ["2026-11-01", "2026-11-02"]


def score_night(day: str, raise_on_error: bool = True, instance: dg.DagsterInstance | None = None):
    """`nightly_scoring` for `day` in-process, its drop added to the partitions first (as the
    schedule, the sensor and the CLI do)."""
    from credit_dagster.definitions import defs
    from credit_dagster.nightly import partitions

    instance = instance or dg.DagsterInstance.ephemeral()
    partitions.register(instance, [day])
    return defs.resolve_job_def("nightly_scoring").execute_in_process(
        instance=instance, partition_key=day, raise_on_error=raise_on_error)


def run_all(data_dir, raise_on_error=False, folds: int = 5):
    """`build_all` in-process. Without the seed-to-seed spread (two more cross-validations of the
    deployed candidate per build): test_ml covers it, and `credit-dagster run` in CI measures it."""
    from credit_dagster.definitions import defs

    job = defs.resolve_job_def("build_all")
    return job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"resources": {"source": {"config": {"data_dir": str(data_dir)}}},
                    "ops": {"model__credit_model": {"config": {"stability_seeds": 0, "n_folds": folds}}}},
        raise_on_error=raise_on_error,
    )


@pytest.fixture(scope="session")
def build(synthetic_dir, tmp_path_factory) -> tuple[Path, dg.ExecuteInProcessResult]:
    """`build_all` once on the synthetic data (training is the slow part): the CREDIT_HOME it
    built and its result. `scored_home` goes on to score nights there; the build's own outputs
    (raw tables, features, reports, registry) stay as built."""
    with temporary_home(tmp_path_factory.mktemp("scored_home")) as root:
        # three folds: what the tests read of the model does not need five, and it is the slowest fixture
        return root, run_all(synthetic_dir, raise_on_error=True, folds=3)


@pytest.fixture(scope="session")
def scored_home(build, synthetic_dir):
    """The trained CREDIT_HOME of `build` with two replayed drops, the first one scored."""
    from datetime import date

    from credit_dagster.nightly import drops

    with temporary_home(build[0]) as root:
        drops.replay(synthetic_dir, drops.inbox_dir(), 2, date.fromisoformat(SCORED_DAYS[0]))
        score_night(SCORED_DAYS[0])
        yield root


@pytest.fixture(scope="session")
def real_run(real_dir, tmp_path_factory):
    """One full run on the real sample, shared by the real-sample tests (it trains a model). When
    the fairness gate holds the model back, it is signed off as a risk committee would."""
    from credit_dagster import cli
    from credit_dagster.model.resources import ModelStore

    with temporary_home(tmp_path_factory.mktemp("real_home")) as home:
        result = run_all(real_dir, raise_on_error=True)
        registry = ModelStore().registry()
        held = registry.alias("champion") is None
        if held:
            assert cli.main(["promote", registry.versions()[-1], "--reason", "test sign-off after reviewing the fairness audit"]) == 0
            assert "signed off by" in registry.history()[-1]["reason"]
        yield home, result, held


@pytest.fixture(scope="session")
def real_scored(real_run, real_dir):
    """The real sample's application_test replayed as 20 drops, the first night scored: the
    home, the night and Kaggle's column descriptions (never to be shown as a reason)."""
    from datetime import date

    import duckdb

    from credit_dagster.nightly import drops

    home = real_run[0]
    day = "2026-10-01"
    with temporary_home(home):
        drops.replay(real_dir, drops.inbox_dir(), 20, date.fromisoformat(day))
        assert score_night(day).success
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        descriptions = {r[0].strip() for r in con.execute('select "Description" from raw.columns_description').fetchall() if r[0]}
    return home, day, descriptions


REAL_FIXTURES = {"real_dir", "real_run", "real_scored"}


def pytest_itemcollected(item):
    """The suite runs on two workers (pytest-xdist, `--dist loadgroup` in setup.cfg): the tests
    on the real sample go to one of them, so that its model is trained once. Marked as each test
    is collected, before any `pytest_collection_modifyitems` (xdist reads the marks in its own)."""
    if REAL_FIXTURES & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.xdist_group("real_sample"))


def pytest_collection_modifyitems(items):
    """The tests that start the production services (about 3 and 4 minutes) are queued first,
    the real-sample group beside them: queued in file order, the last of them kept one worker busy
    for minutes after the other had finished."""
    items.sort(key=lambda item: item.get_closest_marker("services") is None)


UNGROUPED = pytest.StashKey[str]()


def pytest_collection_finish(session):
    """xdist groups a test by a suffix it adds to its id; pytest 9.2 ignores that (pytest-xdist
    issue 1386), and the real model was trained on both workers, unnoticed. Now the grouped tests fail, saying so."""
    if getattr(session.config.option, "loadgroup", False):  # set on xdist's workers under --dist loadgroup
        for item in session.items:
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
                item.stash[UNGROUPED] = ("xdist ignored this test's xdist_group mark: this pytest and pytest-xdist do not "
                                         "group tests (pytest-xdist issue 1386); install the versions pinned in pyproject.toml")


def pytest_runtest_setup(item):
    if UNGROUPED in item.stash:
        pytest.fail(item.stash[UNGROUPED], pytrace=False)


def reachable_or_skip(what: str, error: Exception) -> None:
    """A service the suite needs is unreachable: CI runs beside the services, so there it is a failure."""
    message = f"{what} cannot be reached: {error}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def database():
    """A database of its own on the machine's PostgreSQL (services.SERVER)."""
    try:
        psycopg2.connect(SERVER, connect_timeout=5).close()
    except psycopg2.OperationalError as error:
        reachable_or_skip(f"PostgreSQL at {SERVER.split('@')[-1]} (CREDIT_TEST_PG_URL)", error)
    with fresh_database() as url:
        yield url


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here with Debian's openssl (a test's own CA)."""
    import subprocess

    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key
