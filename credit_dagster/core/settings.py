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


def currency() -> str:
    """The currency amounts are shown in (CREDIT_CURRENCY, default EUR): the Kaggle data states none."""
    return os.environ.get("CREDIT_CURRENCY", "EUR")


def physical_cores() -> int:
    """Cores this process may use, counting hyper-threads once: LightGBM slows down several-fold
    when its threads outnumber the physical cores and another process is busy."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        pairs, physical = set(), None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "physical id":
                physical = value.strip()
            elif key.strip() == "core id":
                pairs.add((physical, value.strip()))
        cores = len(pairs) or usable
    except OSError:
        cores = usable
    return max(1, min(cores, usable))


def threads() -> int:
    """CREDIT_THREADS (default: the physical cores) bounds LightGBM's and DuckDB's threads."""
    configured = os.environ.get("CREDIT_THREADS")
    return max(1, int(configured)) if configured else physical_cores()


def fairness_tolerances() -> dict[str, float]:
    """When the fairness gate flags a group: CREDIT_FAIRNESS_MIN_EQUAL_OPPORTUNITY (0.8, approval rate
    of repayers against the most approved group's) and CREDIT_FAIRNESS_MAX_CALIBRATION_GAP (0.02,
    observed minus predicted default rate, when also outside its 95 % interval)."""
    return {"min_equal_opportunity": float(os.environ.get("CREDIT_FAIRNESS_MIN_EQUAL_OPPORTUNITY", "0.8")),
            "max_calibration_gap": float(os.environ.get("CREDIT_FAIRNESS_MAX_CALIBRATION_GAP", "0.02"))}


def fairness_severity() -> str:
    """CREDIT_FAIRNESS_SEVERITY: `warn` (default) or `error` (the fairness check fails the run)."""
    return os.environ.get("CREDIT_FAIRNESS_SEVERITY", "warn")
