"""Data-quality rules of the source contract, evaluated with Great Expectations 1.x.

Pure functions over a DuckDB connection: the Dagster asset checks in `checks/` call them and
turn the findings into check results. Keys and foreign keys are always tested on every row;
value sets and ranges on tables above CREDIT_QUALITY_SAMPLE_ROWS rows on a seeded sample (said in the
finding), which keeps a 27-million-row table's check to seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from itertools import count
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from credit_dagster.core import settings
from credit_dagster.core.sources import SENTINEL_DAYS, SourceTable

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

MAX_ORPHAN_SHARE = 0.01  # above this share of child keys without a parent the FK check warns
_batch_ids = count()


@dataclass
class Finding:
    """The outcome of one expectation on one column."""

    rule: str
    column: str
    passed: bool
    unexpected: int = 0
    share: float = 0.0
    examples: list = field(default_factory=list)
    blocking: bool = False
    note: str = ""

    def describe(self) -> str:
        if self.passed:
            return f"{self.rule} on {self.column}: ok"
        return f"{self.rule} on {self.column}: {self.unexpected} rows ({self.share:.2%}) fail, e.g. {self.examples[:5]}"


@cache
def gx():
    """Great Expectations, imported when a rule first runs (use this, not a module-level import):
    the import takes seconds, and every run's process imports this module to list the checks (a
    shard's run, the publish's, ...)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # offline: no usage statistics
    import great_expectations

    return great_expectations


@cache
def _context():
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx().get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context, context.data_sources.add_pandas("credit_dagster")


def run_expectations(df: pd.DataFrame, expectations: list[tuple[Expectation, bool]]) -> list[Finding]:
    """Validate `df` with GX; each expectation comes with whether its failure must block."""
    if not expectations:
        return []
    _, source = _context()
    asset = source.add_dataframe_asset(f"batch_{next(_batch_ids)}")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": df})
    suite = gx().ExpectationSuite(name=asset.name)
    for expectation, _ in expectations:
        suite.add_expectation(expectation)
    results = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 10})
    findings = []
    for result, (expectation, blocking) in zip(results.results, expectations, strict=True):
        r = result.result
        findings.append(Finding(
            rule=expectation.expectation_type, column=expectation.column, passed=bool(result.success),
            unexpected=int(r.get("unexpected_count") or 0), share=float(r.get("unexpected_percent") or 0) / 100,
            examples=[_plain(v) for v in r.get("partial_unexpected_list") or []], blocking=blocking,
        ))
    return findings


def _plain(value):
    return None if pd.isna(value) else value.item() if hasattr(value, "item") else value


def _frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    # Arrow with dictionary-encoded strings keeps millions of codes small in pandas. A fresh
    # cursor, because DuckDB 2 refuses a relation while an execute() result is still open.
    table = con.cursor().sql(sql).to_arrow_table()
    return table.to_pandas(strings_to_categorical=True)


def _q(name: str) -> str:
    return '"' + name + '"'


def check_keys(con: duckdb.DuckDBPyConnection, spec: SourceTable, schema: str = "raw") -> list[Finding]:
    """Identifier unique and present, required columns present: always on every row."""
    columns = ([spec.key] if spec.key else []) + [c for c in spec.not_null if c != spec.key]
    if not columns:
        return []
    df = _frame(con, f"select {', '.join(map(_q, columns))} from {schema}.{spec.name}")
    expectations = [(gx().expectations.ExpectColumnValuesToNotBeNull(column=c), True) for c in columns]
    if spec.key:
        expectations.append((gx().expectations.ExpectColumnValuesToBeUnique(column=spec.key), True))
    return run_expectations(df, expectations)


