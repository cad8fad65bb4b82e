"""Resources bound in definitions.py: the DuckDB warehouse and the source-data folder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from credit_dagster.core import settings, warehouse


class Warehouse(dg.ConfigurableResource):
    """The DuckDB warehouse file. Connections from every process take turns (`warehouse_lock`)."""

    path: str = ""  # empty: CREDIT_HOME/warehouse.duckdb
    memory_limit: str = ""  # empty: CREDIT_DUCKDB_MEMORY_LIMIT (default 4GB)
    threads: int = 0  # 0: CREDIT_THREADS (default: the physical cores)

    def file(self) -> Path:
        return Path(self.path) if self.path else settings.warehouse_path()

    @contextmanager
    def connect(self, read_only: bool = False, wait: bool = True, scratch: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection once the warehouse is free (`warehouse.connect`), saying in the run's log
        whom it waits for; without `wait`, WarehouseBusy if it is not free."""
        with warehouse.connect(self.file(), read_only=read_only, wait=wait, scratch=scratch, say=dg.get_dagster_logger().warning,
                               memory_limit=self.memory_limit, threads=self.threads) as con:
            yield con


class SourceData(dg.ConfigurableResource):
    """The folder holding the Kaggle-layout CSV files (empty: CREDIT_DATA_DIR, else the folder this
    CREDIT_HOME was built from; never the synthetic set by default)."""

    data_dir: str = ""

    def folder(self) -> Path:
        return Path(self.data_dir) if self.data_dir else settings.data_dir()
