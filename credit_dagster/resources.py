"""Resources bound in definitions.py: the DuckDB warehouse and the source-data folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from credit_dagster import settings


class Warehouse(dg.ConfigurableResource):
    """The DuckDB warehouse file. Only one process may write it: assets run in one process."""

    path: str = ""  # empty: CREDIT_HOME/warehouse.duckdb
    memory_limit: str = os.environ.get("CREDIT_DUCKDB_MEMORY_LIMIT", "4GB")
    threads: int = int(os.environ.get("CREDIT_DUCKDB_THREADS", "0"))  # 0: all cores

    def file(self) -> Path:
        return Path(self.path) if self.path else settings.warehouse_path()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        path = self.file()
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {"memory_limit": self.memory_limit, "temp_directory": str(path.parent / "duckdb_tmp")}
        if self.threads:
            config["threads"] = self.threads
        con = duckdb.connect(str(path), read_only=read_only, config=config)
        try:
            yield con
        finally:
            con.close()


class SourceData(dg.ConfigurableResource):
    """The folder holding the Kaggle-layout CSV files (empty: CREDIT_DATA_DIR or the synthetic default)."""

    data_dir: str = ""

    def folder(self) -> Path:
        return Path(self.data_dir) if self.data_dir else settings.data_dir()


class ModelStore(dg.ConfigurableResource):
    """The model registry folder (empty: CREDIT_HOME/models)."""

    path: str = ""

    def registry(self):
        from credit_dagster.ml.registry import Registry

        return Registry(Path(self.path) if self.path else settings.models_dir())
