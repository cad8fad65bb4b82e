"""`credit-dagster`: generate synthetic data, run the whole pipeline, open the UI."""

from __future__ import annotations

import argparse
import errno
import functools
import getpass
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from credit_dagster.core import formats, logs, settings


def _synth(args: argparse.Namespace) -> int:
    from credit_dagster.synth.generator import generate

    started = time.perf_counter()
    rows = generate(args.out, scale=args.scale, seed=args.seed, progress=not args.quiet)
    print(f"SYNTHETIC data (scale {args.scale}, seed {args.seed}) written to {Path(args.out).resolve()} "
          f"in {time.perf_counter() - started:.1f}s:")
    for table, n in rows.items():
        print(f"  {table:24s} {n:>12,} rows")
    return 0


class CliError(Exception):
    """A failure the user can act on: printed as one line (the traceback only with --verbose)."""


def resolve_data_dir(data_dir: str | None, *, generate: bool = True) -> Path:
    """--data-dir, else CREDIT_DATA_DIR, else the folder this CREDIT_HOME was built from, else
    (for `run` only) the synthetic default, generated once."""
    if data_dir:
        folder = Path(data_dir).expanduser().resolve()
    elif settings.current().data_dir:
        folder = settings.data_dir()
    elif settings.remembered_data_dir().exists():
        folder = settings.data_dir()
    elif not generate:
        raise CliError(f"no data folder known for {settings.credit_home()}: run `credit-dagster run --data-dir DIR` "
                       "first, or pass --data-dir")
    else:
        folder = settings.synthetic_default_dir()
        if not (folder / "SYNTHETIC.txt").exists():
            from credit_dagster.synth.generator import generate as make

            print(f"No --data-dir and no CREDIT_DATA_DIR: generating the SYNTHETIC default data set "
                  f"(scale {settings.DEFAULT_SYNTHETIC_SCALE}, seed {settings.DEFAULT_SYNTHETIC_SEED}) in {folder}")
            make(folder, settings.DEFAULT_SYNTHETIC_SCALE, settings.DEFAULT_SYNTHETIC_SEED)
    if not folder.is_dir():
        raise CliError(f"data folder {folder} does not exist")
    _has_kaggle_files(folder)
    label = "SYNTHETIC " if (folder / "SYNTHETIC.txt").exists() else ""
    print(f"Using {label}data in {folder}")
    return folder


def _build_stamp(data_dir: Path) -> dict:
    """What a build depends on: the data files (name, size, modification time) and the code
    (package and SQL models, by content). A run whose stamp matches the last successful build's
    goes straight to scoring: signing off a model and running again retrains nothing."""
    from credit_dagster.features.sql_models import SQL_DIR

    digest = hashlib.sha256()
    for path in sorted([*Path(__file__).parent.rglob("*.py"), *SQL_DIR.rglob("*.sql")]):
        digest.update(path.read_bytes())
    files = {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(data_dir.iterdir()) if p.is_file()}
    return {"data_dir": str(data_dir), "files": files, "code": digest.hexdigest()}


def _has_kaggle_files(folder: Path) -> None:
    """One line naming every Kaggle file the folder lacks, before any run starts (each missing
    file would otherwise fail its own ingestion step)."""
    from credit_dagster.core.sources import SOURCE_TABLES
    from credit_dagster.ingest.loaders import SourceFileError, find_source_file

    missing = []
    for spec in SOURCE_TABLES.values():
        try:
            find_source_file(folder, spec)
        except SourceFileError:
            missing.append(f"{spec.file_stem}.csv")
    if missing:
        raise CliError(f"{folder} is not a folder of Home Credit files: {len(missing)} of {len(SOURCE_TABLES)} missing "
                       f"({', '.join(missing)}; plain or .csv.gz)")


def _day(text: str) -> str:
    """argparse type: a calendar day written YYYY-MM-DD."""
    from datetime import date

    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day written YYYY-MM-DD (for example 2026-11-18)") from None


def _execute(job_name: str, data_dir: Path, partition_key: str | None = None, tags: dict[str, str] | None = None) -> bool:
    """Run one job in-process against the persistent instance; print what happened."""
    import dagster as dg

    from credit_dagster.core.resources import Warehouse
    from credit_dagster.instance import execute_as_launched
    from credit_dagster.monitoring import incidents
    from credit_dagster.monitoring.recovery import recover_dead_runs, run_tags

    with dg.DagsterInstance.get() as instance:
        for line in recover_dead_runs(instance):
            print(f"recovered: {line}")
        result = execute_as_launched(
            instance, job_name,
            run_config={
                "resources": {"source": {"config": {"data_dir": str(data_dir)}}},
                # step-by-step DEBUG events stay in the run's event log (and the UI), not on the terminal
                "loggers": {"console": {"config": {"log_level": settings.current().log_level}}},
            },
            tags={**run_tags(), **(tags or {})}, partition_key=partition_key,
        )
    materialized = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    label = job_name + (f" [{partition_key}]" if partition_key else "")
    print(f"{label} run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}; {len(materialized)} assets materialized")
    for check in checks:
        if not check.passed:
            print(f"  check {check.asset_key.to_user_string()}:{check.check_name} FAILED ({check.severity.value}): {check.description}")
    print(f"  {sum(c.passed for c in checks)} of {len(checks)} checks passed")
    if not result.success:
        failures = []
        for event in result.all_events:
            if event.is_failure and event.step_key:
                reason = incidents.root_cause(event.event_specific_data.error)
                print(f"  step {event.step_key} failed: {reason}")
                failures.append((event.step_key, reason))
        with Warehouse().connect() as con:
            step, reason = failures[0] if failures else (None, "the run failed before any step")
            incidents.record(con, run_id=result.run_id, job=job_name, partition_key=partition_key, step=step, reason=reason,
                             origin="credit-dagster CLI")
        print(f"  recorded in monitoring.incidents; full log: credit-dagster ui, run {result.run_id[:8]}")
    return result.success


