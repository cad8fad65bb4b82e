"""The scoring API's runtime, apart from HTTP: the champion and the snapshot's tables as loaded,
the scoring processes and the rounds they score, the keys, the rate limits and the audit
journal. The routes (`routes.py`) are thin over it.
"""

import contextlib
import gc
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError

from credit_dagster.api import keys, metrics, schemas
from credit_dagster.core import audit, formats, plausibility, refer_all, settings, snapshot, warehouse
from credit_dagster.core.snapshot import Table
from credit_dagster.core.warehouse import WarehouseBusy
from credit_dagster.decision import ondemand, replay, scoring
from credit_dagster.model.registry import RegisteredModel, Registry
from credit_dagster.nightly import drops
from credit_dagster.review import cases as review
from credit_dagster.review import letters
from credit_dagster.review.journal import ReviewJournal

log = logging.getLogger("credit_dagster.api")
READS_PREFIX = audit.READS_PREFIX


class Serving:
    """The champion and the snapshot's tables, reloaded when their files change. A snapshot
    swapped in during a request is read whole, old or new (it is replaced by a rename)."""

    def __init__(self, models_dir: Path, snapshot_file: Path):
        self.registry = Registry(models_dir)
        self.snapshot = snapshot_file
        self._model: tuple[int, RegisteredModel] | None = None
        self._tables: tuple[tuple[int, int], dict[str, pd.DataFrame]] | None = None
        self._answers: tuple[dict | None, dict[int, dict]] = (None, {})  # (the tables they come from, id -> answer)

    def champion(self) -> RegisteredModel:
        if not self.registry.index.exists() or not self.registry.alias("champion"):
            raise HTTPException(503, "no champion model yet: run `credit-dagster run` first")
        stamp = self.registry.index.stat().st_mtime_ns
        if self._model is None or self._model[0] != stamp:
            model = self.registry.load("champion")
            model.ensemble.warm_up()
            self._model = (stamp, model)
        return self._model[1]

    def decision(self, sk_id_curr: int) -> dict:
        """The stored decision of an applicant as the API answers it, made once per applicant and
        snapshot (what the night validated is not validated again per request); 404 if unknown."""
        tables = self.tables()
        if self._answers[0] is not tables:  # a new snapshot: the answers of the old one go with it
            self._answers = (tables, {})
        answers = self._answers[1]
        if sk_id_curr not in answers:
            scored = tables[Table.SCORED]
            if sk_id_curr not in scored.index:
                raise HTTPException(404, f"no nightly decision for SK_ID_CURR {sk_id_curr}")
            row = scored.loc[sk_id_curr].to_dict() | {"SK_ID_CURR": sk_id_curr}
            answers[sk_id_curr] = {**_decision_fields(row), "night": str(row["partition_date"])}
        return answers[sk_id_curr]

    def _stamp(self) -> tuple[int, int]:
        try:
            stat = self.snapshot.stat()
        except FileNotFoundError:
            raise HTTPException(503, f"no serving snapshot at {self.snapshot} yet: score a night first") from None
        return stat.st_ino, stat.st_mtime_ns

    def loaded(self) -> bool:
        """Whether the snapshot's tables in memory are the file's (answering needs no reload)."""
        try:
            return self._tables is not None and self._tables[0] == self._stamp()
        except HTTPException:
            return False

    def tables(self) -> dict[str, pd.DataFrame]:
        stamp = self._stamp()
        if self._tables is None or self._tables[0] != stamp:
            with duckdb.connect(str(self.snapshot), read_only=True) as con:
                try:  # a snapshot a newer release published (the night upgraded before the API) is refused, said by /ready
                    formats.check_duckdb(con, "snapshots", self.snapshot.name)
                except formats.FormatError as newer:
                    raise HTTPException(503, str(newer)) from None
                loaded = {name: con.execute(f"select * from {name}").df()
                          for name in (Table.SCORED, Table.DICTIONARY, Table.MODEL_SUMMARY)}
            loaded[Table.SCORED] = (loaded[Table.SCORED].sort_values("partition_date")
                                             .drop_duplicates("SK_ID_CURR", keep="last").set_index("SK_ID_CURR"))
            self._tables = (stamp, loaded)
            # A night's decisions are millions of Python objects (reasons, texts) that live until
            # the next snapshot: kept out of the cyclic garbage collector, whose full passes over
            # them stalled every request for seconds at scale 1. Reference counting frees them.
            gc.freeze()
        return self._tables[1]


