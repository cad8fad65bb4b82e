"""What an operator watches of the API, in Prometheus' format at GET /metrics: requests by route
and status, their latency, the on-demand rounds and their size, the scoring processes alive, and
the API's own restarts of a dead one. Counts and times only: no client data, no key, no path
value (routes are named by their template, `/v1/decisions/{sk_id_curr}`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()  # the API's own, not the process-wide default: a test's second app starts at zero too
REQUESTS = Counter("credit_api_requests", "Answers of the API, by route template, method and status", ["route", "method", "status"],
                   registry=REGISTRY)
LATENCY = Histogram("credit_api_request_seconds", "Time from a request's arrival to its answer, by route template", ["route"],
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10), registry=REGISTRY)
ROUNDS = Counter("credit_api_scoring_rounds", "On-demand scoring rounds, by outcome", ["outcome"], registry=REGISTRY)
ROUND_SIZE = Histogram("credit_api_scoring_round_applications", "Applications scored together in one on-demand round",
                       buckets=(1, 2, 5, 10, 20, 50, 100, 250, 500, 1000), registry=REGISTRY)
SCORERS_ALIVE = Gauge("credit_api_scoring_processes_alive", "On-demand scoring processes running now", registry=REGISTRY)
SCORER_RESTARTS = Counter("credit_api_scoring_process_restarts", "Scoring processes found dead and started again", registry=REGISTRY)


def route_of(scope: dict) -> str:
    """The template of the route that answered; "(no route)" for a request refused before routing or
    to a path the API does not have (never the path itself)."""
    return getattr(scope.get("route"), "path", None) or "(no route)"


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), "text/plain; version=0.0.4; charset=utf-8"
