"""Shared fixtures: a small synthetic data set, the real sample when present, temporary homes."""

import os
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from credit_dagster.synth.generator import generate

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
    from credit_dagster import partitions
    from credit_dagster.definitions import defs

    instance = instance or dg.DagsterInstance.ephemeral()
    partitions.register(instance, [day])
    return defs.resolve_job_def("nightly_scoring").execute_in_process(
        instance=instance, partition_key=day, raise_on_error=raise_on_error)


@pytest.fixture(scope="session")
def build(synthetic_dir, tmp_path_factory) -> tuple[Path, dg.ExecuteInProcessResult]:
    """`build_all` once on the synthetic data (training is the slow part): the CREDIT_HOME it
    built and its result. `scored_home` goes on to score nights there; the build's own outputs
    (raw tables, features, reports, registry) stay as built."""
    from credit_dagster_tests.test_pipeline import run_all

    with temporary_home(tmp_path_factory.mktemp("scored_home")) as root:
        return root, run_all(synthetic_dir, raise_on_error=True)


@pytest.fixture(scope="session")
def scored_home(build, synthetic_dir):
    """The trained CREDIT_HOME of `build` with two replayed drops, the first one scored."""
    from datetime import date

    from credit_dagster import drops

    with temporary_home(build[0]) as root:
        drops.replay(synthetic_dir, drops.inbox_dir(), 2, date.fromisoformat(SCORED_DAYS[0]))
        score_night(SCORED_DAYS[0])
        yield root
