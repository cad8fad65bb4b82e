"""Server-side time to build the dashboard's views on a serving snapshot, and the memory used.

    CREDIT_HOME=/path/to/scored/home python bench/dashboard.py --clients 50 --sessions 10

Per view: p50 and p95 over `--clients` applications (client view, compare, what-if), then the
client view built by `--sessions` concurrent threads (as concurrent browser sessions would on
one Panel server), and the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from panel_app import charts
from panel_app import view_model as vm
from panel_app.data_store import SnapshotStore


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()
    store = SnapshotStore()
    load = timed(lambda: (store.table("scored_applications"), store.applicant(int(store.table("scored_applications")["SK_ID_CURR"][0]))))
    ids = random.Random(0).sample(store.table("scored_applications")["SK_ID_CURR"].tolist(), args.clients)
    feature = store.compared_features()[0]

    def client(i: int) -> None:
        v = vm.client_view(store, i)
        charts.bullet(v.probability, v.refer_low, v.refer_high)
        charts.waterfall(v.contributions)

    def compare(i: int) -> None:
        c = vm.compare(store, i, feature, ["type of income", "age band"])
        charts.distribution(c.all_values, c.group_values, c.client_value, c.meaning, "similar")

    def what_if(i: int) -> None:
        app = store.applicant(i).application
        vm.what_if(store, i, app["AMT_CREDIT"] * 0.8, app["AMT_ANNUITY"] * 0.8, app["AMT_GOODS_PRICE"])

    print(f"{len(store.table('scored_applications')):,} scored applications; first load of the snapshot {load:.0f} ms")
    for name, fn in (("client view", client), ("compare", compare), ("what-if", what_if)):
        times = [timed(lambda i=i, fn=fn: fn(i)) for i in ids]
        print(f"{name:12s} p50 {statistics.median(times):7.1f} ms   p95 {p95(times):7.1f} ms")
    with ThreadPoolExecutor(args.sessions) as pool:
        times = list(pool.map(lambda i: timed(lambda: client(i)), ids * 2))
    print(f"client view, {args.sessions} concurrent sessions: p95 {p95(times):.1f} ms")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