def _night(data_dir: Path, day: str, rescore_reason: str | None = None) -> bool:
    """Score the night of `day`: its one run, or on the datasets (CREDIT_STORAGE=datasets) its
    landing, each shard and the publish step, one after another in this process, up to the first
    that fails (what follows it would fail on the night's missing part)."""
    import dagster as dg

    from credit_dagster.nightly import partitions
    from credit_dagster.nightly.schedules import night_runs
    from credit_dagster.review.rescore import REASON_TAG

    with dg.DagsterInstance.get() as instance:
        partitions.register(instance, [day])
    tags = {REASON_TAG: rescore_reason} if rescore_reason else None
    return all(_execute(job, data_dir, key, tags) for job, key in night_runs(day, settings.current()))


def _scored_nights() -> set[str]:
    """The nights whose decisions were published (their serving snapshot materialized)."""
    import dagster as dg

    from credit_dagster.core.keys import SNAPSHOT

    with dg.DagsterInstance.get() as instance:
        return set(instance.get_materialized_partitions(SNAPSHOT))


def _would_change(day: str) -> str:
    """What scoring `day` again with today's champion would change, said before it is done."""
    import duckdb

    from credit_dagster.core.resources import Warehouse
    from credit_dagster.decision import scoring
    from credit_dagster.model.registry import Registry
    from credit_dagster.nightly import drops

    model = Registry(settings.models_dir()).load("champion")
    with Warehouse().connect() as con:
        try:
            stored = con.execute("select SK_ID_CURR, decision from scoring.scored_applications where partition_date = ?", [day]).df()
            features = con.execute(f"select * from {drops.drop_schema(day)}_features.application_features").df()
        except duckdb.CatalogException as missing:  # a night whose tables were swept: the preview is skipped, saying why
            return f"  (no preview: {str(missing).splitlines()[0]})"
        dictionary = con.execute("select * from features.feature_dictionary").df()
    new = scoring.score_frame(model, features, dictionary)[["SK_ID_CURR", "decision"]]
    both = stored.merge(new, on="SK_ID_CURR", suffixes=("_before", "_after"))
    moved = both[both["decision_before"] != both["decision_after"]]
    kinds = moved.groupby(["decision_before", "decision_after"]).size()
    return (f"  scoring {day} again with {model.version}: {len(moved):,} of {len(both):,} decisions would change"
            + "".join(f"\n    {n:,} {a} -> {b}" for (a, b), n in kinds.items())
            + ("\n  each keeps its earlier decision standing, and a review case opens for a person to decide" if len(moved) else ""))


def _run(args: argparse.Namespace) -> int:
    from credit_dagster.instance import prepare_dagster_home
    from credit_dagster.nightly import drops

    data_dir = resolve_data_dir(args.data_dir)
    prepare_dagster_home()
    settings.remembered_data_dir().write_text(str(data_dir))
    print(f"CREDIT_HOME={settings.credit_home()}  warehouse={settings.warehouse_path()}  DAGSTER_HOME={settings.dagster_home()}")
    from credit_dagster.model.registry import Registry

    registry = Registry(settings.models_dir())
    stamp, built = _build_stamp(data_dir), settings.credit_home() / "build_stamp.json"
    if not args.rebuild and registry.versions() and built.exists() and json.loads(built.read_text()) == stamp:
        print("build_all: up to date (same data files and code as the last successful build), not run again; "
              "--rebuild forces it")
    elif _execute("build_all", data_dir):
        built.write_text(json.dumps(stamp))
    else:
        return 1
    if registry.alias("champion") is None:
        raise CliError(f"no champion model, so nothing can be scored: the fairness or promotion gate held {registry.versions()[-1]} "
                       f"back (see champion_model above and the model card {settings.reports_dir() / 'model_card.html'}). After "
                       f"review: credit-dagster promote {registry.versions()[-1]} --reason \"...\", then credit-dagster run again "
                       "(it scores without rebuilding)")
    inbox = drops.inbox_dir()
    if not drops.days_in_inbox(inbox)[0]:
        counts = drops.replay(data_dir, inbox, args.replay_days, _default_start(args.replay_days))
        print(f"inbox empty: replayed application_test as {len(counts)} daily drops in {inbox}: {counts}")
    days, scored = drops.days_in_inbox(inbox)[0], _scored_nights()
    if scored & set(days):
        print(f"{len(scored & set(days))} night(s) of the inbox already scored: their decisions stand, not made again "
              "(credit-dagster score --start DAY --rescore --reason \"...\" scores one again)")
    ok = all([_night(data_dir, day) for day in days if day not in scored])
    print(f"serving snapshot: {settings.credit_home() / 'serving' / 'serving.duckdb'}; reports: {settings.reports_dir()}")
    return 0 if ok else 1


def _default_start(days: int):
    from datetime import timedelta

    from credit_dagster.nightly import drops

    # drops for the last `days` complete days in Paris, so yesterday's is the newest
    return drops.today() - timedelta(days=days)


def _replay(args: argparse.Namespace) -> int:
    from datetime import date

    from credit_dagster.nightly import drops

    start = date.fromisoformat(args.start) if args.start else _default_start(args.days)
    counts = drops.replay(resolve_data_dir(args.data_dir, generate=False), drops.inbox_dir(), args.days, start, labelled=args.labelled)
    for day, n in counts.items():
        print(f"  {drops.inbox_dir() / day}: {n} applications")
    return 0


def _score(args: argparse.Namespace) -> int:
    from datetime import date, timedelta

    from credit_dagster.instance import prepare_dagster_home
    from credit_dagster.nightly import drops

    data_dir = resolve_data_dir(args.data_dir, generate=False)
    prepare_dagster_home()
    first, last = date.fromisoformat(args.start), date.fromisoformat(args.end or args.start)
    today = drops.today()
    if last < first:
        raise CliError(f"--end {last} is before --start {first}")
    if last >= today:
        raise CliError(f"{last} has not ended yet in Europe/Paris (today is {today}): a night is scored once its day is over")
    if args.rescore and not (args.reason or "").strip():
        raise CliError("--rescore needs --reason \"...\": why decisions already made are scored again (kept in the review journal)")
    ok, scored = True, _scored_nights()
    for day in [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]:
        if not drops.has_drop(drops.inbox_dir(), day):
            print(f"{day}: no drop in {drops.inbox_dir() / day}: nothing to score (a night without applications is normal)")
            continue
        if day in scored and not args.rescore:
            print(f"{day}: already scored: its decisions stand (--rescore --reason \"...\" scores it again)")
            continue
        if day in scored:
            print(_would_change(day))
            if args.dry_run:
                continue
        elif args.dry_run:
            print(f"{day}: not scored yet")
            continue
        ok = _night(data_dir, day, args.reason if day in scored else None) and ok
    return 0 if ok else 1


