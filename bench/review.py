"""Human review: the journal and its fold at volume, and an action's round trip in a real browser.

    CREDIT_HOME=/path/to/scored/home python bench/review.py --lines 10000 --browser-actions 50

Runs on a copy-free home: the journal, the users and the access log go to a temporary folder
(CREDIT_REVIEW_JOURNAL_DIR), and the fold writes review.* in the home's warehouse.

1. Recording: `--lines` actions through `ReviewJournal.record` (lock, incremental read, replay of
   the case, fsync), a client's contest then the advisor's decision on the granted applications
   in turn: p50 and p95 per action.
2. Reading: the whole journal in a fresh process (cold), and again in this one after one more line.
3. The fold (`review_fold`, in-process): first with every line new, then with none.
4. In Chromium (Debian's, driven by Playwright): an advisor records `--browser-actions` actions
   (a client's contest, then the decision, on granted applications) through the review view;
   each timed from the click to the page's "Recorded on application N" line.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb

from credit_dagster.core import settings
from credit_dagster.review import cases as review


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def scored_ids(decision: str, limit: int) -> list[int]:
    with duckdb.connect(str(settings.warehouse_path()), read_only=True) as con:
        return [r[0] for r in con.execute("select SK_ID_CURR from scoring.scored_applications where decision = ? order by SK_ID_CURR "
                                          "limit ?", [decision, limit]).fetchall()]


def record_lines(lines: int) -> list[float]:
    """A client's contest, then the advisor's decision, on granted applications in turn (a case
    decided is contested again once every application has had its turn)."""
    from credit_dagster.review.journal import ReviewJournal

    journal, times = ReviewJournal(), []
    ids = scored_ids(review.GRANTED, lines // 2)
    for n in range(lines // 2):
        sk_id = ids[n % len(ids)]
        for action, fields in ((review.CONTEST, {"note": "[phone, 2026-12-01] please look again"}),
                               (review.DECIDE, {"final": review.GRANTED, "reason_codes": ("verified_income",)})):
            start = time.perf_counter()
            case = journal.case(sk_id, review.GRANTED)
            journal.record(sk_id, action, user="bench", role=review.ADVISOR, model_version="v", model_decision=review.GRANTED,
                           revision=case.revision, **fields)
            times.append((time.perf_counter() - start) * 1000)
    return times


def fold() -> float:
    from credit_dagster.definitions import defs

    start = time.perf_counter()
    assert defs.resolve_job_def("review_fold").execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
    return time.perf_counter() - start


def browser_round_trips(actions: int, folder: Path) -> list[float]:
    from playwright.sync_api import sync_playwright

    from panel_app import auth

    password = "a long enough passphrase"
    auth.set_user("ann", password, folder / "users.json", role=auth.ADVISOR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CREDIT_DASHBOARD_USERS": str(folder / "users.json"), "CREDIT_DASHBOARD_ACCESS_DIR": str(folder / "access"),
           "CREDIT_REVIEW_JOURNAL_DIR": str(folder / "browser_journal"), "CREDIT_DASHBOARD_COOKIE_SECRET": "bench-" + "z" * 32}
    server = subprocess.Popen([sys.executable, "-m", "panel_app.app", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = []
    try:
        for _ in range(120):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/app")
            page.fill("#username", "ann")
            page.fill("#password", password)
            page.keyboard.press("Enter")
            page.wait_for_selector("text=What weighed most", timeout=120_000)
            page.get_by_role("button", name="Review", exact=True).click()
            search = page.get_by_placeholder("e.g. 1002")
            for sk_id in scored_ids(review.GRANTED, actions // 2):
                search.fill(str(sk_id))
                search.press("Enter")
                page.wait_for_selector(f"text=Review of application {sk_id}", timeout=30_000)
                start = time.perf_counter()
                page.get_by_role("button", name="Record the client's request for a human review").click()
                page.wait_for_selector(f"text=Recorded on application {sk_id}: the client", timeout=30_000)
                times.append((time.perf_counter() - start) * 1000)
                page.get_by_role("button", name="Grant", exact=True).click()
                page.get_by_text("Income verified with documents", exact=True).click()
                start = time.perf_counter()
                page.get_by_role("button", name="Record the decision").click()
                page.wait_for_selector(f"text=Recorded on application {sk_id}: decided", timeout=30_000)
                times.append((time.perf_counter() - start) * 1000)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--browser-actions", type=int, default=50)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="review-bench-"))
    os.environ["CREDIT_REVIEW_JOURNAL_DIR"] = str(folder / "journal")
    os.environ["CREDIT_DASHBOARD_ACCESS_DIR"] = str(folder / "access")

    recorded = record_lines(args.lines)
    print(f"record {len(recorded):,} actions: p50 {statistics.median(recorded):.1f} ms, p95 {p95(recorded):.1f} ms, "
          f"total {sum(recorded) / 1000:.1f} s")
    code = ("import time; from credit_dagster.review.journal import ReviewJournal; t = time.perf_counter(); "
            "n = len(ReviewJournal().actions()); print(n, round((time.perf_counter() - t) * 1000, 1))")
    cold = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    print(f"read the journal in a fresh process: {int(cold[0]):,} actions in {cold[1]} ms")
    from credit_dagster.review.journal import ReviewJournal

    journal = ReviewJournal()
    journal.actions()
    journal.record(10**9, review.CONTEST, user="bench", role="", model_version="v", model_decision=review.GRANTED, revision=None)
    start = time.perf_counter()
    journal.actions()
    print(f"read again after one more line (incremental): {(time.perf_counter() - start) * 1000:.2f} ms")
    print(f"fold, {args.lines + 1:,} new lines: {fold():.1f} s; again, none new: {fold():.1f} s")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.browser_actions:
        trips = browser_round_trips(args.browser_actions, folder)
        print(f"browser round trip, {len(trips)} actions (click -> confirmed): p50 {statistics.median(trips):.0f} ms, "
              f"p95 {p95(trips):.0f} ms, max {max(trips):.0f} ms")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
