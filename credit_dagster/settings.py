"""Where state lives. Everything is under CREDIT_HOME (default ./.credit), resolved when used."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SYNTHETIC_SCALE = 0.02  # about 6,000 labelled applicants: a run of a few minutes
DEFAULT_SYNTHETIC_SEED = 42


def credit_home() -> Path:
    return Path(os.environ.get("CREDIT_HOME", ".credit")).expanduser().resolve()


def warehouse_path() -> Path:
    return credit_home() / "warehouse.duckdb"


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or credit_home() / "dagster").resolve()


def reports_dir() -> Path:
    return credit_home() / "reports"


def synthetic_default_dir() -> Path:
    return credit_home() / "data" / "synthetic_default"


def data_dir() -> Path:
    """The folder of source CSVs: CREDIT_DATA_DIR, or the generated synthetic default."""
    configured = os.environ.get("CREDIT_DATA_DIR")
    return Path(configured).expanduser().resolve() if configured else synthetic_default_dir()


def models_dir() -> Path:
    return credit_home() / "models"
