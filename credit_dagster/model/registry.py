"""A file-based model registry: versioned artefacts, metadata, and a `champion` alias.

Layout under `root` (CREDIT_HOME/models): `<version>/model_<k>.txt` (the fold models of the
deployed ensemble, in LightGBM's own text format, no pickle), `<version>/oof.csv.gz` (its
out-of-fold scores, to compare a challenger on the same applicants), `<version>/metadata.json` (features, categories, parameters, data fingerprint,
metrics, threshold, calibration, code version), `<version>/treeshap.npz` (the fold models' trees as lookup
tables, NumPy arrays without pickle, read only when its SHA-256 is the one metadata.json keeps) and `registry.json` (aliases and the history
of promotions). Artefacts stay out of git: CREDIT_HOME is ignored.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from credit_dagster.core import formats
from credit_dagster.model import treeshap
from credit_dagster.model.calibration import Calibrator
from credit_dagster.model.ensemble import Ensemble
from credit_dagster.model.metadata import ModelMetadata
from credit_dagster.model.training import to_model_frame

log = logging.getLogger(__name__)
TABLES = "treeshap.npz"  # the fold models' trees as TreeSHAP lookup tables (model/treeshap.py), its SHA-256 in metadata.json


@dataclass
class RegisteredModel:
    version: str
    ensemble: Ensemble
    metadata: ModelMetadata

    @property
    def features(self) -> list[str]:
        return self.metadata.features

    @property
    def calibrator(self) -> Calibrator:
        return Calibrator.from_json(self.metadata.calibration)

    @property
    def threshold(self) -> float:
        return self.metadata.threshold

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        return to_model_frame(frame, self.features, self.metadata.categories)

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.ensemble.raw_score(self.matrix(frame))

    def probability(self, frame: pd.DataFrame) -> np.ndarray:
        return self.calibrator(self.raw_score(frame))

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Per-feature log-odds contributions; the last column is the base value."""
        return self.ensemble.contributions(self.matrix(frame))


def code_version() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Registry:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.index = self.root / "registry.json"

    def _read(self) -> dict:
        if not self.index.exists():
            return {"aliases": {}, "history": []}
        state = json.loads(self.index.read_text())
        formats.check_stamp(state.get("stamp"), "registry", self.index)  # a registry a newer release wrote is refused
        return state

    def _write(self, state: dict) -> None:
        state["stamp"] = formats.stamp("registry")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.index.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.index)  # atomic: a reader never sees half an index

    def versions(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("v*") if (p / "metadata.json").exists())

    def register(self, model: Ensemble, metadata: ModelMetadata, oof: pd.DataFrame | None = None) -> str:
        now = datetime.now(UTC)
        version = f"v{len(self.versions()) + 1:04d}-{now:%Y%m%dT%H%M%S}"
        folder = self.root / version
        folder.mkdir(parents=True)
        for k, booster in enumerate(model.boosters):
            booster.save_model(str(folder / f"model_{k:02d}.txt"))
        if oof is not None:
            oof.to_csv(folder / "oof.csv.gz", index=False)
        written = {**metadata.to_json(), "version": version, "created_at": now.isoformat(), "code_version": code_version(),
                   "format_stamp": formats.stamp("registry")}
        if (forest := model.forest()) is not None:  # built once here, not by every process that scores
            written["tables"] = {"file": TABLES, "sha256": forest.save(folder / TABLES)}
        (folder / "metadata.json").write_text(json.dumps(written, indent=2, default=_json_default))
        state = self._read()
        state["history"].append({"version": version, "event": "registered", "at": now.isoformat()})
        self._write(state)
        return version

    def load(self, version_or_alias: str = "champion") -> RegisteredModel:
        version = self._read()["aliases"].get(version_or_alias, version_or_alias)
        folder = self.root / version
        if not (folder / "metadata.json").exists():
            raise LookupError(f"no model {version_or_alias!r} in {self.root} (versions: {self.versions()})")
        # metadata.json is written last: a version with it is complete
        boosters = [lgb.Booster(model_file=str(f)) for f in sorted(folder.glob("model*.txt"))]
        ensemble, metadata = Ensemble(boosters), self.metadata(version)
        if saved := metadata.tables:  # the tables registration saved (a version of an earlier release has none: built when first used)
            tables = treeshap.Forest.read(folder / saved["file"], saved["sha256"])
            if tables is None:
                log.warning("model %s: its lookup tables are missing or not the file registered with it; built again from its fold models", version)
            else:
                ensemble = Ensemble(boosters, tables=tables)
        return RegisteredModel(version, ensemble, metadata)

    def metadata(self, version: str) -> ModelMetadata:
        written = json.loads((self.root / version / "metadata.json").read_text())
        formats.check_stamp(written.pop("format_stamp", None), "registry", self.root / version)  # a model a newer release wrote
        return ModelMetadata.from_json(written)

    def out_of_fold(self, version: str) -> pd.DataFrame | None:
        """The out-of-fold scores a version was validated on (None for versions saved without them)."""
        path = self.root / version / "oof.csv.gz"
        return pd.read_csv(path) if path.exists() else None

    def alias(self, name: str = "champion") -> str | None:
        return self._read()["aliases"].get(name)

    def promote(self, version: str, reason: str, alias: str = "champion") -> None:
        state = self._read()
        state["aliases"][alias] = version
        state["history"].append({"version": version, "event": f"promoted to {alias}", "reason": reason,
                                 "at": datetime.now(UTC).isoformat()})
        self._write(state)

    def note(self, version: str, event: str, reason: str) -> None:
        """A line of the version's history that is no promotion (an out-of-time test, say)."""
        state = self._read()
        state["history"].append({"version": version, "event": event, "reason": reason, "at": datetime.now(UTC).isoformat()})
        self._write(state)

    def history(self) -> list[dict]:
        return self._read()["history"]

    def catalogue(self) -> pd.DataFrame:
        """One row per version: when it was made, its cross-validated AUC, when it was last
        promoted to champion (if ever) and whether it is the champion now."""
        state = self._read()
        promoted = {e["version"]: e["at"] for e in state["history"] if e["event"] == "promoted to champion"}
        rows = []
        for version in self.versions():
            meta = self.metadata(version)
            rows.append({"model_version": version, "created_at": meta.created_at,
                         "cv_roc_auc": meta.cv_metrics.get("roc_auc"), "promoted_at": promoted.get(version),
                         "champion": state["aliases"].get("champion") == version})
        return pd.DataFrame(rows, columns=["model_version", "created_at", "cv_roc_auc", "promoted_at", "champion"])


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="records")
    raise TypeError(f"not JSON serialisable: {type(value)}")
