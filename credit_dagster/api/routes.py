"""The scoring API's routes: thin over the runtime (`runtime.Runtime`), which the app keeps in
`app.state.runtime`."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

from credit_dagster.api import keys, metrics, schemas
from credit_dagster.api.runtime import Runtime

API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="a key from `credit-dagster api-key create NAME`")
ERRORS = {
    401: {"description": "no API key, or an unknown one"},
    403: {"description": "the API key was revoked, or lacks the scope of this call"},
    413: {"description": "the body is larger than CREDIT_API_MAX_BODY_BYTES"},
    422: {"description": "a field is missing, mistyped, out of range or unknown: `detail` names it"},
    429: {"description": "over this key's rate limit: retry after `Retry-After` seconds"},
    503: {"description": "no serving snapshot or no champion model yet"},
}


# The dependencies are coroutines: each does microseconds of work, and a plain function would be
# sent to the thread pool and back for it (three round trips a request, most of a stored
# decision's cost under load).
async def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def caller(request: Request, key: Annotated[str | None, Depends(API_KEY)]) -> keys.Caller:
    found = request.app.state.runtime.caller(key)
    request.scope.setdefault("state", {})["caller"] = found.name  # for the request's log line
    return found


Caller = Annotated[keys.Caller, Depends(caller)]
Api = Annotated[Runtime, Depends(runtime)]


def may(scope: str):
    """A caller whose key carries `scope` (403 otherwise: the key is known, the act is not its)."""
    async def check(who: Caller) -> keys.Caller:
        if scope not in who.scopes:
            raise HTTPException(403, f"this API key does not have the scope {scope}")
        return who
    return Annotated[keys.Caller, Depends(check)]


ReadsDecisions, ReadsLetters, Contests, Scores = may(keys.READ_DECISIONS), may(keys.READ_LETTERS), may(keys.CONTEST), may(keys.SCORE)
Replays = may(keys.REPLAY)

status = APIRouter()


@status.get("/health", summary="The process is up")
def health() -> dict:
    return {"status": "ok"}


@status.get("/metrics", summary="What an operator watches, in Prometheus' format (counts and times, no client data)",
            response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def prometheus_metrics(api: Api) -> Response:
    metrics.SCORERS_ALIVE.set(api.scorers_alive())
    body, kind = metrics.exposition()
    return Response(body, media_type=kind)


@status.get("/ready", summary="A serving snapshot and a champion are loaded", response_model=schemas.Readiness,
            responses={503: {"model": schemas.Readiness, "description": "not ready: `problems` says why"}})
def ready(api: Api):
    body = api.readiness()
    return body if body.ready else JSONResponse(body.model_dump(), status_code=503)


decisions = APIRouter(prefix="/v1", responses=ERRORS)


@decisions.get("/decisions/{sk_id_curr}", response_model=schemas.StoredDecision, summary="The stored nightly decision of an application",
               responses={404: {"description": "no nightly decision for this SK_ID_CURR"}})
async def stored_decision(sk_id_curr: Annotated[int, PathParam(ge=0, le=schemas.INT64[1])], api: Api, who: ReadsDecisions):
    # answered on the event loop (a lookup in memory and a journal line, no fsync awaited); a new
    # snapshot is loaded in the thread pool, so the loop keeps answering meanwhile
    if api.serving.loaded():
        return api.stored_decision(sk_id_curr, who)
    return await run_in_threadpool(api.stored_decision, sk_id_curr, who)


@decisions.post("/decisions/{sk_id_curr}/contest", response_model=schemas.ReviewState, status_code=201,
                summary="A client asks for a human review of the decision",
                responses={404: {"description": "no nightly decision for this SK_ID_CURR"},
                           409: {"description": "already under review at the client's request, or reviewed as often as a client may ask"}})
def contest(sk_id_curr: Annotated[int, PathParam(ge=0, le=schemas.INT64[1])], body: schemas.ContestRequest, api: Api, who: Contests):
    """Puts the application in the advisors' review queue, whatever the model decided. Authenticated by the
    calling system's key (a header, never a cookie: no cross-site request can carry it)."""
    return api.contest(sk_id_curr, body, who)


@decisions.get("/decisions/{sk_id_curr}/letter", summary="The letter due to the client now (HTML, or PDF with format=pdf)",
               response_class=HTMLResponse, responses={404: {"description": "no nightly decision for this SK_ID_CURR"},
                                                       200: {"content": {"application/pdf": {}}}})
def letter(sk_id_curr: Annotated[int, PathParam(ge=0, le=schemas.INT64[1])], api: Api, who: ReadsLetters,
           format: Literal["html", "pdf"] = "html"):
    if format == "pdf":
        return Response(api.letter(sk_id_curr, who, pdf=True), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="letter_{sk_id_curr}.pdf"'})
    return HTMLResponse(api.letter(sk_id_curr, who, pdf=False))


@decisions.get("/decisions/{sk_id_curr}/replay", response_model=schemas.DecisionReplay,
               summary="A past decision made again from its night's features and model version, compared figure by figure",
               responses={404: {"description": "no decision for this SK_ID_CURR (on that night), or its features or model are gone"},
                          503: {"description": "the warehouse is being written by a night: retry after `Retry-After` seconds"}})
def replay(sk_id_curr: Annotated[int, PathParam(ge=0, le=schemas.INT64[1])], api: Api, who: Replays,
           night: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="the night; default: the latest")] = None):
    """For a model-risk or audit system: the decision's audit record, the same decision made again
    (`credit-dagster decision replay`), and each figure's verdict. Journaled with its caller."""
    return api.replay(sk_id_curr, night, who)


@decisions.get("/model", response_model=schemas.ModelSummary, summary="The champion model")
def model_summary(api: Api, who: Caller):
    return api.model_summary()


@decisions.get("/model/card", response_class=HTMLResponse, summary="The champion's model card (HTML)",
               responses={404: {"description": "the card was not written"}})
def model_card(api: Api, who: Caller):
    return HTMLResponse(api.model_card())


def scoring_router(batch_request: type[BaseModel]) -> APIRouter:
    """The on-demand routes; `batch_request` bounds a batch by configuration (CREDIT_API_MAX_BATCH)."""
    router = APIRouter(prefix="/v1", responses=ERRORS)

    @router.post("/score", response_model=schemas.OnDemandDecision, summary="Score one application now")
    def score_one(body: schemas.ScoreRequest, api: Api, who: Scores):
        return api.score([body], body.on_unknown_category, who)[0]

    @router.post("/score/batch", response_model=schemas.BatchResponse, summary="Score up to CREDIT_API_MAX_BATCH applications now",
                 description="Each application is scored or refused on its own: one that lacks a field or breaks a rule is "
                             "listed in `refused` with its fields and rules, and never stops the others.")
    def score_batch(body: batch_request, api: Api, who: Scores):  # type: ignore[valid-type]
        decisions, refused = api.score_each(body.applications, body.on_unknown_category, who)
        return {"decisions": decisions, "refused": refused, "scored_count": len(decisions), "refused_count": len(refused)}

    return router
