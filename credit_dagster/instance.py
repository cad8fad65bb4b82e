"""The persistent Dagster instance under CREDIT_HOME: telemetry off, one DuckDB writer at a time."""

from __future__ import annotations

import os
from pathlib import Path

from credit_dagster import settings

DAGSTER_YAML = """\
# Written by credit-dagster. Offline: no telemetry.
telemetry:
  enabled: false
# DuckDB allows one writing process: every warehouse-writing op is in pool `duckdb_writer`.
concurrency:
  pools:
    default_limit: 1
# Runs launched from the UI: the daemon fails a run whose process died and frees its pool slots.
run_monitoring:
  enabled: true
  poll_interval_seconds: 60
  free_slots_after_run_end_seconds: 30
"""


def prepare_dagster_home() -> Path:
    """Create DAGSTER_HOME (default CREDIT_HOME/dagster) with its dagster.yaml, and export it."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    # (re)write our own file when an older release wrote it; leave a file the user wrote alone
    if not config.exists() or (config.read_text().startswith("# Written by credit-dagster") and config.read_text() != DAGSTER_YAML):
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
