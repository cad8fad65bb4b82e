"""The scoring API: stored decisions from the serving snapshot, on-demand scores from `ondemand`.

It reads the serving snapshot and the model registry, never the warehouse, and writes only its
own audit files, so it can neither block the nightly writer nor be blocked by it. Configured
by environment like the rest of the platform (see the README's "Scoring API" section). The
HTTP side is here and in `routes.py`; what a request needs besides HTTP is `runtime.Runtime`.
"""

import contextlib
import logging
import re
import time
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from credit_dagster.api import keys, metrics, routes, schemas
from credit_dagster.api.runtime import Runtime
from credit_dagster.core import audit, settings

log = logging.getLogger("credit_dagster.api")


# on every answer: never framed (clickjacking), never sniffed into another type, no referrer leaked;
# the JSON answers load nothing, the offline docs only this server's own scripts and styles
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
CSP = b"default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            b"frame-ancestors 'none'")
UNKNOWN_KEYS_PER_ADDRESS = 5.0  # requests/s an address may make with unknown keys (guessing keys is slowed down)


class Guard:
    """Before anything reads a body: a /v1 request without a known, unrevoked key gets its 401 or
    403 at once (an unauthenticated body is never read), and an address sending unknown keys is
    rate-limited; every answer gets the security headers. Pure ASGI, outside the routes."""

    def __init__(self, app, runtime: Runtime):
        self.app, self.runtime = app, runtime
        self.unknown = keys.RateLimiter()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), {}
        try:
            await self._guarded(scope, receive, send, status)
        finally:  # every answer counted, the refused ones too, by its route's template
            route = metrics.route_of(scope)
            metrics.REQUESTS.labels(route, scope["method"], str(status.get("code", 500))).inc()
            metrics.LATENCY.labels(route).observe(time.perf_counter() - started)

    async def _guarded(self, scope, receive, send, status: dict):
        docs = scope["path"] in ("/docs", "/redoc") or scope["path"].startswith("/static")

        https = [(b"strict-transport-security", b"max-age=31536000")] if scope.get("scheme") == "https" else []

        async def with_headers(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS, *https,
                                      (b"content-security-policy", DOCS_CSP if docs else CSP)]
            await send(message)

        if scope["path"].startswith("/v1/"):
            key = dict(scope["headers"]).get(b"x-api-key", b"").decode("latin-1")
            found = self.runtime.key_store.lookup(key) if key else None
            refused = None
            if found is None:
                address = keys.Caller(f"address:{(scope.get('client') or ('?',))[0]}", False, UNKNOWN_KEYS_PER_ADDRESS)
                wait = self.unknown.wait_time(address)
                refused = ((429, "too many requests with unknown API keys from this address", {"retry-after": str(max(1, round(wait)))})
                           if wait else (401, "missing or unknown API key (header X-API-Key)", {"www-authenticate": "X-API-Key"}))
            elif found.revoked:
                refused = (403, "this API key was revoked", {})
            if refused:
                code, detail, headers = refused
                return await JSONResponse({"detail": detail}, status_code=code, headers=headers)(scope, receive, with_headers)
        await self.app(scope, receive, with_headers)


class BodyLimit:
    """Refuses a body over `limit` bytes with 413, whether or not it declares its length, logs one
    line per request with ids only (never a body: it holds personal data)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status, received = time.perf_counter(), {}, 0
        declared = dict(scope["headers"]).get(b"content-length", b"")
        too_large = HTTPException(413, f"request body larger than {self.limit} bytes (CREDIT_API_MAX_BODY_BYTES)")

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            # FastAPI passes an HTTPException raised while reading the body through as it is
            if received > self.limit or (declared.isdigit() and int(declared) > self.limit):
                raise too_large
            return message

        async def recording_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, limited_receive, recording_send)
        log.info("%s %s %s caller=%s %.1fms", scope["method"], scope["path"], status.get("code"),
                 scope.get("state", {}).get("caller", "-"), 1000 * (time.perf_counter() - started))


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _field_name(part: str | int) -> str | int:
    """A place in a request as it is named: an index, or a name shaped like a field's (a misspelled
    AMT_CREDTI is worth naming back); any other key the caller sent is not repeated."""
    return part if isinstance(part, int) or _FIELD_NAME.fullmatch(part) else "(a field of another name)"


def create_app(models_dir: Path | None = None, snapshot_file: Path | None = None, key_store: keys.KeyStore | None = None,
               audit_log: audit.AuditLog | None = None) -> FastAPI:
    """The API over CREDIT_HOME (or the given folders); CREDIT_API_MAX_BATCH bounds a batch."""
    runtime = Runtime(models_dir, snapshot_file, key_store, audit_log)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if unset := settings.unsigned_letters():  # said at start, not first by a client's missing letter
            log.warning(f"letters to real clients are refused until {' and '.join(unset)} are set (or CREDIT_DEMO=true)")
        runtime.start()
        yield
        runtime.stop()

    # FastAPIOffline: /docs and /redoc served with their scripts from this server, never a CDN
    app = FastAPIOffline(title="credit-dagster scoring API", version="1", lifespan=lifespan,
                         description="Stored nightly decisions and on-demand scores of the champion model, with reasons and "
                                     "counterfactuals. On-demand scores use the nightly SQL features and model; each is audited.")
    app.state.runtime = runtime

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # where and what, without echoing the value: it may be personal data, or not JSON at all (NaN)
        detail = [{"loc": [_field_name(part) for part in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    app.include_router(routes.status)
    app.include_router(routes.decisions)
    app.include_router(routes.scoring_router(schemas.batch_request(settings.current().api_max_batch)))
    app.add_middleware(BodyLimit, limit=settings.current().api_max_body_bytes)
    app.add_middleware(Guard, runtime=runtime)  # outermost: before the body limit reads anything
    return app
