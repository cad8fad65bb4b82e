"""Benchmark: wall time, rows/s and peak RSS per pipeline stage, at a given synthetic scale.

Each stage runs in its own child process, so its peak RSS is its own (read from wait4).

    python bench/bench.py --scale 0.1                      # synth + ingest
    python bench/bench.py --scale 1 --stages synth,ingest --workdir /tmp/bench1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("synth", "ingest")


def stage_synth(workdir: Path, scale: float) -> dict:
    from credit_dagster.synth.generator import generate

    rows = generate(workdir / "data", scale=scale, seed=42, progress=False)
    size = sum(p.stat().st_size for p in (workdir / "data").glob("*.csv"))
    return {"rows": sum(rows.values()), "csv_bytes": size}


def stage_ingest(workdir: Path, scale: float) -> dict:
    import duckdb

    from credit_dagster.ingest import find_source_file, load_table
    from credit_dagster.sources import SOURCE_TABLES

    db = workdir / "warehouse.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db), config={"memory_limit": os.environ.get("CREDIT_DUCKDB_MEMORY_LIMIT", "4GB")})
    per_table = {}
    for spec in SOURCE_TABLES.values():
        report = load_table(con, spec, find_source_file(workdir / "data", spec))
        per_table[spec.name] = round(report.seconds, 2)
    rows = sum(con.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in SOURCE_TABLES)
    con.close()
    return {"rows": rows, "seconds_per_table": per_table}


def run_stage(name: str, workdir: Path, scale: float) -> dict:
    """Run one stage in a child process; return its own wall time and peak RSS."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "_stage", name, str(workdir), str(scale)], stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"stage {name} failed (status {status})")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024)  # Linux reports KiB
    result["rows_per_s"] = round(result["rows"] / result["wall_s"]) if result.get("rows") else None
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_stage":
        _, _, name, workdir, scale = sys.argv
        print(json.dumps(globals()[f"stage_{name}"](Path(workdir), float(scale))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--workdir", default=None, help="default: bench/out/scale_<scale>")
    args = parser.parse_args()
    workdir = Path(args.workdir or Path(__file__).parent / "out" / f"scale_{args.scale}")
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"scale {args.scale}, workdir {workdir}, {os.cpu_count()} cores")
    for name in args.stages.split(","):
        result = run_stage(name, workdir, args.scale)
        print(f"{name:10s} wall {result['wall_s']:>7.1f} s  peak RSS {result['peak_rss_mb']:>6,} MB  "
              f"rows {result.get('rows', 0):>12,}  rows/s {result.get('rows_per_s') or 0:>10,}  "
              + json.dumps({k: v for k, v in result.items() if k not in ('wall_s', 'peak_rss_mb', 'rows', 'rows_per_s')}))


if __name__ == "__main__":
    main()