def _deliver(frame, folder: str, what: str) -> None:
    from credit_dagster.outcomes import assets as outcomes
    from credit_dagster.outcomes import reports

    target = outcomes.inbox() / folder / reports.FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(target, index=False)
    print(f"{what}: {len(frame):,} granted applications, {int(frame['TARGET'].sum()):,} with payment difficulties, in {target}")


def _outcomes(args: argparse.Namespace) -> int:
    """Outcomes of the granted applications into the outcomes inbox (SYNTHETIC ones, or the real
    labelled applicants' TARGET), then (or only) the back-test."""
    import duckdb

    from credit_dagster.instance import prepare_dagster_home
    from credit_dagster.nightly import drops
    from credit_dagster.outcomes import assets as outcomes
    from credit_dagster.synth import outcomes as synthetic

    data_dir = resolve_data_dir(args.data_dir, generate=False)
    if args.synthetic_months or args.labelled_outcomes:
        with duckdb.connect(str(settings.warehouse_path()), read_only=True) as con:
            granted = con.execute(f"select SK_ID_CURR, partition_date from ({outcomes.decisions_sql(con)}) "
                                  "where final_decision = 'granted'").df()
        if args.synthetic_months:
            _deliver(synthetic.outcomes(data_dir, granted, args.synthetic_months), f"synthetic_{args.synthetic_months:02d}_months",
                     "SYNTHETIC outcomes")
        if args.labelled_outcomes:
            _deliver(drops.labelled_outcomes(data_dir, granted), "labelled_12_months", "the labelled applicants' outcomes")
    prepare_dagster_home()
    return 0 if _execute("backtest", data_dir) else 1


def _promote(args: argparse.Namespace) -> int:
    from credit_dagster.model import model_card
    from credit_dagster.model.registry import Registry

    registry = Registry(settings.models_dir())
    if args.version not in registry.versions():
        raise CliError(f"no model {args.version} in {registry.root} (versions: {', '.join(registry.versions()) or 'none'})")
    if not args.reason.strip():
        raise CliError("--reason must say why the model is signed off (it goes into the registry and the model card)")
    registry.promote(args.version, f"signed off by {getpass.getuser()}: {args.reason.strip()}")
    path = model_card.write(registry, args.version, settings.reports_dir())
    _report_champion(args.version, registry.history()[-1]["reason"])
    print(f"{args.version} is now the champion (signed off by {getpass.getuser()}); model card: {path}\n"
          "next: credit-dagster run (scores the inbox without rebuilding), or credit-dagster score --start YYYY-MM-DD")
    return 0


def _report_champion(version: str, reason: str) -> None:
    """Tell the Dagster instance, so the UI's model/champion_model shows the signed-off champion
    (a sign-off happens outside any run)."""
    import dagster as dg

    from credit_dagster.instance import prepare_dagster_home
    from credit_dagster.model.assets import CHAMPION

    prepare_dagster_home()
    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=CHAMPION, description="signed off with credit-dagster promote",
            metadata={"candidate": version, "champion": version, "promoted": True, "reason": reason}))


def _ui(args: argparse.Namespace) -> int:
    from credit_dagster.instance import prepare_dagster_home

    # Runs launched from the UI read the same data as `run` would: in dagster dev's environment.
    data_dir = resolve_data_dir(args.data_dir, generate=False)
    prepare_dagster_home()
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.exists() else ["-m", "credit_dagster.definitions"]
    # The dagster command installed beside this Python, so an unactivated venv works too.
    dagster = Path(sys.executable).with_name("dagster")
    # dagster dev maps SIGTERM to SIGINT's handler; a process started with SIGINT ignored (a
    # background job of a script, nohup) would then ignore SIGTERM too: restore the defaults
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execve(dagster, [str(dagster), "dev", *target, "-p", str(args.port)], {**os.environ, "CREDIT_DATA_DIR": str(data_dir)})


def _worker(args: argparse.Namespace) -> int:
    """A Celery worker for the nightly steps (CREDIT_EXECUTOR=celery): `celery worker` on
    dagster-celery's app, configured as the executor is (nightly.schedules.celery_config)."""
    from credit_dagster.nightly.schedules import celery_config

    config = celery_config(settings.current())
    folder = settings.credit_home().resolve() / "celery"
    folder.mkdir(parents=True, exist_ok=True)
    # dagster-celery's app reads its settings from this module when it can import it
    lines = [f"broker_url = {config['broker']!r}", f"result_backend = {config['backend']!r}",
             *[f"{key} = {value!r}" for key, value in config["config_source"].items()],
             # imported by the worker's main process: each step's fresh child is forked with the code location loaded
             "import credit_dagster.definitions  # noqa: E402,F401"]
    (folder / "dagster_celery_config.py").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}
    if args.threads:
        env["CREDIT_THREADS"] = str(args.threads)
    if args.memory_limit:
        env["CREDIT_DUCKDB_MEMORY_LIMIT"] = args.memory_limit
    celery = Path(sys.executable).with_name("celery")
    name, queues = args.name or f"credit-{os.getpid()}@%h", args.queue or ["dagster"]
    threads, memory = args.threads or settings.threads(), args.memory_limit or settings.current().duckdb_memory_limit
    print(f"Celery worker {name} on {config['broker']}, queues {', '.join(queues)}; one step at a time, on {threads} thread(s), "
          f"DuckDB within {memory}")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execve(celery, [str(celery), "-A", "dagster_celery.app", "worker", "--concurrency", "1", "--prefetch-multiplier", "1",
                       "-Q", ",".join(queues), "-n", name, "--loglevel", "INFO", "--without-gossip", "--without-mingle"], env)


