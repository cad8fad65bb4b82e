"""In-process timings of a night's reasons and bars, and of one on-demand decision, on a scored
CREDIT_HOME (`bench/bench.py --stages ...,score` beforehand): the parts of issue 37's figures that
no HTTP or Dagster time hides. Run from another checkout with PYTHONPATH for a "before" (this
script's directory comes first on the path, not the working directory's code).

    CREDIT_HOME=/tmp/realbench python bench/decisions.py --drop drop_20260101
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from credit_dagster.api import schemas
from credit_dagster.core import settings, snapshot
from credit_dagster.decision import ondemand, scoring
from credit_dagster.model.registry import Registry

sys.path.insert(0, str(Path(__file__).parent))
import api_load  # noqa: E402  (the applications as the load client sends them)


def main(args: argparse.Namespace) -> None:
    with duckdb.connect(str(settings.credit_home() / "warehouse.duckdb"), read_only=True) as con:
        features = con.execute(f"select * from {args.drop}_features.application_features").df()
    with duckdb.connect(str(snapshot.snapshot_path()), read_only=True) as con:
        dictionary = con.execute("select * from feature_dictionary").df()
    started = time.perf_counter()
    model = Registry(settings.models_dir()).load("champion")
    matrix = model.matrix(features)
    contributions = model.ensemble.contributions(matrix)  # the tables read or built, the kernels loaded
    print(f"the champion loaded and its first contributions: {time.perf_counter() - started:.2f} s")
    # the model's own work on the night: the floor issue 37 judges the night's step against
    for _ in range(2):
        started = time.perf_counter()
        model.ensemble.raw_score(matrix)
        scores = time.perf_counter() - started
        started = time.perf_counter()
        model.ensemble.contributions(matrix)
        print(f"the model's own work on {len(features):,} applicants: scores {scores:.2f} s, "
              f"contributions {time.perf_counter() - started:.2f} s")
    explainer = scoring.explainer(model, dictionary)
    started = time.perf_counter()
    explainer.reasons(contributions, matrix, features)
    reasons = time.perf_counter() - started
    started = time.perf_counter()
    explainer.bars(features["SK_ID_CURR"].to_numpy(), contributions, matrix, features)
    print(f"{len(features):,} applicants: reasons {reasons:.2f} s, bars {time.perf_counter() - started:.2f} s")
    took = []
    for application in api_load.applications(args.calls + 50):
        request = schemas.ApplicationRequest.model_validate({"application": application})
        batch = ondemand.Batch(pd.DataFrame([request.application.model_dump()]))
        started = time.perf_counter()
        ondemand.score(batch, model, dictionary, snapshot.snapshot_path(), threads=1)  # a scoring process's one thread
        took.append(time.perf_counter() - started)
    ms = np.array(took[50:]) * 1000
    print(f"one application on demand, as the API sends it: p50 {np.median(ms):.1f} ms, p99 {np.quantile(ms, 0.99):.1f} ms "
          f"({len(ms)} calls after 50)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drop", default="drop_20260101", help="the scored drop's schema (bench/bench.py's night)")
    parser.add_argument("--calls", type=int, default=250)
    main(parser.parse_args())
