"""Every setting of the platform, in one typed place: `CREDIT_*` environment variables with the
defaults below, read when used (`current()` reads the environment afresh, so a process that
changes it, or a test, is heard at once). Everything else takes what it needs as arguments.

Where state lives: everything is under CREDIT_HOME (default ./.credit). The README's settings
table is checked against this class by a test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_SYNTHETIC_SCALE = 0.02  # about 6,000 labelled applicants: a run of a few minutes
DEFAULT_SYNTHETIC_SEED = 42


class _FromFiles(PydanticBaseSettingsSource):
    """CREDIT_<NAME>_FILE: the setting read from that file, as container platforms mount secrets
    (a cookie secret, a broker URL with its password), so it is in no environment listing."""

    def get_field_value(self, field, field_name):  # every field is read in __call__
        return None, field_name, False

    def __call__(self) -> dict:
        values = {}
        for name in self.settings_cls.model_fields:
            variable = f"{env_name(name)}_FILE"
            if variable not in os.environ:
                continue
            if env_name(name) in os.environ:
                raise ValueError(f"both {env_name(name)} and {variable} are set: keep one")
            try:
                values[name] = Path(os.environ[variable]).read_text().rstrip("\n")
            except OSError as error:
                raise ValueError(f"{variable}: cannot read {os.environ[variable]} ({error.strerror})") from None
        return values


class Settings(BaseSettings):
    """The environment variable of each field is CREDIT_ and its name in capitals; CREDIT_<NAME>_FILE
    reads it from a file instead."""

    model_config = SettingsConfigDict(env_prefix="CREDIT_", extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return init_settings, env_settings, _FromFiles(settings_cls)

    # where state lives
    home: Path = Field(Path(".credit"), description="everything the platform writes: warehouse, Dagster, models, reports")
    data_dir: Path | None = Field(None, description="the folder of Kaggle-layout files (default: the generated SYNTHETIC set)")
    inbox: Path | None = Field(None, description="daily drops of new applications (default CREDIT_HOME/inbox)")
    serving_snapshot: Path | None = Field(None, description="the read-only snapshot (default CREDIT_HOME/serving/serving.duckdb)")
    umask: str = Field("077", pattern=r"^0?[0-7]{3}$", description="the permission mask of everything the platform writes "
                                                                  "(077: its own user only; 027 lets its group read)")
    # resources
    threads: int = Field(0, ge=0, description="LightGBM's and DuckDB's threads (0: the physical cores)")
    duckdb_memory_limit: str = Field("4GB", description="DuckDB's memory limit for the warehouse, and for each step of a worker (it spills past it)")
    quality_sample_rows: int = Field(2_000_000, gt=0, description="value-set and range checks above this many rows use a seeded sample")
    log_level: str = Field("INFO", description="what the CLI prints of a run's log")
    log_format: Literal["text", "json"] = Field("text", description="the API's and the dashboard's log lines: text, or one JSON object per line")
    # what people read
    currency: str = Field("EUR", description="the currency amounts are shown in (the Kaggle data states none)")
    # model gates
    min_auc: float = Field(0.60, description="a model's cross-validated ROC AUC must be above this")
    max_ece: float = Field(0.03, description="a model's expected calibration error must be under this")
    max_mean_pd_gap: float = Field(0.01, description="the mean out-of-fold PD must be this close to the default rate")
    fairness_severity: Literal["warn", "error"] = Field("warn", description="`error` makes the fairness check fail the run")
    cost_false_negative: float = Field(10.0, gt=0, description="what granting a credit that defaults costs, against a wrongly refused good client's")
    cost_false_positive: float = Field(1.0, gt=0, description="what refusing a client who would have repaid costs")
    refer_margin: float = Field(0.02, ge=0, lt=0.5, description="applications within this probability of the threshold go to an advisor")
    max_reject_share: float = Field(0.01, ge=0, le=1, description="the share of unparsable rows past which a file's load fails (rows quarantined)")
    fairness_min_equal_opportunity: float = Field(0.8, description="repayers' approval rate against the most approved group's")
    fairness_max_calibration_gap: float = Field(0.02, description="a group's predicted minus observed default rate, beyond its interval")
    # human review
    review_journal_dir: Path | None = Field(None, description="the review journal (default CREDIT_HOME/review/journal)")
    review_service_days: int = Field(2, ge=1, description="working days within which a case should be decided")
    review_holidays: str = Field("", description="the lender's days off besides weekends (YYYY-MM-DD, comma-separated): "
                                                 "not counted as working days")
    lender_name: str = Field("Your lender", description="who signs the letters to clients")
    review_contact: str = Field("your advisor, by phone or at your branch", description="how a client asks for a human review (letters)")
    demo: bool = Field(False, description="a demonstration: letters about real applicants may be signed with the default lender "
                                          "name and contact (otherwise they refuse to, until both are set)")
    # outcomes and back-testing
    outcomes_inbox: Path | None = Field(None, description="outcome files (loan_outcomes.csv, any subfolder; default CREDIT_HOME/outcomes/inbox)")
    backtest_min_outcomes: int = Field(100, ge=1, description="outcomes a vintage (or grade) needs before it is judged")
    backtest_min_defaults: int = Field(5, ge=1, description="defaults (and repayers) a vintage needs before its AUC is judged")
    backtest_auc_tolerance: float = Field(0.05, ge=0, description="a realized AUC this far under development's interval fails (less: warns)")
    outcome_final_months: int = Field(12, ge=1, description="months on book after which an outcome without difficulties is final (a label)")
    retrain_min_outcomes: int = Field(1000, ge=1, description="outcomes judged before failing back-test checks ask for a retrain")
    # retention (retention/policy.py; 0 keeps forever)
    retention_drop_days: int = Field(730, ge=0, description="days a night's drop (inbox folder, warehouse tables and features) is kept: "
                                                           "its decisions can be replayed until then")
    retention_decision_days: int = Field(1826, ge=0, description="days decisions and their audit (nights' and on-demand) are kept")
    retention_access_days: int = Field(365, ge=0, description="days the access logs (dashboard access, API reads) are kept")
    retention_cron: str = Field("30 5 * * *", description="when the daily retention job runs (cron, Europe/Paris)")
    # the nightly check of the sealed decisions (core/seals.py); `credit-dagster audit verify` checks every night
    seal_check_recent_nights: int = Field(30, ge=0, description="the latest sealed nights whose decisions each night's check "
                                          "chains again (0: every sealed night, every night)")
    seal_check_rotation_nights: int = Field(30, ge=1, description="the older sealed nights are chained again in turn, each "
                                            "at least once in this many nights")
    # the night
    nightly_cron: str = Field("0 2 * * *", description="when the nightly schedule scores the day that ended (cron, Europe/Paris); "
                              "the late-drop sensor still waits until 03:00")
    empty_days_alert: int = Field(3, description="weekdays in a row without a drop before the schedule logs an error")
    retrain_nights: int = Field(3, description="nights of severe drift before the retraining sensor asks for a retrain")
    retrain_psi: float = Field(0.25, description="the PSI that counts as severe drift for the retraining sensor")
    # the production deployment (deploy/): Dagster's workspace file reads these two itself
    code_server_host: str = Field("127.0.0.1", description="where the code server (`dagster api grpc`) listens; "
                                  "set it for the webserver and the daemon (their workspace file has no default)")
    code_server_port: int = Field(4266, description="the code server's port; set it likewise")
    # past one machine (README "Scaling past one machine")
    storage: Literal["warehouse", "datasets"] = Field("warehouse", description="where nights are written: the warehouse file "
                                                       "(one writer), or Parquet datasets by night and shard that many workers write")
    datasets: str | None = Field(None, description="the datasets' root: a folder or an fsspec URL (default CREDIT_HOME/datasets)")
    shards: int = Field(4, ge=1, le=99, description="applicant shards of a night (datasets storage): SK_ID_CURR mod this, "
                                                   "each a run of its own")
    executor: Literal["in_process", "celery"] = Field("in_process", description="where a night's runs run their steps: in "
                                                     "the run's process, or on Celery workers (`credit-dagster worker`)")
    celery_broker: str = Field("pyamqp://guest:guest@127.0.0.1:5672//", description="the Celery broker (RabbitMQ)")
    celery_backend: str = Field("rpc://", description="where Celery workers send results back")
    # the API
    tls_cert: Path | None = Field(None, description="a PEM certificate (chain): the API and the dashboard serve HTTPS with it and CREDIT_TLS_KEY")
    tls_key: Path | None = Field(None, description="the certificate's private key (PEM, readable by the platform's user only)")
    api_host: str = Field("127.0.0.1", description="where the API listens")
    api_port: int = Field(8000, description="the API's port")
    api_max_batch: int = Field(1000, gt=0, description="applications per batch call")
    api_contests_per_day: int = Field(500, ge=1, description="contests one API key may record in a day (a flood cannot fill the queue)")
    api_max_body_bytes: int = Field(20_000_000, gt=0, description="larger bodies get 413")
    api_scorers: int = Field(2, ge=1, description="on-demand rounds scored at once, one process each")
    api_keys: Path | None = Field(None, description="the API key store (default CREDIT_HOME/api_keys.json)")
    api_audit_dir: Path | None = Field(None, description="the API's audit journal (default CREDIT_HOME/api/audit)")
    metrics_dir: Path | None = Field(None, description="each night's figures for Prometheus' node exporter (default CREDIT_HOME/metrics)")
    # the dashboard
    service: str | None = Field(None, description="what a container of the image runs: the service `credit-dagster health` checks")
    dashboard_host: str = Field("127.0.0.1", description="where the dashboard listens")
    dashboard_port: int = Field(5006, description="the dashboard's port")
    dashboard_origins: str = Field("", description="host:port of the address users open (a proxy's), comma-separated; default localhost")
    dashboard_users: Path | None = Field(None, description="the users file (default CREDIT_HOME/dashboard/users.json)")
    dashboard_access_dir: Path | None = Field(None, description="the access log (default CREDIT_HOME/dashboard/access)")
    dashboard_cookie_secret: str | None = Field(None, description="the sign-in cookie's secret (default: generated once)")
    dashboard_idle_minutes: float = Field(15, gt=0, description="a dashboard session without a click for this long is signed out")
    dashboard_session_hours: float = Field(10, gt=0, description="a dashboard session ends this long after sign-in, whatever its use")
    dashboard_lock_after: int = Field(10, ge=1, description="failed sign-ins in a row that lock an account until a supervisor or the CLI lifts it")
    dashboard_oauth_provider: str | None = Field(None, description="a bank's identity provider for Panel's OAuth (e.g. generic)")
    dashboard_role_claim: str = Field("credit_role", description="the identity provider's claim that says advisor or supervisor")


_read: tuple[tuple, Settings] | None = None
# CPython keeps the environment as bytes in os.environ._data; reading it there skips decoding every
# name of the environment on each call (130 µs on a server's environment: an API request asks twice)
_ENVIRON = getattr(os.environ, "_data", None)


def current() -> Settings:
    """The settings as the environment gives them now. Read anew when a CREDIT_* variable changed
    (building them costs milliseconds, and a dashboard page asks hundreds of times)."""
    global _read
    if isinstance(_ENVIRON, dict) and _ENVIRON is getattr(os.environ, "_data", None):
        key = tuple(sorted((k, v) for k, v in _ENVIRON.items() if k.startswith(b"CREDIT_")))
    else:
        key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("CREDIT_")))
    if _read is None or _read[0] != key:
        _read = (key, Settings())
    return _read[1]


def env_name(field: str) -> str:
    return f"CREDIT_{field.upper()}"


@contextmanager
def home_at(home: Path) -> Iterator[None]:
    """The settings with CREDIT_HOME at `home` for the block (a restored home worked on before it is used)."""
    name = env_name("home")
    kept, os.environ[name] = os.environ.get(name), str(home)
    try:
        yield
    finally:
        if kept is None:
            os.environ.pop(name)
        else:
            os.environ[name] = kept


def credit_home() -> Path:
    return current().home.expanduser().resolve()


def warehouse_path() -> Path:
    return credit_home() / "warehouse.duckdb"


def dagster_home() -> Path:
    # DAGSTER_HOME is Dagster's own variable: it wins when set
    return Path(os.environ.get("DAGSTER_HOME") or credit_home() / "dagster").resolve()


def reports_dir() -> Path:
    return credit_home() / "reports"


def synthetic_default_dir() -> Path:
    return credit_home() / "data" / "synthetic_default"


def remembered_data_dir() -> Path:
    """Where a CREDIT_HOME records the folder it was built from (`credit-dagster run` writes it)."""
    return credit_home() / "data_dir.txt"


def data_dir() -> Path:
    """The folder of source CSVs: CREDIT_DATA_DIR, else the folder this CREDIT_HOME was built from.
    Never a silent fallback to the synthetic set: a UI or a daemon started without CREDIT_DATA_DIR on
    a home built from real data must not retrain on synthetic applicants (LookupError instead)."""
    configured = current().data_dir
    if configured:
        return configured.expanduser().resolve()
    if remembered_data_dir().exists():
        return Path(remembered_data_dir().read_text().strip())
    raise LookupError(f"no data folder known for {credit_home()}: set CREDIT_DATA_DIR, or build this home first with "
                      "`credit-dagster run --data-dir DIR` (which remembers DIR)")


def models_dir() -> Path:
    return credit_home() / "models"


def under_home(configured: Path | None, *default: str) -> Path:
    """A configured path, else the default one under CREDIT_HOME."""
    return (configured or credit_home().joinpath(*default)).expanduser()


def physical_cores() -> int:
    """Cores this process may use, counting hyper-threads once: LightGBM slows down several-fold
    when its threads outnumber the physical cores and another process is busy."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        pairs, physical = set(), None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "physical id":
                physical = value.strip()
            elif key.strip() == "core id":
                pairs.add((physical, value.strip()))
        cores = len(pairs) or usable
    except OSError:
        cores = usable
    return max(1, min(cores, usable))


