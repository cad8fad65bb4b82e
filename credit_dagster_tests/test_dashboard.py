"""The dashboard: its view models without a server, then the served page in headless Chromium
(sign-in, odd click orders, every view, accessibility with axe-core, the access log)."""

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from urllib.parse import urljoin, urlparse

import duckdb
import numpy as np
import pytest

from credit_dagster.core import audit
from credit_dagster.decision import reasons, scoring
from panel_app import auth
from panel_app import view_model as vm
from panel_app.data_store import SnapshotStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("CREDIT_SCREENSHOTS", Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"))
PASSWORD = "a long enough passphrase"


@pytest.fixture(scope="module")
def snapshot_file(scored_home) -> Path:
    return scored_home / "serving" / "serving.duckdb"


@pytest.fixture(scope="module")
def store(snapshot_file) -> SnapshotStore:
    return SnapshotStore(snapshot_file)


def test_the_snapshot_holds_exactly_the_tables_of_its_contract(snapshot_file):
    from credit_dagster.core import formats
    from credit_dagster.core.snapshot import Table
    from credit_dagster.decision.ondemand import HISTORY_PREFIX

    with duckdb.connect(str(snapshot_file), read_only=True) as con:
        names = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    assert {n for n in names if not n.startswith(HISTORY_PREFIX)} == {t.value for t in Table} | {formats.DUCKDB_STAMP}
    assert any(n.startswith(HISTORY_PREFIX) for n in names)


def test_list_filters_and_the_one_selection(store):
    everything = vm.listing(store, None, None, "")
    refused = vm.listing(store, None, scoring.REFUSED, "")
    assert len(everything.options) > len(refused.options) > 0
    assert all("Refused" in label for label in refused.options)
    first = next(iter(refused.options.values()))
    # the shown application stays when still listed, else the first listed, else none
    assert vm.follow(refused.options, first) == first
    granted = next(i for i in everything.options.values() if i not in refused.options.values())
    assert vm.follow(refused.options, granted) == first
    assert vm.follow({}, first) is None
    narrowed = vm.listing(store, None, None, str(first))
    assert set(narrowed.options.values()) == {first}
    # malformed and unknown numbers: a message, no list, nothing typed reaches SQL
    for text in ("12a", "1; drop table scored_applications", "' or 1=1 --"):
        bad = vm.listing(store, None, None, text)
        assert bad.options == {} and "not an application number" in bad.message
    assert "No applications match" in vm.listing(store, None, None, "99999999").message
    with pytest.raises(KeyError, match="not in the snapshot"):
        store.applicant(1)


def test_a_session_reuses_its_charts_and_keeps_nothing_of_the_previous_client(store):
    """The decision view is built once per session and refilled per click: after any sequence of
    clients, every part (words, both charts, the download's name) is the one a fresh session
    shows for the last client."""
    from bokeh.document import Document

    from panel_app.views import Dashboard

    def session() -> Dashboard:
        board = Dashboard(store, "test")
        board.page().get_root(Document())
        return board

    def shown(board: Dashboard) -> dict:
        c = board.client
        return {"words": [p.object for p in (c.decision, c.band, c.steps, c.application, c.every_field)],
                "bands": dict(c.bullet.bands.data), "names": dict(c.bullet.names.data), "client": dict(c.bullet.client.data),
                "label": (c.bullet.label.x, c.bullet.label.text, c.bullet.label.text_align), "end": c.bullet.figure.x_range.end,
                "bars": {k: list(v) for k, v in c.waterfall.source.data.items()}, "height": c.waterfall.figure.height,
                "x": (c.waterfall.figure.x_range.start, c.waterfall.figure.x_range.end),
                "y": c.waterfall.figure.y_range.end, "file": c.download.filename}

    ids = list(session().applications.options.values())
    by_bars = sorted(ids[:40], key=lambda i: len(vm.client_view(store, i).contributions))
    riskiest = max(ids[:40], key=lambda i: vm.client_view(store, i).probability)
    reused = session()
    for sk_id in (by_bars[-1], riskiest, by_bars[0], by_bars[-1], ids[1]):
        reused.applications.value = sk_id
        fresh = session()
        fresh.applications.value = sk_id
        assert shown(reused) == shown(fresh)
        assert f"Application {sk_id}:" in reused.client.decision.object
        assert reused.client.view.sk_id == sk_id
    assert reused.client.layout in reused.detail.objects


def test_client_view_explains_in_client_words(store):
    scored = store.table("scored_applications")
    for decision in (scoring.GRANTED, scoring.REFUSED):
        sk_id = int(scored.loc[scored["decision"] == decision, "SK_ID_CURR"].iloc[0])
        v = vm.client_view(store, sk_id)
        assert v.icon and v.decision.lower().startswith(decision.split()[0])
        assert ("although it was granted" in v.reasons_heading) == (decision == scoring.GRANTED)
        assert v.probability_text in v.band_sentence
        # the legend's band for the client's grade holds the client's probability
        low, high = _band(dict(v.grade_legend)[v.grade])
        assert low <= v.probability < high
        assert all(value.endswith(vm.currency()) or value == "not given"
                   for label, value in v.application["The loan asked for"] if "Amount" in label or "Repayment" in label)
    # missing information is never worded as a fault
    assert not scored[[f"reason_{i}" for i in range(1, 5)]].stack().str.contains("not known").any()


def _band(text: str) -> tuple[float, float]:
    numbers = [float(x) / 100 for x in __import__("re").findall(r"(\d+)%", text)]
    if "under" in text:
        return 0.0, numbers[0]
    if "or more" in text:
        return numbers[0], 1.0
    return numbers[0], numbers[1]


def test_stored_contributions_add_up_to_the_score(store):
    contributions = store.table("applicant_contributions")
    totals = contributions.groupby("SK_ID_CURR")["contribution"].sum()
    raw = store.table("scored_applications").set_index("SK_ID_CURR")["raw_score"]
    assert len(totals) == len(raw)
    np.testing.assert_allclose(totals.loc[raw.index].to_numpy(), raw.to_numpy(), atol=1e-6)
    sk_id = int(raw.index[0])
    bars = vm.client_view(store, sk_id).contributions
    assert bars[0].label == "A typical applicant" and len(bars) == reasons.TOP_BARS + 2


def test_what_if_is_the_nightly_score_when_nothing_changes(store):
    scored = store.table("scored_applications")
    row = scored[scored["decision"] != scoring.GRANTED].iloc[0]
    app = store.applicant(int(row["SK_ID_CURR"])).application
    same = vm.what_if(store, int(row["SK_ID_CURR"]), app["AMT_CREDIT"], app["AMT_ANNUITY"], app["AMT_GOODS_PRICE"])
    assert abs(same.after["probability_of_default"] - row["probability_of_default"]) < 1e-9
    assert same.reasons == scoring.reasons_of(row)
    smaller = vm.what_if(store, int(row["SK_ID_CURR"]), app["AMT_CREDIT"] / 2, app["AMT_ANNUITY"] / 2, app["AMT_GOODS_PRICE"] / 2)
    assert smaller.after["probability_of_default"] != row["probability_of_default"]
    assert store.table("scored_applications").equals(scored)  # a simulation stores nothing
    with pytest.raises(ValueError, match="(?i)the loan amount must be between"):
        vm.what_if(store, int(row["SK_ID_CURR"]), -1, 10, 10)


def test_what_if_keeps_what_the_user_typed(store):
    from panel_app.views import Dashboard

    scored = store.table("scored_applications")
    sk_id = int(scored.loc[scored["decision"] != scoring.GRANTED, "SK_ID_CURR"].iloc[0])
    app = store.applicant(sk_id).application
    view = Dashboard(store, "test").what_if_view(sk_id)
    amount, annuity, goods, term = view.objects[1].objects
    run, back = view.objects[2].objects
    result = view.objects[3]
    credit = float(app["AMT_CREDIT"])
    # a typed repayment stays as typed; the number of repayments follows it
    annuity.value = 15000.0
    assert annuity.value == 15000.0 and term.value == round(credit / 15000, 1)
    # a new amount keeps the number of repayments and recomputes the repayment
    amount.value = credit * 2
    assert term.value == round(credit / 15000, 1) and annuity.value == round(credit * 2 / term.value, 2)
    back.clicks += 1
    assert (amount.value, annuity.value) == (credit, float(app["AMT_ANNUITY"])) and result.objects == []
    # unchanged amounts say so
    run.clicks += 1
    assert "unchanged" in result.objects[0].object
    # an emptied field is a message, never a NaN or a traceback
    amount.value = None
    run.clicks += 1
    assert "Fill in the amount of the loan" in result.objects[0].object
    # a rule the API would refuse: the API's words
    amount.value, annuity.value = credit, credit * 2
    run.clicks += 1
    assert "less than the loan amount" in result.objects[0].object


def test_nearest_past_clients_match_a_brute_force_search(store):
    from credit_dagster.decision.neighbours import standardize

    reference = store.table("reference_population")
    applicants = store.table("applicant_features").pivot_table(index="SK_ID_CURR", columns="feature", values="value",
                                                               dropna=False).reset_index()
    features = [c for c in store.compared_features() if c in applicants]
    ref, app = standardize(reference, reference, features), standardize(reference, applicants, features)
    similar = store.table("similar_clients")
    for i in range(0, len(applicants), max(1, len(applicants) // 10)):
        sk_id = int(applicants["SK_ID_CURR"].iloc[i])
        expected = np.sort(np.sqrt(((ref - app[i]) ** 2).sum(axis=1)))[:5]
        got = similar[similar["SK_ID_CURR"] == sk_id].sort_values("rank")["distance"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    neighbours = store.neighbours(int(applicants["SK_ID_CURR"].iloc[0]))
    assert set(neighbours["outcome"]) <= {"repaid", "had payment difficulties"} and "SK_ID_CURR" not in neighbours


def test_compare_with_a_group_the_user_picks(store):
    sk_id = int(store.table("scored_applications")["SK_ID_CURR"].iloc[0])
    feature = store.compared_features()[0]
    everyone = vm.compare(store, sk_id, feature, [])
    group = vm.compare(store, sk_id, feature, ["type of income", "type of loan"])
    details = store.applicant(sk_id).details
    reference = store.table("reference_population")
    expected = reference[(reference["NAME_INCOME_TYPE"] == details["NAME_INCOME_TYPE"])
                         & (reference["NAME_CONTRACT_TYPE"] == details["NAME_CONTRACT_TYPE"])][feature].dropna()
    assert len(group.group_values) == len(expected) < len(everyone.all_values)
    assert details["NAME_INCOME_TYPE"] in group.group_words
    # the most similar past clients are looked for among the group asked for, not among everyone
    assert len(group.neighbours) and set(group.neighbours["NAME_INCOME_TYPE"]) == {details["NAME_INCOME_TYPE"]}
    assert set(group.neighbours["NAME_CONTRACT_TYPE"]) == {details["NAME_CONTRACT_TYPE"]}


def test_supervision_counts_every_decision(store):
    s = vm.supervision(store)
    scored = store.table("scored_applications")
    assert int(s.volumes.to_numpy().sum()) == len(scored)
    assert s.history["champion"].sum() == 1 and len(s.psi) > 0
    # in words: dates, AUC to three places, yes or no; the drift table names the information
    history = vm.history_table(s.history)
    text = " ".join(str(x) for x in history.to_numpy().ravel())
    assert not ISO_TIME.search(text) and "+00:00" not in text and "True" not in text
    assert set(history["Champion now"]) <= {"yes", "no"} and all(len(a.split(".")[1]) == 3 for a in history["Cross-validated AUC"])
    psi = vm.psi_table(s.psi, store.meanings())
    assert all(not f.isupper() for f in psi["Information"]) and "The score (probability of default)" in set(psi["Information"])
    fairness = vm.fairness_table(s.fairness)
    assert {"Approval rate of clients who repaid", "Default rate observed (95 % interval)"} <= set(fairness.columns)
    # groups in words, each with a verdict sentence that agrees with its figures
    assert not {"CODE_GENDER", "age_band", "F", "M"} & (set(fairness["Attribute"]) | set(fairness["Group"]))
    for verdict, four_fifths in zip(fairness["Verdict"], s.fairness["four_fifths_flag"], strict=True):
        assert verdict.startswith("Fails" if four_fifths else ("Fails", "Passes")), verdict
        assert ("four-fifths rule (0.80)" in verdict) == bool(four_fifths)


def test_the_work_list_puts_the_late_then_the_contested_first_and_counts_each_state(store, tmp_path, monkeypatch):
    """Every case that waits, none cut: late ones first (the synthetic nights are weeks old), then a
    contest received today; the counts under the list; the workload per reviewer for supervisors."""
    from credit_dagster.review import cases as review
    from credit_dagster.review.journal import ReviewJournal

    monkeypatch.setenv("CREDIT_DASHBOARD_ACCESS_DIR", str(tmp_path / "access"))
    journal = ReviewJournal(tmp_path / "journal")
    granted = [int(i) for i in store.decisions(decision=scoring.GRANTED)["SK_ID_CURR"].iloc[:2]]
    today = date.today().isoformat()
    case = vm.record_review(store, journal, granted[0], review.CONTEST, user="api:x", role="", revision=0, channel="phone",
                            received_on=today)
    vm.record_review(store, journal, granted[0], review.DECIDE, user="ann", role=auth.ADVISOR, revision=case.revision,
                     final=review.REFUSED, reason_codes=("affordability",))
    vm.record_review(store, journal, granted[1], review.CONTEST, user="api:x", role="", revision=0, channel="letter", received_on=today)
    waits = vm.listing(store, None, None, "", vm.WAITING_FOR_PEOPLE, journal)
    referred = set(store.decisions(decision=scoring.REFER)["SK_ID_CURR"].astype(int))
    ids = list(waits.options.values())
    assert len(ids) == len(referred) + 2 and set(ids) == referred | set(granted)  # every one, never cut
    assert set(ids[-2:]) == set(granted)  # contested today: after the late ones
    labels = list(waits.options)
    assert all(label.split(" · ")[1].startswith("LATE") for label in labels[:-2])
    assert f"{len(referred) + 1:,} open, 1 waiting for approval; 2 contested, {len(referred):,} past the service time" in waits.message
    assert set(vm.listing(store, None, None, "", vm.CONTESTED, journal).options.values()) == set(granted)
    work = vm.workload(store, journal)
    ann = work.per_reviewer.set_index("Reviewer").loc["ann"]
    assert (ann["Decisions recorded"], ann["Overrides asked"], ann["Their requests waiting for approval now"]) == (1, 1, 1)
    assert work.overrides == 0 and "1 waiting for approval" in work.sentence


def test_the_counterfactual_says_its_amounts_in_the_currency(store):
    said = [c for c in store.table("scored_applications")["counterfactual"].dropna() if "less (" in c or "instalment" in c]
    assert said and all(" EUR" in c for c in said)


def test_vintage_curves_are_told_apart_without_colour():
    import pandas as pd

    from panel_app import charts

    curves = pd.DataFrame([{"grade": g, "months_on_book": m, "cumulative_default_rate": 0.01 * m * (i + 1)}
                           for i, g in enumerate("ABC") for m in (3, 6, 9)])
    figure = charts.vintage_curves(curves)
    lines = [r.glyph for r in figure.renderers if type(r.glyph).__name__ == "Line"]
    markers = [r.glyph for r in figure.renderers if type(r.glyph).__name__ == "Scatter"]
    assert len({tuple(g.line_dash) if not isinstance(g.line_dash, str) else g.line_dash for g in lines}) == 3
    assert len({g.marker for g in markers}) == 3


def test_supervisor_charts_keep_their_words_apart():
    import pandas as pd
    from bokeh.models import Label, Legend

    from panel_app import charts

    volumes = charts.volumes(pd.DataFrame({d: [5, 3] for d in vm.DECISIONS}, index=["2026-11-01", "2026-11-02"]))
    assert any(isinstance(item, Legend) for item in volumes.below)  # under the chart, never over the last bar
    histogram = charts.score_histogram(np.array([0.02, 0.08, 0.2]), 0.075, 0.095)
    labels = [item for item in histogram.center if isinstance(item, Label)]
    # the two bands' names sit on either side of their lines, at two heights: they cannot overlap
    assert {lab.text_align for lab in labels} == {"left", "right"} and len({lab.y for lab in labels}) == 2


def test_store_sees_a_new_night_without_restart(snapshot_file, tmp_path):
    path = tmp_path / "serving.duckdb"
    shutil.copy(snapshot_file, path)
    store = SnapshotStore(path)
    before = len(store.decisions())
    with duckdb.connect(str(path)) as con:
        con.execute("delete from scored_applications where decision = 'granted'")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert len(store.decisions()) < before


def test_a_decision_kept_after_its_application_went_past_retention_still_shows(snapshot_file, tmp_path):
    """Retention keeps decisions (5 years) longer than the application, features and contributions
    shown with them (the drop's 2): the client's page still says the decision, its reasons, and no
    other client's figures."""
    path = tmp_path / "serving.duckdb"
    shutil.copy(snapshot_file, path)
    sk_id = int(SnapshotStore(path).decisions()["SK_ID_CURR"].iloc[0])
    with duckdb.connect(str(path)) as con:
        for table in ("applicant_details", "applicant_features", "applicant_contributions", "applications"):
            con.execute(f"delete from {table} where SK_ID_CURR = ?", [sk_id])
    os.utime(path, (time.time() + 5, time.time() + 5))
    store = SnapshotStore(path)
    view, row = vm.client_view(store, sk_id), store.applicant(sk_id).row
    assert view.decision and view.reasons == scoring.reasons_of(row) and view.probability == row["probability_of_default"]
    assert all(value == "not given" for _, value in view.application["The loan asked for"])
    assert vm.compare(store, sk_id, store.compared_features()[0], []).client_value is None


def test_passwords_are_stored_hashed_and_private(tmp_path):
    users = tmp_path / "users.json"
    auth.set_user("alice", PASSWORD, users)
    stored = json.loads(users.read_text())["alice"]["hash"]
    assert PASSWORD not in users.read_text() and stored.startswith("scrypt$")
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert auth.verify_password(PASSWORD, stored) and not auth.verify_password(PASSWORD + "x", stored)
    with pytest.raises(ValueError, match="12 characters"):
        auth.set_user("bob", "short", users)
    assert auth.remove_user("alice", users) and auth.read_users(users) == {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    with open(log, "wb") as out:
        # started as a script's background job after a Dagster run would be: SIGINT and SIGTERM ignored
        proc = subprocess.Popen([sys.executable, "-m", "panel_app.app", "--port", str(port)], env={**os.environ, **env},
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=_ignore_interrupts)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"the dashboard did not start: {log.read_text()}")


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, as a service manager stops the dashboard: it must be gone within seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise AssertionError("the dashboard ignored SIGTERM for 10 s") from None


@pytest.fixture(scope="module")
def served(scored_home, snapshot_file, tmp_path_factory):
    with _dashboard_server(scored_home, snapshot_file, tmp_path_factory.mktemp("dashboard")) as server:
        yield server


@contextmanager
def _dashboard_server(scored_home: Path, snapshot_file: Path, folder: Path, **more_env: str):
    """A dashboard server of its own (its own users, sessions, access log and sign-in back-off): the base URL and the access log."""
    auth.set_user("alice", PASSWORD, folder / "users.json", role=auth.SUPERVISOR)
    auth.set_user("carol", PASSWORD, folder / "users.json")
    env = {"CREDIT_HOME": str(scored_home), "CREDIT_SERVING_SNAPSHOT": str(snapshot_file),
           "CREDIT_DASHBOARD_USERS": str(folder / "users.json"), "CREDIT_DASHBOARD_ACCESS_DIR": str(folder / "access"),
           "CREDIT_REVIEW_JOURNAL_DIR": str(folder / "journal"),
           "CREDIT_DASHBOARD_COOKIE_SECRET": "test-secret-" + "x" * 32, **more_env}
    proc, port = start_server(env, folder / "server.log")
    try:
        yield f"http://127.0.0.1:{port}", folder / "access"
    finally:
        stop(proc)


def test_every_answer_of_the_dashboard_carries_security_headers(served):
    import httpx

    base, _ = served
    for path in ("/login", "/app", "/reports/model_card.html", "/static/js/bokeh.min.js"):
        answer = httpx.get(base + path, timeout=30)
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["x-content-type-options"] == "nosniff", path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"] and answer.headers["referrer-policy"] == "no-referrer"


def test_the_dashboards_metrics_count_sign_ins_and_sessions_and_name_nobody(served):
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    base, _ = served

    def samples() -> dict:
        text = httpx.get(f"{base}/metrics", timeout=30).text
        assert "alice" not in text and "carol" not in text  # counts only
        return {(s.name, s.labels.get("outcome")): s.value for f in text_string_to_metric_families(text) for s in f.samples}

    before = samples()
    with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client:
        client.post("/login", data={"username": "alice", "password": "not the password", "csrf": _form_token(client)})
        _sign_in(client)  # clears the failure for the next test on this server
        after = samples()
    for outcome, more in (("signed in", 1), ("refused", 1)):
        key = ("credit_dashboard_sign_ins_total", outcome)
        assert after[key] == before.get(key, 0) + more, (outcome, before.get(key), after[key])
    assert after[("credit_dashboard_sessions_open", None)] >= 1


def test_the_sign_in_page_never_runs_or_repeats_what_a_link_carries(served):
    """A link to /login with markup in its error (or anywhere) shows only that sign-in failed:
    nothing it carries is rendered, as markup or as text."""
    import httpx

    base, _ = served
    carried = "<script>alert(document.cookie)</script><b>Call 0800 FRAUD</b>"
    for query in ({"error": carried}, {"next": "/app", "error": carried}, {"error": carried.replace("<", "%3C")}):
        page = httpx.get(f"{base}/login", params=query, timeout=30).text
        assert "<script>alert" not in page and "&lt;script&gt;" not in page and "0800 FRAUD" not in page, query
        assert "The user name or the password is not right." in page
    assert "not right" not in httpx.get(f"{base}/login", timeout=30).text


def test_markup_in_any_address_or_form_field_of_the_dashboard_is_never_repeated(served):
    """Markup in every query parameter the pages read (and one they do not), in the address itself
    and in every field of the sign-in form, signed in and not: no answer is a server error, and none
    repeats it, as markup or as text."""
    from urllib.parse import quote

    import httpx

    from credit_dagster_tests.markup import ATTACK

    base, _ = served
    paths = ["/login", "/app", "/reports/model_card.html", "/reports/drift/drift_x.html", "/", "/" + quote(ATTACK, safe=""), "/logout"]
    query = {"error": ATTACK, "next": ATTACK, "id": ATTACK, "theme": ATTACK, ATTACK: ATTACK}
    tried = 0
    for signed_in in (False, True):
        with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client:
            if signed_in:
                _sign_in(client)
            for path in paths:
                for method in ("GET", "POST"):
                    answer = client.request(method, path, params=query, follow_redirects=True)
                    tried += 1
                    assert answer.status_code < 500 and "fuzz" not in answer.text and "alert(" not in answer.text, (method, path)
            token = _form_token(client)
            # two failures, then a success (an unknown field) that clears them: the server's back-off stays off for the next test
            for field in ("username", "password", "csrf", ATTACK):
                form = {"username": "alice", "password": PASSWORD, "csrf": token, field: ATTACK}
                answer = client.post("/login", data=form, params=query, follow_redirects=True)
                tried += 1
                assert answer.status_code < 500 and "fuzz" not in answer.text and "alert(" not in answer.text, field
    assert tried >= 30


def test_another_sites_page_cannot_open_the_dashboards_websocket(served):
    """A page of another site, open in a signed-in user's browser, cannot drive their session: the
    websocket the dashboard runs on is refused to any origin but the dashboard's own."""
    import asyncio

    import httpx
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    base, _ = served
    with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client:
        _sign_in(client)
        cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())

    async def opens(origin: str) -> bool:
        request = HTTPRequest(base.replace("http", "ws") + "/app/ws", headers={"Origin": origin, "Cookie": cookies})
        try:
            (await websocket_connect(request)).close()
            return True
        except HTTPClientError as refused:
            assert refused.code == 403
            return False

    port = urlparse(base).port
    assert asyncio.run(opens(f"http://localhost:{port}"))
    assert not asyncio.run(opens("https://evil.example"))
    assert not asyncio.run(opens(f"http://localhost.evil.example:{port}"))


@pytest.mark.parametrize("target", ["///evil.example/x", "//evil.example/x", "/\\evil.example/x", "https://evil.example/x"])
def test_after_sign_in_the_browser_stays_on_this_site(served, target):
    import httpx

    base, _ = served
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as client:
        token = _form_token(client, next=target)
        assert "evil" not in client.cookies.get("next_url", "")  # not even kept
        client.cookies.set("next_url", target)  # as if it had been
        signed = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf": token})
    assert signed.status_code == 302 and signed.headers["location"].startswith("/") and "evil" not in signed.headers["location"]
    assert not signed.headers["location"].startswith("//")


def test_a_sign_in_posted_from_another_site_is_refused(served):
    """Without the token of this site's own form (another site's page posting to /login), the right
    password signs nobody in."""
    import httpx

    base, _ = served
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as client:
        forged = client.post("/login", data={"username": "alice", "password": PASSWORD})
        assert "error=" in forged.headers["location"] and auth.SESSION_COOKIE not in forged.headers.get("set-cookie", "")
        _form_token(client)
        forged = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf": "guessed"})
        assert "error=" in forged.headers["location"] and auth.SESSION_COOKIE not in forged.headers.get("set-cookie", "")


@pytest.fixture(scope="module")
def strict(scored_home, snapshot_file, tmp_path_factory):
    """A server of its own, with 3 seconds of idle time: the guesses back its address off, which would lock the other tests out."""
    with _dashboard_server(scored_home, snapshot_file, tmp_path_factory.mktemp("strict"), CREDIT_DASHBOARD_IDLE_MINUTES="0.05",
                           CREDIT_DASHBOARD_LOCK_AFTER=str(auth.FREE_TRIES)) as server:
        yield server


def test_a_session_unused_for_the_idle_time_is_signed_out(strict):
    import httpx

    base, _ = strict
    with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client:
        _sign_in(client)
        assert _opens(base, dict(client.cookies))
        time.sleep(4)  # 3 seconds of idle time here
        assert not _opens(base, dict(client.cookies))


def test_guessing_a_password_is_slowed_then_stopped_and_the_right_one_waits_too(strict):
    """Five failures back the account and the address off, and (with CREDIT_DASHBOARD_LOCK_AFTER=5
    here) lock the account: once the back-off is over, the right password still opens nothing until
    the account is unlocked."""
    import httpx

    base, access = strict
    users = access.parent / "users.json"
    with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client:
        token = _form_token(client)
        for _ in range(auth.FREE_TRIES):
            refused = client.post("/login", data={"username": "carol", "password": "wrong guess, again", "csrf": token})
            assert "error=Invalid" in refused.headers["location"]
        started = time.monotonic()
        right = client.post("/login", data={"username": "carol", "password": PASSWORD, "csrf": token})  # during the back-off
        assert "error=Too+many" in right.headers["location"] and "user=" not in right.headers.get("set-cookie", "")
        assert time.monotonic() - started < 1  # refused at once, without hashing
        page = client.get(right.headers["location"]).text
        assert "Too many failed attempts" in page
        assert set(auth.locked(users)) == {"carol"}
        time.sleep(1.5)  # the back-off after the fifth failure (1 s) is over: the lock is not
        still = client.post("/login", data={"username": "carol", "password": PASSWORD, "csrf": _form_token(client)})
        assert "error=Invalid" in still.headers["location"]  # said as a wrong password: no one learns the account exists
        assert auth.unlock("carol", users) and not auth.locked(users)
        time.sleep(2.5)  # that try counted as a sixth failure (2 s of back-off)
        _sign_in(client, "carol")  # which also clears the address's failures for the next test on this server
        log, _ = audit.read(access, prefix="access_")
        events = list(log["event"])
        assert events.count("sign-in refused: too many attempts") >= 1 and events.count("account locked") == 1
        assert events[-1] == "sign-in" and events[-2] == "sign-in refused", str(events)  # the locked account's right password: refused


def test_a_supervisor_or_the_command_line_unlocks_an_account_and_an_advisor_cannot(store, tmp_path, monkeypatch, capsys):
    from panel_app.views import Dashboard

    users = tmp_path / "users.json"
    monkeypatch.setenv("CREDIT_DASHBOARD_USERS", str(users))
    monkeypatch.setenv("CREDIT_DASHBOARD_ACCESS_DIR", str(tmp_path / "access"))
    for name in ("carol", "sue"):
        auth.set_user(name, PASSWORD, users, role=auth.SUPERVISOR if name == "sue" else auth.ADVISOR)
    auth.lock("carol", users)
    sue = Dashboard(store, "sue", auth.SUPERVISOR)
    advisor_in_a_stale_page = sue.locked_accounts()
    sue.role = auth.ADVISOR  # the role is checked when the button is pressed, on the server
    _button(advisor_in_a_stale_page, "Unlock carol").clicks += 1
    assert "Only a supervisor" in _texts(advisor_in_a_stale_page) and set(auth.locked(users)) == {"carol"}
    sue.role = auth.SUPERVISOR
    _button(sue.locked_accounts(), "Unlock carol").clicks += 1
    assert not auth.locked(users) and auth.verify_password(PASSWORD, auth.read_users(users)["carol"])
    assert "No account is locked" in _texts(sue.locked_accounts())
    from credit_dagster import cli  # the command line lifts a lock too, and says which accounts are locked

    auth.lock("carol", users)
    assert cli.main(["dashboard-user", "list"]) == 0 and "LOCKED since" in capsys.readouterr().out
    assert cli.main(["dashboard-user", "unlock", "carol"]) == 0 and not auth.locked(users)
    assert cli.main(["dashboard-user", "unlock", "carol"]) == 1 and "not a locked dashboard user" in capsys.readouterr().err
    log, _ = audit.read(tmp_path / "access", prefix="access_")
    assert [e for e in log["event"] if "unlock" in e] == ["refused: unlock an account", "account unlocked", "account unlocked (command line)"]


def _form_token(client, **query) -> str:
    """The sign-in form's token, as a browser gets it with the page."""
    page = client.get("/login", params=query).text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def _sign_in(client, user: str = "alice"):
    signed = client.post("/login", data={"username": user, "password": PASSWORD, "csrf": _form_token(client)})
    assert signed.status_code == 302 and "error" not in signed.headers["location"], signed.headers
    return signed


def _opens(base: str, cookies, path: str = "/app") -> bool:
    """Whether these cookies, replayed by another client, open `path` (else: sent to sign in)."""
    import httpx

    with httpx.Client(base_url=base, cookies=cookies, timeout=60, follow_redirects=False) as other:
        answer = other.get(path)
    return answer.status_code == 200


def test_signing_out_removing_a_user_or_changing_a_password_ends_the_session_on_the_server(scored_home, snapshot_file, tmp_path):
    import httpx

    with _dashboard_server(scored_home, snapshot_file, tmp_path) as (base, _):
        with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as alice:
            signed = _sign_in(alice)
            for cookie in (auth.SESSION_COOKIE, "user", "id_token"):  # every cookie of the sign-in, Panel's own too
                said = next(h for h in signed.headers.get_list("set-cookie") if h.startswith(cookie + "=")).lower()
                assert "httponly" in said and "samesite=strict" in said and "expires" not in said, said
            kept = dict(alice.cookies)
            assert _opens(base, kept) and _opens(base, kept, "/reports/model_card.html")
            assert alice.post("/logout").status_code == 200
        # the cookies as they were before signing out, replayed: they open nothing any more
        assert not _opens(base, kept) and not _opens(base, kept, "/reports/model_card.html")
        users = tmp_path / "users.json"
        for user, end in (("carol", lambda: auth.remove_user("carol", users)),
                          ("alice", lambda: auth.set_user("alice", PASSWORD + " changed", users, role=auth.SUPERVISOR))):
            with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client:
                _sign_in(client, user)
                assert _opens(base, dict(client.cookies))
                end()
                assert not _opens(base, dict(client.cookies)), user


def test_an_advisor_reads_the_model_card_but_not_a_supervisors_reports(served, scored_home):
    import httpx

    base, access = served
    drift = next((scored_home / "reports" / "drift").glob("drift_*.html")).name
    for user, may_read_drift in (("carol", False), ("alice", True)):
        with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client:
            _sign_in(client, user)
            assert client.get("/reports/model_card.html").status_code == 200
            documentation = client.get("/reports/technical_documentation.html")  # the supervision view links it
            assert documentation.status_code == 200 and "Technical documentation of model" in documentation.text
            assert client.get("/reports/technical_documentation.pdf").content.startswith(b"%PDF")
            for report in (f"/reports/drift/{drift}", "/reports/raw_data_profile.html"):
                assert client.get(report).status_code == (200 if may_read_drift else 403), (user, report)
    log, _ = audit.read(access, prefix="access_")
    assert ((log["user"] == "carol") & (log["event"] == "refused: a supervisor's report")).sum() == 2


def test_the_dashboard_serves_https_and_its_cookies_are_secure_there(scored_home, snapshot_file, tmp_path):
    import ssl

    import httpx

    from credit_dagster_tests.conftest import self_signed

    cert, key = self_signed(tmp_path)
    trusted = ssl.create_default_context(cafile=str(cert))
    with _dashboard_server(scored_home, snapshot_file, tmp_path, CREDIT_TLS_CERT=str(cert), CREDIT_TLS_KEY=str(key)) as (base, _):
        secure = base.replace("http://", "https://")
        with httpx.Client(base_url=secure, timeout=60, follow_redirects=False, verify=trusted) as client:
            form = client.get("/login")
            assert form.status_code == 200 and form.headers["strict-transport-security"].startswith("max-age=")
            signed = _sign_in(client)
            cookies = [h.lower() for h in signed.headers.get_list("set-cookie")]
            session = next(c for c in cookies if c.startswith(auth.SESSION_COOKIE))
            assert "secure" in session and "samesite=strict" in session and "httponly" in session
            assert client.get("/app").status_code == 200


def test_an_unknown_user_costs_a_sign_in_as_much_as_a_known_one(tmp_path, monkeypatch):
    """No timing tells who has an account: the hash runs for unknown users too."""
    monkeypatch.setenv("CREDIT_DASHBOARD_USERS", str(tmp_path / "users.json"))
    monkeypatch.setenv("CREDIT_DASHBOARD_ACCESS_DIR", str(tmp_path / "access"))
    auth.set_user("alice", PASSWORD, tmp_path / "users.json")

    class Request:
        remote_ip = "127.0.0.1"

    handler = auth.HashedLoginHandler.__new__(auth.HashedLoginHandler)
    handler.request = Request()

    def cost(user: str) -> float:
        started = time.perf_counter()
        assert not handler._validate(user, "not the password")
        return time.perf_counter() - started

    # taken in turns, so a busy machine (the other tests) slows both alike; the fastest of each compared
    pairs = [(cost("alice"), cost("nobody-here")) for _ in range(5)]
    known, unknown = min(k for k, _ in pairs), min(u for _, u in pairs)
    assert unknown > 0.5 * known, pairs


def test_roles_are_stored_with_the_users_and_an_older_file_reads_as_advisors(tmp_path, monkeypatch):
    users = tmp_path / "users.json"
    auth.set_user("ann", PASSWORD, users)
    auth.set_user("sue", PASSWORD, users, role=auth.SUPERVISOR)
    assert auth.roles(users) == {"ann": auth.ADVISOR, "sue": auth.SUPERVISOR}
    assert auth.verify_password(PASSWORD, auth.read_users(users)["sue"])
    with pytest.raises(ValueError, match="a role is one of"):
        auth.set_user("bob", PASSWORD, users, role="admin")
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps({"old": auth.hash_password(PASSWORD)}))  # written before roles existed
    assert auth.roles(legacy) == {"old": auth.ADVISOR} and auth.verify_password(PASSWORD, auth.read_users(legacy)["old"])
    monkeypatch.setenv("CREDIT_DASHBOARD_USERS", str(users))
    assert auth.role_of("sue") == auth.SUPERVISOR and auth.role_of("stranger") == auth.ADVISOR
    assert auth.role_of("oidc-user", {"credit_role": "supervisor"}) == auth.SUPERVISOR  # the identity provider's claim
    assert auth.role_of(auth.NO_LOGIN) == auth.SUPERVISOR  # the local look sees everything


def test_an_advisor_is_not_shown_the_supervision_and_is_refused_it(store, tmp_path, monkeypatch):
    from bokeh.document import Document

    from panel_app.views import Dashboard

    monkeypatch.setenv("CREDIT_DASHBOARD_ACCESS_DIR", str(tmp_path / "access"))
    advisor = Dashboard(store, "ann", auth.ADVISOR)
    header = advisor.page()
    header.get_root(Document())
    assert "Supervisor" not in advisor.section.options
    assert "(advisor)" in header.objects[0].object
    # asked for all the same (a crafted message to the server): refused there, and logged
    advisor.section.options = [*advisor.section.options, "Supervisor"]
    advisor.section.value = "Supervisor"
    assert "Not for your role" in advisor.detail.objects[0].object
    log, _ = audit.read(tmp_path / "access", prefix="access_")
    assert "refused: supervisor view" in set(log["event"])
    supervisor = Dashboard(store, "sue", auth.SUPERVISOR)
    supervisor.section.value = "Supervisor"
    assert "Supervision" in supervisor.detail.objects[0].objects[0].object


def test_dashboard_refuses_to_start_without_any_sign_in(tmp_path):
    env = {**os.environ, "CREDIT_HOME": str(tmp_path), "CREDIT_DASHBOARD_USERS": str(tmp_path / "none.json")}
    env.pop("CREDIT_DASHBOARD_OAUTH_PROVIDER", None)
    done = subprocess.run([sys.executable, "-m", "panel_app.app", "--port", str(free_port())], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "dashboard-user add" in done.stderr


@pytest.mark.browser
def test_oidc_sign_in_is_configured_by_environment(tmp_path):
    """With a generic OIDC provider configured, the page sends the browser to its authorize URL."""
    import urllib.request

    env = {"CREDIT_HOME": str(tmp_path), "CREDIT_DASHBOARD_OAUTH_PROVIDER": "generic", "PANEL_OAUTH_KEY": "credit-dashboard",
           "PANEL_OAUTH_SECRET": "s3cret", "CREDIT_DASHBOARD_COOKIE_SECRET": "c" * 40,
           "PANEL_OAUTH_EXTRA_PARAMS": json.dumps({"AUTHORIZE_URL": "http://idp.bank.internal/authorize",
                                                   "TOKEN_URL": "http://idp.bank.internal/token",
                                                   "USER_URL": "http://idp.bank.internal/userinfo"})}
    proc, port = start_server(env, tmp_path / "server.log")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        opener = urllib.request.build_opener(NoRedirect)
        location, url = None, f"http://127.0.0.1:{port}/app"
        for _ in range(3):  # /app -> /login -> the identity provider (never contacted)
            if urlparse(url).hostname != "127.0.0.1":
                break
            try:
                opener.open(url)
                break
            except urllib.error.HTTPError as redirect:
                location = urljoin(url, redirect.headers["Location"])
                url = location
        assert location and location.startswith("http://idp.bank.internal/authorize") and "client_id=credit-dashboard" in location
    finally:
        stop(proc)


def _shown(page) -> tuple[str | None, str | None]:
    """(application highlighted in the list, application the detail shows)."""
    highlighted = page.locator("select[size]").evaluate("e => e.selectedIndex < 0 ? null : e.options[e.selectedIndex].text")
    # the detail's own heading, not the application tab's "The application" (hidden, and first while the detail is redrawn)
    heading = page.locator("h2").filter(has_text=re.compile(r"^(Application \d|No applications match)"))
    text = heading.first.inner_text(timeout=30_000)
    number = re.match(r"Application (\d+)", text)
    shown = None if "No applications match" in text else number.group(1) if number else "(being redrawn)"  # never equal: asked again
    return highlighted.split(" ")[0] if highlighted else None, shown


def _answered(page, frames: list[float], asked: float, quiet: float = 0.5, timeout: float = 20) -> None:
    """Wait until the server has answered what was asked at `asked` (a websocket frame since) and
    has been quiet for `quiet` seconds: the page then shows the server's reaction whole."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(50)  # Playwright delivers the page's events while it waits
        if frames and frames[-1] > asked and time.monotonic() - frames[-1] > quiet:
            return
    raise AssertionError(f"the server did not answer within {timeout} s")


def _settled(page) -> tuple[str | None, str | None]:
    deadline = time.time() + 30
    while True:
        listed, shown = _shown(page)
        if listed == shown or time.time() > deadline:
            return listed, shown
        time.sleep(0.3)


SCIENTIFIC = re.compile(r"\d\.?\d*e[+-]\d+", re.IGNORECASE)
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}|\d{2}:\d{2}:\d{2}\.\d+")


def _page_text(page) -> str:
    """Every text the page shows, shadow roots included (Panel draws each pane in one); not the
    text of style sheets and scripts, which no one reads."""
    return page.evaluate("""() => { const out = []; const hidden = new Set(['STYLE', 'SCRIPT', 'NOSCRIPT', 'TEMPLATE']);
        const walk = root => { for (const e of root.querySelectorAll('*')) {
        if (e.shadowRoot) walk(e.shadowRoot);
        if (hidden.has(e.tagName) || !e.checkVisibility()) continue;
        for (const n of e.childNodes) if (n.nodeType === 3 && n.textContent.trim()) out.push(n.textContent.trim()); } };
        walk(document); return out.join('\\n'); }""")


def _settled_to(measure, limit: float) -> float:
    """What `measure()` gives once the layout has settled at or under `limit` (or after 10 s)."""
    deadline = time.monotonic() + 10
    while (value := measure()) > limit and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def _readable(text: str) -> None:
    """No number a person cannot read: scientific notation, raw ISO timestamps."""
    assert not SCIENTIFIC.search(text), SCIENTIFIC.search(text).group(0)
    assert not ISO_TIME.search(text), ISO_TIME.search(text).group(0)
    assert "1 applications" not in text


@pytest.mark.browser
def test_dashboard_in_a_real_browser(served, store):
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    base, access = served
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    refused = store.decisions(decision="refused")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        outside, frames = [], []
        # when the server last spoke on the page's websocket: a step is answered once it spoke and went quiet
        page.on("websocket", lambda ws: ws.on("framereceived", lambda _: frames.append(time.monotonic())))
        # anything fetched from another host over the network (blob: and data: URLs stay in the page)
        page.on("request", lambda r: outside.append(r.url)
                if urlparse(r.url).scheme in ("http", "https", "ws", "wss") and urlparse(r.url).hostname != "127.0.0.1" else None)
        page.goto(f"{base}/app")
        assert page.locator("html").get_attribute("lang") == "en"
        page.fill("#username", "alice")
        page.fill("#password", "wrong password!")
        page.click("button[type=submit]")
        page.wait_for_selector("text=The user name or the password is not right")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_selector("text=What weighed most", timeout=60_000)
        assert "Credit decisions" in page.title() and page.locator("html").get_attribute("lang") == "en"
        assert page.get_by_text("SYNTHETIC DATA").count() >= 1 and page.get_by_text("Signed in as").count() == 1
        listed, shown = _settled(page)
        assert listed == shown is not None

        # odd orders: filter, search, click, nonsense, clear, night, keyboard; the detail follows every time
        search = page.get_by_placeholder("e.g. 1002")
        target = str(int(refused.iloc[2]["SK_ID_CURR"]))
        steps = [
            lambda: page.locator("select").nth(1).select_option("refused"),
            lambda: page.locator("select[size]").select_option(label=next(lab for lab in
                                                                          page.locator("select[size] option").all_inner_texts()
                                                                          if lab.startswith(target))),
            lambda: (search.fill(target[:4]), search.press("Enter")),
            lambda: page.locator("select").nth(1).select_option("granted"),
            lambda: (search.fill("zz9"), search.press("Enter")),
            lambda: (search.fill(""), search.press("Enter")),
            lambda: page.locator("select").nth(0).select_option(index=1),
            lambda: (page.locator("select[size]").focus(), page.keyboard.press("ArrowDown"), page.keyboard.press("ArrowDown")),
            lambda: page.locator("select").nth(1).select_option("(all)"),
        ]
        seen = []
        for step in steps:
            asked = time.monotonic()
            step()
            _answered(page, frames, asked)
            listed, shown = _settled(page)
            assert listed == shown, f"the list highlights {listed} while the detail shows {shown} (after step {len(seen)})"
            seen.append(shown)
        assert None in seen and target in seen  # a search with no match cleared the detail; the click showed the target
        assert page.get_by_text("is not an application number").count() == 0  # "zz9" message replaced by the next search

        # keyboard only: Tab to a view button and open it with Enter
        page.get_by_role("button", name="Compare").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("text=compared with past clients", timeout=30_000)
        page.wait_for_selector("text=past clients most like this one", timeout=30_000)
        page.get_by_role("button", name="What if").click()
        page.wait_for_selector("text=asked for something else", timeout=30_000)
        page.get_by_role("button", name="Re-score with these amounts").click()
        page.wait_for_selector("text=Simulated:", timeout=60_000)
        _readable(_page_text(page))
        page.get_by_role("button", name="Supervisor").click()
        page.wait_for_selector("text=Model history", timeout=30_000)
        _readable(_page_text(page))
        page.get_by_role("button", name="Decision").click()
        page.wait_for_selector("text=What moved the score", timeout=30_000)
        page.get_by_text("Every field of the application").click()
        page.wait_for_selector("text=Application number", timeout=30_000)
        shown = _page_text(page)
        _readable(shown)
        assert "Application number" in shown and "Sk id curr" not in shown and "Days birth" not in shown

        violations = Axe().run(page).response["violations"]  # none of any impact, landmarks included
        assert violations == [], [(v["id"], v["help"], [n["target"] for n in v["nodes"][:3]]) for v in violations]
        small = page.evaluate("""() => { const out = []; const walk = root => { for (const e of root.querySelectorAll('*')) {
            if (e.shadowRoot) walk(e.shadowRoot);
            const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
            if (own && e.checkVisibility() && parseFloat(getComputedStyle(e).fontSize) < 14)
                out.push(e.tagName + ' ' + e.textContent.trim().slice(0, 30)); } };
            walk(document); return out; }""")
        assert small == [], small
        page.screenshot(path=str(SCREENSHOTS / "decision_1440.png"), full_page=True)
        page.set_viewport_size({"width": 640, "height": 1000})
        overflow = _settled_to(lambda: page.evaluate("() => document.documentElement.scrollWidth"), 660)
        assert overflow <= 660, f"the page is {overflow}px wide at 640px: it does not reflow"
        page.screenshot(path=str(SCREENSHOTS / "decision_640.png"), full_page=True)
        page.get_by_role("button", name="Supervisor").click()
        page.wait_for_selector("text=Model history", timeout=30_000)
        overflow = _settled_to(lambda: page.evaluate("() => document.documentElement.scrollWidth"), 660)
        assert overflow <= 660, f"the supervisor view is {overflow}px wide at 640px"
        assert page.get_by_text("scroll the table sideways to see them all").first.is_visible()  # the cut-off columns are said
        page.screenshot(path=str(SCREENSHOTS / "supervisor_640.png"), full_page=True)
        page.set_viewport_size({"width": 1440, "height": 1000})
        # every list row fits the list box: nothing cut at the right edge
        cut = _settled_to(lambda: page.locator("select[size]").evaluate("e => e.scrollWidth - e.clientWidth"), 0)
        assert cut <= 0, f"list rows cut by {cut}px at 1440px"

        assert page.request.get(f"{base}/reports/model_card.html").ok  # served, behind the same sign-in
        page.get_by_role("button", name="Supervisor").click()
        page.get_by_role("link", name="Technical documentation").click()  # from the supervision view
        page.wait_for_selector("text=Technical documentation of model")
        page.go_back()
        page.goto(f"{base}/logout")
        page.wait_for_selector("text=You are signed out")
        page.goto(f"{base}/app")
        page.wait_for_selector("#username")
        browser.close()
    assert outside == []  # offline: every resource came from the dashboard's own server
    log, problems = audit.read(access, prefix="access_")
    assert problems == [] and {"sign-in", "sign-in refused", "view decision", "compare", "simulation"} <= set(log["event"])
    assert set(log.loc[log["event"] == "view decision", "user"]) == {"alice"}


def test_the_review_queue_and_four_eyes_in_the_dashboard(store, tmp_path, monkeypatch):
    """An advisor finishes a referred case from the queue; a contested granted case reversed by
    an advisor waits for a supervisor, who is not the requester; notes show as text."""
    from credit_dagster.review import cases as review
    from credit_dagster.review.journal import ReviewJournal
    from panel_app.views import Dashboard

    monkeypatch.setenv("CREDIT_DASHBOARD_ACCESS_DIR", str(tmp_path / "access"))
    journal = ReviewJournal(tmp_path / "journal")
    ann = Dashboard(store, "ann", auth.ADVISOR, journal=journal)
    ann.review_status.value = review.OPEN
    queue = list(ann.applications.options.values())
    referred = store.decisions(decision=scoring.REFER)
    assert set(queue) == set(referred["SK_ID_CURR"].astype(int)) and queue  # the queue: every referred application
    nights = [str(referred.set_index("SK_ID_CURR").at[i, "partition_date"]) for i in queue]
    assert nights == sorted(nights)  # oldest first
    first = queue[0]
    ann.applications.value = first
    ann.section.value = "Review"
    view = ann.detail.objects[0]
    _, final, _, codes, note, record = view.objects[2:8]
    final.value, codes.value, note.value = review.REFUSED, ["affordability"], "<script>alert(1)</script> =HYPERLINK(\"x\")"
    record.clicks += 1
    assert first not in ann.applications.options.values()  # decided: out of the open queue
    ann.review_status.value = review.DECIDED
    assert first in ann.applications.options.values()
    ann.applications.value = first
    ann.section.value = "Decision"
    ann.section.value = "Review"
    shown = ann.detail.objects[0].objects[0].object
    assert "&lt;script&gt;" in shown and "<script>" not in shown and "decided by advisor" in shown
    # a granted application contested by its client, reversed by the advisor: waits for approval
    granted = int(store.decisions(decision=scoring.GRANTED)["SK_ID_CURR"].iloc[0])
    case = vm.record_review(store, journal, granted, review.CONTEST, user="api:front-office", role="", revision=0,
                            note="[phone] I can repay")
    vm.record_review(store, journal, granted, review.DECIDE, user="ann", role=auth.ADVISOR, revision=case.revision,
                     final=review.REFUSED, reason_codes=("fraud_suspicion",))
    ann.review_status.value = review.WAITING
    ann.applications.value = granted
    ann.section.value = "Decision"
    ann.section.value = "Review"
    assert "Waiting for a supervisor other than ann" in _texts(ann.detail.objects[0])  # no approve button for her
    assert _button(ann.detail.objects[0], "Approve the override") is None
    sue = Dashboard(store, "sue", auth.SUPERVISOR, journal=journal)
    sue.review_status.value = review.WAITING
    sue.applications.value = granted
    sue.section.value = "Review"
    _button(sue.detail.objects[0], "Approve the override").clicks += 1
    assert vm.case_of(store, journal, granted).final_decision == review.REFUSED
    assert vm.case_of(store, journal, granted).decided_by == review.SUPERVISOR
    # the role is checked when the action is taken, on the server, whatever the page still shows:
    # a session drawn for a supervisor whose role is an advisor's by the time of the click
    other = int(store.decisions(decision=scoring.GRANTED)["SK_ID_CURR"].iloc[1])
    case = vm.record_review(store, journal, other, review.CONTEST, user="api:front-office", role="", revision=0)
    vm.record_review(store, journal, other, review.DECIDE, user="ann", role=auth.ADVISOR, revision=case.revision,
                     final=review.REFUSED, reason_codes=("fraud_suspicion",))
    max_ = Dashboard(store, "max", auth.SUPERVISOR, journal=journal)
    max_.review_status.value = review.WAITING
    max_.applications.value = other
    max_.section.value = "Review"
    max_.role = auth.ADVISOR
    _button(max_.detail.objects[0], "Approve the override").clicks += 1
    assert "only a supervisor may approve" in _texts(max_.detail.objects[0])
    assert vm.case_of(store, journal, other).status == review.WAITING
    log, _ = audit.read(tmp_path / "access", prefix="access_")
    assert {"review decide", "review approve", "review refused: approve"} <= set(log["event"])


def test_another_desk_sees_the_decision_that_stands_on_its_next_refresh(store, tmp_path, monkeypatch):
    """An advisor's override waits (the model's decision still shown, and why); once a supervisor
    approves it, the other desk's list, heading and sentence say the refusal on its next refresh."""
    from credit_dagster.review import cases as review
    from credit_dagster.review.journal import ReviewJournal
    from panel_app.views import Dashboard

    monkeypatch.setenv("CREDIT_DASHBOARD_ACCESS_DIR", str(tmp_path / "access"))
    journal = ReviewJournal(tmp_path / "journal")
    granted = int(store.decisions(decision=scoring.GRANTED)["SK_ID_CURR"].iloc[0])
    desk = Dashboard(store, "max", auth.ADVISOR, journal=journal)
    desk.search.value = str(granted)
    desk.applications.value = granted

    def heading() -> str:
        return desk.client.decision.object

    def row() -> str:
        return next(label for label, i in desk.applications.options.items() if i == granted)

    assert "✔ Granted" in heading() and "Granted by the model on the night of" in heading()
    case = vm.record_review(store, journal, granted, review.CONTEST, user="api:front-office", role="", revision=0,
                            note="I can repay", channel="phone", received_on=date.today().isoformat())
    case = vm.record_review(store, journal, granted, review.DECIDE, user="ann", role=auth.ADVISOR, revision=case.revision,
                            final=review.REFUSED, reason_codes=("affordability",))
    assert vm.action_outcome(granted, review.DECIDE, case).startswith("Sent to a supervisor for approval")
    desk.reload.clicks += 1
    assert "✔ Granted" in heading() and "waiting for a supervisor&#x27;s approval" in heading()
    assert "for approval" in row() and "contested" in row()
    vm.record_review(store, journal, granted, review.APPROVE, user="tom", role=auth.SUPERVISOR, revision=case.revision)
    assert "✔ Granted" in heading()  # drawn before the approval: nothing changes under the reader's eyes
    desk.reload.clicks += 1
    assert "✖ Refused" in heading() and "Refused by a supervisor on" in heading() and "the model had granted it" in heading()
    assert "Refused by a person" in row()
    assert "The model's assessment" in heading() and "The model's own decision: <b>Granted</b>" in heading()


REVIEWERS = {"ann": auth.ADVISOR, "sue": auth.SUPERVISOR, "tom": auth.SUPERVISOR}


def _surfaces_agree(store, journal, sk_id: int) -> None:
    """Every surface says the same decision that stands: the API's answer, the dashboard's list,
    decision view, export and review heading, the letter, and the warehouse's fold."""
    import html

    from credit_dagster.api.runtime import review_fields
    from credit_dagster.core.snapshot import Table
    from credit_dagster.review import letters
    from credit_dagster.review.queue import case_table, final_decisions
    from panel_app.views import export_html

    row = store.applicant(sk_id).row
    api = review_fields(journal.case(sk_id, str(row["decision"])), str(row["partition_date"]))
    final = api["final_decision"]
    view = vm.client_view(store, sk_id, journal)
    assert (view.decision, view.standing) == (vm.DECIDED_WORDS[final], api["decision_sentence"])
    assert html.escape(api["decision_sentence"]) in export_html(view, "ann")
    label = next(label for label, i in vm.listing(store, None, final, str(sk_id), journal=journal).options.items() if i == sk_id)
    waits = api["review_status"] in ("open", "waiting for approval")  # then the marks, not who decided, come first
    assert f"{vm.SHORT[final]}{' by a person' if api['decided_by'] != 'model' and not waits else ''} ·" in label
    assert ("contested" in label) == (waits and api["contested"])
    letter = letters.due(row.to_dict(), journal, synthetic=True)
    assert letters.OUTCOMES[final].format(days=2) in letter.outcome
    scored = store.table(Table.SCORED)
    folded = final_decisions(scored, case_table(scored[["SK_ID_CURR", "decision", "partition_date"]], journal.actions(),
                                                 date.today(), 2)).set_index("SK_ID_CURR")
    assert (folded.at[sk_id, "final_decision"], folded.at[sk_id, "decided_by"]) == (final, api["decided_by"])
    assert folded.at[sk_id, "status"] == api["review_status"]


def test_every_surface_shows_the_decision_that_stands_after_any_sequence_of_reviews(store, tmp_path_factory):
    """A property test: for any sequence of review actions (contests, decisions either way, approvals,
    sends back, by advisors and supervisors, the refused ones included), every surface says the same
    final decision as the API."""
    from hypothesis import HealthCheck, example, given, settings
    from hypothesis import strategies as st

    from credit_dagster.review import cases as review
    from credit_dagster.review.journal import ReviewJournal

    picks = [int(store.decisions(decision=d)["SK_ID_CURR"].iloc[0]) for d in (scoring.REFER, scoring.GRANTED, scoring.REFUSED)]
    steps = st.lists(st.tuples(st.sampled_from(picks), st.sampled_from(["contest", "grant", "refuse", review.APPROVE, review.SEND_BACK]),
                               st.sampled_from(sorted(REVIEWERS))), max_size=8)

    referred, granted, refused = picks
    # the paths of the issue, always tried: an approved override, a referral decided then contested, one sent back
    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(steps)
    @example([(granted, "contest", "ann"), (granted, "refuse", "ann"), (granted, review.APPROVE, "sue"),
              (referred, "grant", "ann"), (referred, "contest", "ann"), (refused, "contest", "tom"), (refused, "grant", "tom"),
              (refused, review.SEND_BACK, "sue")])
    def check(sequence):
        journal = ReviewJournal(tmp_path_factory.mktemp("journal"))
        for sk_id, what, user in sequence:
            case = vm.case_of(store, journal, sk_id)
            fields = {"grant": {"final": review.GRANTED, "reason_codes": ("verified_income",)},
                      "refuse": {"final": review.REFUSED, "reason_codes": ("fraud_suspicion",)}}.get(what, {})
            action = review.DECIDE if fields else review.CONTEST if what == "contest" else what
            try:
                vm.record_review(store, journal, sk_id, action, user="api:x" if action == review.CONTEST else user,
                                 role="" if action == review.CONTEST else REVIEWERS[user], revision=case.revision, **fields)
            except review.ReviewError:
                pass  # refused by the rules: changes nothing, and every surface must still agree
        for sk_id in picks:
            _surfaces_agree(store, journal, sk_id)

    check()


def _parts(view):
    yield view
    for child in getattr(view, "objects", []):
        yield from _parts(child)


def _texts(view) -> str:
    return "\n".join(str(p.object) for p in _parts(view) if isinstance(getattr(p, "object", None), str))


def _button(view, name: str):
    return next((p for p in _parts(view) if getattr(p, "name", None) == name and hasattr(p, "clicks")), None)


BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _signed_in(browser, base: str, name: str):
    """A browser context of its own (its own cookie) with `name` signed in: one person at one desk."""
    page = _listening(browser.new_context(viewport={"width": 1440, "height": 1000}).new_page())
    page.goto(f"{base}/app")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("text=What weighed most", timeout=60_000)
    return page


def _listening(page):
    """The page, noting when the server last spoke on its websocket (`_step` waits on it)."""
    page.frames_received = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda _: page.frames_received.append(time.monotonic())))
    return page