def _api(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from credit_dagster.api.app import create_app

    logs.configure(logging.INFO)
    try:
        tls = settings.tls()
    except ValueError as wrong:
        raise CliError(str(wrong)) from None
    if warning := settings.plain_http_warning(args.host):
        print(f"warning: {warning}", file=sys.stderr)
    scheme = "https" if tls else "http"
    print(f"Scoring API on {scheme}://{args.host}:{args.port} (OpenAPI docs at /docs; snapshot and models under {settings.credit_home()})")
    # uvicorn's access log is off: the API logs one line per request itself, ids only
    uvicorn.run(create_app(), host=args.host, port=args.port, access_log=False, log_level="warning", timeout_graceful_shutdown=5,
                **({"ssl_certfile": tls[0], "ssl_keyfile": tls[1]} if tls else {}))
    return 0


def _api_key(args: argparse.Namespace) -> int:
    from credit_dagster.api import keys

    try:
        if args.action == "create":
            key = keys.create(args.name, args.rate, scopes=tuple(args.scope or ()), channels=tuple(args.channel or ()))
            print(f"API key for {args.name} ({args.rate:g} requests/s; may {', '.join(sorted(set(args.scope)))}); shown once, "
                  f"store it in that system's secrets:\n{key}")
        elif args.action == "revoke":
            keys.revoke(args.name)
            print(f"revoked the key of {args.name}: its requests now get 403")
        else:
            for name, entry in keys.listing().items():
                state = f"revoked {entry['revoked_at']}" if entry["revoked_at"] else "active"
                scopes = ", ".join(entry.get("scopes") or ["every scope (made before scopes: re-issue it)"])
                print(f"{name:24s} {state:32s} created {entry['created_at']}  {entry['rate_per_second']:g}/s  {scopes}")
    except ValueError as error:
        raise CliError(str(error)) from error
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from panel_app import app

    try:
        app.server_options(args.no_login)  # no sign-in possible: say so before announcing an address
    except SystemExit as refused:
        raise CliError(str(refused)) from None
    try:
        scheme = "https" if settings.tls() else "http"
    except ValueError as wrong:
        raise CliError(str(wrong)) from None
    print(f"Dashboard on {scheme}://{args.address}:{args.port}/app (snapshot and sign-in under {settings.credit_home()})")
    return app.main(["--port", str(args.port), "--address", args.address, *(["--no-login"] if args.no_login else [])])


def _dashboard_user(args: argparse.Namespace) -> int:
    from panel_app import auth

    if args.action == "add":
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"password for {args.name}: ")
        try:
            auth.set_user(args.name, password, role=args.role)
        except ValueError as error:
            raise CliError(str(error)) from error
        print(f"{args.name} can sign in to the dashboard as {args.role} (hash stored in {auth.users_path()})")
    elif args.action == "remove":
        if not auth.remove_user(args.name):
            raise CliError(f"no dashboard user {args.name!r} in {auth.users_path()}")
        print(f"{args.name} can no longer sign in; their open sessions have ended")
    elif args.action == "unlock":
        if not auth.unlock(args.name):
            raise CliError(f"{args.name!r} is not a locked dashboard user in {auth.users_path()}")
        auth.record(getpass.getuser(), "account unlocked (command line)", user_unlocked=args.name)
        print(f"{args.name} can sign in again")
    else:
        locked = auth.locked()
        print("\n".join(f"{name:24s} {role}" + (f"  LOCKED since {locked[name]}" if name in locked else "")
                        for name, role in sorted(auth.roles().items())) or f"no user in {auth.users_path()}")
    return 0