def threads() -> int:
    """CREDIT_THREADS (default: the physical cores) bounds LightGBM's and DuckDB's threads."""
    return current().threads or physical_cores()


def markdown_table() -> str:
    """The README's settings table, written from the fields above (`python -m credit_dagster.core.settings`)."""
    rows = ["| variable | default | what it sets |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = "" if field.default is None else str(field.default)
        rows.append(f"| `{env_name(name)}` | {default or '(see right)'} | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())


def unsigned_letters() -> list[str]:
    """The letter settings still at their defaults (a real client would read "Your lender"), unless CREDIT_DEMO."""
    now = current()
    if now.demo:
        return []
    return [f"CREDIT_{name.upper()}" for name in ("lender_name", "review_contact") if getattr(now, name) == Settings.model_fields[name].default]


def tls() -> tuple[str, str] | None:
    """The certificate and key files the servers use for HTTPS, or None for plain HTTP (ValueError: only one given)."""
    now = current()
    if bool(now.tls_cert) != bool(now.tls_key):
        raise ValueError("give both CREDIT_TLS_CERT and CREDIT_TLS_KEY, or neither")
    return (str(now.tls_cert), str(now.tls_key)) if now.tls_cert else None


def plain_http_warning(host: str) -> str | None:
    """What to say when a server would speak plain HTTP beyond this machine."""
    if tls() is None and host not in ("127.0.0.1", "localhost", "::1"):
        return (f"serving plain HTTP on {host}: passwords, cookies and client data cross the network unencrypted; set "
                "CREDIT_TLS_CERT and CREDIT_TLS_KEY, or put a TLS proxy in front (docs/security.md)")
    return None