def _step(page, act, silent_after: float = 2.0) -> None:
    """Do `act` and wait until the server has answered it whole (its reaction drawn, or refused),
    or has said nothing for `silent_after` seconds (nothing changed on the page)."""
    asked = time.monotonic()
    act()
    deadline = asked + 30
    while time.monotonic() < deadline:
        page.wait_for_timeout(50)
        frames = page.frames_received
        if frames and frames[-1] > asked:
            if time.monotonic() - frames[-1] > 0.5:
                return
        elif time.monotonic() - asked > silent_after:
            return
    raise AssertionError("the server did not finish answering within 30 s")


def _open_case(page, sk_id: int, status: str = "(all)", decision: str = "(all)") -> None:
    """Filter the list, search the application, open its review: the heading must name it. (The
    search, last, narrows the list to it: a click on a list still being replaced by a filter
    lands on whatever the filter left, which is then shown; that is tested apart.)"""
    page.locator("select").nth(1).select_option(decision)
    page.locator("select").nth(2).select_option(status)
    search = page.get_by_placeholder("e.g. 1002")
    search.fill(str(sk_id))
    search.press("Enter")
    _step(page, page.get_by_role("button", name="Refresh the list").click)  # what others did meanwhile
    _step(page, page.get_by_role("button", name="Review", exact=True).click)
    page.wait_for_selector(f"text=Review of application {sk_id}", timeout=30_000)
    highlighted = page.locator("select[size]").evaluate("e => e.selectedIndex < 0 ? null : e.options[e.selectedIndex].text")
    assert highlighted and highlighted.startswith(f"{sk_id} "), highlighted


