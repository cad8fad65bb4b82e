"""Data-quality gates on the raw tables: Great Expectations 1.x run inside Dagster asset checks.

Keys (and TARGET's value set) block what follows, since a duplicate applicant or a label out
of {0, 1} would corrupt features and training; other rules warn, with failing examples.
"""


import dagster as dg

from credit_dagster.core import plausibility
from credit_dagster.core.resources import Warehouse
from credit_dagster.core.sources import SOURCE_TABLES, SourceTable
from credit_dagster.ingest import quality

RAW = "raw"


def check_result(findings: list[quality.Finding]) -> dg.AssetCheckResult:
    """One check result from GX findings: ERROR when a blocking rule failed, else WARN."""
    failed = [f for f in findings if not f.passed]
    severity = dg.AssetCheckSeverity.ERROR if any(f.blocking for f in failed) else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        passed=not failed,
        severity=severity,
        description="; ".join(f.describe() for f in failed)[:2000] or "all rules hold",
        metadata={
            "failures": [f.describe() for f in failed],
            "rules_tested": [f"{f.rule}({f.column})" + (f" [{f.note}]" if f.note else "") for f in findings],
            "failing_rows": sum(f.unexpected for f in failed),
            "examples": {f"{f.rule}({f.column})": [str(e) for e in f.examples[:10]] for f in failed},
        },
    )


def _rule_check(spec: SourceTable, rule: str) -> dg.AssetChecksDefinition:
    parents = {p for fk in spec.foreign_keys for p in fk.parent_tables} if rule == "foreign_keys" else set()
    blocking = rule == "keys" or (rule == "value_sets" and bool(spec.blocking_values))

    @dg.asset_check(
        asset=dg.AssetKey([RAW, spec.name]),
        name=rule,
        blocking=blocking,
        description=(quality.RULES[rule].__doc__ or "").strip(),
        additional_deps=[dg.AssetKey([RAW, p]) for p in sorted(parents)],
    )
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connect(read_only=False) as con:
            return check_result(quality.RULES[rule](con, spec))

    return _check


def _quarantine_check(spec: SourceTable) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dg.AssetKey([RAW, spec.name]), name="nothing_quarantined",
                    description="Warns when rows of the file were held back, with the reasons and the first rows.")
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            rows = con.execute(
                "select line, column_name, reason from raw.quarantine where table_name = ? order by line nulls last limit 10",
                [spec.name],
            ).fetchall()
            total = con.execute("select count(*) from raw.quarantine where table_name = ?", [spec.name]).fetchone()[0]
        return dg.AssetCheckResult(
            passed=total == 0,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{total} rows quarantined in raw.quarantine" if total else "no row held back",
            metadata={"rows_quarantined": total, "examples": [f"line {r[0]}, column {r[1]}: {r[2]}" for r in rows]},
        )

    return _check


def plausibility_result(con, relation: str) -> dg.AssetCheckResult:
    """Incomplete and implausible applications of `relation` (`plausibility`): a warning with
    counts per rule and examples; the night refers such applications to an advisor."""
    columns = {r[0] for r in con.execute(f"describe {relation}").fetchall()}
    wanted = [c for c in ("SK_ID_CURR", *plausibility.REQUIRED, *plausibility.CHECKED) if c in columns]
    counts, examples = plausibility.findings(con.execute(f"select {', '.join(dict.fromkeys(wanted))} from {relation}").df())
    said = "; ".join(f"{rule}: {n:,} rows" for rule, n in counts.items())[:2000]
    return dg.AssetCheckResult(
        passed=not counts, severity=dg.AssetCheckSeverity.WARN,
        description=f"{said} (scored, but referred to an advisor, never granted automatically)" if counts
        else "every application complete and plausible",
        metadata={"rules_broken": counts, "examples": examples},
    )


def _plausibility_check(spec: SourceTable) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dg.AssetKey([RAW, spec.name]), name="plausible_applications",
                    description="Warns of applications missing what a lender needs or breaking a plausibility rule "
                                "(the same rules as the API and the what-if), with counts and examples.")
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            return plausibility_result(con, f"{RAW}.{spec.name}")

    return _check


raw_checks = [
    _rule_check(spec, rule) for spec in SOURCE_TABLES.values() for rule in quality.rules_for(spec)
] + [_quarantine_check(spec) for spec in SOURCE_TABLES.values()] + [
    _plausibility_check(SOURCE_TABLES[name]) for name in ("application_train", "application_test")]