def _backup(args: argparse.Namespace) -> int:
    from credit_dagster import backup

    try:
        manifest = backup.backup(Path(args.dest))
    except backup.BackupError as refused:
        raise CliError(str(refused)) from None
    size = sum(f["bytes"] for f in manifest["files"].values())
    print(f"Backed up {settings.credit_home()} to {args.dest}: {len(manifest['files'])} files, {size / 1e6:,.1f} MB, "
          f"checksums in {backup.MANIFEST}")
    for note in manifest["notes"]:
        print(f"note: {note}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from credit_dagster import backup
    from credit_dagster.subject import erase

    # the erasures made since the backup was taken, kept in the home restore is run from
    key, plans = erase.erasures() if not args.verify_only and settings.credit_home().is_dir() else (None, [])
    try:
        manifest = backup.verify(Path(args.source)) if args.verify_only else backup.restore(Path(args.source), Path(args.to))
    except backup.BackupError as refused:
        raise CliError(str(refused)) from None
    if key and plans:
        with settings.home_at(Path(args.to).expanduser().resolve()):
            again = erase.reapply(key, plans, f"cli:{getpass.getuser()}")
        print(f"{len({p['pseudonym'] for p in plans})} people erased since (the erasures journal of {settings.credit_home()}): "
              f"{len(again)} of them were in the backup, erased again in the restored home")
    taken = f"taken {manifest['created_at']} of {manifest['home']} by release {manifest['release']}"
    if args.verify_only:
        print(f"{args.source}: every one of its {len(manifest['files'])} files is as it was when the backup was {taken}")
    else:
        print(f"Restored the backup {taken} into {args.to} (every file checked). Use it with CREDIT_HOME={args.to}; "
              "dashboard users sign in again.")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from credit_dagster import backup

    home = settings.credit_home()
    due = formats.due(home)
    if not due:
        print(f"{home} is in this release's formats ({formats.release()}): nothing to migrate")
        return 0
    print("due: " + ", ".join(f"{store} format {old} -> {new}" for store, (old, new) in due.items()))
    if not args.no_backup:
        dest = Path(args.backup) if args.backup else home.with_name(f"{home.name}.before-migrate-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        try:
            backup.backup(dest)
        except backup.BackupError as refused:
            raise CliError(f"no migration without a backup first: {refused}") from None
        print(f"backed up to {dest} (credit-dagster restore {dest} --to HOME brings it back)")
    formats.migrate(home)
    print(f"{home} is now in this release's formats ({formats.release()})")
    return 0


def _audit(args: argparse.Namespace) -> int:
    """Walk every journal's hash chain (of this home, or of a restored backup's with CREDIT_HOME)."""
    from credit_dagster.core import audit

    heads = dict(h.split("=", 1) for h in args.head or [])
    broken = False
    for name, (folder, prefix) in audit.journals().items():
        lines, head, breaks = audit.verify(folder, prefix)
        moved = name in heads and heads[name] != head
        print(f"{name}: {lines:,} lines, head {head[:16]}" + (" (not the head published: its last lines changed)" if moved else ""))
        for problem in breaks[:10]:
            print(f"  BROKEN {problem}")
        broken |= bool(breaks) or moved
    broken |= not _decisions_sealed()
    if broken:
        raise CliError("a journal or a night's decisions changed after they were written (above: where)")
    return 0


def _decisions_sealed() -> bool:
    """The nights' audit rows chained again against their seals (core/seals.py): whether all hold."""
    from credit_dagster.core import formats, seals, warehouse

    if not settings.warehouse_path().exists():
        return True
    try:
        with warehouse.connect(settings.warehouse_path(), scratch=True, wait=False) as con:
            checked = seals.verify(con)
    except (warehouse.WarehouseBusy, formats.FormatError) as unread:
        print(f"night decisions: not verified: {unread}")
        return False
    before = f"; {checked.unsealed_before:,} rows written before nights were sealed (not checked)" if checked.unsealed_before else ""
    retired = f"; {checked.retired} runs past their retention, removed (recorded in the retention journal)" if checked.retired else ""
    print(f"night decisions: {checked.rows:,} rows of {checked.runs} sealed runs{before}{retired}")
    for problem in checked.problems[:10]:
        print(f"  BROKEN {problem}")
    return not checked.problems


def _decision(args: argparse.Namespace) -> int:
    """Stored decisions as their audit records have them (`show`), or made again and compared
    (`replay`): one applicant's, or with --night every decision of a night."""
    from credit_dagster.core.resources import Warehouse
    from credit_dagster.decision import replay
    from credit_dagster.model.registry import Registry
    from credit_dagster.nightly import drops

    if args.id is None and args.at is None:
        raise CliError("name an applicant (SK_ID_CURR), a night (--at YYYY-MM-DD), or both")
    try:
        with Warehouse().connect(scratch=True) as con:
            records = replay.stored_records(con, args.id, args.at)
            if args.action == "show":
                print("\n\n".join("\n".join(replay.shown(r)) for r in records))
                return 0
            night = records[0]["partition_date"]
            results = replay.replay(con, Registry(settings.models_dir()), records, drops.drop_schema(night))
    except replay.NotReplayable as gone:
        raise CliError(str(gone)) from gone
    differ = [r for r in results if not r.same]
    if len(results) == 1:
        print("\n".join(results[0].lines()))
    else:
        print("\n\n".join("\n".join(r.lines()) for r in differ))
        print(f"night {night}: {len(results) - len(differ):,} of {len(results):,} decisions replayed exactly"
              + (f"; {len(differ):,} differ (above)" if differ else ""))
    return 1 if differ else 0


def _subject(args: argparse.Namespace) -> int:
    if args.action == "erase":
        return _erase(args)
    return _export(args)


def _erase(args: argparse.Namespace) -> int:
    """The applicant's data erased from every store, the retained facts pseudonymised (subject/erase.py)."""
    from credit_dagster.core import warehouse
    from credit_dagster.subject import erase

    if not args.reason:
        raise CliError("say why with --reason (the request's reference): the erasures journal keeps it")
    try:
        done = erase.erase(args.id, args.reason, f"cli:{getpass.getuser()}")
    except warehouse.WarehouseBusy as busy:
        raise CliError(f"{busy}: try again when the night has written") from busy
    for where, rows in done.deleted.items():
        print(f"deleted {rows:,} rows: {where}")
    for where, rows in done.pseudonymised.items():
        print(f"kept under pseudonym {done.pseudonym}: {rows:,} rows: {where}")
    for path in done.files:
        print(f"removed {path}")
    for gap in done.left:
        print(f"NOT ERASED {gap}")
    print(f"applicant {args.id}: {sum(done.deleted.values()):,} rows deleted, {sum(done.pseudonymised.values()):,} decisions and "
          f"journal lines kept under pseudonym {done.pseudonym}; recorded in the erasures journal")
    return 1 if done.left else 0


def _export(args: argparse.Namespace) -> int:
    """Everything held about one applicant, from every store, as one JSON file and a readable PDF
    (0600); the export itself is journaled with the OS account that asked (the API reads journal)."""
    from datetime import UTC, datetime

    from credit_dagster.core import audit, warehouse
    from credit_dagster.subject import export

    try:
        found = export.export(args.id)
    except warehouse.WarehouseBusy as busy:
        raise CliError(f"{busy}: try again when the night has written") from busy
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out, pdf = export.write(found, Path(args.out) if args.out else settings.credit_home() / "exports" / f"subject_{args.id}_{stamp}.json")
    audit.AuditLog(audit.audit_dir(), prefix=audit.READS_PREFIX).append([{
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"), "caller": f"cli:{getpass.getuser()}", "read": "subject export",
        "SK_ID_CURR": args.id}])
    for store, rows in found.counts().items():
        print(f"{store}: {rows:,} rows")
    for gap in found.not_searched:
        print(f"NOT SEARCHED {gap}")
    print(f"{sum(found.counts().values()):,} rows about applicant {args.id} in {len(found.found)} places: {out} (readable: {pdf})")
    return 0


# what needs no home in this release's formats: making data, probing, copying and migrating homes
NO_FORMAT_CHECK = {"synth", "health", "backup", "restore", "migrate", "audit"}
HEALTH = ("api", "dashboard", "webserver", "code-server", "daemon")


def _health(args: argparse.Namespace) -> int:
    """Whether one service of this machine answers: the image's health check and a probe's command.
    The HTTP ones are asked on loopback (over TLS when CREDIT_TLS_CERT is set, the certificate not
    checked: it names the bank's address, not 127.0.0.1); Dagster's own are asked with its own checks."""
    import ssl
    import subprocess
    import urllib.request

    if args.service is None:
        raise CliError(f"which service? one of {', '.join(HEALTH)} (or CREDIT_SERVICE)")
    configured = settings.current()
    scheme = "https" if configured.tls_cert else "http"
    url = {"api": f"{scheme}://127.0.0.1:{configured.api_port}/health", "dashboard": f"{scheme}://127.0.0.1:{configured.dashboard_port}/login",
           "webserver": f"http://127.0.0.1:{args.port or 3000}/server_info"}.get(args.service)
    if url:
        loopback = ssl._create_unverified_context() if scheme == "https" else None  # loopback only, see above
        try:
            with urllib.request.urlopen(url, timeout=5, context=loopback) as answer:
                ok = answer.status == 200
        except OSError as error:
            raise CliError(f"{args.service} does not answer at {url}: {error}") from None
    else:
        tool = Path(sys.executable).with_name("dagster" if args.service == "code-server" else "dagster-daemon")
        check = [str(tool), "api", "grpc-health-check", "-p", str(args.port or 3030)] if args.service == "code-server" else [str(tool),
                                                                                                                           "liveness-check"]
        ok = subprocess.run(check, capture_output=True, timeout=60).returncode == 0
    if not ok:
        raise CliError(f"{args.service} is not healthy")
    print(f"{args.service}: healthy")
    return 0


def _refer_everything(args: argparse.Namespace) -> int:
    from credit_dagster.core import refer_all
    from panel_app import auth

    if args.action != "status":
        if not args.by or not args.why:
            raise CliError(f"refer-everything {args.action} needs --by (a supervisor of the dashboard) and --why")
        role = auth.roles().get(args.by, "")
        try:
            # --by is a supervisor of the users file; who ran the command is recorded beside it, not taken on trust
            refer_all.set_switch(args.action == "on", by=args.by, role=role, why=args.why, operator=getpass.getuser())
        except (PermissionError, ValueError) as refused:
            raise CliError(str(refused)) from None
    print(refer_all.state().sentence())
    return 0


def _parser() -> argparse.ArgumentParser:
    from credit_dagster.api.keys import SCOPES  # the standard library's and the settings' only
    from credit_dagster.review.cases import CHANNELS  # the standard library's only: no start-up cost

    fmt = argparse.RawDescriptionHelpFormatter
    configured = settings.current()
    parser = argparse.ArgumentParser(prog="credit-dagster", description=__doc__, formatter_class=fmt)
    parser.add_argument("--verbose", action="store_true", help="show the full traceback when something fails")
    # also accepted after the command (`credit-dagster run --verbose`), where every error message suggests it
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help="show the full traceback when something fails")
    sub = parser.add_subparsers(dest="command", required=True)
    command = functools.partial(sub.add_parser, parents=[verbose])
    synth = command("synth", help="write a SYNTHETIC data set in the Kaggle layout", formatter_class=fmt,
                           epilog="example: credit-dagster synth --scale 0.1 --seed 42 --out /tmp/synthetic")
    synth.add_argument("--scale", type=float, default=0.01, help="1 = Kaggle's row counts, about 2.7 GB of CSV (default 0.01)")
    synth.add_argument("--seed", type=int, default=42, help="same seed, same data (default 42)")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=_synth)
    run = command("run", help="build everything (ingest, features, model) and score the inbox, in-process", formatter_class=fmt,
                         epilog="example: credit-dagster run --data-dir /data/home-credit\n"
                                "A first run takes about 5 minutes on 2 cores with the synthetic default data.")
    run.add_argument("--data-dir", help="folder with the Kaggle CSV files (default: CREDIT_DATA_DIR, else the folder this "
                                        "CREDIT_HOME was built from, else a generated SYNTHETIC data set)")
    run.add_argument("--replay-days", type=int, default=3, help="daily drops to make from application_test when the inbox is empty")
    run.add_argument("--rebuild", action="store_true", help="run build_all even when the data and the code are those of the last build")
    run.set_defaults(func=_run)
    replay = command("replay", help="split application_test into N daily drops in the inbox (by SK_ID_CURR)", formatter_class=fmt,
                            epilog="example: credit-dagster replay --days 5 --start 2026-11-16")
    replay.add_argument("--days", type=int, required=True, help="number of daily drops; applicant i goes to day i mod N")
    replay.add_argument("--start", type=_day, help="first day, YYYY-MM-DD (default: N days before today, Europe/Paris)")
    replay.add_argument("--data-dir", help="default: the folder this CREDIT_HOME was built from")
    replay.add_argument("--labelled", action="store_true", help="replay the labelled applicants of DATA_DIR/extra_labelled instead "
                        "(never trained on); `backtest --labelled-outcomes` later delivers their TARGET as outcomes")
    replay.set_defaults(func=_replay)
    score = command("score", help="score (or backfill) the nights from --start to --end", formatter_class=fmt,
                           epilog="example: credit-dagster score --start 2026-11-16 --end 2026-11-20\n"
                                  "Days without a drop in the inbox are reported and skipped, not failed; nights already\n"
                                  "scored are skipped unless --rescore --reason says why.")
    score.add_argument("--start", type=_day, required=True, help="first night, YYYY-MM-DD (a day that has ended, Europe/Paris)")
    score.add_argument("--end", type=_day, help="last night, YYYY-MM-DD (default: --start)")
    score.add_argument("--data-dir", help="default: the folder this CREDIT_HOME was built from")
    score.add_argument("--rescore", action="store_true",
                       help="score nights already scored again (with --reason): decisions that would change keep standing, "
                            "each opens a review case")
    score.add_argument("--reason", help="why nights already scored are scored again (kept in the review journal)")
    score.add_argument("--dry-run", action="store_true", help="only say how many decisions scoring again would change")
    score.set_defaults(func=_score)
    promote = command("promote", help="make a registered model the champion, with a recorded sign-off", formatter_class=fmt,
                             epilog='example: credit-dagster promote v0003-20261122T101500 --reason "age gap reviewed by the risk committee"\n'
                                    "Needed when the fairness audit flags a group: automatic promotion stops there.")
    promote.add_argument("version", help="a version under CREDIT_HOME/models (see the model card or the registry)")
    promote.add_argument("--reason", required=True, help="why it is signed off; recorded in the registry and the model card")
    promote.set_defaults(func=_promote)
    ui = command("ui", help="start the Dagster UI (dagster dev) on the persistent DAGSTER_HOME", formatter_class=fmt,
                        epilog="example: credit-dagster ui --port 3000, then open http://localhost:3000")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--data-dir", help="default: the folder this CREDIT_HOME was built from")
    ui.set_defaults(func=_ui)
    worker = command("worker", help="start a Celery worker for the nightly steps (CREDIT_EXECUTOR=celery)", formatter_class=fmt,
                     epilog="example: credit-dagster worker --queue dagster --queue warehouse  (on the warehouse's machine)\n"
                            "         credit-dagster worker --queue dagster                     (on any other)\n"
                            "         credit-dagster worker --threads 1  (twice on a 2-core machine)")
    worker.add_argument("--queue", action="append", choices=["dagster", "warehouse"],
                        help="the queues served: dagster (shards, landing; default) and warehouse (steps that write the warehouse)")
    worker.add_argument("--name", help="the worker's name (default credit-<pid>@<host>)")
    worker.add_argument("--threads", type=int, help="LightGBM's and DuckDB's threads in a step (default CREDIT_THREADS, else the "
                        "physical cores); K workers on one machine: give each cores/K")
    worker.add_argument("--memory-limit", help="DuckDB's memory in a step, e.g. 1GB (default CREDIT_DUCKDB_MEMORY_LIMIT): past it "
                        "DuckDB spills to the temporary folder, so the worker's memory does not grow with the night")
    worker.set_defaults(func=_worker)
    api = command("api", help="start the scoring API (HTTP, OpenAPI at /docs)", formatter_class=fmt,
                         epilog="example: credit-dagster api --port 8000, then: curl -H 'X-API-Key: KEY' http://127.0.0.1:8000/v1/model")
    api.add_argument("--host", default=configured.api_host, help="default 127.0.0.1 (CREDIT_API_HOST)")
    api.add_argument("--port", type=int, default=configured.api_port, help="default 8000 (CREDIT_API_PORT)")
    api.set_defaults(func=_api)
    backup = command("backup", help="a consistent copy of CREDIT_HOME, taken while nights, the API and the dashboard run",
                     formatter_class=fmt, epilog="example: credit-dagster backup /backups/credit-2026-12-07  (a new or empty folder)\n"
                                                 "The warehouse is copied under its writer lock, journals up to their last complete line.")
    backup.add_argument("dest")
    backup.set_defaults(func=_backup)
    restore = command("restore", help="check a backup's files against its manifest, then copy it into a new home", formatter_class=fmt,
                      epilog="example: credit-dagster restore /backups/credit-2026-12-07 --to /srv/credit-restored")
    restore.add_argument("source")
    restore.add_argument("--to", help="a new or empty folder: the restored CREDIT_HOME")
    restore.add_argument("--verify-only", action="store_true", help="check the backup, restore nothing")
    restore.set_defaults(func=_restore)
    migrate = command("migrate", help="bring a home written by an older release to this release's formats (a backup first)",
                      formatter_class=fmt, epilog="example: credit-dagster migrate  (backs up to CREDIT_HOME.before-migrate-<time>)\n"
                                                  "Resumable: a migration stopped midway goes on from its last finished step.")
    migrate.add_argument("--backup", help="where the backup goes (default: beside the home)")
    migrate.add_argument("--no-backup", action="store_true", help="migrate without a backup (one was just taken)")
    migrate.set_defaults(func=_migrate)
    decision_cmd = command("decision", help="a past decision as recorded (show), or made again from its night's features and model "
                           "version and compared figure by figure (replay: exit 1 when anything differs)", formatter_class=fmt,
                           epilog="examples: credit-dagster decision replay 100042 --at 2026-10-01; credit-dagster decision replay --at 2026-10-01")
    decision_cmd.add_argument("action", choices=["show", "replay"])
    decision_cmd.add_argument("id", type=int, nargs="?", help="the applicant's SK_ID_CURR; without it, every decision of --at's night")
    decision_cmd.add_argument("--at", metavar="NIGHT", help="the night (YYYY-MM-DD) of the decision; default: the applicant's latest")
    decision_cmd.set_defaults(func=_decision)
    subject = command("subject", help="a person's data: `export` everything held about one applicant as one JSON file and a readable PDF "
                      "(GDPR Art. 15); `erase` it from every store, the decisions and their evidence kept under a pseudonym (Art. 17)",
                      formatter_class=fmt, epilog="examples: credit-dagster subject export 100042 --out /secure/100042.json\n"
                      "  credit-dagster subject erase 100042 --reason 'DPO request 2026-118'")
    subject.add_argument("action", choices=["export", "erase"])
    subject.add_argument("id", type=int, help="the applicant's SK_ID_CURR")
    subject.add_argument("--out", help="export: the file to write (default CREDIT_HOME/exports/subject_<id>_<time>.json), readable by its owner only")
    subject.add_argument("--reason", help="erase: the request's reference, kept in the erasures journal")
    subject.set_defaults(func=_subject)
    audit_cmd = command("audit", help="check that no journal line was edited, deleted or moved (their hash chains), nor any "
                        "night's decision (their seals)", formatter_class=fmt,
                        epilog="example: credit-dagster audit verify --head \"review journal=<the head the night's check published>\"")
    audit_cmd.add_argument("action", choices=["verify"])
    audit_cmd.add_argument("--head", action="append", help="NAME=HASH: the head a journal must end with (from the Dagster check's metadata)")
    audit_cmd.set_defaults(func=_audit)
    health = command("health", help="whether a service of this machine answers (the image's health check)", formatter_class=fmt,
                     epilog="example: credit-dagster health api  (exit 0 when /health answers; ports from the same settings)")
    health.add_argument("service", nargs="?", choices=HEALTH, default=configured.service, help="default CREDIT_SERVICE")
    health.add_argument("--port", type=int, help="the webserver's (default 3000) or the code server's (default 3030) port")
    health.set_defaults(func=_health)
    api_key = command("api-key", help="create, revoke or list the API keys of calling systems", formatter_class=fmt,
                             epilog="example: credit-dagster api-key create front-office --rate 50 --scope decisions:read --scope contest\n"
                                    "Keys are stored hashed in CREDIT_API_KEYS (default CREDIT_HOME/api_keys.json).")
    api_key.add_argument("action", choices=["create", "revoke", "list"])
    api_key.add_argument("name", nargs="?", default="", help="the calling system (for create and revoke)")
    api_key.add_argument("--rate", type=float, default=20.0, help="requests per second allowed to this key (bursts of twice that)")
    api_key.add_argument("--scope", action="append", choices=SCOPES,
                         help="what the key may do (repeat it): read stored decisions, read letters, contest, score on demand")
    api_key.add_argument("--channel", action="append", choices=CHANNELS,
                         help="with --scope contest: the only channels its contests may come from (repeat it; default: any)")
    api_key.set_defaults(func=_api_key)
    dash = command("dashboard", help="start the relationship managers' dashboard (Panel), behind a sign-in", formatter_class=fmt,
                          epilog="example: credit-dagster dashboard-user add alice; credit-dagster dashboard, then open "
                                 "http://127.0.0.1:5006/app")
    dash.add_argument("--port", type=int, default=configured.dashboard_port, help="default 5006 (CREDIT_DASHBOARD_PORT)")
    dash.add_argument("--address", default=configured.dashboard_host, help="default 127.0.0.1 (CREDIT_DASHBOARD_HOST)")
    dash.add_argument("--no-login", action="store_true", help="no sign-in: for a local look only")
    dash.set_defaults(func=_dashboard)
    dash_user = command("dashboard-user", help="add, remove, unlock or list the people who may sign in to the dashboard",
                               formatter_class=fmt, epilog="example: credit-dagster dashboard-user add alice  (asks for the password)\n"
                               "Passwords are stored as scrypt hashes in CREDIT_DASHBOARD_USERS (default CREDIT_HOME/dashboard/users.json).\n"
                               "An account is locked after CREDIT_DASHBOARD_LOCK_AFTER failed sign-ins in a row: `unlock` (or a supervisor "
                               "in the dashboard, or a new password) lifts it.")
    dash_user.add_argument("action", choices=["add", "remove", "unlock", "list"])
    dash_user.add_argument("name", nargs="?", default="")
    dash_user.add_argument("--password-stdin", action="store_true", help="read the password from standard input (scripts)")
    dash_user.add_argument("--role", choices=["advisor", "supervisor"], default="advisor",
                           help="advisor (default) or supervisor: a supervisor also sees the supervision view")
    dash_user.set_defaults(func=_dashboard_user)
    backtest = command("backtest", help="fold the outcome files of the inbox and back-test every model version per vintage",
                       formatter_class=fmt, epilog="example: credit-dagster backtest --synthetic-months 12\n"
                       "Outcome files: loan_outcomes.csv in any subfolder of CREDIT_OUTCOMES_INBOX (README: Outcomes and back-testing).")
    backtest.add_argument("--synthetic-months", type=int, default=0,
                          help="first write SYNTHETIC outcomes of every granted application at this many months on book")
    backtest.add_argument("--labelled-outcomes", action="store_true",
                          help="first deliver the TARGET of the labelled applicants `replay --labelled` sent as drops (real sample)")
    backtest.add_argument("--data-dir", help="default: the folder this CREDIT_HOME was built from")
    backtest.set_defaults(func=_outcomes)
    switch = command("refer-everything", help="a supervisor sends every new decision to an advisor (on), or lets the model decide again (off)",
                     formatter_class=fmt, epilog='example: credit-dagster refer-everything on --by sue --why "income data feed broken"\n'
                     "Takes effect on the next API request and the next night; journaled with who, when and why.")
    switch.add_argument("action", choices=["on", "off", "status"])
    switch.add_argument("--by", default="", help="the supervisor (a dashboard user with the supervisor role)")
    switch.add_argument("--why", default="", help="the reason, kept in the journal")
    switch.set_defaults(func=_refer_everything)
    return parser


