"""The scoring API: same answer as the night, keys, bad input, audit that survives a kill, fuzzing."""

import contextlib
import dataclasses
import gc
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import duckdb
import httpx
import numpy as np
import pandas as pd
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from credit_dagster.api import keys
from credit_dagster.api.app import create_app
from credit_dagster.core import audit, snapshot
from credit_dagster.core import settings as credit_settings
from credit_dagster.decision import ondemand, scoring
from credit_dagster.definitions import defs
from credit_dagster.features import application_rows
from credit_dagster.model.registry import Registry
from credit_dagster_tests.conftest import SCORED_DAYS, temporary_home

DAY = SCORED_DAYS[0]
SCHEMA = "drop_" + DAY.replace("-", "")


@pytest.fixture(scope="module")
def home(scored_home, tmp_path_factory):
    with temporary_home(scored_home) as root, pytest.MonkeyPatch.context() as mp:
        # what these tests contest (the fuzzer too) stays out of the shared home's review journal
        mp.setenv("CREDIT_REVIEW_JOURNAL_DIR", str(tmp_path_factory.mktemp("api_review_journal")))
        yield root


@pytest.fixture(scope="module")
def key(home):
    return keys.create(f"tests-{time.time_ns()}", rate_per_second=10_000, scopes=keys.SCOPES)


