"""The model registry as a Dagster resource."""

from pathlib import Path

import dagster as dg

from credit_dagster.core import settings
from credit_dagster.model.registry import Registry


class ModelStore(dg.ConfigurableResource):
    """The model registry folder (empty: CREDIT_HOME/models)."""

    path: str = ""

    def registry(self) -> Registry:
        return Registry(Path(self.path) if self.path else settings.models_dir())