_champion: Serving | None = None  # in the scoring process: its own copy of the champion
_threads: int | None = None  # in the scoring process: its share of the cores


def _start_scoring(models_dir: Path, snapshot_file: Path, server_pid: int, threads: int) -> None:
    global _champion, _threads
    _champion, _threads = Serving(models_dir, snapshot_file), threads

    def follow_the_server() -> None:  # a server killed with -9 cannot stop its scoring process: it stops itself
        while os.getppid() == server_pid:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=follow_the_server, name="follow-the-server", daemon=True).start()
    _warm_up()  # a process started (or restarted) is ready before its first round


def _score_in_process(batch: ondemand.Batch, dictionary: pd.DataFrame) -> pd.DataFrame:
    model = _champion.champion()
    # the model that scored is the one the answer and the audit name, even if promoted meanwhile
    return ondemand.score(batch, model, dictionary, _champion.snapshot, threads=_threads).assign(**scoring.policy_columns(model))


def _warm_up() -> None:
    """Load the champion and open the workspace before the first request needs them."""
    with contextlib.suppress(HTTPException):  # nothing to load yet: the first score will say so
        _champion.champion()
    ondemand.workspace(_threads)


def scorers() -> int:
    """CREDIT_API_SCORERS: on-demand rounds scored at once, each in its own process (default 2)."""
    return settings.current().api_scorers