@pytest.fixture(scope="module")
def client(home):
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def _clean(value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON objects; Python floats print every digit, so values arrive bit for bit."""
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict("records")]


@pytest.fixture(scope="module")
def night(home):
    """The night's applications, their history rows, and what the nightly run decided."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        apps = con.execute(f"select * from {SCHEMA}.application_test order by SK_ID_CURR").df()
        history = {t: con.execute(f"select * from {SCHEMA}.{t}").df() for t in ondemand.HISTORY_TABLES}
        scored = con.execute("select * from scoring.scored_applications where partition_date = ?", [DAY]).df()
    return apps, history, scored.set_index("SK_ID_CURR")


def request_of(apps, history, i: int) -> dict:
    app = apps.iloc[[i]]
    sk_id = int(app["SK_ID_CURR"].iloc[0])
    rows = {t: records(h[h["SK_ID_CURR"] == sk_id]) for t, h in history.items() if t != "bureau_balance"}
    bureau_ids = {r["SK_ID_BUREAU"] for r in rows["bureau"]}
    rows["bureau_balance"] = records(history["bureau_balance"][history["bureau_balance"]["SK_ID_BUREAU"].isin(bureau_ids)])
    return {"application": records(app)[0], "history": rows}


@pytest.mark.parametrize("size", ["whole drop", "a few"])
def test_on_demand_batch_gives_the_nightly_answer(client, key, night, size):
    apps, history, scored = night
    # a few applications run the features query prepared without the optimizer, a whole drop planned anew: same answers
    count = len(apps) if size == "whole drop" else 5
    assert (count > ondemand.Workspace.PREPARED_UP_TO) is (size == "whole drop")
    body = {"applications": [request_of(apps, history, i) for i in range(count)], "on_unknown_category": "as_missing"}
    response = client.post("/v1/score/batch", json=body, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    got = pd.DataFrame(response.json()["decisions"]).set_index("SK_ID_CURR")
    assert list(got.index) == apps["SK_ID_CURR"].tolist()[:count]
    expected = scored.loc[got.index]
    assert (got["probability_of_default"] - expected["probability_of_default"]).abs().max() < 1e-9
    assert (got["decision"] == expected["decision"]).all() and (got["points"] == expected["points"]).all()
    nightly_reasons = expected[[f"reason_{i}" for i in range(1, 5)]].apply(lambda r: [x for x in r if isinstance(x, str)], axis=1)
    assert (got["reasons"] == nightly_reasons).all()
    assert (got["counterfactual"].fillna("") == expected["counterfactual"].fillna("")).all()
    assert (got["features_fingerprint"] == expected["features_fingerprint"]).all()
    assert set(got["history_source"]) <= {"submitted", "none"} and (got["history_source"] == "submitted").any()


def test_an_applicant_sent_without_history_keeps_the_history_the_platform_holds(client, key, night):
    apps, history, scored = night
    with_history = set(history["bureau"]["SK_ID_CURR"]) | set(history["previous_application"]["SK_ID_CURR"])
    i = next(i for i, sk in enumerate(apps["SK_ID_CURR"]) if sk in with_history)
    response = client.post("/v1/score", json={"application": request_of(apps, history, i)["application"],
                                              "on_unknown_category": "as_missing"}, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["history_source"] == "stored"
    assert abs(decision["probability_of_default"] - scored.loc[decision["SK_ID_CURR"], "probability_of_default"]) < 1e-9
    # a new applicant without history is scored on the application alone, and says so
    new = dict(request_of(apps, history, i)["application"], SK_ID_CURR=999_999_999)
    fresh = client.post("/v1/score", json={"application": new, "on_unknown_category": "as_missing"}, headers={"X-API-Key": key}).json()
    assert fresh["history_source"] == "none"


def _scored_in_a_new_thread(*args, **kwargs) -> pd.DataFrame:
    """`ondemand.score` in a thread of its own, so on a workspace nothing has used before."""
    out = []
    thread = threading.Thread(target=lambda: out.append(ondemand.score(*args, **kwargs)))
    thread.start()
    thread.join()
    return out[0]


def _same_bits(a: pd.Series, b: pd.Series) -> bool:
    """Equal value for value, missing where missing, and numbers to the bit (a -0.0 is not 0.0)."""
    if a.dtype == object or b.dtype == object:
        return [None if pd.isna(v) else v for v in a] == [None if pd.isna(v) else v for v in b]
    x, y = a.to_numpy(dtype=float, na_value=np.nan), b.to_numpy(dtype=float, na_value=np.nan)
    return bool(np.array_equal(x, y, equal_nan=True) and np.array_equal(np.signbit(x), np.signbit(y)))


def test_the_features_of_a_few_rows_are_the_sql_s_on_a_whole_night(home, night):
    """Applications sent without history are featured in NumPy (features/application_rows.py and
    the history looked up), not by DuckDB: on every applicant of a night, and every counterfactual
    variant of each, the same columns in the same order with the same values to the bit as the
    SQL models give in the same workspace, the same model matrix and fingerprints, and the same
    answers end to end."""
    apps, _, _ = night
    model = Registry(credit_settings.models_dir()).load("champion")
    with duckdb.connect(str(snapshot.snapshot_path()), read_only=True) as con:
        dictionary = con.execute("select * from feature_dictionary").df()
    ws = ondemand.workspace()
    assert ws.mirror is not None  # the SQL as it stands is mirrored: the fast path is the one taken
    key = ["SK_ID_CURR", "cf_amount", "cf_term"]
    for searched in (False, True):
        mirrored, found = ws.features_with_stored_history(apps, snapshot.snapshot_path(), searched)
        ws.load_history({})
        stored = ws.add_stored_history(apps["SK_ID_CURR"].tolist(), snapshot.snapshot_path())
        by_sql = ws.features(apps, searched)
        assert found == stored and 0 < len(found) < len(apps)  # applicants with and without a history
        assert list(mirrored.columns) == list(by_sql.columns) and len(mirrored) == len(by_sql) == len(apps) * (36 if searched else 1)
        mirrored, by_sql = (f.sort_values(key).reset_index(drop=True) for f in (mirrored, by_sql))
        assert [c for c in by_sql.columns if not _same_bits(mirrored[c], by_sql[c])] == []
        assert model.matrix(mirrored).equals(model.matrix(by_sql))
        assert scoring.fingerprints(model.matrix(mirrored)) == scoring.fingerprints(model.matrix(by_sql))
    fast = ondemand.score(ondemand.Batch(apps), model, dictionary, snapshot.snapshot_path())
    mirror, ws.mirror = ws.mirror, None
    try:
        pd.testing.assert_frame_equal(fast, ondemand.score(ondemand.Batch(apps), model, dictionary, snapshot.snapshot_path()))
    finally:
        ws.mirror = mirror
    assert set(fast["history_source"]) == {"stored", "none"}


def test_a_process_reads_the_features_sql_once_for_all_its_workspaces(home, monkeypatch):
    """The mirror depends on the SQL alone: a thread's new workspace takes the process's reading;
    SQL of another text is read anew."""
    def in_a_new_thread() -> ondemand.Workspace:
        made = []
        thread = threading.Thread(target=lambda: made.append(ondemand.workspace()))
        thread.start()
        thread.join()
        return made[0]

    monkeypatch.setattr(ondemand, "_MIRRORS", {})
    first = in_a_new_thread()
    assert first.mirror is not None
    read = []
    monkeypatch.setattr(ondemand.Workspace, "_read_mirror", lambda self, model: read.append(model) or None)
    assert in_a_new_thread().mirror is first.mirror and not read
    models, reading = ondemand._models()
    changed = [dataclasses.replace(m, sql=m.sql + "\n") if m.name == "application_features" else m for m in models]
    monkeypatch.setattr(ondemand, "_models", lambda: (changed, reading))
    assert in_a_new_thread().mirror is None and len(read) == 1


@pytest.mark.parametrize("change", ["a column application_rows.clean forgets", "a history column mixed with the application"])
def test_sql_the_mirror_does_not_make_is_left_to_duckdb(home, night, monkeypatch, change):
    """When application_clean.sql has a column `application_rows.clean` does not make (here, the
    mirror made to forget one), or application_features.sql computes a history column from the
    application's values, the workspace says so and every call takes the SQL: same answers."""
    apps, _, _ = night
    model = Registry(credit_settings.models_dir()).load("champion")
    with duckdb.connect(str(snapshot.snapshot_path()), read_only=True) as con:
        dictionary = con.execute("select * from feature_dictionary").df()
    if change == "a column application_rows.clean forgets":
        clean = application_rows.clean
        monkeypatch.setattr(application_rows, "clean", lambda columns: {k: v for k, v in clean(columns).items() if k != "APP_PAYMENT_RATE"})
        monkeypatch.setattr(ondemand, "_MIRRORS", {})  # the same SQL: the process's reading of it is set aside
    else:
        models, reading = ondemand._models()
        mixed = [dataclasses.replace(m, sql=m.sql.replace(
            "coalesce(BUR_CREDIT_COUNT, 0) as BUR_CREDIT_COUNT",
            "coalesce(BUR_CREDIT_COUNT, 0) + coalesce(applications.CNT_CHILDREN, 0) as BUR_CREDIT_COUNT"))
            if m.name == "application_features" else m for m in models]
        assert mixed != models
        monkeypatch.setattr(ondemand, "_models", lambda: (mixed, reading))
    workspaces = []
    thread = threading.Thread(target=lambda: workspaces.append(ondemand.workspace()))
    thread.start()
    thread.join()
    assert workspaces[0].mirror is None
    by_sql = _scored_in_a_new_thread(ondemand.Batch(apps.head(3)), model, dictionary, snapshot.snapshot_path())
    monkeypatch.undo()
    if change == "a column application_rows.clean forgets":  # the same SQL: the same answers as the mirror's
        pd.testing.assert_frame_equal(by_sql, ondemand.score(ondemand.Batch(apps.head(3)), model, dictionary, snapshot.snapshot_path()))


def test_a_scoring_call_leaves_nothing_behind_for_the_next(home, night):
    """The on-demand workspace lives as long as its thread: what one call submitted (history
    rows, a what-if without counterfactual search) must not reach the next call's answer."""
    apps, history, _ = night
    model = Registry(credit_settings.models_dir()).load("champion")
    with duckdb.connect(str(snapshot.snapshot_path()), read_only=True) as con:
        dictionary = con.execute("select * from feature_dictionary").df()
    with_history = set(history["bureau"]["SK_ID_CURR"]) & set(history["previous_application"]["SK_ID_CURR"])
    sk_id = next(int(i) for i in apps["SK_ID_CURR"] if i in with_history)
    app = apps[apps["SK_ID_CURR"] == sk_id]
    rows = {t: h[h["SK_ID_CURR"] == sk_id] for t, h in history.items() if t != "bureau_balance"}
    rows["bureau_balance"] = history["bureau_balance"][history["bureau_balance"]["SK_ID_BUREAU"].isin(rows["bureau"]["SK_ID_BUREAU"])]
    stranger = app.assign(SK_ID_CURR=999_999_001)  # the same application, from someone we know nothing of
    calls = [((ondemand.Batch(app, rows),), {}), ((ondemand.Batch(stranger),), {"search_counterfactuals": False}),
             ((ondemand.Batch(stranger),), {}), ((ondemand.Batch(app),), {})]
    answers = [ondemand.score(batch, model, dictionary, snapshot.snapshot_path(), **kw) for (batch,), kw in calls]
    fresh = [_scored_in_a_new_thread(batch, model, dictionary, snapshot.snapshot_path(), **kw) for (batch,), kw in calls]
    for answer, alone in zip(answers, fresh, strict=True):
        pd.testing.assert_frame_equal(answer, alone)
    assert [a["history_source"].iloc[0] for a in answers] == ["submitted", "none", "none", "stored"]
    # the history changed the answer, so it had something to leak
    assert answers[0]["probability_of_default"].iloc[0] != answers[2]["probability_of_default"].iloc[0]
    assert answers[1]["counterfactual"].isna().all()


def test_stored_decisions_readiness_and_model(client, key, night):
    _, _, scored = night
    sk_id = int(scored.index[0])
    assert client.get("/health").json() == {"status": "ok"}
    for _ in range(600):  # ready once the scoring processes have loaded the champion
        ready = client.get("/ready").json()
        if ready["ready"]:
            break
        assert ready["problems"] == ["the on-demand scoring processes are still starting"]
        time.sleep(0.1)
    assert ready["ready"] and ready["night"] >= DAY and ready["model_version"]
    stored = client.get(f"/v1/decisions/{sk_id}", headers={"X-API-Key": key}).json()
    # the loaded decisions are out of the cyclic collector's reach (its full passes stalled requests)
    assert gc.get_freeze_count() > len(scored)
    assert stored["night"] == DAY and stored["probability_of_default"] == scored.loc[sk_id, "probability_of_default"]
    assert stored["reasons"] == [r for r in scored.loc[sk_id, [f"reason_{i}" for i in range(1, 5)]] if isinstance(r, str)]
    missing = client.get("/v1/decisions/1", headers={"X-API-Key": key})
    assert missing.status_code == 404 and "1" in missing.json()["detail"]
    assert client.get("/v1/decisions/abc", headers={"X-API-Key": key}).status_code == 422
    model = client.get("/v1/model", headers={"X-API-Key": key}).json()
    assert model["model_version"] == ready["model_version"] and model["synthetic"] is True
    assert model["refer_low"] < model["threshold"] < model["refer_high"]
    card = client.get(model["model_card"], headers={"X-API-Key": key})
    assert card.status_code == 200 and model["model_version"] in card.text


def test_keys_are_hashed_revocable_and_rate_limited(client, home):
    key = keys.create("partner-x", rate_per_second=1, scopes=(keys.READ_DECISIONS,))
    assert key not in (home / "api_keys.json").read_text()
    assert client.get("/v1/model").status_code == 401
    assert client.get("/v1/model", headers={"X-API-Key": "cd_not-a-key"}).status_code == 401
    statuses = [client.get("/v1/model", headers={"X-API-Key": key}).status_code for _ in range(4)]
    assert statuses[:2] == [200, 200] and statuses[-1] == 429  # a burst of twice the rate, then 429
    limited = client.get("/v1/model", headers={"X-API-Key": key})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    keys.revoke("partner-x")
    revoked = client.get("/v1/model", headers={"X-API-Key": key})
    assert revoked.status_code == 403 and "partner-x" not in revoked.text  # the system it belonged to is not said
    assert keys.listing()["partner-x"]["revoked_at"] and "sha256" not in keys.listing()["partner-x"]


def test_a_key_does_only_what_its_scopes_say_and_every_read_is_journaled_with_its_caller(client, home, night):
    from credit_dagster.api.runtime import READS_PREFIX
    from credit_dagster.core import audit as audit_module

    apps, history, scored = night
    sk_id = int(scored.index[0])
    reader = keys.create(f"reader-{time.time_ns()}", rate_per_second=1000, scopes=(keys.READ_DECISIONS,))
    said = {"X-API-Key": reader}
    assert client.get(f"/v1/decisions/{sk_id}", headers=said).status_code == 200
    for refused in (client.get(f"/v1/decisions/{sk_id}/letter", headers=said),
                    client.post(f"/v1/decisions/{sk_id}/contest", headers=said,
                                json={"channel": "phone", "received_on": datetime.now(UTC).date().isoformat(), "client_words": ""}),
                    client.post("/v1/score", headers=said, json=request_of(apps, history, 0)),
                    client.get(f"/v1/decisions/{sk_id}/replay", headers=said)):
        assert refused.status_code == 403 and "does not have the scope" in refused.text
    reads, _ = audit_module.read(audit_module.audit_dir(), prefix=READS_PREFIX)
    mine = reads[reads["caller"] == keys.KeyStore().lookup(reader).name]
    assert list(mine["read"]) == ["decision"] and list(mine["SK_ID_CURR"]) == [sk_id]  # the refused letter was never read


def test_a_past_decision_is_replayed_for_a_key_with_that_scope_and_a_busy_warehouse_says_when_to_retry(client, home, night):
    from credit_dagster.api.runtime import READS_PREFIX
    from credit_dagster.core import audit as audit_module
    from credit_dagster.core.warehouse import warehouse_lock
    from credit_dagster.decision import replay

    _, _, scored = night
    sk_id = int(scored.index[scored["decision"] != "granted"][0])
    auditor = keys.create(f"auditor-{time.time_ns()}", rate_per_second=1000, scopes=(keys.REPLAY,))
    said = {"X-API-Key": auditor}
    answer = client.get(f"/v1/decisions/{sk_id}/replay", headers=said, params={"night": DAY})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["same"] and body["night"] == DAY and body["model_version"] == scored.at[sk_id, "model_version"]
    assert [f["field"] for f in body["compared"]] == list(replay.COMPARED) and all(f["same"] for f in body["compared"])
    figures = {f["field"]: f for f in body["compared"]}
    assert figures["probability_of_default"]["stored"] == scored.at[sk_id, "probability_of_default"]
    assert figures["counterfactual"]["replayed"] == scored.at[sk_id, "counterfactual"]
    assert client.get(f"/v1/decisions/{sk_id}", headers=said).status_code == 403  # replaying is not reading the decisions
    assert client.get(f"/v1/decisions/{sk_id}/replay", headers=said, params={"night": "2020-01-01"}).status_code == 404
    assert client.get(f"/v1/decisions/{sk_id}/replay", headers=said, params={"night": "<b>"}).status_code == 422
    with warehouse_lock(home / "warehouse.duckdb"):  # a night writing: the caller is told when to come back
        busy = client.get(f"/v1/decisions/{sk_id}/replay", headers=said)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "300" and "being written by a night" in busy.text
    reads, _ = audit_module.read(audit_module.audit_dir(), prefix=READS_PREFIX)
    mine = reads[reads["caller"] == keys.KeyStore().lookup(auditor).name]
    assert list(mine["read"]) == ["replay"] * 3 and set(mine["SK_ID_CURR"]) == {sk_id}


def test_a_request_without_a_valid_key_is_refused_before_its_body_is_read(client, home):
    """An unauthenticated body over the limit gets its 401 (the key is checked first, the body never
    read, not a 413 after reading it); guessing keys from one address is slowed down."""
    big = b"{" + b" " * (credit_settings.current().api_max_body_bytes + 10) + b"}"
    refused = client.post("/v1/score", content=big, headers={"content-type": "application/json"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "X-API-Key"
    statuses = [client.get("/v1/model", headers={"X-API-Key": f"cd_guess-{i}"}).status_code for i in range(30)]
    assert statuses[0] == 401 and 429 in statuses
    time.sleep(2.5)  # the address's bucket refills: the next guess is judged again


def test_answers_carry_security_headers_and_leak_no_path_or_value(client, key, night):
    for path in ("/health", "/ready", "/v1/model", "/docs"):
        answer = client.get(path, headers={"X-API-Key": key})
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in client.get("/health").headers["content-security-policy"]
    ready = client.get("/ready").text
    assert str(snapshot.snapshot_path().parent) not in ready and "/" not in client.get("/ready").json()["snapshot"]
    apps, history, _ = night
    secret = "<b>My Secret Employer Ltd, 12 Rue X</b>"
    body = {"application": {**request_of(apps, history, 0)["application"], "ORGANIZATION_TYPE": secret}, "on_unknown_category": "reject"}
    unknown = client.post("/v1/score", json=body, headers={"X-API-Key": key})
    assert unknown.status_code == 422 and "Secret Employer" not in unknown.text and "ORGANIZATION_TYPE" in unknown.text


def _problems(response) -> list[tuple]:
    return [(tuple(e["loc"]), e["msg"]) for e in response.json()["detail"]]


@pytest.mark.parametrize("change, field", [
    ({"SK_ID_CURR": None}, "SK_ID_CURR"),
    ({"AMT_CREDIT": "a lot"}, "AMT_CREDIT"),
    ({"EXT_SOURCE_1": 2.5}, "EXT_SOURCE_1"),
    ({"CODE_GENDER": "Q"}, "CODE_GENDER"),
    ({"AMT_CREDTI": 1000.0}, "AMT_CREDTI"),
    ({"OCCUPATION_TYPE": "Astronaut"}, "OCCUPATION_TYPE"),
])
def test_bad_application_fields_get_a_422_naming_the_field(client, key, night, change, field):
    apps, history, _ = night
    application = request_of(apps, history, 0)["application"] | change
    response = client.post("/v1/score", json={"application": application}, headers={"X-API-Key": key})
    assert response.status_code == 422, response.text
    assert any(field in loc for loc, _ in _problems(response)), response.text


def test_a_batch_scores_each_application_it_can_and_names_what_to_correct_in_the_others(client, key, night):
    """One application without its annuity, one with an employer the model never saw (refused by the
    default policy), among good ones: the good ones are scored as the night scored them, the two are
    listed with their fields and rules, the answer counts each; only the scored ones are journaled."""
    apps, history, scored = night
    body = {"applications": [request_of(apps, history, i) for i in range(6)]}
    no_annuity = {k: v for k, v in body["applications"][1]["application"].items() if k != "AMT_ANNUITY"}
    body["applications"][1] = {**body["applications"][1], "application": no_annuity}
    body["applications"][4] = {**body["applications"][4], "application": {**body["applications"][4]["application"],
                                                                           "ORGANIZATION_TYPE": "Space agency"}}
    audited_before = len(audit.read(audit.audit_dir())[0])
    response = client.post("/v1/score/batch", json=body, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["scored_count"], answer["refused_count"]) == (4, 2)
    refused = {r["index"]: r for r in answer["refused"]}
    assert set(refused) == {1, 4}
    assert refused[1]["SK_ID_CURR"] == no_annuity["SK_ID_CURR"] and {p["field"] for p in refused[1]["problems"]} == {"AMT_ANNUITY"}
    assert [(p["field"], p["type"]) for p in refused[4]["problems"]] == [("ORGANIZATION_TYPE", "unknown_category")]
    assert "Space agency" not in response.text
    got = pd.DataFrame(answer["decisions"]).set_index("SK_ID_CURR")
    assert list(got.index) == [apps["SK_ID_CURR"].iloc[i] for i in (0, 2, 3, 5)]
    assert (got["probability_of_default"] - scored.loc[got.index, "probability_of_default"]).abs().max() < 1e-9
    assert len(audit.read(audit.audit_dir())[0]) == audited_before + 4


def test_incomplete_or_implausible_applications_get_a_422_naming_the_rule(client, key, night):
    apps, history, _ = night
    headers = {"X-API-Key": key}
    # what a lender needs is missing: incomplete, never low-risk
    bare = client.post("/v1/score", json={"application": {"SK_ID_CURR": 1, "AMT_CREDIT": 1000.0, "AMT_ANNUITY": 100.0}}, headers=headers)
    assert bare.status_code == 422, bare.text
    named = {loc[-1] for loc, _ in _problems(bare)}
    assert {"NAME_CONTRACT_TYPE", "AMT_INCOME_TOTAL", "DAYS_BIRTH", "DAYS_EMPLOYED", "NAME_INCOME_TYPE"} <= named
    application = request_of(apps, history, 0)["application"]
    for change, field, words in (({"AMT_CREDIT": 1e12}, "AMT_CREDIT", "loan amount must be between"),
                                 ({"AMT_ANNUITY": application["AMT_CREDIT"] * 2}, "AMT_ANNUITY", "less than the loan amount"),
                                 ({"AMT_ANNUITY": application["AMT_CREDIT"] / 500}, "AMT_ANNUITY", "repayments")):
        response = client.post("/v1/score", json={"application": application | change}, headers=headers)
        assert response.status_code == 422, response.text
        assert any(loc[-1] == field and words in msg for loc, msg in _problems(response)), response.text


def test_bad_bodies_get_4xx_never_500(client, key, night, monkeypatch):
    apps, history, _ = night
    headers = {"X-API-Key": key, "content-type": "application/json"}
    assert client.post("/v1/score", content=b'{"application": {"SK_ID_CURR": 1,', headers=headers).status_code == 422
    assert client.post("/v1/score", content=b'{"application": {"SK_ID_CURR": 1, "AMT_CREDIT": NaN}}', headers=headers).status_code == 422
    request = request_of(apps, history, 0)
    request["history"]["bureau"] = [{"SK_ID_BUREAU": 1, "SK_ID_CURR": 42}]
    foreign = client.post("/v1/score", json=request, headers=headers)
    assert foreign.status_code == 422 and "history.bureau[0].SK_ID_CURR" in foreign.text
    twice = {"applications": [request_of(apps, history, 0), request_of(apps, history, 0)]}
    assert "more than once" in client.post("/v1/score/batch", json=twice, headers=headers).text
    assert client.post("/v1/score/batch", json={"applications": []}, headers=headers).status_code == 422
    monkeypatch.setenv("CREDIT_API_MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("CREDIT_API_MAX_BATCH", "2")
    with TestClient(create_app()) as small:
        assert small.post("/v1/score", json=request_of(apps, history, 0), headers=headers).status_code == 413
        three = {"applications": [{"application": {"SK_ID_CURR": i}} for i in range(3)]}
        assert small.post("/v1/score/batch", json=three, headers=headers).status_code == 422


def test_a_snapshot_swapped_in_during_requests_is_not_an_error(client, key, home, night):
    _, _, scored = night
    ids = [int(i) for i in scored.index[:20]]
    statuses, stop = [], threading.Event()

    apps, history, _ = night
    body = {"application": request_of(apps, history, 0)["application"], "on_unknown_category": "as_missing"}

    def read():
        while not stop.is_set():
            statuses.extend(client.get(f"/v1/decisions/{i}", headers={"X-API-Key": key}).status_code for i in ids)
            statuses.append(client.post("/v1/score", json=body, headers={"X-API-Key": key}).status_code)

    reader = threading.Thread(target=read)
    reader.start()
    path = snapshot.snapshot_path()
    for n in range(5):  # the nightly publisher's move: a full copy renamed over the file
        shutil.copy(path, path.with_name(f".copy{n}.duckdb"))
        os.replace(path.with_name(f".copy{n}.duckdb"), path)
        time.sleep(0.1)
    stop.set()
    reader.join()
    assert statuses and set(statuses) == {200}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scoring_processes(server_pid: int) -> list[int]:
    for _ in range(100):
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                if ppid == server_pid and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                    found.append(int(stat.parent.name))
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no scoring process under the API server {server_pid}")


def _gone(pid: int, seconds: float) -> bool:
    """Whether `pid` ended within `seconds` (exited, or a zombie waiting for its new parent)."""
    for _ in range(int(seconds * 10)):
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def _api_server(env: dict | None = None, verify: str | bool = True) -> tuple[subprocess.Popen, str]:
    """`credit-dagster api` in a process of its own, once it answers /health; its output piped."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "credit_dagster.cli", "api", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
    base = f"{'https' if env and 'CREDIT_TLS_CERT' in env else 'http'}://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health", verify=verify).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    return server, base


@pytest.mark.slow
def test_the_api_serves_https_with_a_certificate_and_says_so(home, tmp_path):
    """CREDIT_TLS_CERT and CREDIT_TLS_KEY: HTTPS only on that port, with HSTS; a plain-HTTP request gets no answer."""
    import ssl

    from credit_dagster_tests.conftest import self_signed

    cert, key = self_signed(tmp_path)
    trusted = ssl.create_default_context(cafile=str(cert))
    server, base = _api_server({"CREDIT_TLS_CERT": str(cert), "CREDIT_TLS_KEY": str(key)}, verify=trusted)
    try:
        health = httpx.get(f"{base}/health", verify=trusted)
        assert health.status_code == 200 and health.headers["strict-transport-security"].startswith("max-age=")
        with pytest.raises(httpx.HTTPError):
            httpx.get(base.replace("https", "http") + "/health", timeout=5)
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0]
    assert f"Scoring API on {base}" in output


@pytest.mark.slow  # the full suite (CI) runs it; the everyday subset stays under 3 minutes
def test_audit_record_survives_a_sigkill_after_the_answer_and_is_folded_once(home, key, night):
    apps, history, _ = night
    server, base = _api_server()
    try:
        body = {"application": request_of(apps, history, 1)["application"], "on_unknown_category": "as_missing"}
        answer = httpx.post(f"{base}/v1/score", json=body, headers={"X-API-Key": key}, timeout=60).json()
        # the scoring process killed: the next request is scored by a new one, with the same answer
        os.kill(_scoring_processes(server.pid)[0], signal.SIGKILL)
        again = httpx.post(f"{base}/v1/score", json=body, headers={"X-API-Key": key}, timeout=60).json()
        assert again["probability_of_default"] == answer["probability_of_default"] and again["decision_id"] != answer["decision_id"]
        scoring_processes = _scoring_processes(server.pid)
    finally:
        server.send_signal(signal.SIGKILL)
        log = server.communicate(timeout=10)[0]
    # the killed server's scoring processes do not outlive it
    assert all(_gone(pid, 10) for pid in scoring_processes)
    assert "scoring process died" in log
    records_on_disk, problems = audit.read()
    mine = records_on_disk[records_on_disk["run_id"] == answer["decision_id"]]
    assert len(mine) == 1 and not problems
    assert mine["probability_of_default"].iloc[0] == answer["probability_of_default"]
    assert mine["model_version"].iloc[0] == answer["model_version"] and mine["caller"].iloc[0].startswith("tests-")
    assert "POST /v1/score 200 caller=tests-" in log and "AMT_" not in log  # one line a request, no personal data
    job = defs.resolve_job_def("ondemand_audit")
    for _ in range(2):  # folding twice adds nothing the second time
        job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=True)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        folded = con.execute("select count(*), count(distinct run_id) from scoring.ondemand_audit").fetchall()[0]
        row = con.execute("select caller, features_fingerprint from scoring.ondemand_audit where run_id = ?", [answer["decision_id"]]).fetchall()
    assert folded[0] == folded[1] == len(records_on_disk)
    assert row == [(mine["caller"].iloc[0], answer["features_fingerprint"])]


def test_cli_manages_keys(home, capsys):
    from credit_dagster import cli

    assert cli.main(["api-key", "create", "cli-system", "--rate", "5"]) == 1  # what may it do? said, no key made
    assert "give the key's scopes (--scope)" in capsys.readouterr().err
    assert cli.main(["api-key", "create", "cli-system", "--rate", "5", "--scope", "decisions:read", "--scope", "contest"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert keys.KeyStore().lookup(key).name == "cli-system"
    assert keys.KeyStore().lookup(key).scopes == {keys.READ_DECISIONS, keys.CONTEST}
    assert cli.main(["api-key", "create", "cli-system", "--scope", "score"]) == 1
    assert "already has an active key" in capsys.readouterr().err
    assert cli.main(["api-key", "revoke", "cli-system"]) == 0
    assert keys.KeyStore().lookup(key).revoked
    assert cli.main(["api-key", "list"]) == 0 and "cli-system" in capsys.readouterr().out


@pytest.mark.slow
def test_generated_requests_never_get_a_server_error(home, key):
    """Property-based: requests generated from the OpenAPI document, valid and not, for every
    operation, once /ready says so (as a load balancer would wait: it answers 503 until the
    scoring processes have loaded the champion)."""
    app = create_app()
    with TestClient(app) as started:
        for _ in range(600):
            if started.get("/ready").status_code == 200:
                break
            time.sleep(0.1)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 7
        for operation in operations:
            @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(case=operation.as_strategy())
            def call(case):
                case.call_and_validate(headers={"X-API-Key": key},
                                       checks=[not_a_server_error, status_code_conformance, response_schema_conformance])

            call()


def test_docs_are_served_by_the_api_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"(?:src|href)=['\"]([^'\"]+)['\"]", page.text)
    assert assets and all(a.startswith("/") for a in assets), assets  # nothing from another host
    assert all(client.get(a).status_code == 200 for a in assets)


@pytest.mark.browser
def test_docs_render_offline_in_a_real_browser_and_the_api_stops_clean(home):
    from playwright.sync_api import sync_playwright

    server, base = _api_server()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page()
            outside = []
            page.on("request", lambda r: outside.append(r.url) if urlparse(r.url).hostname not in (None, "127.0.0.1") else None)
            page.goto(f"{base}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)  # Swagger UI drew the operations
            assert page.locator(".opblock").count() >= 7
            browser.close()
        assert outside == []
    finally:
        server.send_signal(signal.SIGTERM)
        log = server.communicate(timeout=30)[0]
    # stopped by the signal (uvicorn re-raises it once shut down), its scoring processes joined:
    # nothing left for Python's resource tracker to complain of
    assert server.returncode in (0, -signal.SIGTERM) and "leaked" not in log, log[-2000:]


def test_openapi_document_describes_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/ready", "/v1/decisions/{sk_id_curr}", "/v1/score", "/v1/score/batch", "/v1/model", "/v1/model/card"} <= set(paths)
    assert json.dumps(paths["/v1/score"]).count("422") >= 1


def test_a_read_is_written_before_its_answer_and_synced_within_a_tenth_of_a_second(tmp_path, monkeypatch):
    """Reads of stored decisions append without waiting for an fsync (`durable=False`): the line is
    in the file when the append returns (a killed process loses nothing), a background thread
    syncs it within SYNC_EVERY, and the API's stop syncs whatever is left."""
    log = audit.AuditLog(tmp_path, prefix=audit.READS_PREFIX)
    real_fsync, synced = os.fsync, []

    def recorded_fsync(fd):
        real_fsync(fd)
        synced.append((time.perf_counter(), len(Path(f"/proc/self/fd/{fd}").read_text().splitlines())))

    monkeypatch.setattr(audit.os, "fsync", recorded_fsync)
    appended = time.perf_counter()
    log.append([{"n": 1}], durable=False)
    assert not synced and len(audit.read(tmp_path, prefix=audit.READS_PREFIX)[0]) == 1  # written, not yet synced
    deadline = time.monotonic() + 5
    while not synced and time.monotonic() < deadline:
        time.sleep(0.01)
    assert synced and synced[0][1] == 1 and synced[0][0] - appended < log.SYNC_EVERY + 0.5
    log.append([{"n": 2}], durable=False)
    log.sync()  # what Runtime.stop does
    assert synced[-1][1] == 2


def test_audit_appends_commit_in_groups_and_each_returns_only_once_synced(tmp_path, monkeypatch):
    """Twenty callers at once on a slow disk: every line is written whole, fewer fsyncs than
    appends, and no append returns before an fsync that began after its write has finished."""
    log = audit.AuditLog(tmp_path)
    real_fsync, synced, calls = os.fsync, set(), []

    def slow_fsync(fd):
        on_disk = {json.loads(line)["n"] for line in Path(f"/proc/self/fd/{fd}").read_text().splitlines()}
        time.sleep(0.05)
        real_fsync(fd)
        calls.append(len(on_disk))
        synced.update(on_disk)

    monkeypatch.setattr(audit.os, "fsync", slow_fsync)
    unsynced_at_return = []

    def caller(n: int) -> None:
        log.append([{"n": n, "caller": "tests"}])
        if n not in synced:
            unsynced_at_return.append(n)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records, problems = audit.read(tmp_path)
    assert problems == [] and sorted(records["n"]) == list(range(20))
    assert unsynced_at_return == []
    assert 1 <= len(calls) < 20


def test_rounds_run_side_by_side_and_never_hold_one_applicant_twice():
    """With two scoring processes, a request arriving during a round starts a second round at
    once instead of waiting; requests that come while both run are scored together next, an
    applicant asked twice in two rounds."""
    from types import SimpleNamespace

    from credit_dagster.api.runtime import Coalescer

    entered, release, rounds = threading.Semaphore(0), threading.Event(), []

    def score(requests):
        ids = [r.application.SK_ID_CURR for r in requests]
        rounds.append(ids)
        entered.release()
        assert release.wait(30)
        return pd.DataFrame({"SK_ID_CURR": ids})

    coalescer, results = Coalescer(score, in_flight=2), {}

    def call(name: str, sk_id: int) -> threading.Thread:
        def ask():
            results[name] = coalescer.score([SimpleNamespace(application=SimpleNamespace(SK_ID_CURR=sk_id))])["SK_ID_CURR"].tolist()
        thread = threading.Thread(target=ask)
        thread.start()
        return thread

    callers = [call("a", 1)]
    assert entered.acquire(timeout=10)
    callers.append(call("b", 2))
    assert entered.acquire(timeout=10)  # a second round while the first still runs
    callers += [call("c", 3), call("d", 3), call("e", 4)]
    deadline = time.monotonic() + 10  # the three are waiting for the next rounds
    while len(coalescer._pending) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(coalescer._pending) == 3
    release.set()
    for thread in callers:
        thread.join(30)
    assert results == {"a": [1], "b": [2], "c": [3], "d": [3], "e": [4]}
    assert rounds[:2] == [[1], [2]] and sorted(map(sorted, rounds[2:])) == [[3], [3, 4]]


def test_the_snapshot_indexes_the_history_the_api_looks_up(home):
    with duckdb.connect(str(snapshot.snapshot_path()), read_only=True) as con:
        history = {r[0] for r in con.execute("select table_name from duckdb_tables() where table_name like 'history_%'").fetchall()}
        indexed = {r[0]: r[1] for r in con.execute("select table_name, expressions from duckdb_indexes()").fetchall()}
    assert history and set(indexed) == history
    assert all("SK_ID_CURR" in expressions for expressions in indexed.values())


@pytest.fixture(scope="module")
def review_client(home, tmp_path_factory):
    """An API with a review journal of its own (the contests and the switch of these tests stay here)."""
    folder = tmp_path_factory.mktemp("review_journal")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CREDIT_REVIEW_JOURNAL_DIR", str(folder))  # before the scoring processes start: they read the switch too
        with TestClient(create_app(), raise_server_exceptions=False) as c:
            yield c, folder


def test_a_contest_queues_the_application_and_the_answer_shows_the_human_decision(review_client, key, night):
    from credit_dagster.review import cases as review
    from credit_dagster.review.journal import ReviewJournal

    client, folder = review_client
    _, _, scored = night
    granted = int(scored.index[scored["decision"] == review.GRANTED][0])
    said = {"X-API-Key": key}
    before = client.get(f"/v1/decisions/{granted}", headers=said).json()
    assert (before["final_decision"], before["decided_by"], before["review_status"]) == (review.GRANTED, "model", review.CLOSED)
    words = '<script>alert(1)</script> =HYPERLINK("http://x.example","y")'
    today = datetime.now(UTC).date()
    asked = today - timedelta(days=16)  # a complaint that took a while to reach the lender's systems
    body = {"channel": "phone", "received_on": asked.isoformat(), "client_words": words}
    assert client.post(f"/v1/decisions/{granted}/contest", json=body).status_code == 401  # the caller's key, or nothing
    assert client.post("/v1/decisions/1/contest", json=body, headers=said).status_code == 404
    for wrong in ({**body, "channel": "pigeon"}, {**body, "client_words": "x" * 5000}, {**body, "note": "extra"},
                  {**body, "received_on": (today + timedelta(days=40)).isoformat()},  # the clock never starts in the future
                  {**body, "received_on": (today - timedelta(days=400)).isoformat()}):  # nor more than a year back
        assert client.post(f"/v1/decisions/{granted}/contest", json=wrong, headers=said).status_code == 422, wrong
    assert journal_is_empty(folder, granted)
    contested = client.post(f"/v1/decisions/{granted}/contest", json=body, headers=said)
    assert contested.status_code == 201 and contested.json()["review_status"] == review.OPEN and contested.json()["contested"]
    again = client.post(f"/v1/decisions/{granted}/contest", json=body, headers=said)  # a second request while it is reviewed
    assert again.status_code == 409 and "already under review" in again.text
    journal = ReviewJournal(folder)
    assert journal.case(granted, review.GRANTED).status == review.OPEN  # in the advisors' queue
    recorded = journal.actions_of(granted)[0]
    assert recorded.user.startswith("api:tests-") and (recorded.note, recorded.received_on) == (words, asked.isoformat())
    # the case waits from the day the client asked, not from the day it was recorded
    assert "The client asked for a human review on" in contested.json()["decision_sentence"]
    # an advisor reverses the model: the model's decision stands until a supervisor approves
    journal.record(granted, review.DECIDE, user="ann", role=review.ADVISOR, model_version="v", model_decision=review.GRANTED,
                   revision=1, final=review.REFUSED, reason_codes=("fraud_suspicion",))
    waiting = client.get(f"/v1/decisions/{granted}", headers=said).json()
    assert (waiting["final_decision"], waiting["review_status"]) == (review.GRANTED, review.WAITING)
    assert "Granted by the model" in waiting["decision_sentence"] and "waiting for a supervisor's approval" in waiting["decision_sentence"]
    journal.record(granted, review.APPROVE, user="tom", role=review.SUPERVISOR, model_version="v", model_decision=review.GRANTED,
                   revision=2)
    after = client.get(f"/v1/decisions/{granted}", headers=said).json()
    assert (after["final_decision"], after["decided_by"], after["review_reason_codes"]) == (review.REFUSED, "supervisor", ["fraud_suspicion"])
    assert after["decided_at"] and after["decision"] == review.GRANTED  # the night's own decision is still said
    assert after["decision_sentence"].startswith("Refused by a supervisor on ") and "the model had granted it" in after["decision_sentence"]
    letter = client.get(f"/v1/decisions/{granted}/letter", headers=said)
    assert letter.status_code == 200 and "reviewed your application in person" in letter.text
    assert "<script>" not in letter.text and "&lt;script&gt;" in letter.text
    pdf = client.get(f"/v1/decisions/{granted}/letter?format=pdf", headers=said)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    # a flood of contests from one system cannot fill the queue: a day's allowance per key
    other = int(scored.index[scored["decision"] == review.REFUSED][0])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CREDIT_API_CONTESTS_PER_DAY", "1")
        flood = client.post(f"/v1/decisions/{other}/contest", json=body, headers=said)
    assert flood.status_code == 429 and "contests today" in flood.text and ReviewJournal(folder).actions_of(other) == []
    # a branch system's key records contests made at a branch, not by phone
    branch = keys.create(f"branch-{time.time_ns()}", rate_per_second=100, scopes=(keys.CONTEST,), channels=("branch",))
    wrong = client.post(f"/v1/decisions/{other}/contest", json=body, headers={"X-API-Key": branch})  # body: by phone
    assert wrong.status_code == 403 and "channel" in wrong.text and ReviewJournal(folder).actions_of(other) == []


def journal_is_empty(folder, sk_id: int) -> bool:
    from credit_dagster.review.journal import ReviewJournal

    return ReviewJournal(folder).actions_of(sk_id) == []


def test_refer_everything_refers_the_next_request_and_every_answer_says_so(review_client, key, night):
    from credit_dagster.core import refer_all
    from credit_dagster.review import cases as review

    client, folder = review_client
    apps, history, scored = night
    i = next(i for i, sk in enumerate(apps["SK_ID_CURR"]) if scored.loc[sk, "decision"] == review.GRANTED)
    body, said = {**request_of(apps, history, i), "on_unknown_category": "as_missing"}, {"X-API-Key": key}
    sk_id = int(apps["SK_ID_CURR"].iloc[i])

    def score() -> dict:
        response = client.post("/v1/score", json=body, headers=said)
        assert response.status_code == 200, response.text
        return response.json()

    assert (score()["decision"], score()["refer_everything"]) == (review.GRANTED, False)
    refer_all.set_switch(True, by="sue", role=review.SUPERVISOR, why="income data feed broken", folder=folder)
    referred = score()
    assert (referred["decision"], referred["refer_everything"], referred["reasons"][0]) == (review.REFER, True, refer_all.REASON)
    assert client.get(f"/v1/decisions/{sk_id}", headers=said).json()["refer_everything"] is True
    refer_all.set_switch(False, by="sue", role=review.SUPERVISOR, why="feed repaired", folder=folder)
    assert (score()["decision"], score()["refer_everything"]) == (review.GRANTED, False)
    assert client.get(f"/v1/decisions/{sk_id}", headers=said).json()["refer_everything"] is False


def test_markup_sent_through_every_parameter_and_field_is_never_echoed(review_client, key, night):
    """Markup in every path parameter, query parameter, body field and header of every operation of
    the OpenAPI document: no answer is a server error, and no refusal repeats what was sent."""
    from urllib.parse import quote

    from credit_dagster_tests.markup import ATTACK

    client, _ = review_client
    apps, history, scored = night
    sk_id = int(scored.index[0])
    valid = request_of(apps, history, 0)
    every_text = {k: ATTACK if isinstance(v, str) else v for k, v in valid["application"].items()}
    employer = {**valid, "application": {**valid["application"], "ORGANIZATION_TYPE": ATTACK}, "on_unknown_category": "as_missing"}
    bodies = {"/v1/score": [{**valid, "application": every_text}, {**valid, "on_unknown_category": ATTACK}, {ATTACK: 1}, ATTACK, employer],
              "/v1/score/batch": [{"applications": [{**valid, "application": every_text}]}, [ATTACK]],
              "/v1/decisions/{sk_id_curr}/contest": [{"channel": ATTACK, "received_on": ATTACK, "client_words": "x"},
                                                      {"channel": "phone", "client_words": "x", ATTACK: ATTACK}, ATTACK]}
    for _ in range(600):  # as a load balancer waits: 503 until the scoring processes are up
        if client.get("/ready").status_code == 200:
            break
        time.sleep(0.1)
    tried = scored_anyway = 0
    for path, operations in client.app.openapi()["paths"].items():
        for method, operation in operations.items():
            params = {p["name"]: p["in"] for p in operation.get("parameters", [])}
            urls = [path.replace("{sk_id_curr}", quote(ATTACK, safe="")), path.replace("{sk_id_curr}", str(sk_id))]
            query = {name: ATTACK for name, where in params.items() if where == "query"} | {"x": ATTACK}
            for url in urls:
                for headers in ({"X-API-Key": key}, {"X-API-Key": ATTACK}, {"X-API-Key": key, "Accept": ATTACK}):
                    for body in bodies.get(path, [None]) if method == "post" else [None]:
                        sent = {"content": json.dumps(body), "headers": {**headers, "Content-Type": "application/json"}} if body else {}
                        answer = client.request(method, url, params=query, **({"headers": headers} | sent))
                        tried += 1
                        assert answer.status_code < 500, (method, url, body, answer.text[:300])
                        assert "fuzz" not in answer.text and "alert(" not in answer.text, (method, url, answer.text[:300])
                        scored_anyway += answer.status_code == 200 and body is employer
    assert tried >= 60 and scored_anyway  # the unknown employer scored as missing, said by its field alone


def test_metrics_count_every_answer_by_route_and_status_and_hold_no_client_data(client, key, night):
    from prometheus_client.parser import text_string_to_metric_families

    _, _, scored = night
    sk_id = int(scored.index[0])
    for _ in range(600):
        if client.get("/ready").status_code == 200:
            break
        time.sleep(0.1)

    def samples() -> dict:
        text = client.get("/metrics").text
        assert str(sk_id) not in text and key not in text  # counts and times only
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}

    def count(route: str, status: str) -> float:
        return before_or_now.get(("credit_api_requests_total", (("method", "GET"), ("route", route), ("status", status))), 0.0)

    before_or_now = samples()
    read_before, refused_before = count("/v1/decisions/{sk_id_curr}", "200"), count("(no route)", "401")
    for _ in range(3):
        assert client.get(f"/v1/decisions/{sk_id}", headers={"X-API-Key": key}).status_code == 200
    assert client.get(f"/v1/decisions/{sk_id}").status_code == 401
    before_or_now = samples()
    assert count("/v1/decisions/{sk_id_curr}", "200") == read_before + 3 and count("(no route)", "401") == refused_before + 1
    assert before_or_now[("credit_api_scoring_processes_alive", ())] == credit_settings.current().api_scorers
    assert before_or_now[("credit_api_request_seconds_count", (("route", "/v1/decisions/{sk_id_curr}"),))] >= 3
