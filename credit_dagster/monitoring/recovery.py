"""After a crash: runs whose process died are marked failed and give their pool slots back.

A run killed by SIGKILL, the OOM killer or a power cut never reports its end: Dagster keeps it
STARTED forever and its slot in the `duckdb_writer` pool stays claimed, so every later run
waits for a slot that never comes. Runs started by `credit-dagster` carry the PID and host of
their process (`run_tags`); before each run the CLI checks them here. Runs launched from the
UI run in processes the Dagster daemon watches: its run monitoring (on in `dagster.yaml`)
fails them when their process dies and frees their slots.
"""

from __future__ import annotations

import os
import socket

import dagster as dg

PID_TAG, HOST_TAG = "credit/pid", "credit/host"
ACTIVE = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]


def run_tags() -> dict[str, str]:
    """Tags that let a later process tell whether this run's process is still alive."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_gone(run: dg.DagsterRun) -> bool | None:
    """Whether the credit-dagster process that runs `run` is gone: None when the run was not
    started by credit-dagster or its process is on another host (which cannot be asked from here)."""
    pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
    if not pid or host != socket.gethostname():
        return None
    return int(pid) != os.getpid() and not _alive(int(pid))


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every active run whose process (on this host) is gone, free the pool slots of
    any run that is not active, and return one line per thing done."""
    said = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE)):
        pid = run.tags.get(PID_TAG)
        if process_gone(run):
            instance.report_run_failed(run, f"process {pid} died without finishing the run (killed or crashed); marked failed")
            said.append(f"run {run.run_id[:8]} ({run.job_name}{' ' + run.tags['dagster/partition'] if 'dagster/partition' in run.tags else ''}) "
                        f"was left running by dead process {pid}: marked failed")
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        active = {r.run_id for r in instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE))}
        for run_id in sorted(storage.get_concurrency_run_ids() - active):
            storage.free_concurrency_slots_for_run(run_id)
            said.append(f"freed the pool slots still held by run {run_id[:8]}, which is no longer running")
    return said