def _decide(page, final: str, reason: str, note: str = "") -> None:
    page.get_by_role("button", name=final, exact=True).click()
    page.get_by_text(reason, exact=True).click()
    if note:
        page.get_by_label("Note (kept with the decision)").fill(note)
    _step(page, page.get_by_role("button", name="Record the decision").click)


def _contest_and_reverse(page, user: str, sk_id: int, reason: str, words: str = "") -> None:
    """A client contests a granted application; `user` asks to refuse it: it waits for another supervisor."""
    _open_case(page, sk_id, decision=scoring.GRANTED)
    page.get_by_label("The client's own words").fill(words)
    page.get_by_role("button", name="Record the client's request for a human review").click()
    page.wait_for_selector("text=recorded the client's request for a human review", timeout=30_000)
    _decide(page, "Refuse", reason)
    page.wait_for_selector(f"text=Waiting for a supervisor other than {user}", timeout=30_000)
    # said as what happened: sent for approval, the model's decision standing meanwhile
    page.wait_for_selector("text=Sent to a supervisor for approval", timeout=30_000)
    assert page.get_by_role("button", name="Approve the override").count() == 0


def _reviewed(journal_dir: Path, sk_id: int) -> list[str]:
    from credit_dagster.review.journal import ReviewJournal

    return [a.action for a in ReviewJournal(journal_dir).actions_of(sk_id)]


