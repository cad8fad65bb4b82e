"""What an operator watches of the dashboard, in Prometheus' format at GET /metrics: sign-ins and
their refusals, accounts locked, sessions open, review actions recorded and refused, views refused
to a role. Counts only: no user name, no application number."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry()
SIGN_INS = Counter("credit_dashboard_sign_ins", "Sign-ins to the dashboard, by outcome", ["outcome"], registry=REGISTRY)
ACTIONS = Counter("credit_dashboard_review_actions", "Review actions taken in the dashboard, by action and outcome",
                  ["action", "outcome"], registry=REGISTRY)
REFUSED_VIEWS = Counter("credit_dashboard_refused_views", "Views and reports refused to a signed-in user's role", registry=REGISTRY)
SESSIONS = Gauge("credit_dashboard_sessions_open", "Sign-in sessions open now (not ended, idle or expired)", registry=REGISTRY)
LOCKED = Gauge("credit_dashboard_accounts_locked", "Accounts locked after failed sign-ins", registry=REGISTRY)
