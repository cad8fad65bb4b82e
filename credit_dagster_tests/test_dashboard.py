"""The Panel dashboard: its data store without a browser, then the served page in headless Chromium."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import pytest

from panel_app.data_store import SnapshotStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def snapshot_file(scored_home) -> Path:
    return scored_home / "serving" / "serving.duckdb"


def test_store_lists_filters_and_explains(snapshot_file):
    store = SnapshotStore(snapshot_file)
    everything = store.decisions()
    refused = store.decisions(decision="refused")
    assert len(everything) > len(refused) > 0 and set(refused["decision"]) == {"refused"}
    sk_id = int(refused.iloc[0]["SK_ID_CURR"])
    assert set(store.decisions(search=str(sk_id))["SK_ID_CURR"]) == {sk_id}
    applicant = store.applicant(sk_id)
    assert applicant.row["decision"] == "refused" and 1 <= len(applicant.reasons) <= 4
    assert applicant.comparison["meaning"].notna().all() and len(applicant.comparison) > 5
    with pytest.raises(KeyError, match="not in the snapshot"):
        store.applicant(1)


def test_store_sees_a_new_night_without_restart(snapshot_file, tmp_path):
    path = tmp_path / "serving.duckdb"
    shutil.copy(snapshot_file, path)
    store = SnapshotStore(path)
    before = len(store.decisions())
    with duckdb.connect(str(path)) as con:
        con.execute("delete from scored_applications where decision = 'granted'")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert len(store.decisions()) < before


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(snapshot_file, tmp_path_factory):
    port = free_port()
    env = {**os.environ, "CREDIT_SERVING_SNAPSHOT": str(snapshot_file)}
    log = open(tmp_path_factory.mktemp("panel") / "server.log", "wb")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen([sys.executable, "-m", "panel_app.app", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    yield f"http://127.0.0.1:{port}/app"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # Tornado can linger on open websockets; the test is over
        proc.kill()
        proc.wait(timeout=10)
    log.close()


@pytest.mark.browser
def test_dashboard_in_a_real_browser(served, snapshot_file, tmp_path):
    from playwright.sync_api import sync_playwright

    store = SnapshotStore(snapshot_file)
    refused = store.decisions(decision="refused")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        outside = []
        # anything fetched from another host over the network (blob: and data: URLs stay in the page)
        page.on("request", lambda r: outside.append(r.url)
                if urlparse(r.url).scheme in ("http", "https", "ws", "wss") and urlparse(r.url).hostname != "127.0.0.1" else None)
        page.goto(served)
        page.wait_for_selector("text=What weighed most against this application", timeout=60_000)
        assert page.get_by_text("SYNTHETIC DATA").count() == 1
        first = store.decisions().iloc[0]
        assert page.get_by_text(f"Application {int(first['SK_ID_CURR'])}").count() >= 1
        # filter to refusals, open one, and read its reasons and what would change the decision
        page.locator("select").nth(1).select_option("refused")
        target = int(refused.iloc[1]["SK_ID_CURR"])
        page.get_by_role("gridcell", name=str(target), exact=True).click()
        page.wait_for_selector(f"text=Application {target}", timeout=30_000)
        expected = store.applicant(target)
        assert page.get_by_text(expected.reasons[0]).count() >= 1
        assert page.get_by_text(expected.row["counterfactual"][:40]).count() >= 1
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        browser.close()
    assert outside == []  # offline: every resource came from the dashboard's own server