def command_names() -> list[str]:
    """The commands `credit-dagster` has (the docs' test checks each one they name)."""
    return list(next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "restore" and not (args.to or args.verify_only):
        parser.error("restore needs --to HOME (or --verify-only)")
    if args.command == "dashboard-user" and args.action != "list" and not args.name:
        parser.error(f"dashboard-user {args.action} needs a user name")
    if args.command == "api-key" and args.action != "list" and not args.name:
        parser.error(f"api-key {args.action} needs the name of the calling system")
    try:
        if args.command not in NO_FORMAT_CHECK:  # a home of another release's formats: said now, not by a failure later
            try:
                formats.check(settings.credit_home())
            except formats.FormatError as wrong:
                raise CliError(str(wrong)) from None
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # one clear line for the operator; the traceback on request
        if args.verbose:
            raise
        kind = "error" if isinstance(error, CliError) else type(error).__name__
        message = (str(error).strip() or type(error).__name__).splitlines()[0]
        if isinstance(error, PermissionError | NotADirectoryError) or getattr(error, "errno", None) == errno.EROFS:
            kind, message = "error", (f"cannot write {error.filename or 'a file'}: {error.strerror or error}; set CREDIT_HOME to a "
                                      f"folder you can write (now {settings.credit_home()})")
        print(f"credit-dagster {args.command}: {kind}: {message} (run with --verbose for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