def _sampled(con: duckdb.DuckDBPyConnection, spec: SourceTable, columns: list[str], schema: str) -> tuple[pd.DataFrame, str]:
    rows = con.execute(f"select count(*) from {schema}.{spec.name}").fetchone()[0]
    select = ", ".join(
        f"nullif({_q(c)}, {SENTINEL_DAYS}) as {_q(c)}" if c.startswith("DAYS_") else _q(c) for c in columns
    )
    sample_rows = settings.current().quality_sample_rows
    if rows <= sample_rows:
        return _frame(con, f"select {select} from {schema}.{spec.name}"), f"all {rows:,} rows"
    sample = f"using sample reservoir({sample_rows} rows) repeatable (42)"
    return _frame(con, f"select {select} from {schema}.{spec.name} {sample}"), f"a seeded sample of {sample_rows:,} of {rows:,} rows"


def check_values(con: duckdb.DuckDBPyConnection, spec: SourceTable, schema: str = "raw") -> list[Finding]:
    """Categorical codes in their known set; TARGET-like columns block, the rest warn."""
    if not spec.value_sets:
        return []
    df, scope = _sampled(con, spec, list(spec.value_sets), schema)
    expectations = []
    for col, allowed in spec.value_sets.items():
        values = [str(v) for v in allowed] if df[col].dtype.name == "category" else list(allowed)
        expectations.append((gx().expectations.ExpectColumnValuesToBeInSet(column=col, value_set=values), col in spec.blocking_values))
    return [_with_note(f, scope) for f in run_expectations(df, expectations)]


def check_ranges(con: duckdb.DuckDBPyConnection, spec: SourceTable, schema: str = "raw") -> list[Finding]:
    """Amounts and day counts within plausible bounds (the 365243 sentinel excluded); warn only."""
    if not spec.ranges:
        return []
    df, scope = _sampled(con, spec, list(spec.ranges), schema)
    expectations = [
        (gx().expectations.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi), False)
        for c, (lo, hi) in spec.ranges.items()
    ]
    return [_with_note(f, scope) for f in run_expectations(df, expectations)]


def check_foreign_keys(con: duckdb.DuckDBPyConnection, spec: SourceTable, schema: str = "raw") -> list[Finding]:
    """Share of distinct child keys without a parent row, on every row; warn above 1 %."""
    findings = []
    for fk in spec.foreign_keys:
        parents = " union all ".join(
            f"select {_q(fk.parent_column)} as k from {schema}.{p}" for p in fk.parent_tables if _exists(con, schema, p)
        ) or "select null::bigint as k where false"
        df = _frame(con, f"""
            select c.k as child_key, p.k as parent_key
            from (select distinct {_q(fk.column)} as k from {schema}.{spec.name} where {_q(fk.column)} is not null) c
            left join (select distinct k from ({parents})) p using (k)""")
        rows_orphaned = con.execute(f"""
            select count(*) from {schema}.{spec.name} where {_q(fk.column)} not in
            (select k from ({parents}) where k is not null)""").fetchone()[0]
        expectation = gx().expectations.ExpectColumnValuesToNotBeNull(column="parent_key", mostly=1 - MAX_ORPHAN_SHARE)
        finding = run_expectations(df, [(expectation, False)])[0]
        finding.rule = f"foreign key {fk.column} -> {' or '.join(fk.parent_tables)}.{fk.parent_column}"
        finding.column = fk.column
        finding.examples = df.loc[df["parent_key"].isna(), "child_key"].head(10).tolist()
        finding.note = f"{rows_orphaned:,} rows point to no parent (distinct keys tested: {len(df):,})"
        findings.append(finding)
    return findings


def _with_note(finding: Finding, scope: str) -> Finding:
    finding.note = f"tested on {scope}"
    return finding


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
    ).fetchone()[0])


RULES = {
    "keys": check_keys,
    "value_sets": check_values,
    "ranges": check_ranges,
    "foreign_keys": check_foreign_keys,
}


def rules_for(spec: SourceTable) -> list[str]:
    """The rule families that apply to a table (a check exists only where a rule does)."""
    present = {
        "keys": bool(spec.key or spec.not_null),
        "value_sets": bool(spec.value_sets),
        "ranges": bool(spec.ranges),
        "foreign_keys": bool(spec.foreign_keys),
    }
    return [rule for rule, applies in present.items() if applies]

