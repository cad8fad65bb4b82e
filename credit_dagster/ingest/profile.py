"""A first look at the raw tables, the one a data scientist would otherwise do in a notebook.

For each table: rows, missingness, distributions (DuckDB SUMMARIZE) and, for the labelled
applications, the default rate by the main categories. Rendered as one self-contained HTML
page (no scripts, no external assets) so it opens offline.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import duckdb
import pandas as pd

from credit_dagster.core.sources import SOURCE_TABLES, SourceTable


@dataclass
class TableProfile:
    name: str
    description: str
    rows: int
    summary: pd.DataFrame  # one row per column: type, missing %, min, quartiles, max, distinct
    target_rates: dict[str, pd.DataFrame]  # category column -> value, applicants, default rate


def profile_table(con: duckdb.DuckDBPyConnection, spec: SourceTable, schema: str = "raw") -> TableProfile:
    table = f"{schema}.{spec.name}"
    rows = con.execute(f"select count(*) from {table}").fetchone()[0]
    summary = con.execute(f"summarize {table}").df()[
        ["column_name", "column_type", "null_percentage", "min", "q25", "q50", "q75", "max", "approx_unique"]
    ]
    summary["null_percentage"] = summary["null_percentage"].astype(float).round(1)
    rates = {}
    for col in spec.profile_by:
        rates[col] = con.execute(f"""
            select coalesce("{col}", '(missing)') as value, count(*) as applicants,
                   round(100 * avg(TARGET), 2) as default_rate_pct
            from {table} group by 1 order by applicants desc limit 15""").df()
    return TableProfile(spec.name, spec.description, rows, summary, rates)


def profile_all(con: duckdb.DuckDBPyConnection, schema: str = "raw") -> list[TableProfile]:
    return [profile_table(con, spec, schema) for spec in SOURCE_TABLES.values()]


def overall_default_rate(con: duckdb.DuckDBPyConnection, schema: str = "raw") -> float:
    return float(con.execute(f"select avg(TARGET) from {schema}.application_train").fetchone()[0])


def render_html(profiles: list[TableProfile], title: str, banner: str = "") -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
        ".banner{background:#fff3cd;padding:8px;border:1px solid #e0c060}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if banner:
        parts.append(f"<p class='banner'>{html.escape(banner)}</p>")
    parts.append("<ul>" + "".join(f"<li><a href='#{p.name}'>{p.name}</a>: {p.rows:,} rows</li>" for p in profiles) + "</ul>")
    for p in profiles:
        parts.append(f"<h2 id='{p.name}'>{p.name}</h2><p>{html.escape(p.description)} {p.rows:,} rows.</p>")
        for col, rates in p.target_rates.items():
            parts.append(f"<h3>Default rate by {html.escape(col)}</h3>" + rates.to_html(index=False))
        parts.append("<h3>Columns</h3>" + p.summary.to_html(index=False, na_rep=""))
    parts.append("</body></html>")
    return "\n".join(parts)
