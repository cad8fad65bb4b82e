"""`credit-dagster`: generate synthetic data, run the whole pipeline, open the UI."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from credit_dagster import settings


def _synth(args: argparse.Namespace) -> int:
    from credit_dagster.synth.generator import generate

    started = time.perf_counter()
    rows = generate(args.out, scale=args.scale, seed=args.seed, progress=not args.quiet)
    print(f"SYNTHETIC data (scale {args.scale}, seed {args.seed}) written to {Path(args.out).resolve()} "
          f"in {time.perf_counter() - started:.1f}s:")
    for table, n in rows.items():
        print(f"  {table:24s} {n:>12,} rows")
    return 0


def resolve_data_dir(data_dir: str | None) -> Path:
    """--data-dir, else CREDIT_DATA_DIR, else the synthetic default (generated once)."""
    if data_dir:
        return Path(data_dir).expanduser().resolve()
    if os.environ.get("CREDIT_DATA_DIR"):
        return settings.data_dir()
    folder = settings.synthetic_default_dir()
    if not (folder / "SYNTHETIC.txt").exists():
        from credit_dagster.synth.generator import generate

        print(f"No --data-dir and no CREDIT_DATA_DIR: generating the SYNTHETIC default data set "
              f"(scale {settings.DEFAULT_SYNTHETIC_SCALE}, seed {settings.DEFAULT_SYNTHETIC_SEED}) in {folder}")
        generate(folder, settings.DEFAULT_SYNTHETIC_SCALE, settings.DEFAULT_SYNTHETIC_SEED)
    print(f"Using SYNTHETIC default data in {folder} (set CREDIT_DATA_DIR or --data-dir for real data)")
    return folder


def _execute(job_name: str, data_dir: Path, partition_key: str | None = None) -> bool:
    """Run one job in-process against the persistent instance; print what happened."""
    import dagster as dg

    from credit_dagster.definitions import defs

    job = defs.resolve_job_def(job_name)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={
                "resources": {"source": {"config": {"data_dir": str(data_dir)}}},
                # step-by-step DEBUG events stay in the run's event log (and the UI), not on the terminal
                "loggers": {"console": {"config": {"log_level": os.environ.get("CREDIT_LOG_LEVEL", "INFO")}}},
            },
            partition_key=partition_key,
            raise_on_error=False,
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
        for event in result.all_events:
            if event.is_failure and event.step_key:
                print(f"  step {event.step_key} failed: {event.event_specific_data.error.message.strip()}")
    return result.success


def _run(args: argparse.Namespace) -> int:
    from credit_dagster import drops
    from credit_dagster.instance import prepare_dagster_home

    data_dir = resolve_data_dir(args.data_dir)
    os.environ["CREDIT_DATA_DIR"] = str(data_dir)
    prepare_dagster_home()
    print(f"CREDIT_HOME={settings.credit_home()}  warehouse={settings.warehouse_path()}  DAGSTER_HOME={settings.dagster_home()}")
    if not _execute("build_all", data_dir):
        return 1
    inbox = drops.inbox_dir()
    if not any(inbox.glob("*/application_test.csv*")):
        counts = drops.replay(data_dir, inbox, args.replay_days, _default_start(args.replay_days))
        print(f"inbox empty: replayed application_test as {len(counts)} daily drops in {inbox}: {counts}")
    days = sorted(p.name for p in inbox.iterdir() if p.is_dir())
    ok = all([_execute("nightly_scoring", data_dir, day) for day in days])
    print(f"serving snapshot: {settings.credit_home() / 'serving' / 'serving.duckdb'}; reports: {settings.reports_dir()}")
    return 0 if ok else 1


def _default_start(days: int):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    # drops for the last `days` complete days in Paris, so yesterday's is the newest
    return datetime.now(ZoneInfo("Europe/Paris")).date() - timedelta(days=days)


def _replay(args: argparse.Namespace) -> int:
    from datetime import date

    from credit_dagster import drops

    start = date.fromisoformat(args.start) if args.start else _default_start(args.days)
    counts = drops.replay(resolve_data_dir(args.data_dir), drops.inbox_dir(), args.days, start)
    for day, n in counts.items():
        print(f"  {drops.inbox_dir() / day}: {n} applications")
    return 0


def _score(args: argparse.Namespace) -> int:
    from datetime import date, timedelta

    from credit_dagster.instance import prepare_dagster_home

    data_dir = resolve_data_dir(args.data_dir)
    prepare_dagster_home()
    first, last = date.fromisoformat(args.start), date.fromisoformat(args.end or args.start)
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    return 0 if all([_execute("nightly_scoring", data_dir, day) for day in days]) else 1


def _ui(args: argparse.Namespace) -> int:
    from credit_dagster.instance import prepare_dagster_home

    # Runs launched from the UI read the same data as `run` would: export it for dagster dev.
    os.environ["CREDIT_DATA_DIR"] = str(resolve_data_dir(args.data_dir))
    prepare_dagster_home()
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.exists() else ["-m", "credit_dagster.definitions"]
    # The dagster command installed beside this Python, so an unactivated venv works too.
    dagster = Path(sys.executable).with_name("dagster")
    os.execv(dagster, [str(dagster), "dev", *target, "-p", str(args.port)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="credit-dagster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synth", help="write a SYNTHETIC data set in the Kaggle layout")
    synth.add_argument("--scale", type=float, default=0.01, help="1 = Kaggle's row counts (default 0.01)")
    synth.add_argument("--seed", type=int, default=42)
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=_synth)
    run = sub.add_parser("run", help="materialize every asset in dependency order, in-process")
    run.add_argument("--data-dir", help="folder with the Kaggle CSV files (default: CREDIT_DATA_DIR or synthetic)")
    run.add_argument("--replay-days", type=int, default=3, help="daily drops to make from application_test when the inbox is empty")
    run.set_defaults(func=_run)
    replay = sub.add_parser("replay", help="split application_test into N daily drops in the inbox (by SK_ID_CURR)")
    replay.add_argument("--days", type=int, required=True)
    replay.add_argument("--start", help="first day, YYYY-MM-DD (default: N days before today, Europe/Paris)")
    replay.add_argument("--data-dir")
    replay.set_defaults(func=_replay)
    score = sub.add_parser("score", help="score (or backfill) the daily partitions from --start to --end")
    score.add_argument("--start", required=True)
    score.add_argument("--end")
    score.add_argument("--data-dir")
    score.set_defaults(func=_score)
    ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on the persistent DAGSTER_HOME")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--data-dir", help="folder with the Kaggle CSV files (default: CREDIT_DATA_DIR or synthetic)")
    ui.set_defaults(func=_ui)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
