"""Shared fixtures: a small synthetic data set, the real sample when present, temporary homes."""

import os
from pathlib import Path

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
