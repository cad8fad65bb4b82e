"""Each published night's figures, where Prometheus reads them: a text file in the node exporter's
format (its textfile collector reads `CREDIT_METRICS_DIR/*.prom`), replaced whole after each good
night. The alert rules in deploy/prometheus/ act on them (a night missing, drift to act on)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from credit_dagster.core import settings
from credit_dagster.nightly.drops import drop_schema

FILE = "credit_night.prom"


def metrics_path() -> Path:
    return settings.under_home(settings.current().metrics_dir, "metrics") / FILE


GAUGES = {  # name: (help, labels)
    "credit_night_published_timestamp_seconds": ("When the latest night was published", []),
    "credit_night_day_timestamp_seconds": ("The day of the latest night published (midnight UTC)", []),
    "credit_night_duration_seconds": ("From the start of the night's publishing run to its publication", []),
    "credit_night_applicants": ("Applications scored in the latest night", []),
    "credit_night_decisions": ("The latest night's decisions, by decision", ["decision"]),
    "credit_night_psi_max": ("The largest population stability index of the latest night (the score's included)", []),
    "credit_night_drift_act_columns": ("Columns of the latest night whose drift is to act on (PSI status act)", []),
    "credit_night_quarantined_rows": ("Rows of the latest night's drop held back in quarantine", []),
}


def write(con: duckdb.DuckDBPyConnection, day: str, started: float | None) -> dict[str, float]:
    """The figures of night `day`, just published (`started`: when its run began, epoch seconds)."""
    now = datetime.now(UTC).timestamp()
    mix = dict(con.execute("select decision, count(*) from scoring.scored_applications where partition_date = ? group by 1", [day]).fetchall())
    psi_max, act = con.execute("select max(psi), count(*) filter (where status = 'act') from monitoring.psi where partition_date = ?",
                               [day]).fetchone()
    schema = drop_schema(day)
    held = con.execute("select count(*) from information_schema.tables where table_schema = ? and table_name = 'quarantine'",
                       [schema]).fetchone()[0]
    figures = {"credit_night_published_timestamp_seconds": now,
               "credit_night_day_timestamp_seconds": datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp(),
               "credit_night_duration_seconds": now - started if started is not None else None,
               "credit_night_applicants": sum(mix.values()), "credit_night_psi_max": psi_max or 0.0,
               "credit_night_drift_act_columns": act or 0,
               "credit_night_quarantined_rows": con.execute(f"select count(*) from {schema}.quarantine").fetchone()[0] if held else 0}
    registry = CollectorRegistry()
    gauges = {name: Gauge(name, text, labels, registry=registry) for name, (text, labels) in GAUGES.items()}
    for name, value in figures.items():
        if value is not None:
            gauges[name].set(value)
    for decision, n in mix.items():
        gauges["credit_night_decisions"].labels(decision=decision).set(n)
    path = metrics_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)  # written beside, then renamed: the collector never reads half a file
    return {**figures, **{f"credit_night_decisions:{d}": n for d, n in mix.items()}}
