"""Server-side time of the dashboard's clicks on a serving snapshot, and the memory used.

    CREDIT_HOME=/path/to/scored/home python bench/dashboard.py --clicks 40 --sessions 10

Each session is the real page (`views.Dashboard`) rendered into its own Bokeh document, as the
Panel server does for a browser tab, so a click costs what it costs in the server: the view
model, the Panel/Bokeh model updates and the access-log line (written to a temporary folder).
Only the websocket transfer and the browser's drawing are left out.

Per view: p50 and p95 over `--clicks` applications chosen from the list (client view, compare,
what-if re-score), then the client view clicked by `--sessions` concurrent sessions, and the peak
RSS of this process (the server's, for that many sessions).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import panel as pn
from bokeh.document import Document

from panel_app.data_store import SnapshotStore
from panel_app.views import Dashboard


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def session(store: SnapshotStore, section: str = "Decision") -> Dashboard:
    board = Dashboard(store, "benchmark")
    board.page().get_root(Document())
    board.section.value = section
    return board


def select(board: Dashboard, sk_id: int) -> None:
    board.applications.value = sk_id


def rescore(board: Dashboard, sk_id: int) -> None:
    select(board, sk_id)
    button = board.detail.select(pn.widgets.Button)[0]
    button.clicks += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=40)
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("CREDIT_DASHBOARD_ACCESS_DIR", tempfile.mkdtemp(prefix="access_"))
    store = SnapshotStore()
    load = timed(lambda: session(store))
    listed = list(session(store).applications.options.values())
    ids = random.Random(0).sample(listed, min(args.clicks, len(listed)))
    print(f"{len(store.table('scored_applications')):,} scored applications; first session (snapshot load) {load:.0f} ms")
    for section, click in (("Decision", select), ("Compare", select), ("What if", rescore)):
        board = session(store, section)
        times = [timed(lambda i=i, board=board, click=click: click(board, i)) for i in ids]
        print(f"{section:9s} p50 {statistics.median(times):7.1f} ms   p95 {p95(times):7.1f} ms")
    boards = [session(store) for _ in range(args.sessions)]

    def clicking(n: int) -> list[float]:  # one session clicks through the list, one click at a time
        board = boards[n]
        return [timed(lambda i=i: select(board, i)) for i in ids[n:] + ids[:n]]

    with ThreadPoolExecutor(args.sessions) as pool:
        times = [t for ts in pool.map(clicking, range(args.sessions)) for t in ts]
    print(f"client view, {args.sessions} concurrent sessions: p95 {p95(times):.1f} ms")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