class ScoringProcess:
    """The on-demand rounds run in processes of their own: scoring is CPU-bound Python, and
    sharing the GIL with the HTTP side (validation, responses, audit) slowed each round by half.
    With two, a request arriving during a round starts in the other process instead of waiting
    for it; the cores are shared between them (CREDIT_THREADS / scorers each). A scoring
    process that dies (killed, out of memory) is restarted and the round scored again. Each
    loads the champion itself (a model is too large to send with each round), and gets the
    snapshot's feature dictionary with the round, so it never loads the snapshot's tables."""

    def __init__(self, models_dir: Path, snapshot_file: Path, processes: int = 1):
        self.processes = processes
        self._args = (models_dir, snapshot_file, os.getpid(), max(1, settings.threads() // processes))
        self._restart = threading.Lock()
        self._pool = self._start()
        self._starting: list[Future] = []

    def _start(self) -> ProcessPoolExecutor:
        # spawned, not forked: the server's threads and open handles stay out of the child
        return ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start_scoring,
                                   initargs=self._args)

    def __call__(self, batch: ondemand.Batch, dictionary: pd.DataFrame) -> pd.DataFrame:
        pool = self._pool
        try:
            return pool.submit(_score_in_process, batch, dictionary).result()
        except BrokenProcessPool:
            with self._restart:  # the rounds in flight all see the death: one restart
                if self._pool is pool:
                    log.warning("an on-demand scoring process died: starting others and scoring the round again")
                    metrics.SCORER_RESTARTS.inc()
                    self._pool = self._start()
            return self._pool.submit(_score_in_process, batch, dictionary).result()

    def warm_up(self) -> None:
        """Start the processes now (each warms up as it starts), not on the first requests."""
        if not self._starting:
            self._starting = [self._pool.submit(os.getpid) for _ in range(self.processes)]

    def alive(self) -> int:
        """Scoring processes running now (the executor's own table of them: it has no public one)."""
        return sum(p.is_alive() for p in list((self._pool._processes or {}).values()))

    def started(self) -> bool:
        """Whether the processes `warm_up` started are ready for their first round."""
        return all(f.done() and f.exception() is None for f in self._starting)

    def close(self) -> None:
        # waiting lets the pool close its queues and join its processes: without it, their
        # semaphores outlive the server ("leaked semaphore objects" at exit); a round in flight
        # takes well under uvicorn's graceful-shutdown time
        self._pool.shutdown(wait=True, cancel_futures=True)


class Coalescer:
    """Scores in rounds, `in_flight` at a time; the requests that arrive while the rounds run
    are scored together in the next one.

    Most of an on-demand score is fixed cost (building the SQL models, converting frames), so
    on a two-core machine scoring requests one by one in parallel tops out at a few a second;
    in rounds the same cores serve many more, and the CPU is never oversubscribed. Requests
    that share an applicant wait for the next round (one row per applicant per round)."""

    def __init__(self, score: Callable[[list[schemas.ApplicationRequest]], pd.DataFrame], round_rows: int = 1000,
                 in_flight: int = 1):
        self._score, self._round_rows = score, round_rows
        self._pending: deque[tuple[list[schemas.ApplicationRequest], Future]] = deque()
        self._ready = threading.Condition()
        for i in range(in_flight):  # rounds scored at once (one per scoring process)
            threading.Thread(target=self._run, name=f"ondemand-scorer-{i}", daemon=True).start()

    def score(self, requests: list[schemas.ApplicationRequest]) -> pd.DataFrame:
        future: Future = Future()
        with self._ready:
            self._pending.append((requests, future))
            self._ready.notify()
        return future.result()

    def _take_round(self) -> list[tuple[list[schemas.ApplicationRequest], Future]]:
        with self._ready:
            while not self._pending:
                self._ready.wait()
            taken, ids, kept = [], set(), deque()
            while self._pending:
                requests, future = self._pending.popleft()
                mine = {r.application.SK_ID_CURR for r in requests}
                if taken and (mine & ids or len(ids) + len(mine) > self._round_rows):
                    kept.append((requests, future))
                    continue
                taken.append((requests, future))
                ids |= mine
            self._pending.extendleft(reversed(kept))
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take_round()
            size = sum(len(requests) for requests, _ in taken)
            metrics.ROUND_SIZE.observe(size)
            try:
                scored = self._score([r for requests, _ in taken for r in requests])
            except BaseException as exc:  # every waiting request gets the error, the thread lives on
                metrics.ROUNDS.labels("failed").inc()
                for _, future in taken:
                    future.set_exception(exc)
                continue
            metrics.ROUNDS.labels("scored").inc()
            start = 0
            for requests, future in taken:
                future.set_result(scored.iloc[start : start + len(requests)].reset_index(drop=True))
                start += len(requests)


def incomplete_or_implausible(requests: list[schemas.ApplicationRequest]) -> list[list[dict]]:
    """Per application, each field an on-demand decision needs and lacks and each plausibility rule
    broken (`plausibility`), as {"field", "msg", "type"}: the night refers such applications, a
    caller waiting for an answer is told what to correct."""
    frame = pd.DataFrame([r.application.model_dump() for r in requests])
    return [[{"field": c, "msg": f"required for a decision: {plausibility.REQUIRED[c]}", "type": "missing"} for c in missing]
            + [{"field": rule.split(":")[0], "msg": rule, "type": "implausible"} for rule in broken]
            for missing, broken in zip(plausibility.missing_required(frame), plausibility.problems(frame), strict=True)]


UNKNOWN_CATEGORY = "unknown category: the model never saw this value (on_unknown_category='as_missing' scores it as missing)"


def _decision_fields(row: dict) -> dict:
    features = row.get("reason_features")
    return {
        **{k: row[k] for k in ("SK_ID_CURR", "probability_of_default", "points", "grade", "decision", "model_version",
                               "threshold", "refer_low", "refer_high", "calibration", "features_fingerprint", "scored_at")},
        "reasons": scoring.reasons_of(row), "reason_features": features.split(",") if isinstance(features, str) and features else [],
        "counterfactual": row["counterfactual"] if isinstance(row.get("counterfactual"), str) else None,
        "history_note": row["history_note"] if isinstance(row.get("history_note"), str) else None,
        # stored naive in UTC; said with its zone, as RFC 3339 wants
        "scored_at": pd.Timestamp(row["scored_at"]).tz_localize("UTC").to_pydatetime(),
        "refer_everything": bool(row.get("refer_everything", False)),
    }


def _plain(value):
    """A figure of a decision as JSON has it (numpy's numbers as Python's)."""
    return value.item() if hasattr(value, "item") else value


def review_fields(case: review.Case, night: str) -> dict:
    """Where a person's review stands (`schemas.ReviewState`)."""
    by_person = case.decided_by != "model"
    return {"SK_ID_CURR": case.sk_id, "final_decision": case.final_decision, "decided_by": case.decided_by,
            "review_status": case.status, "review_reason_codes": list(case.reason_codes) if by_person else [],
            "decided_at": datetime.fromisoformat(case.decided_at) if by_person and case.decided_at else None,
            "contested": case.contested, "decision_sentence": review.standing(case, night)}


class Runtime:
    """Everything a request needs besides HTTP, built once per app."""

    def __init__(self, models_dir: Path | None = None, snapshot_file: Path | None = None, key_store: keys.KeyStore | None = None,
                 audit_log: audit.AuditLog | None = None, journal: ReviewJournal | None = None):
        self.serving = Serving(models_dir or settings.models_dir(), snapshot_file or snapshot.snapshot_path())
        self.journal = journal or ReviewJournal()
        self.key_store = key_store or keys.KeyStore()
        self.audit_log = audit_log or audit.AuditLog()
        # who read whose decision or letter, as the dashboard's access log says of its users
        self.reads = audit.AuditLog(self.audit_log.folder, prefix=READS_PREFIX)
        self.limiter = keys.RateLimiter()
        self.scorer = ScoringProcess(self.serving.registry.root, self.serving.snapshot, scorers())
        self.coalescer = Coalescer(self._score_round, in_flight=self.scorer.processes)

    def start(self) -> None:
        self.scorer.warm_up()

    def stop(self) -> None:
        self.reads.sync()  # the reads appended without waiting for their fsync are on disk before the process ends
        self.scorer.close()
        gc.unfreeze()  # what `Serving.tables` froze is collected as usual again (and finalized at exit)

    def caller(self, key: str | None) -> keys.Caller:
        """The calling system of an API key: 401 unknown, 403 revoked, 429 over its rate."""
        found = self.key_store.lookup(key) if key else None
        if found is None:
            raise HTTPException(401, "missing or unknown API key (header X-API-Key)", headers={"WWW-Authenticate": "X-API-Key"})
        if found.revoked:  # the system it belonged to is not said: the caller may not be that system
            raise HTTPException(403, "this API key was revoked")
        wait = self.limiter.wait_time(found)
        if wait:
            raise HTTPException(429, f"rate limit of {found.rate_per_second:g} requests/s for {found.name}",
                                headers={"Retry-After": str(max(1, round(wait)))})
        return found

    def scorers_alive(self) -> int:
        return self.scorer.alive()

    def readiness(self) -> schemas.Readiness:
        problems, night, version = [], None, None
        try:
            night = str(self.serving.tables()[Table.MODEL_SUMMARY].iloc[0]["published_for"])
        except HTTPException as exc:
            problems.append(exc.detail)
        try:
            version = self.serving.champion().version
        except HTTPException as exc:
            problems.append(exc.detail)
        if not self.scorer.started():  # on-demand scores would wait for a model to load
            problems.append("the on-demand scoring processes are still starting")
        # no file path to an unauthenticated caller: the snapshot is named, not located
        return schemas.Readiness(ready=not problems, night=night, model_version=version, snapshot=self.serving.snapshot.name,
                                 problems=[p.replace(str(self.serving.snapshot), self.serving.snapshot.name) for p in problems])

    def _stored(self, sk_id_curr: int) -> dict:
        scored = self.serving.tables()[Table.SCORED]
        if sk_id_curr not in scored.index:
            raise HTTPException(404, f"no nightly decision for SK_ID_CURR {sk_id_curr}")
        return scored.loc[sk_id_curr].to_dict() | {"SK_ID_CURR": sk_id_curr}

    def _read_by(self, who: keys.Caller, what: str, sk_id_curr: int, durable: bool = True) -> None:
        self.reads.append([{"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "caller": who.name, "read": what,
                            "SK_ID_CURR": sk_id_curr}], durable=durable)

    def stored_decision(self, sk_id_curr: int, who: keys.Caller) -> dict:
        """The night's decision, and the one that stands now (a person's, once decided), from the review journal itself:
        an action shows on the next request, not after the next fold. Journaled with its caller."""
        stored = self.serving.decision(sk_id_curr)
        # written before the answer leaves, synced within 0.1 s: a read of a stored decision is not held for an fsync
        self._read_by(who, "decision", sk_id_curr, durable=False)
        case = self.journal.case(sk_id_curr, stored["decision"])
        return {**stored, **review_fields(case, stored["night"]), "refer_everything": refer_all.state().on}

    def replay(self, sk_id_curr: int, night: str | None, who: keys.Caller) -> dict:
        """The decision made again from the warehouse (read-only, beside an in-memory catalog); a
        night being written makes the caller wait minutes, not this process: 503 with Retry-After."""
        self._read_by(who, "replay", sk_id_curr)
        try:
            with warehouse.connect(settings.warehouse_path(), scratch=True, wait=False) as con:
                records = replay.stored_records(con, sk_id_curr, night)
                result = replay.replay(con, Registry(settings.models_dir()), records, drops.drop_schema(records[0]["partition_date"]))[0]
        except WarehouseBusy:
            raise HTTPException(503, "the warehouse is being written by a night: try again in a few minutes",
                                headers={"Retry-After": "300"}) from None
        except replay.NotReplayable as gone:
            raise HTTPException(404, str(gone)) from None
        record = result.stored
        return {"SK_ID_CURR": sk_id_curr, "night": str(record["partition_date"]), "model_version": record["model_version"],
                "scored_at": record["scored_at"], "run_id": record["run_id"], "same": result.same,
                "compared": [{"field": c, "stored": _plain(record.get(c)), "replayed": _plain(result.replayed.get(c)),
                              "same": c not in result.differences} for c in replay.COMPARED]}

    def contest(self, sk_id_curr: int, body: schemas.ContestRequest, who: keys.Caller) -> dict:
        """Put the application in the review queue at its client's request, whatever the model decided;
        journaled (fsync'ed) before the answer leaves."""
        if who.channels is not None and body.channel not in who.channels:
            raise HTTPException(403, "this API key does not record contests from that channel")
        row = self._stored(sk_id_curr)
        today = datetime.now(UTC).date().isoformat()
        recorded = sum(a.user == f"api:{who.name}" and a.action == review.CONTEST and a.at.startswith(today) for a in self.journal.actions())
        if recorded >= settings.current().api_contests_per_day:
            raise HTTPException(429, f"this key recorded {recorded} contests today (CREDIT_API_CONTESTS_PER_DAY): try tomorrow",
                                headers={"Retry-After": "3600"})
        try:
            case = self.journal.record(sk_id_curr, review.CONTEST, user=f"api:{who.name}", role="", model_version=str(row["model_version"]),
                                       model_decision=str(row["decision"]), revision=None, note=body.client_words,
                                       channel=body.channel, received_on=body.received_on.isoformat())
        except review.ReviewError as refused:  # already under review, or asked too often: said, nothing recorded
            raise HTTPException(409, str(refused)) from None
        return review_fields(case, str(row["partition_date"]))

    def letter(self, sk_id_curr: int, who: keys.Caller, pdf: bool) -> str | bytes:
        """The letter due to the client now (the decision, or the outcome of the review they asked for); journaled with its caller."""
        self._read_by(who, "letter", sk_id_curr)
        said = letters.due(self._stored(sk_id_curr), self.journal, bool(self.serving.tables()[Table.MODEL_SUMMARY].iloc[0]["synthetic"]))
        try:
            return letters.to_pdf(said) if pdf else letters.to_html(said)
        except letters.LetterError as unsigned:  # the deployment's configuration, not the caller's request
            raise HTTPException(503, str(unsigned)) from None

    def _score_round(self, requests: list[schemas.ApplicationRequest]) -> pd.DataFrame:
        return self.scorer(ondemand.Batch(
            applications=pd.DataFrame([r.application.model_dump() for r in requests]),
            history={t: pd.DataFrame(rows) for t in ondemand.HISTORY_TABLES
                     if (rows := [row.model_dump() for r in requests if r.history for row in getattr(r.history, t)])},
        ), self.serving.tables()[Table.DICTIONARY])

    def score(self, requests: list[schemas.ApplicationRequest], unknown_policy: str, who: keys.Caller) -> list[dict]:
        """One application: its decision, or a 422 naming each field and rule it fails."""
        decisions, refused = self.score_each(requests, unknown_policy, who)
        if refused:
            raise RequestValidationError([{"loc": ["body", "application", p["field"]], "msg": p["msg"], "type": p["type"]}
                                          for r in refused for p in r["problems"]])
        return decisions

    def score_each(self, requests: list[schemas.ApplicationRequest], unknown_policy: str, who: keys.Caller) -> tuple[list[dict], list[dict]]:
        """Score now what can be scored, answer with the nightly fields, and journal each decision
        before the answer leaves; each application that cannot be (incomplete, implausible, an
        unknown category refused) is returned apart with its fields and rules: one never stops the others."""
        problems = incomplete_or_implausible(requests)
        self.serving.champion(), self.serving.tables()  # 503 before queueing when either is missing
        kept = [i for i, p in enumerate(problems) if not p]
        scored = self.coalescer.score([requests[i] for i in kept]) if kept else pd.DataFrame()
        rows = scored.to_dict("records")
        if unknown_policy == "reject":
            for i, row in zip(kept, rows, strict=True):
                problems[i] = [{"field": c, "msg": UNKNOWN_CATEGORY, "type": "unknown_category"} for c in row["unknown_categories"]]
            rows = [row for i, row in zip(kept, rows, strict=True) if not problems[i]]
        refused = [{"index": i, "SK_ID_CURR": requests[i].application.SK_ID_CURR, "problems": p} for i, p in enumerate(problems) if p]
        return self._answer(rows, who), refused

    def _answer(self, rows: list[dict], who: keys.Caller) -> list[dict]:
        request_id, now = uuid.uuid4().hex, datetime.now(UTC).replace(tzinfo=None)
        decisions, records = [], []
        for i, row in enumerate({**r, "scored_at": now} for r in rows):
            decision_id = f"{request_id}-{i}"
            decisions.append({**_decision_fields(row), "decision_id": decision_id, "history_source": row["history_source"],
                              # the field, never the value sent (a client's employer, say, is not repeated)
                              "warnings": [f"{c}: a value never seen in training, scored as missing" for c in row["unknown_categories"]]})
            records.append({k: row.get(k) for k in scoring.DECISION_COLUMNS} | {
                "partition_date": None, "run_id": decision_id, "caller": who.name, "history_source": row["history_source"]})
        if records:
            self.audit_log.append(records)  # on disk before the answer leaves
        return decisions

    def model_summary(self) -> dict:
        model = self.serving.champion()
        m = model.metadata
        return {
            "model_version": model.version, "created_at": m.created_at, "synthetic": bool(m.synthetic),
            "threshold": model.threshold, "refer_low": m.refer_band[0], "refer_high": m.refer_band[1],
            "calibration": m.calibration["method"], "cv_roc_auc": m.cv_metrics["roc_auc"],
            "cv_roc_auc_interval": [m.cv_metrics[k] for k in ("roc_auc_low", "roc_auc_high")] if "roc_auc_low" in m.cv_metrics else None,
            "brier": m.cv_metrics.get("brier"), "features": len(model.features), "model_card": "/v1/model/card",
        }

    def model_card(self) -> str:
        card = self.serving.registry.root / self.serving.champion().version / "model_card.html"
        if not card.exists():
            raise HTTPException(404, f"no model card for {card.parent.name}")
        return card.read_text()
