"""The relationship managers' dashboard: `credit-dagster dashboard` (or `python -m panel_app.app`).

It starts only behind a sign-in (a users file, or an OAuth/OIDC provider), unless told
`--no-login` for a local look at synthetic data.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import jinja2
import panel as pn
from panel.io.server import AuthenticatedStaticFileHandler
from prometheus_client import generate_latest
from tornado.web import HTTPError, OutputTransform, RequestHandler, authenticated

from credit_dagster.core import logs, settings
from credit_dagster.core.settings import reports_dir
from panel_app import auth, metrics
from panel_app.data_store import SnapshotStore
from panel_app.views import PAGE_CSS, dashboard

TITLE = "Credit decisions: why each application was decided so"

pn.extension(raw_css=[PAGE_CSS])


PAGE = jinja2.Environment(loader=jinja2.FileSystemLoader(auth.TEMPLATES), autoescape=True).get_template("page.html")


def create_app() -> pn.viewable.Viewable:
    pn.state.curdoc.template = PAGE
    user = pn.state.user or auth.NO_LOGIN
    return dashboard(SnapshotStore(), user, auth.role_of(user, pn.state.user_info), session=auth.page_session(user))


# Panel's pages run inline scripts and Bokeh's callbacks compile code in the browser, so scripts
# need 'unsafe-inline' and 'unsafe-eval'; everything else is this server's own: nothing is loaded
# from, sent to or framed by another site.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:; worker-src 'self' blob:; "
                           "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
                           "frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'")


class SecurityHeaders(OutputTransform):
    """Every answer of the dashboard's server (pages, sign-in, reports, scripts) says: never framed,
    never sniffed, no referrer, this content security policy; over HTTPS, HTTPS only from then on."""

    def __init__(self, request):
        super().__init__(request)
        self.request = request

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        if self.request.protocol == "https":
            headers["Strict-Transport-Security"] = "max-age=31536000"
        return status_code, headers, chunk


# what only a supervisor reads: whole-population figures of the platform (drift, the raw data's profile)
SUPERVISOR_REPORTS = ("drift/", "raw_data_profile")


class ReportHandler(AuthenticatedStaticFileHandler):
    """The reports behind the sign-in, each to the role that may read it: the model card to every
    signed-in user, the drift reports and the raw data's profile to supervisors (an advisor asking
    for one by its address is refused, and it is logged)."""

    @authenticated
    async def get(self, path: str, include_body: bool = True):
        signed_in = self.application.auth_provider.get_user is not None
        if signed_in and path.startswith(SUPERVISOR_REPORTS) and auth.role_of(self.current_user) != auth.SUPERVISOR:
            metrics.REFUSED_VIEWS.inc()
            auth.record(self.current_user, "refused: a supervisor's report", report=path[:100])
            raise HTTPError(403, "a supervisor's report")
        return await super().get(path, include_body)


class MetricsHandler(RequestHandler):
    """GET /metrics, without sign-in (Prometheus scrapes it): counts only; the gauges read when
    scraped from the files the server keeps."""

    def get(self):
        metrics.SESSIONS.set(auth.Sessions().open_count(time.time()))
        metrics.LOCKED.set(len(auth.locked()))
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.write(generate_latest(metrics.REGISTRY))


def server_options(no_login: bool) -> dict:
    """How users sign in, from the environment: an OAuth provider, else the users file."""
    provider = settings.current().dashboard_oauth_provider
    if provider:
        return {"oauth_provider": provider, "cookie_secret": auth.cookie_secret(),
                "logout_template": str(auth.SIGN_IN_PAGE)}
    if auth.read_users():
        return {"auth_provider": auth.HashedAuthProvider(), "cookie_secret": auth.cookie_secret()}
    if no_login:
        return {}
    raise SystemExit(f"No dashboard user in {auth.users_path()} and no CREDIT_DASHBOARD_OAUTH_PROVIDER: create one with "
                     "`credit-dagster dashboard-user add NAME`, or start with --no-login for a local look.")


def serve(port: int, address: str, no_login: bool = False) -> None:
    logs.configure()  # Tornado's and Panel's lines too, in the configured format
    options = server_options(no_login)
    reports_dir().mkdir(parents=True, exist_ok=True)
    # A server stops on SIGTERM however it was started: a process that ran a Dagster job maps
    # SIGTERM to its SIGINT handler, ignored in a script's background job, and children inherit
    # an ignored signal (Panel handles SIGINT itself).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if warning := settings.plain_http_warning(address):
        print(f"warning: {warning}", file=sys.stderr)
    tls = settings.tls()
    if unset := settings.unsigned_letters():  # said at start, not first by a client's missing letter
        print(f"warning: letters to real clients are refused until {' and '.join(unset)} are set (or CREDIT_DEMO=true)",
              file=sys.stderr)
    # BokehJS, Panel's scripts and the reports all come from this server: no internet needed.
    # The reports (model card, drift) sit behind the same sign-in as the page, each for its roles.
    # the page's websocket is accepted only from the addresses users open (another site's page
    # cannot drive a signed-in user's session): localhost:port unless CREDIT_DASHBOARD_ORIGINS says
    origins = [o.strip() for o in settings.current().dashboard_origins.split(",") if o.strip()] or None
    pn.serve({"app": create_app}, port=port, address=address, show=False, title=TITLE, transforms=[SecurityHeaders], websocket_origin=origins,
             extra_patterns=[(r"/reports/(.*)", ReportHandler, {"path": str(reports_dir()), "default_filename": "index.html"}),
                             (r"/metrics", MetricsHandler)],
             **({"ssl_certfile": tls[0], "ssl_keyfile": tls[1]} if tls else {}), **options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    configured = settings.current()
    parser.add_argument("--port", type=int, default=configured.dashboard_port)
    parser.add_argument("--address", default=configured.dashboard_host)
    parser.add_argument("--no-login", action="store_true", help="no sign-in (local use only; every access is logged as such)")
    args = parser.parse_args(argv)
    try:
        serve(args.port, args.address, args.no_login)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if pn.state.served:
    create_app().servable(title=TITLE)

if __name__ == "__main__":
    sys.exit(main())
