"""Raw ingestion: one asset per Kaggle file, loaded into `raw.<table>` in the warehouse."""

from pathlib import Path

import dagster as dg

from credit_dagster.core import settings
from credit_dagster.core.keys import POOL
from credit_dagster.core.resources import SourceData, Warehouse
from credit_dagster.core.settings import reports_dir
from credit_dagster.core.sources import COLUMNS_DESCRIPTION, SOURCE_TABLES, SourceTable
from credit_dagster.ingest import profile
from credit_dagster.ingest.loaders import SourceFileError, find_source_file, load_table
from credit_dagster.synth.generator import SYNTHETIC_NOTE

GROUP = "ingest"  # the Dagster group: this folder's name
SCHEMA = "raw"  # the warehouse schema and the asset keys' prefix: raw.<table>


class IngestConfig(dg.Config):
    # a file with more unparsable rows than this share fails the load; empty: CREDIT_MAX_REJECT_SHARE
    max_reject_share: float | None = None

    def reject_share(self) -> float:
        return self.max_reject_share if self.max_reject_share is not None else settings.current().max_reject_share


def is_synthetic(folder: Path) -> bool:
    return (folder / "SYNTHETIC.txt").exists()


def _raw_asset(spec: SourceTable, optional: bool = False) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.name,
        key_prefix=SCHEMA,
        group_name=GROUP,
        description=f"{spec.description} Grain: {spec.grain}. Loaded from {spec.file_stem}.csv[.gz].",
        kinds={"duckdb", "csv"},
        pool=POOL,
        output_required=not optional,
        metadata={"table": f"raw.{spec.name}", "grain": spec.grain},
    )
    def _asset(context: dg.AssetExecutionContext, config: IngestConfig, warehouse: Warehouse, source: SourceData):
        folder = source.folder()
        try:
            path = find_source_file(folder, spec)
        except SourceFileError:
            if optional:
                context.log.info(f"{spec.file_stem} is not in {folder}: raw.{spec.name} is not built")
                return
            raise
        with warehouse.connect() as con:
            report = load_table(con, spec, path, max_reject_share=config.reject_share())
        if report.extra_columns:
            context.log.warning(f"{path}: extra column(s) {report.extra_columns} are not in the contract and were not loaded")
        worst_nulls = dict(sorted(report.null_shares.items(), key=lambda kv: -kv[1])[:15])
        yield dg.MaterializeResult(metadata={
            "dagster/row_count": report.rows,
            "columns": len(report.columns),
            "rows_quarantined": report.quarantined,
            "quarantine_reasons": report.quarantine_reasons,
            "extra_columns_ignored": report.extra_columns,
            "null_share_top15": worst_nulls,
            "source_file": dg.MetadataValue.path(str(path)),
            "sha256": report.sha256,
            "load_seconds": round(report.seconds, 2),
            "synthetic": is_synthetic(folder),
        })

    return _asset


raw_assets = [_raw_asset(spec) for spec in SOURCE_TABLES.values()] + [_raw_asset(COLUMNS_DESCRIPTION, optional=True)]


@dg.asset(
    key_prefix=SCHEMA,
    group_name=GROUP,
    deps=[dg.AssetKey([SCHEMA, name]) for name in SOURCE_TABLES],
    kinds={"duckdb", "html"},
    pool=POOL,
)
def raw_data_profile(context: dg.AssetExecutionContext, warehouse: Warehouse, source: SourceData) -> dg.MaterializeResult:
    """HTML profile of every raw table: missingness, distributions, default rate by category."""
    synthetic = is_synthetic(source.folder())
    with warehouse.connect() as con:
        profiles = profile.profile_all(con)
        rate = profile.overall_default_rate(con)
    banner = SYNTHETIC_NOTE if synthetic else f"Source data: {source.folder()}"
    path = reports_dir() / "raw_data_profile.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(profile.render_html(profiles, "Raw data profile" + (" (SYNTHETIC)" if synthetic else ""), banner))
    by_income = profiles[0].target_rates.get("NAME_INCOME_TYPE")
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.path(str(path)),
        "default_rate": round(rate, 4),
        "rows": {p.name: p.rows for p in profiles},
        "default_rate_by_income_type": dg.MetadataValue.md(by_income.to_markdown(index=False)) if by_income is not None else "",
        "synthetic": synthetic,
    })