@pytest.mark.browser
def test_review_in_a_real_browser(scored_home, snapshot_file, store, tmp_path):
    """Advisors and supervisors finish cases in Chromium: decide, four eyes with send back and
    approval, nobody approves their own request, two tabs on one case, a reload mid-form, the
    back button, the kill switch's banner, axe on the new views, and a SIGKILL of the server
    right after a confirmed action."""
    from playwright.sync_api import sync_playwright

    for name, role in (("ann", auth.ADVISOR), ("sue", auth.SUPERVISOR), ("tom", auth.SUPERVISOR)):
        auth.set_user(name, PASSWORD, tmp_path / "users.json", role=role)
    env = {"CREDIT_HOME": str(scored_home), "CREDIT_SERVING_SNAPSHOT": str(snapshot_file),
           "CREDIT_DASHBOARD_USERS": str(tmp_path / "users.json"), "CREDIT_DASHBOARD_ACCESS_DIR": str(tmp_path / "access"),
           "CREDIT_REVIEW_JOURNAL_DIR": str(tmp_path / "journal"), "CREDIT_DASHBOARD_COOKIE_SECRET": "test-secret-" + "y" * 32}
    server = {"env": env, "log": tmp_path / "server.log", "proc": None}
    server["proc"], port = start_server(env, tmp_path / "server.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            try:
                _review_steps(browser, f"http://127.0.0.1:{port}", tmp_path / "journal", store, server)
            except BaseException:  # what each page showed, for whoever reads the failure
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                for i, page in enumerate(pg for context in browser.contexts for pg in context.pages):
                    page.screenshot(path=str(SCREENSHOTS / f"review_failure_{i}.png"), full_page=True)
                raise
            browser.close()
    finally:
        stop(server["proc"])
    log, problems = audit.read(tmp_path / "access", prefix="access_")
    assert problems == [] and {"review decide", "review approve", "review send back", "review contest", "refer everything on",
                               "review refused: decide", "letter"} <= set(log["event"])


def _no_serious_axe_finding(page) -> None:
    from axe_playwright_python.sync_playwright import Axe

    violations = [v for v in Axe().run(page).response["violations"] if v["impact"] in ("serious", "critical")]
    assert violations == [], [(v["id"], v["help"], [n["target"] for n in v["nodes"][:3]]) for v in violations]


FRAUD = "Suspicion of fraud (internal: never told to the client)"
# the text of the element that has the focus, down through the components' shadow roots
FOCUSED_TEXT = """() => {
  let e = document.activeElement;
  while (e && e.shadowRoot && e.shadowRoot.activeElement) e = e.shadowRoot.activeElement;
  return e ? (e.shadowRoot ? e.shadowRoot.textContent : '') + e.textContent : '';
}"""


def _review_steps(browser, base: str, journal: Path, store, server: dict) -> None:
    from credit_dagster.review import cases as review

    referred = [int(i) for i in store.decisions(decision=scoring.REFER).sort_values("SK_ID_CURR")["SK_ID_CURR"]]
    granted = [int(i) for i in store.decisions(decision=scoring.GRANTED).sort_values("SK_ID_CURR")["SK_ID_CURR"]]
    assert len(referred) >= 4 and len(granted) >= 2
    ann = _signed_in(browser, base, "ann")
    assert ann.get_by_role("button", name="Supervisor").count() == 0  # not shown to an advisor
    # an advisor decides a referred case from the open queue
    _open_case(ann, referred[0], review.OPEN)
    _decide(ann, "Refuse", "The repayment would not be affordable", "<script>alert(1)</script> =HYPERLINK(\"x\")")
    ann.wait_for_selector(f"text=Recorded on application {referred[0]}", timeout=30_000)
    assert _reviewed(journal, referred[0]) == [review.DECIDE]
    # the pressed button is gone with the case drawn anew: focus is on what happened, not back at the top of the page
    ann.wait_for_function("() => document.activeElement && document.activeElement !== document.body", timeout=10_000)
    assert f"Recorded on application {referred[0]}" in ann.evaluate(FOCUSED_TEXT)
    _open_case(ann, referred[0], review.DECIDED)
    assert "<script>alert(1)</script> =HYPERLINK" in _page_text(ann)  # the note shown as text, never run
    with ann.expect_download() as letter:
        ann.get_by_role("button", name="The letter to the client (PDF)").click()
    assert letter.value.suggested_filename == f"letter_{referred[0]}.pdf" and Path(letter.value.path()).read_bytes()[:4] == b"%PDF"

    # two tabs of one advisor on one case: the second is told the case changed, nothing recorded twice
    second = _listening(ann.context.new_page())
    second.goto(f"{base}/app")
    second.wait_for_selector("text=What weighed most", timeout=60_000)
    _open_case(ann, referred[1], review.OPEN)
    _open_case(second, referred[1], review.OPEN)
    _decide(ann, "Grant", "Income verified with documents")
    ann.wait_for_selector(f"text=Recorded on application {referred[1]}", timeout=30_000)
    _decide(second, "Refuse", "The repayment would not be affordable")
    second.wait_for_selector("text=changed since you opened it", timeout=30_000)
    second.wait_for_selector("text=decided: granted", timeout=30_000)  # and sees what the first did
    assert _reviewed(journal, referred[1]) == [review.DECIDE]
    second.close()

    # a reload in the middle of the form records nothing; the back button replays nothing
    _open_case(ann, referred[2], review.OPEN)
    ann.get_by_role("button", name="Refuse", exact=True).click()
    ann.get_by_label("Note (kept with the decision)").fill("half written")
    ann.reload()
    ann.wait_for_selector("text=What weighed most", timeout=60_000)
    assert _reviewed(journal, referred[2]) == []
    _open_case(ann, referred[2], review.OPEN)
    _decide(ann, "Grant", "Additional collateral or a guarantor")
    ann.wait_for_selector(f"text=Recorded on application {referred[2]}", timeout=30_000)
    ann.go_back()
    ann.go_forward()
    ann.wait_for_selector("text=What weighed most", timeout=60_000)
    assert _reviewed(journal, referred[2]) == [review.DECIDE]

    # a client contests a granted application; the advisor's reversal waits for a supervisor
    target = granted[0]
    _contest_and_reverse(ann, "ann", target, FRAUD, "I was told I could borrow more")
    # in the work list of contested cases, marked so, with the decision that stands meanwhile
    _open_case(ann, target, vm.CONTESTED)
    highlighted = ann.locator("select[size]").evaluate("e => e.options[e.selectedIndex].text")
    assert "contested · for approval · ✔ Granted" in highlighted, highlighted

    sue = _signed_in(browser, base, "sue")
    _open_case(sue, target, review.WAITING)
    sue.get_by_label("Comment").fill("Ask for the ID documents first")
    sue.get_by_role("button", name="Send it back").click()
    sue.wait_for_selector(f"text=Recorded on application {target}", timeout=30_000)
    assert _reviewed(journal, target) == [review.CONTEST, review.DECIDE, review.SEND_BACK]
    _open_case(ann, target, review.OPEN)
    _decide(ann, "Refuse", FRAUD)
    ann.wait_for_selector(f"text=Recorded on application {target}", timeout=30_000)  # out of the open queue: the next shows
    _open_case(sue, target, review.WAITING)
    _no_serious_axe_finding(sue)
    _step(sue, sue.get_by_role("button", name="Approve the override").click)
    assert _reviewed(journal, target) == [review.CONTEST, review.DECIDE, review.SEND_BACK, review.DECIDE, review.APPROVE]
    _open_case(sue, target, review.DECIDED)
    assert "decided by supervisor" in _page_text(sue) and "approved the override" in _page_text(sue)
    # another person at another desk: the decision that stands on the list, the decision view and the export
    _open_case(ann, target)
    _step(ann, ann.get_by_role("button", name="Decision", exact=True).click)
    ann.wait_for_selector(f"text=Application {target}: ✖ Refused", timeout=30_000)
    assert "Refused by a supervisor on" in _page_text(ann) and "the model had granted it" in _page_text(ann)
    highlighted = ann.locator("select[size]").evaluate("e => e.options[e.selectedIndex].text")
    assert "Refused by a person" in highlighted, highlighted
    with ann.expect_download() as export:
        ann.get_by_role("button", name="Download this decision for the meeting (HTML, printable)").click()
    exported = Path(export.value.path()).read_text()
    assert "✖ Refused" in exported and "Refused by a supervisor on" in exported and "✔ Granted</span>" not in exported

    # a supervisor's own request waits for another supervisor
    own = granted[1]
    _contest_and_reverse(sue, "sue", own, "The repayment would not be affordable")
    tom = _signed_in(browser, base, "tom")
    _open_case(tom, own, review.WAITING)
    _step(tom, tom.get_by_role("button", name="Approve the override").click)
    assert _reviewed(journal, own)[-1] == review.APPROVE

    # the kill switch: a supervisor sets it, every page says so
    sue.get_by_role("button", name="Supervisor").click()
    sue.wait_for_selector("text=The review queue now", timeout=30_000)  # the workload, live from the journal
    assert "waiting for a person" in _page_text(sue) and "Overrides standing now (approved by a supervisor): 2" in _page_text(sue)
    sue.get_by_label("Why (kept in the journal)").fill("income data feed broken")
    sue.get_by_role("button", name="Switch refer everything on").click()
    sue.wait_for_selector("text=Every new decision goes to an advisor", timeout=30_000)
    _no_serious_axe_finding(sue)
    # pushed to the other desk within seconds, without a reload (the form there is left as it is)
    ann.wait_for_selector("text=Every new decision goes to an advisor", timeout=15_000)
    sue.get_by_label("Why (kept in the journal)").fill("feed repaired")
    sue.get_by_role("button", name="Switch refer everything off").click()
    sue.wait_for_selector("text=Refer everything is off", timeout=30_000)

    # SIGKILL of the server right after a confirmed action: the action is in the journal
    _open_case(ann, referred[3], review.OPEN)
    _decide(ann, "Grant", "Income verified with documents")
    ann.wait_for_selector(f"text=Recorded on application {referred[3]}", timeout=30_000)
    server["proc"].kill()
    server["proc"].wait(timeout=10)
    assert _reviewed(journal, referred[3]) == [review.DECIDE]
    server["proc"], port = start_server(server["env"], server["log"].with_name("server_after_kill.log"))
    again = _signed_in(browser, f"http://127.0.0.1:{port}", "ann")
    _open_case(again, referred[3], review.DECIDED)
    assert "decided by advisor" in _page_text(again)


def test_markup_typed_anywhere_is_shown_as_text_on_every_view(snapshot_file, tmp_path, monkeypatch):
    """An attacker's markup in everything people and data put on a page: the application's own
    values (the snapshot's text columns), a client's contest words, reviewers' notes and comments,
    user names (an API key's, a reviewer's, a locked account's), the "refer everything" reason and
    the search box. Every view of both roles, the meeting export and the letter render it as text:
    not one element of it is made, and it is shown (escaped) where it belongs."""
    from credit_dagster.core import refer_all
    from credit_dagster.core.snapshot import Table
    from credit_dagster.review import cases as review
    from credit_dagster.review import letters
    from credit_dagster.review.journal import ReviewJournal
    from credit_dagster_tests.markup import ATTACK, SEEN_AS_TEXT, injected
    from panel_app.views import SECTIONS, Dashboard, export_html

    name = "<fuzz-tag data-fuzz=3>mallory</fuzz-tag>"  # a user name may hold anything but ':'
    for variable, folder in (("CREDIT_DASHBOARD_ACCESS_DIR", "access"), ("CREDIT_REVIEW_JOURNAL_DIR", "journal")):
        monkeypatch.setenv(variable, str(tmp_path / folder))
    monkeypatch.setenv("CREDIT_DASHBOARD_USERS", str(tmp_path / "users.json"))
    copy = tmp_path / "serving.duckdb"
    shutil.copy(snapshot_file, copy)
    with duckdb.connect(str(copy)) as con:
        sk_id = int(con.execute(f"select SK_ID_CURR from {Table.SCORED} where decision = '{scoring.GRANTED}' limit 1").fetchone()[0])
        for table in (Table.APPLICATIONS, Table.DETAILS):
            text = [c for c, t in con.execute(f"select column_name, data_type from information_schema.columns where table_name = '{table}'"
                                                 ).fetchall() if t == "VARCHAR" and c != "SK_ID_CURR"]
            assert text, table
            con.execute(f"update {table} set " + ", ".join(f'"{c}" = ?' for c in text) + " where SK_ID_CURR = ?", [ATTACK] * len(text) + [sk_id])
    store = SnapshotStore(copy)
    journal = ReviewJournal(tmp_path / "journal")
    auth.set_user(name, PASSWORD, tmp_path / "users.json")
    auth.lock(name, tmp_path / "users.json")
    refer_all.set_switch(True, by="sue", role=auth.SUPERVISOR, why=ATTACK)
    case = vm.record_review(store, journal, sk_id, review.CONTEST, user=f"api:{name}", role="", revision=0, note=ATTACK, channel="phone")
    case = vm.record_review(store, journal, sk_id, review.DECIDE, user=name, role=auth.ADVISOR, revision=case.revision,
                            final=review.REFUSED, reason_codes=("affordability",), note=ATTACK)
    vm.record_review(store, journal, sk_id, review.SEND_BACK, user="sue", role=auth.SUPERVISOR, revision=case.revision, note=ATTACK)

    pages = []
    for who, role in ((name, auth.ADVISOR), ("sue", auth.SUPERVISOR)):
        desk = Dashboard(store, who, role, journal=journal)
        desk.search.value = str(sk_id)
        assert desk.applications.value == sk_id
        for section in SECTIONS:
            desk.section.value = section
            pages += [_texts(desk.detail), desk.banner.object, desk.count.object]
        desk.search.value = ATTACK  # said to be no application number, never repeated
        pages.append(desk.count.object)
    view = vm.client_view(store, sk_id, journal)
    pages += [export_html(view, name), letters.to_html(vm.client_letter(store, journal, sk_id))]
    everything = "\n".join(pages)
    assert injected(everything) == []
    # shown where it belongs: the application's values, the contest, the notes, the names, the switch's reason, the letter
    assert everything.count(SEEN_AS_TEXT) >= 10, everything.count(SEEN_AS_TEXT)
    assert "&lt;fuzz-tag data-fuzz=3&gt;mallory" in _texts(Dashboard(store, "sue", auth.SUPERVISOR, journal=journal).locked_accounts())
